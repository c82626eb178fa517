// Parses template source into a Program, following Jinja2's grammar and operator precedence.
#pragma once

#include <memory>
#include <string>

#include "chat/ast.h"

namespace hwledger::chat {

struct Program {
  std::string source;
  Body body;
};

// Throws TemplateError on syntax errors, unknown tags, filters and tests.
std::shared_ptr<const Program> parse_template(std::string source);

}  // namespace hwledger::chat
