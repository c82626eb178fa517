#include "chat/lexer.h"

#include <fmt/format.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>

#include "chat/chat_template.h"
#include "chat/text.h"

namespace hwledger::chat {

namespace {

bool is_ascii_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool is_name_char(char c) {
  return is_name_start(c) || is_digit(c);
}

// Jinja2 reads the source with every \r\n and \r turned into \n, and drops one trailing newline
// (keep_trailing_newline=False).
std::string normalize_newlines(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out.push_back(source[i]);
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

class Lexer {
 public:
  explicit Lexer(std::string_view source) : src_(normalize_newlines(source)) {}

  std::vector<Token> run() {
    while (pos_ < src_.size()) {
      const size_t tag = find_tag_start(pos_);
      if (tag == std::string::npos) {
        emit_text(std::string_view(src_).substr(pos_));
        advance_to(src_.size());
        break;
      }
      const char kind = src_[tag + 1];
      size_t after = tag + 2;
      char sign = 0;
      if (after < src_.size() && (src_[after] == '-' || src_[after] == '+')) sign = src_[after++];

      // {% raw %} is recognized before any other block tag.
      size_t raw_body = std::string::npos;
      if (kind == '%') raw_body = match_raw_begin(after);

      emit_text(strip_before_tag(std::string_view(src_).substr(pos_, tag - pos_), pos_, sign,
                                 /*lstrip=*/kind != '{'));
      advance_to(tag);
      if (raw_body != std::string::npos) {
        lex_raw(raw_body);
      } else if (kind == '#') {
        lex_comment(after);
      } else {
        lex_tag(kind, after);
      }
    }
    tokens_.push_back(Token{TokenType::kEnd, line_, {}});
    return std::move(tokens_);
  }

 private:
  [[noreturn]] void fail(int line, const std::string& message) {
    throw TemplateError(message, line);
  }

  size_t find_tag_start(size_t from) const {
    for (size_t p = src_.find('{', from); p != std::string::npos; p = src_.find('{', p + 1)) {
      if (p + 1 < src_.size() && (src_[p + 1] == '{' || src_[p + 1] == '%' || src_[p + 1] == '#')) {
        return p;
      }
    }
    return std::string::npos;
  }

  // Moves to `to`, counting lines on the way.
  void advance_to(size_t to) {
    for (size_t p = pos_; p < to; ++p) {
      if (src_[p] == '\n') ++line_;
    }
    pos_ = to;
  }

  bool line_starts_at(size_t p) const { return p == 0 || src_[p - 1] == '\n'; }

  // The whitespace control of the tag that ends `text` (which starts at source offset `start`).
  std::string_view strip_before_tag(std::string_view text, size_t start, char sign, bool lstrip) {
    if (sign == '-') return text::strip(text, false, true);
    if (sign == '+' || !lstrip) return text;
    // lstrip_blocks: only whitespace between the start of the line and the tag.
    const size_t nl = text.rfind('\n');
    const size_t line_begin = nl == std::string_view::npos ? 0 : nl + 1;
    if (line_begin == 0 && !line_starts_at(start)) return text;
    const std::string_view tail = text.substr(line_begin);
    if (!tail.empty() && text::strip(tail, true, true).empty()) return text.substr(0, line_begin);
    return text;
  }

  void emit_text(std::string_view text) {
    if (!text.empty()) tokens_.push_back(Token{TokenType::kText, line_, std::string(text)});
  }

  void skip_ascii_space(size_t& p) const {
    while (p < src_.size() && is_ascii_space(src_[p])) ++p;
  }

  // Python's \s* after a "-" end marker: all whitespace, Unicode included.
  size_t skip_all_space(size_t p) const {
    const std::string_view rest = text::strip(std::string_view(src_).substr(p), true, false);
    return src_.size() - rest.size();
  }

  // After "{%" and its sign: "raw" between optional spaces, then "-%}" or "%}". Returns the
  // offset where the raw body starts, or npos.
  size_t match_raw_begin(size_t p) const {
    skip_ascii_space(p);
    if (src_.compare(p, 3, "raw") != 0) return std::string::npos;
    p += 3;
    skip_ascii_space(p);
    if (src_.compare(p, 3, "-%}") == 0) return skip_all_space(p + 3);
    if (src_.compare(p, 2, "%}") == 0) return p + 2;
    return std::string::npos;
  }

  void lex_raw(size_t body) {
    const int start_line = line_;
    for (size_t p = src_.find("{%", body); p != std::string::npos; p = src_.find("{%", p + 1)) {
      size_t q = p + 2;
      char sign = 0;
      if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) sign = src_[q++];
      skip_ascii_space(q);
      if (src_.compare(q, 6, "endraw") != 0) continue;
      q += 6;
      skip_ascii_space(q);
      size_t end;
      if (src_.compare(q, 3, "+%}") == 0) {
        end = q + 3;
      } else if (src_.compare(q, 3, "-%}") == 0) {
        end = skip_all_space(q + 3);
      } else if (src_.compare(q, 2, "%}") == 0) {
        end = q + 2;
        if (end < src_.size() && src_[end] == '\n') ++end;
      } else {
        continue;
      }
      advance_to(body);
      emit_text(strip_before_tag(std::string_view(src_).substr(body, p - body), body, sign, true));
      advance_to(end);
      return;
    }
    fail(start_line, "missing end of raw directive ({% endraw %})");
  }

  void lex_comment(size_t body) {
    const size_t close = src_.find("#}", body);
    if (close == std::string::npos) fail(line_, "missing end of comment tag (#})");
    size_t end = close + 2;
    const char sign = close > body ? src_[close - 1] : 0;
    if (sign == '-') {
      end = skip_all_space(end);
    } else if (sign != '+' && end < src_.size() && src_[end] == '\n') {
      ++end;  // trim_blocks
    }
    advance_to(end);
  }

  // Inside {{ }} or {% %}: expression tokens up to the closing marker.
  void lex_tag(char kind, size_t p) {
    const bool is_block = kind == '%';
    tokens_.push_back(
        Token{is_block ? TokenType::kBlockBegin : TokenType::kVariableBegin, line_, {}});
    advance_to(p);
    std::string brackets;  // the closers still expected, innermost last
    while (true) {
      size_t q = pos_;
      skip_ascii_space(q);
      advance_to(q);
      if (pos_ >= src_.size()) {
        fail(line_,
             fmt::format("unexpected end of template, expected '{}'", is_block ? "%}" : "}}"));
      }
      if (brackets.empty() && lex_tag_end(is_block)) return;
      lex_expression_token(brackets);
    }
  }

  bool lex_tag_end(bool is_block) {
    const size_t p = pos_;
    size_t end;
    if (is_block) {
      if (src_.compare(p, 3, "-%}") == 0) {
        end = skip_all_space(p + 3);
      } else if (src_.compare(p, 3, "+%}") == 0) {
        end = p + 3;
      } else if (src_.compare(p, 2, "%}") == 0) {
        end = p + 2;
        if (end < src_.size() && src_[end] == '\n') ++end;  // trim_blocks
      } else {
        return false;
      }
    } else {
      if (src_.compare(p, 3, "-}}") == 0) {
        end = skip_all_space(p + 3);
      } else if (src_.compare(p, 2, "}}") == 0) {
        end = p + 2;
      } else {
        return false;
      }
    }
    tokens_.push_back(Token{is_block ? TokenType::kBlockEnd : TokenType::kVariableEnd, line_, {}});
    advance_to(end);
    return true;
  }

  void lex_expression_token(std::string& brackets) {
    const size_t p = pos_;
    const char c = src_[p];
    if (is_digit(c)) return lex_number();
    if (is_name_start(c)) {
      size_t q = p + 1;
      while (q < src_.size() && is_name_char(src_[q])) ++q;
      tokens_.push_back(Token{TokenType::kName, line_, src_.substr(p, q - p)});
      advance_to(q);
      return;
    }
    if (c == '\'' || c == '"') return lex_string();
    static constexpr std::string_view kTwoCharOperators[] = {"//", "**", "==", "!=", ">=", "<="};
    for (const std::string_view op : kTwoCharOperators) {
      if (src_.compare(p, 2, op) == 0) {
        tokens_.push_back(Token{TokenType::kOperator, line_, std::string(op)});
        advance_to(p + 2);
        return;
      }
    }
    if (std::string_view("+-/*%~[](){}><=.:|,;").find(c) == std::string_view::npos) {
      fail(line_,
           fmt::format("unexpected char '{}'", src_.substr(p, text::codepoint_size(src_, p))));
    }
    if (c == '(' || c == '[' || c == '{') {
      brackets.push_back(c == '(' ? ')' : c == '[' ? ']' : '}');
    } else if (c == ')' || c == ']' || c == '}') {
      if (brackets.empty()) fail(line_, fmt::format("unexpected '{}'", c));
      if (brackets.back() != c) {
        fail(line_, fmt::format("unexpected '{}', expected '{}'", c, brackets.back()));
      }
      brackets.pop_back();
    }
    tokens_.push_back(Token{TokenType::kOperator, line_, std::string(1, c)});
    advance_to(p + 1);
  }

  // Digits with optional single underscores between them ("1_000").
  size_t scan_digits(size_t q, bool (*digit)(char)) const {
    while (q < src_.size() && digit(src_[q])) {
      ++q;
      if (q + 1 < src_.size() && src_[q] == '_' && digit(src_[q + 1])) ++q;
    }
    return q;
  }

  void lex_number() {
    const size_t p = pos_;
    const auto cleaned = [&](size_t from, size_t to) {
      std::string s;
      for (size_t i = from; i < to; ++i) {
        if (src_[i] != '_') s.push_back(src_[i]);
      }
      return s;
    };
    // 0x.., 0o.., 0b..
    if (src_[p] == '0' && p + 2 < src_.size()) {
      const char base_char = static_cast<char>(src_[p + 1] | 0x20);
      const int base = base_char == 'x' ? 16 : base_char == 'o' ? 8 : base_char == 'b' ? 2 : 0;
      if (base != 0) {
        size_t q = p + 2;
        if (q < src_.size() && src_[q] == '_') ++q;
        const size_t digits_begin = q;
        while (q < src_.size() && (std::isxdigit(static_cast<unsigned char>(src_[q])) ||
                                   (src_[q] == '_' && q + 1 < src_.size() &&
                                    std::isxdigit(static_cast<unsigned char>(src_[q + 1]))))) {
          ++q;
        }
        if (q > digits_begin) {
          const std::string digits = cleaned(digits_begin, q);
          errno = 0;
          char* end = nullptr;
          const unsigned long long v = std::strtoull(digits.c_str(), &end, base);
          if (*end != '\0' || errno == ERANGE || v > static_cast<unsigned long long>(INT64_MAX)) {
            fail(line_, fmt::format("invalid integer literal '{}'", src_.substr(p, q - p)));
          }
          push_integer(static_cast<int64_t>(v), q);
          return;
        }
      }
    }
    size_t q = scan_digits(p, is_digit);
    bool is_float = false;
    // "1.5" is a float, but not after a dot: `x.0.1` reads as x . 0 . 1
    const bool after_dot = p > 0 && src_[p - 1] == '.';
    if (!after_dot && q + 1 < src_.size() && src_[q] == '.' && is_digit(src_[q + 1])) {
      q = scan_digits(q + 1, is_digit);
      is_float = true;
    }
    if (!after_dot && q < src_.size() && (src_[q] == 'e' || src_[q] == 'E')) {
      size_t e = q + 1;
      if (e < src_.size() && (src_[e] == '+' || src_[e] == '-')) ++e;
      if (e < src_.size() && is_digit(src_[e])) {
        q = scan_digits(e, is_digit);
        is_float = true;
      }
    }
    const std::string literal = cleaned(p, q);
    if (is_float) {
      Token t{TokenType::kFloat, line_, literal};
      t.float_value = std::strtod(literal.c_str(), nullptr);
      tokens_.push_back(std::move(t));
      advance_to(q);
      return;
    }
    if (literal.size() > 1 && literal[0] == '0') {
      fail(line_, fmt::format("invalid integer literal '{}'", src_.substr(p, q - p)));
    }
    errno = 0;
    const long long v = std::strtoll(literal.c_str(), nullptr, 10);
    if (errno == ERANGE) fail(line_, fmt::format("integer literal '{}' is too large", literal));
    push_integer(v, q);
  }

  void push_integer(int64_t v, size_t end) {
    Token t{TokenType::kInteger, line_, src_.substr(pos_, end - pos_)};
    t.int_value = v;
    tokens_.push_back(std::move(t));
    advance_to(end);
  }

  static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    c = static_cast<char>(c | 0x20);
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  }

  // A quoted string with Python's escapes (\n \t \\ \' \" \xhh \uhhhh \Uhhhhhhhh, octal,
  // backslash-newline); unknown escapes keep their backslash, as Python does.
  void lex_string() {
    const size_t p = pos_;
    const char quote = src_[p];
    std::string value;
    size_t q = p + 1;
    const int start_line = line_;
    while (true) {
      if (q >= src_.size()) fail(start_line, "unterminated string literal");
      const char c = src_[q];
      if (c == quote) break;
      if (c != '\\') {
        value.push_back(c);
        ++q;
        continue;
      }
      if (q + 1 >= src_.size()) fail(start_line, "unterminated string literal");
      const char e = src_[q + 1];
      q += 2;
      switch (e) {
        case '\n':
          break;
        case '\\':
          value.push_back('\\');
          break;
        case '\'':
          value.push_back('\'');
          break;
        case '"':
          value.push_back('"');
          break;
        case 'a':
          value.push_back('\a');
          break;
        case 'b':
          value.push_back('\b');
          break;
        case 'f':
          value.push_back('\f');
          break;
        case 'n':
          value.push_back('\n');
          break;
        case 'r':
          value.push_back('\r');
          break;
        case 't':
          value.push_back('\t');
          break;
        case 'v':
          value.push_back('\v');
          break;
        case 'x':
        case 'u':
        case 'U': {
          const int width = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          char32_t cp = 0;
          for (int k = 0; k < width; ++k) {
            const int h = q + k < src_.size() ? hex_value(src_[q + k]) : -1;
            if (h < 0) fail(start_line, fmt::format("truncated \\{} escape in string literal", e));
            cp = cp * 16 + static_cast<char32_t>(h);
          }
          q += width;
          if (cp > 0x10FFFF) fail(start_line, "illegal Unicode character in string literal");
          text::append_utf8(value, cp);
          break;
        }
        case 'N':
          fail(start_line, "\\N{...} escapes are not supported");
        default:
          if (e >= '0' && e <= '7') {
            char32_t cp = static_cast<char32_t>(e - '0');
            for (int k = 0; k < 2 && q < src_.size() && src_[q] >= '0' && src_[q] <= '7'; ++k) {
              cp = cp * 8 + static_cast<char32_t>(src_[q++] - '0');
            }
            text::append_utf8(value, cp);
          } else {
            value.push_back('\\');
            value.push_back(e);
          }
      }
    }
    tokens_.push_back(Token{TokenType::kString, line_, std::move(value)});
    advance_to(q + 1);
  }

  std::string src_;
  size_t pos_ = 0;
  int line_ = 1;
  std::vector<Token> tokens_;
};

}  // namespace

std::vector<Token> tokenize(std::string_view source) {
  return Lexer(source).run();
}

}  // namespace hwledger::chat
