#include "chat/value.h"

#include <algorithm>
#include <cmath>

namespace hwledger::chat {

namespace {
template <typename T>
const T& object_as(const std::shared_ptr<const void>& p) {
  return *static_cast<const T*>(p.get());
}
}  // namespace

Value Value::undefined(std::string why) {
  Value v;
  v.object_ = std::make_shared<const std::string>(std::move(why));
  return v;
}
Value Value::none() {
  Value v;
  v.kind_ = Kind::kNone;
  return v;
}
Value Value::boolean(bool b) {
  Value v;
  v.kind_ = Kind::kBool;
  v.scalar_.b = b;
  return v;
}
Value Value::integer(int64_t i) {
  Value v;
  v.kind_ = Kind::kInt;
  v.scalar_.i = i;
  return v;
}
Value Value::floating(double f) {
  Value v;
  v.kind_ = Kind::kFloat;
  v.scalar_.f = f;
  return v;
}
Value Value::string(std::string s) {
  Value v;
  v.kind_ = Kind::kString;
  v.object_ = std::make_shared<const std::string>(std::move(s));
  return v;
}
void Value::set_container_facts(const ValueList& items) {
  int depth = 0;
  for (const Value& item : items) {
    depth = std::max(depth, static_cast<int>(item.depth_));
    holds_namespace_ = holds_namespace_ || item.holds_namespace_;
  }
  if (depth + 1 > kMaxNestingDepth) {
    throw EvalError("values nested more than " + std::to_string(kMaxNestingDepth) + " deep");
  }
  depth_ = static_cast<uint16_t>(depth + 1);
}

Value Value::list(ValueList items) {
  Value v;
  v.set_container_facts(items);
  v.kind_ = Kind::kList;
  v.object_ = std::make_shared<const ValueList>(std::move(items));
  return v;
}
Value Value::tuple(ValueList items) {
  Value v;
  v.set_container_facts(items);
  v.kind_ = Kind::kTuple;
  v.object_ = std::make_shared<const ValueList>(std::move(items));
  return v;
}
Value Value::dict(std::shared_ptr<const DictObj> d) {
  Value v;
  v.kind_ = Kind::kDict;
  int depth = 0;
  for (const auto& [key, item] : d->items) {
    depth = std::max({depth, static_cast<int>(key.depth_), static_cast<int>(item.depth_)});
    v.holds_namespace_ = v.holds_namespace_ || key.holds_namespace_ || item.holds_namespace_;
  }
  if (depth + 1 > kMaxNestingDepth) {
    throw EvalError("values nested more than " + std::to_string(kMaxNestingDepth) + " deep");
  }
  v.depth_ = static_cast<uint16_t>(depth + 1);
  v.object_ = std::move(d);
  return v;
}
Value Value::ns(std::shared_ptr<NamespaceObj> n) {
  Value v;
  v.kind_ = Kind::kNamespace;
  v.holds_namespace_ = true;
  v.depth_ = 1;
  v.object_ = std::move(n);
  return v;
}
Value Value::loop(std::shared_ptr<LoopObj> l) {
  Value v;
  v.kind_ = Kind::kLoop;
  v.holds_namespace_ = true;  // its items may hold one
  v.depth_ = 1;
  v.object_ = std::move(l);
  return v;
}
Value Value::callable(std::shared_ptr<const CallableObj> c) {
  return callable(std::move(c), Value());
}

Value Value::callable(std::shared_ptr<const CallableObj> c, const Value& bound_to) {
  Value v;
  v.kind_ = Kind::kCallable;
  v.holds_namespace_ = bound_to.holds_namespace_;
  v.depth_ = bound_to.depth_;
  v.object_ = std::move(c);
  return v;
}

const std::string& Value::as_string() const {
  return object_as<std::string>(object_);
}
const ValueList& Value::as_list() const {
  return object_as<ValueList>(object_);
}
const DictObj& Value::as_dict() const {
  return object_as<DictObj>(object_);
}
NamespaceObj& Value::as_namespace() const {
  return const_cast<NamespaceObj&>(object_as<NamespaceObj>(object_));
}
const LoopObj& Value::as_loop() const {
  return object_as<LoopObj>(object_);
}
const CallableObj& Value::as_callable() const {
  return object_as<CallableObj>(object_);
}
std::shared_ptr<const DictObj> Value::dict_ptr() const {
  return std::static_pointer_cast<const DictObj>(object_);
}
std::shared_ptr<NamespaceObj> Value::namespace_ptr() const {
  return std::const_pointer_cast<NamespaceObj>(
      std::static_pointer_cast<const NamespaceObj>(object_));
}
std::string Value::undefined_reason() const {
  if (object_) return object_as<std::string>(object_);
  return "value is undefined";
}

const Value* DictObj::find(std::string_view key) const {
  const auto it = string_index.find(key);
  return it == string_index.end() ? nullptr : &items[it->second].second;
}

const Value* DictObj::find(const Value& key) const {
  if (key.is_string()) return find(std::string_view(key.as_string()));
  for (const auto& [k, v] : items) {
    if (equals(k, key)) return &v;
  }
  return nullptr;
}

void DictObj::set(Value key, Value value) {
  if (key.is_string()) {
    const auto [it, inserted] = string_index.try_emplace(key.as_string(), items.size());
    if (inserted) {
      items.emplace_back(std::move(key), std::move(value));
    } else {
      items[it->second].second = std::move(value);
    }
    return;
  }
  for (auto& [k, v] : items) {
    if (equals(k, key)) {
      v = std::move(value);
      return;
    }
  }
  items.emplace_back(std::move(key), std::move(value));
}

std::string_view type_name(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return "Undefined";
    case Value::Kind::kNone:
      return "NoneType";
    case Value::Kind::kBool:
      return "bool";
    case Value::Kind::kInt:
      return "int";
    case Value::Kind::kFloat:
      return "float";
    case Value::Kind::kString:
      return "str";
    case Value::Kind::kList:
      return "list";
    case Value::Kind::kTuple:
      return "tuple";
    case Value::Kind::kDict:
      return "dict";
    case Value::Kind::kNamespace:
      return "Namespace";
    case Value::Kind::kLoop:
      return "LoopContext";
    case Value::Kind::kCallable:
      return "function";
  }
  return "object";
}

bool truthy(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone:
      return false;
    case Value::Kind::kBool:
      return v.as_bool();
    case Value::Kind::kInt:
      return v.as_int() != 0;
    case Value::Kind::kFloat:
      return v.as_double() != 0.0;  // NaN is truthy, as in Python
    case Value::Kind::kString:
      return !v.as_string().empty();
    case Value::Kind::kList:
    case Value::Kind::kTuple:
      return !v.as_list().empty();
    case Value::Kind::kDict:
      return !v.as_dict().items.empty();
    default:
      return true;
  }
}

bool equals(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_double() == b.as_double();
    return a.as_int() == b.as_int();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone:
      return true;
    case Value::Kind::kString:
      return a.as_string() == b.as_string();
    case Value::Kind::kList:
    case Value::Kind::kTuple: {
      const ValueList& x = a.as_list();
      const ValueList& y = b.as_list();
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i) {
        if (!equals(x[i], y[i])) return false;
      }
      return true;
    }
    case Value::Kind::kDict: {
      const DictObj& x = a.as_dict();
      const DictObj& y = b.as_dict();
      if (x.items.size() != y.items.size()) return false;
      for (const auto& [k, v] : x.items) {
        const Value* other = y.find(k);
        if (other == nullptr || !equals(v, *other)) return false;
      }
      return true;
    }
    case Value::Kind::kNamespace:
      return a.namespace_ptr() == b.namespace_ptr();
    default:
      return false;  // loops and callables: identity is not tracked, never equal
  }
}

}  // namespace hwledger::chat
