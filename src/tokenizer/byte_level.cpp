#include "tokenizer/byte_level.h"

#include "tokenizer/utf8.h"

namespace hwledger::tokenizer::byte_level {
namespace {

bool stands_for_itself(int b) {
  return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

struct Tables {
  std::array<char32_t, 256> char_for{};
  std::array<std::string, 256> utf8{};
  std::array<int16_t, 0x200> byte_for{};  // code point (< 0x200) -> byte, -1 if none
  Tables() {
    byte_for.fill(-1);
    int next = 0;
    for (int b = 0; b < 256; ++b) {
      char_for[b] = stands_for_itself(b) ? char32_t(b) : char32_t(0x100 + next++);
      utf8::append_code_point(utf8[b], char_for[b]);
      byte_for[char_for[b]] = int16_t(b);
    }
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

}  // namespace

char32_t char_for_byte(uint8_t b) {
  return tables().char_for[b];
}

const std::array<std::string, 256>& byte_chars() {
  return tables().utf8;
}

bool decode_token(std::string_view token, std::string& out) {
  // `token` is valid UTF-8 (it comes from JSON, which the parser checks).
  const Tables& t = tables();
  out.clear();
  size_t pos = 0;
  while (pos < token.size()) {
    char32_t cp = utf8::next_code_point(token, pos);
    if (cp >= 0x200 || t.byte_for[cp] < 0) return false;
    out.push_back(char(t.byte_for[cp]));
  }
  return true;
}

}  // namespace hwledger::tokenizer::byte_level
