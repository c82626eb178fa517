// The values a chat template computes with: Python's object model as Jinja2 exposes it
// (None, bool, int, float, str, list, tuple, dict in insertion order, Jinja's Undefined, namespace
// objects and callables). Lists, tuples and dicts are immutable once built (transformers renders
// with Jinja2's ImmutableSandboxedEnvironment), so values share them by pointer; only a
// namespace() is mutable, and it is shared by reference as in Python.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace hwledger::chat {

class Value;
struct DictObj;
struct NamespaceObj;
struct LoopObj;
class CallableObj;

using ValueList = std::vector<Value>;

// A runtime error inside an operation; the interpreter turns it into a TemplateError carrying the
// line of the template being evaluated.
class EvalError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Value {
 public:
  enum class Kind : uint8_t {
    kUndefined,
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kList,
    kTuple,
    kDict,
    kNamespace,
    kLoop,
    kCallable,
  };

  // Undefined, with no hint.
  Value() = default;
  static Value undefined(std::string why);
  static Value none();
  static Value boolean(bool b);
  static Value integer(int64_t i);
  static Value floating(double f);
  static Value string(std::string s);
  static Value list(ValueList items);
  static Value tuple(ValueList items);
  static Value dict(std::shared_ptr<const DictObj> d);
  static Value ns(std::shared_ptr<NamespaceObj> n);
  static Value loop(std::shared_ptr<LoopObj> l);
  // `bound_to` is the receiver of a bound method (undefined for free functions): its facts carry
  // over.
  static Value callable(std::shared_ptr<const CallableObj> c);
  static Value callable(std::shared_ptr<const CallableObj> c, const Value& bound_to);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_float() const { return kind_ == Kind::kFloat; }
  // int, float or bool (Python's bool is an int).
  bool is_number() const {
    return kind_ == Kind::kInt || kind_ == Kind::kFloat || kind_ == Kind::kBool;
  }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_tuple() const { return kind_ == Kind::kTuple; }
  bool is_sequence_like() const { return kind_ == Kind::kList || kind_ == Kind::kTuple; }
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_namespace() const { return kind_ == Kind::kNamespace; }
  bool is_loop() const { return kind_ == Kind::kLoop; }
  bool is_callable() const { return kind_ == Kind::kCallable; }

  bool as_bool() const { return scalar_.b; }
  int64_t as_int() const { return kind_ == Kind::kBool ? (scalar_.b ? 1 : 0) : scalar_.i; }
  double as_double() const {
    return kind_ == Kind::kFloat ? scalar_.f : static_cast<double>(as_int());
  }
  const std::string& as_string() const;
  const ValueList& as_list() const;  // list or tuple
  const DictObj& as_dict() const;
  NamespaceObj& as_namespace() const;
  const LoopObj& as_loop() const;
  const CallableObj& as_callable() const;
  std::shared_ptr<const DictObj> dict_ptr() const;
  std::shared_ptr<NamespaceObj> namespace_ptr() const;
  // Why a value is undefined ("'x' is undefined"), for the error raised when it is used.
  std::string undefined_reason() const;

  // Containers nested in containers; bounded so that recursive printing, comparing and freeing
  // cannot exhaust the stack.
  int nesting_depth() const { return depth_; }
  static constexpr int kMaxNestingDepth = 512;
  // Whether a namespace (or a loop object) is reachable from this value. A namespace may not
  // hold one, so that no reference cycle can form.
  bool holds_namespace() const { return holds_namespace_; }

 private:
  void set_container_facts(const ValueList& items);

  Kind kind_ = Kind::kUndefined;
  bool holds_namespace_ = false;
  uint16_t depth_ = 0;
  union {
    bool b;
    int64_t i;
    double f;
  } scalar_{};
  // String, list/tuple, dict, namespace, loop, callable, or the undefined hint.
  std::shared_ptr<const void> object_;
};

// A dict in insertion order, with a hash index on string keys (all JSON keys are strings).
struct DictObj {
  // Lets string_index be searched with a string_view, without building a std::string.
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };

  std::vector<std::pair<Value, Value>> items;
  std::unordered_map<std::string, size_t, StringHash, std::equal_to<>> string_index;

  const Value* find(const Value& key) const;
  const Value* find(std::string_view key) const;
  // Inserts or overwrites, keeping the first insertion's position (Python's dict behaviour).
  void set(Value key, Value value);
};

// namespace(): the one mutable object, so that `{% set ns.x = ... %}` crosses loop scopes.
struct NamespaceObj {
  DictObj attributes;
};

// The `loop` variable of a for loop.
struct LoopObj {
  int64_t index0 = 0;
  int64_t length = 0;
  int64_t depth0 = 0;
  Value previous;  // previtem (undefined on the first iteration)
  Value next;      // nextitem (undefined on the last)
  std::shared_ptr<std::optional<ValueList>> changed_last;  // loop.changed()'s last arguments
};

// Python's type names, for error messages ("'str' object has no attribute 'x'").
std::string_view type_name(const Value& v);

bool truthy(const Value& v);
// Python ==, with Jinja's Undefined equal only to Undefined.
bool equals(const Value& a, const Value& b);

}  // namespace hwledger::chat
