#include "tokenizer/added_tokens.h"

#include <utf8proc.h>

#include <cstring>

#include "tokenizer/normalizer.h"
#include "tokenizer/utf8.h"

namespace hwledger::tokenizer {
namespace {

// Rust regex's \w: letters, marks, decimal and letter numbers, connector punctuation
// ('_' among them) and the joiners.
bool is_word_char(char32_t c) {
  if (c < 0x80)
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  if (c == 0x200C || c == 0x200D) return true;
  switch (utf8proc_category(utf8proc_int32_t(c))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_PC:
      return true;
    default:
      return false;
  }
}

bool is_space(char32_t c) {
  // Rust's char::is_whitespace (the White_Space property).
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

// Start of the last character of text[0..end) (valid UTF-8).
size_t previous_char_start(std::string_view text, size_t end) {
  size_t pos = end - 1;
  while (pos > 0 && (uint8_t(text[pos]) & 0xC0) == 0x80) --pos;
  return pos;
}

char32_t char_at(std::string_view text, size_t pos) {
  return utf8::next_code_point(text, pos);
}

}  // namespace

void AddedVocabulary::Matcher::add(std::string_view pattern, int32_t token) {
  if (nodes.empty()) nodes.emplace_back();
  if (pattern.empty()) return;
  first_byte[uint8_t(pattern[0])] = true;
  int32_t node = 0;
  for (char c : pattern) {
    int32_t child = -1;
    for (auto [byte, index] : nodes[size_t(node)].children)
      if (byte == uint8_t(c)) child = index;
    if (child < 0) {
      child = int32_t(nodes.size());
      nodes[size_t(node)].children.emplace_back(uint8_t(c), child);
      nodes.emplace_back();
    }
    node = child;
  }
  // The first token with a given content wins.
  if (nodes[size_t(node)].token < 0) nodes[size_t(node)].token = token;
}

int32_t AddedVocabulary::Matcher::longest_at(std::string_view text, size_t pos,
                                             size_t& length) const {
  int32_t best = -1;
  int32_t node = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    int32_t child = -1;
    for (auto [byte, index] : nodes[size_t(node)].children)
      if (byte == uint8_t(text[i])) child = index;
    if (child < 0) break;
    node = child;
    if (nodes[size_t(node)].token >= 0) {
      best = nodes[size_t(node)].token;
      length = i + 1 - pos;
    }
  }
  return best;
}

void AddedVocabulary::build(std::vector<AddedToken> tokens, const Normalizer* normalizer) {
  tokens_ = std::move(tokens);
  raw_ = Matcher();
  normalized_ = Matcher();
  raw_.nodes.emplace_back();
  normalized_.nodes.emplace_back();
  std::string scratch;
  for (size_t i = 0; i < tokens_.size(); ++i) {
    const AddedToken& token = tokens_[i];
    if (token.content.empty()) continue;
    if (token.normalized && normalizer != nullptr) {
      normalized_.add(normalizer->normalize(token.content, scratch), int32_t(i));
    } else if (token.normalized) {
      normalized_.add(token.content, int32_t(i));
    } else {
      raw_.add(token.content, int32_t(i));
    }
  }
}

void AddedVocabulary::split(std::string_view text, bool normalized_pass, bool parse_special,
                            std::vector<Segment>& out) const {
  split_with(normalized_pass ? normalized_ : raw_, text, parse_special, out);
}

void AddedVocabulary::split_with(const Matcher& matcher, std::string_view text, bool parse_special,
                                 std::vector<Segment>& out) const {
  size_t emitted = 0;  // text before this is already in `out`
  if (!matcher.empty()) {
    const auto* bytes = reinterpret_cast<const uint8_t*>(text.data());
    size_t pos = 0;
    while (pos < text.size()) {
      if (!matcher.first_byte[bytes[pos]]) {
        ++pos;
        continue;
      }
      size_t length = 0;
      int32_t index = matcher.longest_at(text, pos, length);
      if (index < 0) {
        ++pos;
        continue;
      }
      const AddedToken& token = tokens_[size_t(index)];
      size_t start = pos, stop = pos + length;
      if (token.special && !parse_special) {
        pos = stop;  // like `tokenizers`' encode_special_tokens: the match stays plain text
        continue;
      }
      if (token.single_word) {
        bool left_ok = start == 0 || !is_word_char(char_at(text, previous_char_start(text, start)));
        bool right_ok = stop == text.size() || !is_word_char(char_at(text, stop));
        if (!left_ok || !right_ok) {
          pos = stop;  // like `tokenizers`: the search goes on after the rejected match
          continue;
        }
      }
      if (token.lstrip) {
        while (start > emitted) {
          size_t prev = previous_char_start(text, start);
          if (!is_space(char_at(text, prev))) break;
          start = prev;
        }
      }
      if (token.rstrip) {
        while (stop < text.size()) {
          size_t next = stop;
          if (!is_space(utf8::next_code_point(text, next))) break;
          stop = next;
        }
      }
      if (start > emitted) out.push_back({uint32_t(emitted), uint32_t(start), -1});
      out.push_back({uint32_t(start), uint32_t(stop), token.id});
      emitted = stop;
      pos = stop;
    }
  }
  if (emitted < text.size()) out.push_back({uint32_t(emitted), uint32_t(text.size()), -1});
}

}  // namespace hwledger::tokenizer
