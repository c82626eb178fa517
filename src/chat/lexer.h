// Splits a template into text and the tokens inside {{ }} and {% %}, applying Jinja2's whitespace
// rules as transformers configures them: trim_blocks (the newline after a block or comment tag is
// dropped), lstrip_blocks (spaces before a block or comment tag at the start of a line are
// dropped), "-" inside a tag strips whitespace on that side, "+" keeps it. Comments vanish and
// {% raw %} bodies become text.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hwledger::chat {

enum class TokenType : uint8_t {
  kText,
  kVariableBegin,  // {{
  kVariableEnd,    // }}
  kBlockBegin,     // {%
  kBlockEnd,       // %}
  kName,
  kString,
  kInteger,
  kFloat,
  kOperator,
  kEnd,
};

struct Token {
  TokenType type;
  int line;
  std::string value;  // text, name, operator, or the decoded string literal
  int64_t int_value = 0;
  double float_value = 0;
};

// Throws TemplateError (with the line) on malformed input. The last token is kEnd.
std::vector<Token> tokenize(std::string_view source);

}  // namespace hwledger::chat
