#include "chat/text.h"

#include <utf8proc.h>

namespace hwledger::chat::text {

namespace {

bool is_continuation(unsigned char c) {
  return (c & 0xC0) == 0x80;
}

// Length of a well-formed sequence starting at s[pos], or 0 if malformed.
size_t valid_sequence_size(std::string_view s, size_t pos) {
  const auto c = static_cast<unsigned char>(s[pos]);
  size_t n;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
  } else {
    return 0;
  }
  if (pos + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if (!is_continuation(static_cast<unsigned char>(s[pos + k]))) return 0;
  }
  const auto c1 = static_cast<unsigned char>(s[pos + 1]);
  if (c == 0xE0 && c1 < 0xA0) return 0;   // overlong
  if (c == 0xED && c1 >= 0xA0) return 0;  // surrogate
  if (c == 0xF0 && c1 < 0x90) return 0;   // overlong
  if (c == 0xF4 && c1 >= 0x90) return 0;  // above U+10FFFF
  return n;
}

template <typename MapFn>
std::string map_codepoints(std::string_view s, MapFn map) {
  std::string out;
  out.reserve(s.size());
  for (size_t pos = 0; pos < s.size();) {
    const size_t n = valid_sequence_size(s, pos);
    if (n == 0) {  // malformed byte: keep it
      out.push_back(s[pos]);
      ++pos;
      continue;
    }
    append_utf8(out, map(decode_at(s, pos)));
    pos += n;
  }
  return out;
}

char32_t upper_cp(char32_t c) {
  if (c < 0x80) return (c >= 'a' && c <= 'z') ? c - 32 : c;
  return static_cast<char32_t>(utf8proc_toupper(static_cast<utf8proc_int32_t>(c)));
}
char32_t lower_cp(char32_t c) {
  if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
  return static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c)));
}
char32_t title_cp(char32_t c) {
  if (c < 0x80) return upper_cp(c);
  return static_cast<char32_t>(utf8proc_totitle(static_cast<utf8proc_int32_t>(c)));
}
utf8proc_category_t category(char32_t c) {
  return utf8proc_category(static_cast<utf8proc_int32_t>(c));
}
bool is_cased(char32_t c) {
  const auto cat = category(c);
  return cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT;
}

}  // namespace

size_t codepoint_size(std::string_view s, size_t pos) {
  const size_t n = valid_sequence_size(s, pos);
  return n == 0 ? 1 : n;
}

char32_t decode_at(std::string_view s, size_t pos) {
  const size_t n = valid_sequence_size(s, pos);
  const auto c = static_cast<unsigned char>(s[pos]);
  if (n == 0) return 0xDC00 + c;  // Python's surrogateescape: lone surrogates stand for bad bytes
  if (n == 1) return c;
  char32_t cp = c & (n == 2 ? 0x1F : n == 3 ? 0x0F : 0x07);
  for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[pos + k]) & 0x3F);
  return cp;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp >= 0xDC80 && cp <= 0xDCFF) {  // an escaped malformed byte goes back out as it came in
    out.push_back(static_cast<char>(cp - 0xDC00));
  } else if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool is_ascii(std::string_view s) {
  for (const char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

size_t codepoint_count(std::string_view s) {
  size_t count = 0;
  for (size_t pos = 0; pos < s.size(); pos += codepoint_size(s, pos)) ++count;
  return count;
}

std::vector<size_t> codepoint_offsets(std::string_view s) {
  std::vector<size_t> offsets;
  offsets.reserve(s.size() + 1);
  for (size_t pos = 0; pos < s.size(); pos += codepoint_size(s, pos)) offsets.push_back(pos);
  offsets.push_back(s.size());
  return offsets;
}

bool is_space(char32_t c) {
  switch (c) {
    case 0x09:
    case 0x0A:
    case 0x0B:
    case 0x0C:
    case 0x0D:
    case 0x1C:
    case 0x1D:
    case 0x1E:
    case 0x1F:
    case 0x20:
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200A;
  }
}

bool is_alpha(char32_t c) {
  const auto cat = category(c);
  return cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO;
}
bool is_digit(char32_t c) {
  return category(c) == UTF8PROC_CATEGORY_ND;
}
bool is_alnum(char32_t c) {
  const auto cat = category(c);
  return is_alpha(c) || cat == UTF8PROC_CATEGORY_ND || cat == UTF8PROC_CATEGORY_NL ||
         cat == UTF8PROC_CATEGORY_NO;
}
bool is_printable(char32_t c) {
  if (c == ' ') return true;
  if (c < 0x80) return c > 0x20 && c < 0x7F;
  const auto cat = category(c);
  switch (cat) {
    case UTF8PROC_CATEGORY_CN:
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_ZS:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP:
      return false;
    default:
      return true;
  }
}

std::string to_upper(std::string_view s) {
  return map_codepoints(s, upper_cp);
}
std::string to_lower(std::string_view s) {
  return map_codepoints(s, lower_cp);
}

std::string capitalize(std::string_view s) {
  bool first = true;
  return map_codepoints(s, [&](char32_t c) {
    const char32_t mapped = first ? title_cp(c) : lower_cp(c);
    first = false;
    return mapped;
  });
}

std::string title_method(std::string_view s) {
  bool previous_cased = false;
  return map_codepoints(s, [&](char32_t c) {
    const char32_t mapped = previous_cased ? lower_cp(c) : title_cp(c);
    previous_cased = is_cased(c);
    return mapped;
  });
}

std::string title_filter(std::string_view s) {
  bool word_start = true;
  return map_codepoints(s, [&](char32_t c) {
    const bool separator = is_space(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<';
    char32_t mapped = c;
    if (!separator) mapped = word_start ? upper_cp(c) : lower_cp(c);
    word_start = separator;
    return mapped;
  });
}

namespace {
template <typename Pred>
std::string_view strip_if(std::string_view s, bool left, bool right, Pred strip_cp) {
  size_t begin = 0;
  size_t end = s.size();
  if (left) {
    while (begin < end) {
      const size_t n = codepoint_size(s, begin);
      if (!strip_cp(decode_at(s, begin))) break;
      begin += n;
    }
  }
  if (right) {
    while (end > begin) {
      size_t start = end - 1;  // back up to the start of the last code point
      while (start > begin && is_continuation(static_cast<unsigned char>(s[start])) &&
             end - start < 4) {
        --start;
      }
      if (start + codepoint_size(s, start) != end) start = end - 1;  // malformed tail byte
      if (!strip_cp(decode_at(s, start))) break;
      end = start;
    }
  }
  return s.substr(begin, end - begin);
}
}  // namespace

std::string_view strip(std::string_view s, bool left, bool right) {
  return strip_if(s, left, right, is_space);
}

std::string_view strip_chars(std::string_view s, std::string_view chars, bool left, bool right) {
  std::vector<char32_t> set;
  for (size_t pos = 0; pos < chars.size(); pos += codepoint_size(chars, pos)) {
    set.push_back(decode_at(chars, pos));
  }
  return strip_if(s, left, right, [&](char32_t c) {
    for (const char32_t x : set) {
      if (x == c) return true;
    }
    return false;
  });
}

}  // namespace hwledger::chat::text
