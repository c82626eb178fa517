// Jinja2's filters, tests and global functions, and the Python methods of str, dict and list
// that templates call, as transformers' sandboxed environment provides them.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "chat/ast.h"
#include "chat/value.h"

namespace hwledger::chat {

FilterFn find_filter(std::string_view name);  // nullptr if unknown
TestFn find_test(std::string_view name);      // nullptr if unknown
// range, dict, namespace, raise_exception, strftime_now, joiner, cycler; undefined if unknown.
Value find_global(std::string_view name);
// Python's printf-style `format % args` (str % tuple, str % dict, the |format filter).
Value percent_format(Interpreter& interpreter, const std::string& format, const Value& args);

// A bound method such as "abc".startswith; nothing if `object` has no method `name`. A method
// that would modify a list or dict comes back as an Undefined that fails when called, as the
// sandbox's unsafe_undefined does.
std::optional<Value> find_method(const Value& object, std::string_view name);

}  // namespace hwledger::chat
