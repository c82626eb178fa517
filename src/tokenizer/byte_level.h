// The GPT-2 byte alphabet: each of the 256 byte values stands for one printable character, so
// byte-level vocabularies are written in ordinary (JSON-safe) text.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace hwledger::tokenizer::byte_level {

// The code point that stands for byte b: printable Latin-1 bytes stand for themselves, the
// others (controls, space, 0x7F-0xA0, 0xAD) for U+0100 upwards, in byte order.
char32_t char_for_byte(uint8_t b);

// UTF-8 of the character for each byte.
const std::array<std::string, 256>& byte_chars();

// Maps the characters of `token` back to bytes; false (and `out` unspecified) when a
// character is not in the byte alphabet.
bool decode_token(std::string_view token, std::string& out);

}  // namespace hwledger::tokenizer::byte_level
