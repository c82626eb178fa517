// Decoding, whole or streamed: both run DecodeState, so they cannot disagree.
#include <algorithm>

#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_impl.h"

namespace hwledger::tokenizer {
namespace detail {

void DecodeState::push(int32_t id, std::string& out) {
  const TokenizerImpl& impl = *impl_;
  if (!impl.known(id)) return;  // `tokenizers` skips ids it does not know
  if (skip_special_tokens_ && impl.is_special(id)) return;
  chars_.clear();
  if (first_token_ && impl.decoder.first_token_differs()) {
    utf8_.feed(impl.decoder.token_bytes(impl.token_string(id), true), chars_);
  } else {
    utf8_.feed(impl.token_bytes(id), chars_);
  }
  first_token_ = false;
  emit(chars_, out);
}

void DecodeState::emit(std::string_view chars, std::string& out) {
  const auto& strip_start = impl_->decoder.strip_start();
  const auto& strip_end = impl_->decoder.strip_end();
  if (leading_left_ == 0 && strip_end.count == 0) {
    out.append(chars);
    return;
  }
  size_t pos = 0;
  while (pos < chars.size()) {
    size_t start = pos;
    utf8::next_code_point(chars, pos);
    std::string_view ch = chars.substr(start, pos - start);
    if (leading_left_ > 0) {
      if (ch == strip_start.content) {
        --leading_left_;
        continue;
      }
      leading_left_ = 0;
    }
    if (strip_end.count > 0) {
      if (ch == strip_end.content) {
        held_.append(ch);  // may be trailing: wait for what follows
        continue;
      }
      out.append(held_);
      held_.clear();
    }
    out.append(ch);
  }
}

void DecodeState::finish(std::string& out) {
  chars_.clear();
  utf8_.finish(chars_);
  emit(chars_, out);
  const auto& strip_end = impl_->decoder.strip_end();
  if (!held_.empty()) {
    size_t drop = std::min(strip_end.count, held_.size() / strip_end.content.size());
    out.append(held_, 0, held_.size() - drop * strip_end.content.size());
    held_.clear();
  }
  first_token_ = true;
  leading_left_ = impl_->decoder.strip_start().count;
}

}  // namespace detail

// ---- StreamingDetokenizer ------------------------------------------------------------------

StreamingDetokenizer::StreamingDetokenizer(const Tokenizer& tokenizer, bool skip_special_tokens)
    : impl_(tokenizer.impl_),
      skip_special_tokens_(skip_special_tokens),
      state_(std::make_unique<detail::DecodeState>(*impl_, skip_special_tokens)) {}
StreamingDetokenizer::~StreamingDetokenizer() = default;
StreamingDetokenizer::StreamingDetokenizer(StreamingDetokenizer&&) noexcept = default;
StreamingDetokenizer& StreamingDetokenizer::operator=(StreamingDetokenizer&&) noexcept = default;

std::string StreamingDetokenizer::push(int32_t id) {
  std::string out;
  state_->push(id, out);
  return out;
}

std::string StreamingDetokenizer::flush() {
  std::string out;
  state_->finish(out);
  return out;
}

}  // namespace hwledger::tokenizer
