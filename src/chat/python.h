// Python's view of values: str() and repr(), ordering, json.dumps (as transformers' tojson calls
// it), and the conversion from JSON.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "chat/value.h"

namespace hwledger::chat {

// str(v) as `{{ v }}` prints it; Undefined prints as "".
std::string py_str(const Value& v);
void append_py_str(std::string& out, const Value& v);
std::string py_repr(const Value& v);
// repr(float): shortest round-trip digits, exponent form outside 1e-4 <= |x| < 1e16.
std::string float_repr(double x);

// Python's a < b for numbers, strings, lists and tuples; EvalError for other pairs.
bool less_than(const Value& a, const Value& b);

struct JsonDumpOptions {
  bool indent_set = false;
  std::string indent;  // the string one level of indentation adds, when indent_set
  std::string item_separator = ", ";
  std::string key_separator = ": ";
  bool sort_keys = false;
  bool ensure_ascii = false;
};
// json.dumps(v, ...); EvalError for values JSON cannot hold (Undefined, namespace, macros).
std::string to_json(const Value& v, const JsonDumpOptions& options);

// JSON to values; objects keep their order (nlohmann::json has already sorted its keys).
Value from_json(const nlohmann::json& j);
Value from_json(const nlohmann::ordered_json& j);

}  // namespace hwledger::chat
