// A compiled PCRE2 pattern (UTF + Unicode properties, JIT when available), standing in for
// the Oniguruma patterns of `tokenizers` (\p{L}, \p{N}, look-ahead, (?i:...)).
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace hwledger::tokenizer {

class Regex {
 public:
  // Throws InputError "<what>: bad regex '<pattern>': <pcre2 message> at offset N".
  Regex(std::string_view pattern, const std::string& what, bool literal = false);

  // Calls on_match(begin, end) for every successive non-overlapping match in `subject`,
  // which must be valid UTF-8. An empty match moves the search on by one character.
  template <typename F>
  void for_each_match(std::string_view subject, F&& on_match) const {
    size_t pos = 0;
    size_t begin, end;
    while (pos <= subject.size() && find(subject, pos, begin, end)) {
      on_match(begin, end);
      if (end > begin) {
        pos = end;
      } else {
        // Step over one whole UTF-8 character.
        pos = end + 1;
        while (pos < subject.size() && (uint8_t(subject[pos]) & 0xC0) == 0x80) ++pos;
      }
    }
  }

  // First match at or after `start`; false when there is none.
  bool find(std::string_view subject, size_t start, size_t& begin, size_t& end) const;

  const std::string& pattern() const { return pattern_; }

 private:
  struct Code;
  std::string pattern_;
  std::shared_ptr<const Code> code_;
};

}  // namespace hwledger::tokenizer
