#include "tokenizer/pre_tokenizer.h"

#include <nlohmann/json.hpp>

#include "tokenizer/regex.h"
#include "util/error.h"

namespace hwledger::tokenizer {
namespace {

using nlohmann::json;
using Span = std::pair<uint32_t, uint32_t>;

enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

Behavior parse_behavior(const json& spec, const std::string& origin) {
  std::string name = spec.value("behavior", std::string("Isolated"));
  if (name == "Removed") return Behavior::kRemoved;
  if (name == "Isolated") return Behavior::kIsolated;
  if (name == "MergedWithPrevious") return Behavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return Behavior::kMergedWithNext;
  if (name == "Contiguous") return Behavior::kContiguous;
  fail_input("{}: unsupported Split behavior '{}'", origin, name);
}

struct Piece {
  Span span;
  bool is_match;
};

// Applies a split behavior to the alternating matched / unmatched pieces of one pre-token,
// with the same rules as `tokenizers`' SplitDelimiterBehavior.
void apply_behavior(Behavior behavior, std::vector<Piece>& pieces, std::vector<Span>& out) {
  switch (behavior) {
    case Behavior::kIsolated:
      for (const Piece& p : pieces) out.push_back(p.span);
      return;
    case Behavior::kRemoved:
      for (const Piece& p : pieces)
        if (!p.is_match) out.push_back(p.span);
      return;
    case Behavior::kMergedWithPrevious: {
      size_t first = out.size();
      bool previous_match = false;
      for (const Piece& p : pieces) {
        if (p.is_match && !previous_match && out.size() > first)
          out.back().second = p.span.second;
        else
          out.push_back(p.span);
        previous_match = p.is_match;
      }
      return;
    }
    case Behavior::kMergedWithNext: {
      std::vector<Span> reversed;
      bool previous_match = false;
      for (auto it = pieces.rbegin(); it != pieces.rend(); ++it) {
        if (it->is_match && !previous_match && !reversed.empty())
          reversed.back().first = it->span.first;
        else
          reversed.push_back(it->span);
        previous_match = it->is_match;
      }
      out.insert(out.end(), reversed.rbegin(), reversed.rend());
      return;
    }
    case Behavior::kContiguous: {
      size_t first = out.size();
      bool previous_match = false;
      for (const Piece& p : pieces) {
        if (p.is_match == previous_match && out.size() > first)
          out.back().second = p.span.second;
        else
          out.push_back(p.span);
        previous_match = p.is_match;
      }
      return;
    }
  }
}

class SplitPreTokenizer final : public PreTokenizer {
 public:
  SplitPreTokenizer(Regex regex, Behavior behavior, bool invert)
      : regex_(std::move(regex)), behavior_(behavior), invert_(invert) {}

  void apply(PreTokens& tokens, bool) const override {
    auto& out = tokens.scratch;
    out.clear();
    out.reserve(tokens.spans.size() * 4);
    std::vector<Piece> pieces;
    for (Span span : tokens.spans) {
      std::string_view word = tokens.view(span);
      uint32_t base = span.first;
      if (behavior_ == Behavior::kIsolated && !invert_) {
        // The common case (GPT-2 style patterns): matches and the gaps between them.
        uint32_t previous = 0;
        regex_.for_each_match(word, [&](size_t begin, size_t end) {
          if (begin > previous) out.emplace_back(base + previous, base + uint32_t(begin));
          if (end > begin) out.emplace_back(base + uint32_t(begin), base + uint32_t(end));
          previous = uint32_t(end);
        });
        if (previous < word.size()) out.emplace_back(base + previous, span.second);
        continue;
      }
      pieces.clear();
      uint32_t previous = 0;
      regex_.for_each_match(word, [&](size_t begin, size_t end) {
        if (begin > previous)
          pieces.push_back({{base + previous, base + uint32_t(begin)}, invert_});
        if (end > begin)
          pieces.push_back({{base + uint32_t(begin), base + uint32_t(end)}, !invert_});
        previous = uint32_t(end);
      });
      if (previous < word.size()) pieces.push_back({{base + previous, span.second}, invert_});
      apply_behavior(behavior_, pieces, out);
    }
    tokens.spans.swap(out);
  }

 private:
  Regex regex_;
  Behavior behavior_;
  bool invert_;
};

// ByteLevel: optional prefix space and optional GPT-2 split. The byte-to-character mapping is
// left to the model (see PreTokenizerSpec::byte_level).
class ByteLevelPreTokenizer final : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, std::unique_ptr<Regex> regex)
      : add_prefix_space_(add_prefix_space), regex_(std::move(regex)) {}

  void apply(PreTokens& tokens, bool) const override {
    if (add_prefix_space_) {
      for (Span& span : tokens.spans) {
        if (span.second > span.first && tokens.text[span.first] == ' ') continue;
        // Append " " + word at the end of the text and point the span there.
        uint32_t begin = uint32_t(tokens.text.size());
        tokens.text.push_back(' ');
        tokens.text.append(tokens.text, span.first, span.second - span.first);
        span = {begin, uint32_t(tokens.text.size())};
      }
    }
    if (!regex_) return;
    auto& out = tokens.scratch;
    out.clear();
    for (Span span : tokens.spans) {
      std::string_view word = tokens.view(span);
      uint32_t previous = 0;
      regex_->for_each_match(word, [&](size_t begin, size_t end) {
        if (begin > previous) out.emplace_back(span.first + previous, span.first + uint32_t(begin));
        if (end > begin) out.emplace_back(span.first + uint32_t(begin), span.first + uint32_t(end));
        previous = uint32_t(end);
      });
      if (previous < word.size()) out.emplace_back(span.first + previous, span.second);
    }
    tokens.spans.swap(out);
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> regex_;
};

enum class PrependScheme { kAlways, kFirst, kNever };

// Metaspace: spaces become the replacement character (U+2581 by default), a replacement is
// prepended per the scheme, and with `split` each replacement starts a new pre-token.
class MetaspacePreTokenizer final : public PreTokenizer {
 public:
  MetaspacePreTokenizer(std::string replacement, PrependScheme scheme, bool split)
      : replacement_(std::move(replacement)), scheme_(scheme), split_(split) {}

  void apply(PreTokens& tokens, bool first_piece) const override {
    auto& out = tokens.scratch;
    out.clear();
    for (Span span : tokens.spans) {
      uint32_t begin = uint32_t(tokens.text.size());
      std::string rewritten;
      std::string_view word = tokens.view(span);
      bool prepend = scheme_ == PrependScheme::kAlways ||
                     (scheme_ == PrependScheme::kFirst && first_piece && span.first == 0);
      if (prepend && !word.starts_with(replacement_) && !word.starts_with(' '))
        rewritten.append(replacement_);
      for (char c : word) {
        if (c == ' ')
          rewritten.append(replacement_);
        else
          rewritten.push_back(c);
      }
      tokens.text.append(rewritten);
      uint32_t end = uint32_t(tokens.text.size());
      if (!split_) {
        if (end > begin) out.emplace_back(begin, end);
        continue;
      }
      // MergedWithNext on the replacement: every replacement starts a pre-token.
      uint32_t start = begin;
      std::string_view all(tokens.text);
      size_t hit = all.find(replacement_, begin);
      while (hit != std::string_view::npos && hit < end) {
        if (hit > start) {
          out.emplace_back(start, uint32_t(hit));
          start = uint32_t(hit);
        }
        hit = all.find(replacement_, hit + replacement_.size());
      }
      if (end > start) out.emplace_back(start, end);
    }
    tokens.spans.swap(out);
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
  bool split_;
};

class SequencePreTokenizer final : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> steps)
      : steps_(std::move(steps)) {}
  void apply(PreTokens& tokens, bool first_piece) const override {
    for (const auto& step : steps_) step->apply(tokens, first_piece);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

bool bool_field(const json& spec, const char* key, bool fallback) {
  auto it = spec.find(key);
  if (it == spec.end() || it->is_null()) return fallback;
  return it->is_boolean() ? it->get<bool>() : fallback;
}

// Builds one step; sets `byte_level` when it is a ByteLevel step.
std::unique_ptr<PreTokenizer> make_step(const json& spec, const std::string& origin,
                                        bool& byte_level) {
  if (!spec.is_object() || !spec.contains("type") || !spec["type"].is_string())
    fail_input("{}: pre_tokenizer must be an object with a 'type'", origin);
  const std::string type = spec["type"].get<std::string>();
  if (type == "Split") {
    const json& pattern = spec.value("pattern", json());
    bool invert = bool_field(spec, "invert", false);
    Behavior behavior = parse_behavior(spec, origin);
    if (pattern.is_object() && pattern.contains("Regex") && pattern["Regex"].is_string())
      return std::make_unique<SplitPreTokenizer>(
          Regex(pattern["Regex"].get<std::string>(), origin + ": pre_tokenizer Split"), behavior,
          invert);
    if (pattern.is_object() && pattern.contains("String") && pattern["String"].is_string())
      return std::make_unique<SplitPreTokenizer>(
          Regex(pattern["String"].get<std::string>(), origin + ": pre_tokenizer Split", true),
          behavior, invert);
    fail_input("{}: pre_tokenizer Split needs a pattern {{\"Regex\": ...}} or {{\"String\": ...}}",
               origin);
  }
  if (type == "ByteLevel") {
    byte_level = true;
    std::unique_ptr<Regex> regex;
    if (bool_field(spec, "use_regex", true))
      regex = std::make_unique<Regex>(kGpt2Pattern, origin + ": pre_tokenizer ByteLevel");
    bool add_prefix_space = bool_field(spec, "add_prefix_space", true);
    if (!add_prefix_space && !regex) return nullptr;  // nothing left to do but the mapping
    return std::make_unique<ByteLevelPreTokenizer>(add_prefix_space, std::move(regex));
  }
  if (type == "Metaspace") {
    std::string replacement = spec.value("replacement", std::string("\u2581"));
    PrependScheme scheme = PrependScheme::kAlways;
    if (spec.contains("prepend_scheme") && spec["prepend_scheme"].is_string()) {
      std::string name = spec["prepend_scheme"].get<std::string>();
      if (name == "always")
        scheme = PrependScheme::kAlways;
      else if (name == "first")
        scheme = PrependScheme::kFirst;
      else if (name == "never")
        scheme = PrependScheme::kNever;
      else
        fail_input("{}: unsupported Metaspace prepend_scheme '{}'", origin, name);
    } else if (!bool_field(spec, "add_prefix_space", true)) {
      scheme = PrependScheme::kNever;
    }
    return std::make_unique<MetaspacePreTokenizer>(replacement, scheme,
                                                   bool_field(spec, "split", true));
  }
  if (type == "Sequence") {
    const json& list = spec.value("pretokenizers", json());
    if (!list.is_array())
      fail_input("{}: pre_tokenizer Sequence needs a 'pretokenizers' array", origin);
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    for (size_t i = 0; i < list.size(); ++i) {
      if (byte_level)
        fail_input("{}: unsupported pre_tokenizer Sequence: ByteLevel must be its last step",
                   origin);
      auto step = make_step(list[i], origin, byte_level);
      if (step) steps.push_back(std::move(step));
    }
    if (steps.empty()) return nullptr;
    if (steps.size() == 1) return std::move(steps[0]);
    return std::make_unique<SequencePreTokenizer>(std::move(steps));
  }
  fail_input("{}: unsupported pre_tokenizer type '{}'", origin, type);
}

}  // namespace

PreTokenizerSpec make_pre_tokenizer(const json& spec, const std::string& origin) {
  PreTokenizerSpec result;
  if (spec.is_null()) return result;
  result.pre_tokenizer = make_step(spec, origin, result.byte_level);
  return result;
}

}  // namespace hwledger::tokenizer
