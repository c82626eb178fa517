#include "sched/text_stream.h"

#include <algorithm>

namespace hwledger {

StopStringMatcher::StopStringMatcher(std::vector<std::string> stop_strings) {
  for (auto& s : stop_strings)
    if (!s.empty()) {
      longest_ = std::max(longest_, s.size());
      stops_.push_back(std::move(s));
    }
}

const std::string& StopStringMatcher::matched() const {
  static const std::string none;
  return stopped_index_ >= 0 ? stops_[stopped_index_] : none;
}

std::string StopStringMatcher::push(std::string_view text) {
  if (stopped()) return {};
  if (stops_.empty()) return std::string(text);
  pending_.append(text);

  // The earliest complete stop string wins (the first listed on a tie).
  size_t best = std::string::npos;
  for (size_t i = 0; i < stops_.size(); ++i) {
    size_t at = pending_.find(stops_[i]);
    if (at < best) {
      best = at;
      stopped_index_ = static_cast<int>(i);
    }
  }
  if (best != std::string::npos) {
    std::string out = pending_.substr(0, best);
    pending_.clear();
    return out;
  }

  // Hold back the longest tail that is a proper prefix of some stop string. Stop strings are
  // whole UTF-8, so such a tail starts on a character boundary.
  size_t hold = 0;
  for (size_t k = std::min(pending_.size(), longest_ - 1); k > 0 && hold == 0; --k) {
    std::string_view tail = std::string_view(pending_).substr(pending_.size() - k);
    for (const auto& s : stops_)
      if (s.size() > k && std::string_view(s).substr(0, k) == tail) {
        hold = k;
        break;
      }
  }
  std::string out = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return out;
}

std::string StopStringMatcher::finish() {
  std::string out;
  out.swap(pending_);
  return stopped() ? std::string() : out;
}

TextStream::TextStream(const tokenizer::Tokenizer& tokenizer, std::vector<std::string> stop_strings,
                       bool skip_special_tokens)
    : detokenizer_(tokenizer, skip_special_tokens), matcher_(std::move(stop_strings)) {}

std::string TextStream::push(int32_t token) {
  if (matcher_.stopped()) return {};
  return matcher_.push(detokenizer_.push(token));
}

std::string TextStream::finish() {
  if (matcher_.stopped()) return {};
  std::string out = matcher_.push(detokenizer_.flush());
  if (!matcher_.stopped()) out += matcher_.finish();
  return out;
}

}  // namespace hwledger
