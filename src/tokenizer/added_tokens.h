// Added tokens (special or not): strings that are cut out of the text before the normalizer
// and the model see it, and that become their own id. Matching is leftmost-longest, as in
// `tokenizers`; lstrip / rstrip swallow whitespace next to the token, single_word only
// accepts a match with no word character on either side.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hwledger::tokenizer {

class Normalizer;

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
  bool special = false;
};

class AddedVocabulary {
 public:
  // Segment of a text: [begin, end) is plain text when id < 0, else the added token `id`.
  struct Segment {
    uint32_t begin, end;
    int32_t id;
  };

  // Tokens with normalized=true are matched after normalization, against their content as
  // the normalizer rewrites it.
  void build(std::vector<AddedToken> tokens, const Normalizer* normalizer);

  const std::vector<AddedToken>& tokens() const { return tokens_; }
  bool has_normalized() const { return !normalized_.empty(); }

  // Appends the segments of `text` (covering all of it, minus whitespace that lstrip/rstrip
  // swallowed), matching the raw tokens (`normalized_pass` false) or the normalized ones.
  // With parse_special false, matches of special tokens are passed over (left as text).
  void split(std::string_view text, bool normalized_pass, bool parse_special,
             std::vector<Segment>& out) const;

 private:
  // A byte trie over the patterns of one pass.
  struct Matcher {
    struct Node {
      int32_t token = -1;  // index into tokens_ of a pattern ending here
      std::vector<std::pair<uint8_t, int32_t>> children;
    };
    std::vector<Node> nodes;
    std::array<bool, 256> first_byte{};
    bool empty() const { return nodes.size() <= 1; }
    void add(std::string_view pattern, int32_t token);
    // Longest pattern starting at text[pos]: its token index and length, or -1.
    int32_t longest_at(std::string_view text, size_t pos, size_t& length) const;
  };
  void split_with(const Matcher& matcher, std::string_view text, bool parse_special,
                  std::vector<Segment>& out) const;

  std::vector<AddedToken> tokens_;
  Matcher raw_;
  Matcher normalized_;
};

}  // namespace hwledger::tokenizer
