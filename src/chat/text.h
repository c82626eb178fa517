// UTF-8 text as Python's str sees it: indexes, lengths and slices count code points; whitespace
// and case follow Unicode. Malformed bytes count as one code point each and pass through as is.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hwledger::chat::text {

// Length in bytes of the code point starting at s[pos] (1 for a malformed byte).
size_t codepoint_size(std::string_view s, size_t pos);
// Decodes the code point at s[pos]; a malformed byte b decodes to U+DC00+b (surrogateescape),
// which append_utf8 writes back as the byte b.
char32_t decode_at(std::string_view s, size_t pos);
void append_utf8(std::string& out, char32_t cp);

bool is_ascii(std::string_view s);
size_t codepoint_count(std::string_view s);
// Byte offset of each code point, plus s.size() at the end: offsets[i]..offsets[i+1] is code point
// i.
std::vector<size_t> codepoint_offsets(std::string_view s);

// Python's str.isspace() for one code point.
bool is_space(char32_t cp);
bool is_alpha(char32_t cp);
bool is_digit(char32_t cp);  // str.isdigit (decimal digits)
bool is_alnum(char32_t cp);
bool is_printable(char32_t cp);  // str.isprintable, for repr()

std::string to_upper(std::string_view s);
std::string to_lower(std::string_view s);
// Python's str.capitalize(): first code point in title case, the rest lower case.
std::string capitalize(std::string_view s);
// Python's str.title(): a letter after a non-letter is title-cased, other letters lower-cased.
std::string title_method(std::string_view s);
// Jinja's |title filter: words start after whitespace or one of -({[< ; each word is capitalized.
std::string title_filter(std::string_view s);

// Python's str.strip/lstrip/rstrip: with no chars, Unicode whitespace.
std::string_view strip(std::string_view s, bool left, bool right);
std::string_view strip_chars(std::string_view s, std::string_view chars, bool left, bool right);

}  // namespace hwledger::chat::text
