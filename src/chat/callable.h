// Things a template can call: macros, globals such as range() and namespace(), and bound methods
// such as str.startswith.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "chat/value.h"

namespace hwledger::chat {

class Interpreter;

struct CallArgs {
  ValueList positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

class CallableObj {
 public:
  virtual ~CallableObj() = default;
  virtual Value call(Interpreter& interpreter, CallArgs args) const = 0;
  // What {{ f }} prints, e.g. "<Macro 'm'>".
  virtual std::string repr() const = 0;
};

}  // namespace hwledger::chat
