// UTF-8 helpers shared by the tokenizer stages: validation, lossy repair and a streaming
// decoder that only ever releases whole characters.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace hwledger::tokenizer::utf8 {

inline constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Number of bytes of the sequence that starts with `lead` (1..4), or 0 for a byte that cannot
// start a well-formed sequence.
inline int sequence_length(uint8_t lead) {
  if (lead < 0x80) return 1;
  if (lead < 0xC2) return 0;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  if (lead < 0xF5) return 4;
  return 0;
}

// Decodes the code point at s[pos] of a string known to be valid UTF-8 and advances pos.
inline char32_t next_code_point(std::string_view s, size_t& pos) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data()) + pos;
  uint8_t b0 = p[0];
  if (b0 < 0x80) {
    pos += 1;
    return b0;
  }
  if (b0 < 0xE0) {
    pos += 2;
    return (char32_t(b0 & 0x1F) << 6) | (p[1] & 0x3F);
  }
  if (b0 < 0xF0) {
    pos += 3;
    return (char32_t(b0 & 0x0F) << 12) | (char32_t(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
  }
  pos += 4;
  return (char32_t(b0 & 0x07) << 18) | (char32_t(p[1] & 0x3F) << 12) |
         (char32_t(p[2] & 0x3F) << 6) | (p[3] & 0x3F);
}

void append_code_point(std::string& out, char32_t cp);

// Length of the well-formed prefix of s (s.size() when all of s is valid UTF-8: no overlong
// forms, no surrogates, nothing above U+10FFFF, no truncated sequence).
size_t valid_prefix_length(std::string_view s);
inline bool is_valid(std::string_view s) {
  return valid_prefix_length(s) == s.size();
}

// s with every maximal ill-formed subsequence replaced by one U+FFFD (the WHATWG decoder's
// rule, also Rust's from_utf8_lossy and JavaScript's TextDecoder).
std::string make_valid(std::string_view s);

// Turns a byte stream into whole characters. Bytes of an unfinished character wait for the
// next feed(); ill-formed bytes become U+FFFD by the same rule as make_valid(), so feeding a
// string in any number of pieces and then finish() gives exactly make_valid(string).
class StreamDecoder {
 public:
  void feed(std::string_view bytes, std::string& out);
  void finish(std::string& out);
  bool has_pending() const { return pending_len_ > 0; }

 private:
  void consume(const uint8_t* data, size_t size, std::string& out, bool at_end);
  uint8_t pending_[4] = {};
  int pending_len_ = 0;
};

}  // namespace hwledger::tokenizer::utf8
