#include "chat/interpreter.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "chat/builtins.h"
#include "chat/python.h"
#include "chat/text.h"

namespace hwledger::chat {

// Variables of one frame; lookups walk out to the template's top level. Frames are few and hold
// few names, so a vector beats a hash map.
struct Interpreter::Scope {
  std::shared_ptr<Scope> parent;
  std::vector<std::pair<std::string, Value>> vars;

  const Value* find(std::string_view name) const {
    for (const Scope* s = this; s != nullptr; s = s->parent.get()) {
      for (const auto& [n, v] : s->vars) {
        if (n == name) return &v;
      }
    }
    return nullptr;
  }
  void set(const std::string& name, Value value) {
    for (auto& [n, v] : vars) {
      if (n == name) {
        v = std::move(value);
        return;
      }
    }
    vars.emplace_back(name, std::move(value));
  }
};

// A {% macro %}: it sees the scope it was defined in (weakly, so that a macro stored in that
// scope does not keep it alive in a cycle).
class Interpreter::Macro : public CallableObj {
 public:
  Macro(const MacroDef& def, std::weak_ptr<Scope> closure)
      : def_(def), closure_(std::move(closure)) {}
  Value call(Interpreter& interpreter, CallArgs args) const override {
    return interpreter.call_macro(*this, std::move(args));
  }
  std::string repr() const override { return fmt::format("<Macro '{}'>", def_.name); }
  const MacroDef& def() const { return def_; }
  std::shared_ptr<Scope> closure() const { return closure_.lock(); }

 private:
  const MacroDef& def_;
  std::weak_ptr<Scope> closure_;
};

namespace {

// Nested evaluations (expressions within expressions, macro calls within macro calls) beyond
// this are refused; each costs a few hundred bytes of stack.
constexpr int kMaxEvalDepth = 1500;

// Counts one level of evaluation for as long as it lives.
class EvalDepth {
 public:
  explicit EvalDepth(int& depth) : depth_(depth) {
    if (++depth_ > kMaxEvalDepth) {
      --depth_;
      throw EvalError(fmt::format("template evaluation nested more than {} deep", kMaxEvalDepth));
    }
  }
  ~EvalDepth() { --depth_; }
  EvalDepth(const EvalDepth&) = delete;
  EvalDepth& operator=(const EvalDepth&) = delete;

 private:
  int& depth_;
};

[[noreturn]] void fail_undefined(const Value& v) {
  throw EvalError(v.undefined_reason());
}

std::string object_description(const Value& v) {
  if (v.is_none()) return "None";
  return fmt::format("{} object", type_name(v));
}

// ---- arithmetic, as Python does it on ints (64-bit here), floats, strings and lists ----------

[[noreturn]] void fail_operands(std::string_view op, const Value& a, const Value& b) {
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  throw EvalError(fmt::format("unsupported operand type(s) for {}: '{}' and '{}'", op, type_name(a),
                              type_name(b)));
}

[[noreturn]] void fail_overflow() {
  throw EvalError("integer overflow (values beyond 64 bits are not supported)");
}
int64_t checked_add(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) fail_overflow();
  return r;
}
int64_t checked_sub(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_sub_overflow(a, b, &r)) fail_overflow();
  return r;
}
int64_t checked_mul(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) fail_overflow();
  return r;
}

// Python's float divmod: the quotient floored, the remainder with the divisor's sign.
std::pair<double, double> float_divmod(double x, double y) {
  if (y == 0.0) throw EvalError("float division by zero");
  double mod = std::fmod(x, y);
  double div = (x - mod) / y;
  if (mod != 0.0) {
    if ((y < 0) != (mod < 0)) {
      mod += y;
      div -= 1.0;
    }
  } else {
    mod = std::copysign(0.0, y);
  }
  double floordiv;
  if (div != 0.0) {
    floordiv = std::floor(div);
    if (div - floordiv > 0.5) floordiv += 1.0;
  } else {
    floordiv = std::copysign(0.0, x / y);
  }
  return {floordiv, mod};
}

Value repeat(Interpreter& in, const Value& seq, int64_t times) {
  if (times <= 0) {
    if (seq.is_string()) return Value::string("");
    return seq.is_list() ? Value::list({}) : Value::tuple({});
  }
  if (seq.is_string()) {
    const std::string& s = seq.as_string();
    if (!s.empty() && static_cast<uint64_t>(times) > (size_t{1} << 40) / s.size()) {
      throw EvalError("string repetition too large");
    }
    in.charge_bytes(s.size() * static_cast<size_t>(times));
    std::string out;
    out.reserve(s.size() * static_cast<size_t>(times));
    for (int64_t i = 0; i < times; ++i) out += s;
    return Value::string(std::move(out));
  }
  const ValueList& items = seq.as_list();
  if (!items.empty() && static_cast<uint64_t>(times) > (size_t{1} << 32) / items.size()) {
    throw EvalError("list repetition too large");
  }
  in.charge_bytes(items.size() * static_cast<size_t>(times) * sizeof(Value));
  ValueList out;
  out.reserve(items.size() * static_cast<size_t>(times));
  for (int64_t i = 0; i < times; ++i) out.insert(out.end(), items.begin(), items.end());
  return seq.is_list() ? in.new_list(std::move(out)) : in.new_tuple(std::move(out));
}

int64_t int_pow(int64_t base, int64_t exponent) {
  int64_t result = 1;
  while (exponent > 0) {
    if (exponent & 1) result = checked_mul(result, base);
    exponent >>= 1;
    if (exponent > 0) base = checked_mul(base, base);
  }
  return result;
}

}  // namespace

Value binary_op(Interpreter& in, BinaryOp op, const Value& a, const Value& b) {
  const bool ints = (a.is_int() || a.is_bool()) && (b.is_int() || b.is_bool());
  const bool numbers = a.is_number() && b.is_number();
  switch (op) {
    case BinaryOp::kAdd:
      if (ints) return Value::integer(checked_add(a.as_int(), b.as_int()));
      if (numbers) return Value::floating(a.as_double() + b.as_double());
      if (a.is_string() && b.is_string()) return in.new_string(a.as_string() + b.as_string());
      if (a.kind() == b.kind() && a.is_sequence_like()) {
        ValueList items = a.as_list();
        items.insert(items.end(), b.as_list().begin(), b.as_list().end());
        return a.is_list() ? in.new_list(std::move(items)) : in.new_tuple(std::move(items));
      }
      if ((a.is_string() || a.is_sequence_like()) && !b.is_undefined()) {
        throw EvalError(fmt::format("can only concatenate {} (not \"{}\") to {}", type_name(a),
                                    type_name(b), type_name(a)));
      }
      fail_operands("+", a, b);
    case BinaryOp::kSub:
      if (ints) return Value::integer(checked_sub(a.as_int(), b.as_int()));
      if (numbers) return Value::floating(a.as_double() - b.as_double());
      fail_operands("-", a, b);
    case BinaryOp::kMul:
      if (ints) return Value::integer(checked_mul(a.as_int(), b.as_int()));
      if (numbers) return Value::floating(a.as_double() * b.as_double());
      if ((a.is_string() || a.is_sequence_like()) && (b.is_int() || b.is_bool())) {
        return repeat(in, a, b.as_int());
      }
      if ((b.is_string() || b.is_sequence_like()) && (a.is_int() || a.is_bool())) {
        return repeat(in, b, a.as_int());
      }
      fail_operands("*", a, b);
    case BinaryOp::kDiv:
      if (numbers) {
        if (b.as_double() == 0.0) throw EvalError("division by zero");
        return Value::floating(a.as_double() / b.as_double());
      }
      fail_operands("/", a, b);
    case BinaryOp::kFloorDiv:
      if (ints) {
        const int64_t x = a.as_int();
        const int64_t y = b.as_int();
        if (y == 0) throw EvalError("integer division or modulo by zero");
        if (x == std::numeric_limits<int64_t>::min() && y == -1) fail_overflow();
        int64_t q = x / y;
        if ((x % y != 0) && ((x < 0) != (y < 0))) --q;
        return Value::integer(q);
      }
      if (numbers) return Value::floating(float_divmod(a.as_double(), b.as_double()).first);
      fail_operands("//", a, b);
    case BinaryOp::kMod:
      if (ints) {
        const int64_t x = a.as_int();
        const int64_t y = b.as_int();
        if (y == 0) throw EvalError("integer division or modulo by zero");
        if (y == -1) return Value::integer(0);
        int64_t m = x % y;
        if (m != 0 && ((m < 0) != (y < 0))) m += y;
        return Value::integer(m);
      }
      if (numbers) return Value::floating(float_divmod(a.as_double(), b.as_double()).second);
      if (a.is_string()) return percent_format(in, a.as_string(), b);
      fail_operands("%", a, b);
    case BinaryOp::kPow:
      if (ints && b.as_int() >= 0) return Value::integer(int_pow(a.as_int(), b.as_int()));
      if (numbers) {
        const double x = a.as_double();
        const double y = b.as_double();
        if (x == 0.0 && y < 0) throw EvalError("0.0 cannot be raised to a negative power");
        if (x < 0 && y != std::floor(y)) {
          throw EvalError("negative number raised to a fractional power (complex result)");
        }
        return Value::floating(std::pow(x, y));
      }
      fail_operands("** or pow()", a, b);
  }
  fail_operands("?", a, b);
}

namespace {

bool contains(Interpreter& in, const Value& container, const Value& item) {
  switch (container.kind()) {
    case Value::Kind::kUndefined:
      return false;  // iterating Undefined yields nothing
    case Value::Kind::kString:
      if (!item.is_string()) {
        throw EvalError(
            fmt::format("'in <string>' requires string as left operand, not {}", type_name(item)));
      }
      return container.as_string().find(item.as_string()) != std::string::npos;
    case Value::Kind::kList:
    case Value::Kind::kTuple:
      in.charge_steps(container.as_list().size());
      for (const Value& v : container.as_list()) {
        if (equals(v, item)) return true;
      }
      return false;
    case Value::Kind::kDict:
      return container.as_dict().find(item) != nullptr;
    default:
      throw EvalError(fmt::format("argument of type '{}' is not iterable", type_name(container)));
  }
}

bool compare(CompareOp op, const Value& a, const Value& b) {
  static constexpr std::string_view kNames[] = {"==", "!=", "<", "<=", ">", ">="};
  switch (op) {
    case CompareOp::kEq:
      return equals(a, b);
    case CompareOp::kNe:
      return !equals(a, b);
    default:
      break;
  }
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  const bool orderable = (a.is_number() && b.is_number()) || (a.is_string() && b.is_string()) ||
                         (a.kind() == b.kind() && a.is_sequence_like());
  if (!orderable) {
    throw EvalError(fmt::format("'{}' not supported between instances of '{}' and '{}'",
                                kNames[static_cast<int>(op)], type_name(a), type_name(b)));
  }
  switch (op) {
    case CompareOp::kLt:
      return less_than(a, b);
    case CompareOp::kLe:
      return less_than(a, b) || equals(a, b);
    case CompareOp::kGt:
      return less_than(b, a);
    case CompareOp::kGe:
      return less_than(b, a) || equals(a, b);
    default:
      return false;
  }
}

// Python's slice.indices(): the first index, the step and how many items a slice takes.
struct SliceRange {
  int64_t start;
  int64_t step;
  int64_t count;
};

SliceRange slice_range(int64_t length, const Value& start_v, const Value& stop_v,
                       const Value& step_v) {
  const auto as_index = [](const Value& v, int64_t fallback) {
    if (v.is_none() || v.is_undefined()) return fallback;
    if (!v.is_int() && !v.is_bool()) {
      throw EvalError("slice indices must be integers or None or have an __index__ method");
    }
    return v.as_int();
  };
  const int64_t step = as_index(step_v, 1);
  if (step == 0) throw EvalError("slice step cannot be zero");
  const auto clamp = [&](const Value& v, int64_t fallback) {
    if (v.is_none() || v.is_undefined()) return fallback;
    int64_t i = as_index(v, fallback);
    if (i < 0) {
      i += length;
      if (i < 0) i = step < 0 ? -1 : 0;
    } else if (i >= length) {
      i = step < 0 ? length - 1 : length;
    }
    return i;
  };
  const int64_t start = clamp(start_v, step < 0 ? length - 1 : 0);
  const int64_t stop = clamp(stop_v, step < 0 ? -1 : length);
  int64_t count = 0;
  if (step > 0 && start < stop) count = (stop - start - 1) / step + 1;
  if (step < 0 && stop < start) count = (start - stop - 1) / (-step) + 1;
  return {start, step, count};
}

}  // namespace

// ---- the interpreter -------------------------------------------------------------------------

Interpreter::Interpreter(std::shared_ptr<const Program> program, const RenderLimits& limits)
    : program_(std::move(program)), limits_(limits) {}

std::string Interpreter::render(const Value& context) {
  context_ = &context.as_dict();
  root_ = std::make_shared<Scope>();
  std::string out;
  exec_body(program_->body, root_, out);
  return out;
}

void Interpreter::charge_steps(uint64_t steps) {
  steps_ += steps;
  if (steps_ > limits_.max_steps) {
    throw EvalError(fmt::format("template exceeded {} evaluation steps", limits_.max_steps));
  }
}

void Interpreter::charge_bytes(size_t bytes) {
  bytes_ += bytes;
  if (bytes_ > limits_.max_allocated_bytes) {
    throw EvalError(
        fmt::format("template built more than {} bytes of values", limits_.max_allocated_bytes));
  }
}

Value Interpreter::new_string(std::string s) {
  charge_bytes(s.size());
  return Value::string(std::move(s));
}
Value Interpreter::new_list(ValueList items) {
  charge_bytes(items.size() * sizeof(Value));
  return Value::list(std::move(items));
}
Value Interpreter::new_tuple(ValueList items) {
  charge_bytes(items.size() * sizeof(Value));
  return Value::tuple(std::move(items));
}

void Interpreter::emit(std::string& out, std::string_view text) {
  if (out.size() + text.size() > limits_.max_output_bytes) {
    throw EvalError(fmt::format("template output exceeds {} bytes", limits_.max_output_bytes));
  }
  charge_bytes(text.size());
  out.append(text);
}

Value Interpreter::lookup(std::string_view name, const Scope& scope) const {
  if (const Value* v = scope.find(name)) return *v;
  if (const Value* v = context_->find(name)) return *v;
  Value global = find_global(name);
  if (!global.is_undefined()) return global;
  return Value::undefined(fmt::format("'{}' is undefined", name));
}

ValueList Interpreter::iterate(const Value& iterable) {
  switch (iterable.kind()) {
    case Value::Kind::kUndefined:
      return {};
    case Value::Kind::kList:
    case Value::Kind::kTuple:
      return iterable.as_list();
    case Value::Kind::kDict: {
      ValueList keys;
      keys.reserve(iterable.as_dict().items.size());
      for (const auto& [k, v] : iterable.as_dict().items) keys.push_back(k);
      charge_bytes(keys.size() * sizeof(Value));
      return keys;
    }
    case Value::Kind::kString: {
      const std::string& s = iterable.as_string();
      ValueList chars;
      charge_bytes(s.size() * (sizeof(Value) + 32));
      for (size_t pos = 0; pos < s.size();) {
        const size_t n = text::codepoint_size(s, pos);
        chars.push_back(Value::string(s.substr(pos, n)));
        pos += n;
      }
      return chars;
    }
    default:
      throw EvalError(fmt::format("'{}' object is not iterable", type_name(iterable)));
  }
}

void Interpreter::assign(const AssignTarget& target, const Value& value, Scope& scope) {
  if (!target.unpack) {
    scope.set(target.names[0], value);
    return;
  }
  if (value.is_undefined()) fail_undefined(value);
  const ValueList items = iterate(value);
  if (items.size() < target.names.size()) {
    throw EvalError(fmt::format("not enough values to unpack (expected {}, got {})",
                                target.names.size(), items.size()));
  }
  if (items.size() > target.names.size()) {
    throw EvalError(fmt::format("too many values to unpack (expected {})", target.names.size()));
  }
  for (size_t i = 0; i < items.size(); ++i) scope.set(target.names[i], items[i]);
}

Interpreter::Flow Interpreter::exec_body(const Body& body, const std::shared_ptr<Scope>& scope,
                                         std::string& out) {
  for (const StmtPtr& stmt : body) {
    const Flow flow = exec(*stmt, scope, out);
    if (flow != Flow::kNormal) return flow;
  }
  return Flow::kNormal;
}

Interpreter::Flow Interpreter::exec(const Stmt& stmt, const std::shared_ptr<Scope>& scope,
                                    std::string& out) {
  try {
    charge_steps(1);
    const EvalDepth depth(eval_depth_);
    switch (stmt.kind) {
      case StmtKind::kText:
        emit(out, static_cast<const TextStmt&>(stmt).text);
        break;
      case StmtKind::kPrint: {
        const Value v = eval(*static_cast<const PrintStmt&>(stmt).expr, scope);
        if (v.is_string()) {
          emit(out, v.as_string());
        } else {
          emit(out, py_str(v));
        }
        break;
      }
      case StmtKind::kIf: {
        const auto& node = static_cast<const IfStmt&>(stmt);
        for (const auto& [test, body] : node.branches) {
          if (truthy(eval(*test, scope))) return exec_body(body, scope, out);
        }
        return exec_body(node.otherwise, scope, out);
      }
      case StmtKind::kFor:
        return exec_for(static_cast<const ForStmt&>(stmt), scope, out);
      case StmtKind::kSet: {
        const auto& node = static_cast<const SetStmt&>(stmt);
        assign(node.target, eval(*node.value, scope), *scope);
        break;
      }
      case StmtKind::kSetAttribute:
        exec_set_attribute(static_cast<const SetAttributeStmt&>(stmt), scope);
        break;
      case StmtKind::kSetBlock: {
        const auto& node = static_cast<const SetBlockStmt&>(stmt);
        std::string captured;
        exec_body(node.body, scope, captured);
        assign(node.target,
               apply_filter_chain(node.filters, new_string(std::move(captured)), scope), *scope);
        break;
      }
      case StmtKind::kMacro: {
        const auto& node = static_cast<const MacroStmt&>(stmt);
        scope->set(node.def.name, Value::callable(std::make_shared<Macro>(node.def, scope)));
        break;
      }
      case StmtKind::kFilterBlock: {
        const auto& node = static_cast<const FilterBlockStmt&>(stmt);
        std::string captured;
        exec_body(node.body, scope, captured);
        const Value v = apply_filter_chain(node.filters, new_string(std::move(captured)), scope);
        emit(out, py_str(v));
        break;
      }
      case StmtKind::kWith: {
        const auto& node = static_cast<const WithStmt&>(stmt);
        std::vector<Value> values;
        for (const auto& [target, expr] : node.assignments) values.push_back(eval(*expr, scope));
        auto inner = std::make_shared<Scope>();
        inner->parent = scope;
        for (size_t i = 0; i < values.size(); ++i) {
          assign(node.assignments[i].first, values[i], *inner);
        }
        return exec_body(node.body, inner, out);
      }
      case StmtKind::kBreak:
        return Flow::kBreak;
      case StmtKind::kContinue:
        return Flow::kContinue;
    }
  } catch (const EvalError& e) {
    throw TemplateError(e.what(), stmt.line);
  }
  return Flow::kNormal;
}

void Interpreter::exec_set_attribute(const SetAttributeStmt& node,
                                     const std::shared_ptr<Scope>& scope) {
  const Value target = lookup(node.object, *scope);
  if (!target.is_namespace()) {
    throw EvalError(fmt::format("cannot assign attribute on non-namespace object '{}' ({})",
                                node.object, type_name(target)));
  }
  Value value = eval(*node.value, scope);
  if (value.holds_namespace()) {
    throw EvalError("a namespace attribute cannot hold a namespace or a loop object");
  }
  target.as_namespace().attributes.set(Value::string(node.attribute), std::move(value));
}

Interpreter::Flow Interpreter::exec_for(const ForStmt& node, const std::shared_ptr<Scope>& scope,
                                        std::string& out) {
  const Value iterable = eval(*node.iterable, scope);
  ValueList items = iterate(iterable);
  if (node.filter) {  // {% for x in xs if cond %}: loop.length counts what passes
    ValueList kept;
    for (const Value& item : items) {
      charge_steps(1);
      auto probe = std::make_shared<Scope>();
      probe->parent = scope;
      assign(node.target, item, *probe);
      if (truthy(eval(*node.filter, probe))) kept.push_back(item);
    }
    items = std::move(kept);
  }
  if (items.empty()) {
    auto inner = std::make_shared<Scope>();
    inner->parent = scope;
    return exec_body(node.otherwise, inner, out);  // a break here belongs to an outer loop
  }
  const auto changed_state = std::make_shared<std::optional<ValueList>>();
  const int64_t length = static_cast<int64_t>(items.size());
  for (int64_t i = 0; i < length; ++i) {
    charge_steps(1);
    auto inner = std::make_shared<Scope>();
    inner->parent = scope;
    auto loop = std::make_shared<LoopObj>();
    loop->index0 = i;
    loop->length = length;
    loop->previous = i > 0 ? items[i - 1] : Value::undefined("there is no previous item");
    loop->next = i + 1 < length ? items[i + 1] : Value::undefined("there is no next item");
    loop->changed_last = changed_state;
    inner->vars.reserve(node.target.names.size() + 1);
    inner->vars.emplace_back("loop", Value::loop(std::move(loop)));
    assign(node.target, items[i], *inner);
    if (exec_body(node.body, inner, out) == Flow::kBreak) break;
  }
  return Flow::kNormal;
}

CallArgs Interpreter::eval_args(const Arguments& args, const std::shared_ptr<Scope>& scope) {
  CallArgs out;
  out.positional.reserve(args.positional.size());
  for (const ExprPtr& e : args.positional) out.positional.push_back(eval(*e, scope));
  for (const auto& [name, e] : args.keyword) out.keyword.emplace_back(name, eval(*e, scope));
  return out;
}

Value Interpreter::apply_filter_chain(const std::vector<std::unique_ptr<FilterExpr>>& chain,
                                      Value value, const std::shared_ptr<Scope>& scope) {
  for (const auto& filter : chain) {
    CallArgs args = eval_args(filter->args, scope);
    value = filter->fn(*this, value, args);
  }
  return value;
}

Value Interpreter::eval(const Expr& expr, const std::shared_ptr<Scope>& scope) {
  try {
    charge_steps(1);
    const EvalDepth depth(eval_depth_);
    return eval_node(expr, scope);
  } catch (const EvalError& e) {
    throw TemplateError(e.what(), expr.line);
  }
}

Value Interpreter::eval_node(const Expr& expr, const std::shared_ptr<Scope>& scope) {
  switch (expr.kind) {
    case ExprKind::kConst:
      return static_cast<const ConstExpr&>(expr).value;
    case ExprKind::kName:
      return lookup(static_cast<const NameExpr&>(expr).name, *scope);
    case ExprKind::kGetattr: {
      const auto& node = static_cast<const GetattrExpr&>(expr);
      return get_attribute(eval(*node.object, scope), node.attribute);
    }
    case ExprKind::kGetitem: {
      const auto& node = static_cast<const GetitemExpr&>(expr);
      const Value object = eval(*node.object, scope);
      return get_item(object, eval(*node.key, scope));
    }
    case ExprKind::kSlice:
      return eval_slice(static_cast<const SliceExpr&>(expr), scope);
    case ExprKind::kCall: {
      const auto& node = static_cast<const CallExpr&>(expr);
      const Value callee = eval(*node.callee, scope);
      return call(callee, eval_args(node.args, scope));
    }
    case ExprKind::kFilter: {
      const auto& node = static_cast<const FilterExpr&>(expr);
      const Value operand = eval(*node.operand, scope);
      CallArgs args = eval_args(node.args, scope);
      return node.fn(*this, operand, args);
    }
    case ExprKind::kTest: {
      const auto& node = static_cast<const TestExpr&>(expr);
      const Value operand = eval(*node.operand, scope);
      CallArgs args = eval_args(node.args, scope);
      return Value::boolean(node.fn(*this, operand, args) != node.negated);
    }
    case ExprKind::kNeg:
    case ExprKind::kPos: {
      const Value v = eval(*static_cast<const UnaryExpr&>(expr).operand, scope);
      const bool negate = expr.kind == ExprKind::kNeg;
      if (v.is_int() || v.is_bool()) {
        if (!negate) return Value::integer(v.as_int());
        return Value::integer(checked_sub(0, v.as_int()));
      }
      if (v.is_float()) return Value::floating(negate ? -v.as_double() : v.as_double());
      if (v.is_undefined()) fail_undefined(v);
      throw EvalError(
          fmt::format("bad operand type for unary {}: '{}'", negate ? '-' : '+', type_name(v)));
    }
    case ExprKind::kNot:
      return Value::boolean(!truthy(eval(*static_cast<const UnaryExpr&>(expr).operand, scope)));
    case ExprKind::kAnd:
    case ExprKind::kOr: {
      const auto& node = static_cast<const BinaryExpr&>(expr);
      Value left = eval(*node.left, scope);
      if (truthy(left) == (expr.kind == ExprKind::kOr)) return left;
      return eval(*node.right, scope);
    }
    case ExprKind::kBinary: {
      const auto& node = static_cast<const BinaryExpr&>(expr);
      const Value left = eval(*node.left, scope);
      const Value right = eval(*node.right, scope);
      return binary_op(*this, node.op, left, right);
    }
    case ExprKind::kCompare:
      return eval_compare(static_cast<const CompareExpr&>(expr), scope);
    case ExprKind::kConcat: {
      std::string s;
      for (const ExprPtr& part : static_cast<const ConcatExpr&>(expr).parts) {
        append_py_str(s, eval(*part, scope));
        if (s.size() > limits_.max_output_bytes) {
          throw EvalError(fmt::format("string longer than {} bytes", limits_.max_output_bytes));
        }
      }
      return new_string(std::move(s));
    }
    case ExprKind::kCondition: {
      const auto& node = static_cast<const ConditionExpr&>(expr);
      if (truthy(eval(*node.test, scope))) return eval(*node.then, scope);
      if (node.otherwise) return eval(*node.otherwise, scope);
      return Value::undefined(fmt::format(
          "the inline if-expression on line {} evaluated to false and no else section was "
          "defined",
          expr.line));
    }
    case ExprKind::kList:
    case ExprKind::kTuple: {
      ValueList items;
      for (const ExprPtr& e : static_cast<const SequenceExpr&>(expr).items) {
        items.push_back(eval(*e, scope));
      }
      return expr.kind == ExprKind::kList ? new_list(std::move(items))
                                          : new_tuple(std::move(items));
    }
    case ExprKind::kDict: {
      auto d = std::make_shared<DictObj>();
      for (const auto& [k, v] : static_cast<const DictExpr&>(expr).items) {
        Value key = eval(*k, scope);
        if (key.is_list() || key.is_dict() || key.is_namespace() || key.is_undefined()) {
          throw EvalError(fmt::format("unhashable type: '{}'", type_name(key)));
        }
        d->set(std::move(key), eval(*v, scope));
      }
      charge_bytes(d->items.size() * 2 * sizeof(Value));
      return Value::dict(std::move(d));
    }
  }
  throw EvalError("unknown expression");
}

Value Interpreter::eval_compare(const CompareExpr& node, const std::shared_ptr<Scope>& scope) {
  Value left = eval(*node.first, scope);
  for (const auto& [op, expr] : node.rest) {
    Value right = eval(*expr, scope);
    bool result;
    if (op == CompareOp::kIn || op == CompareOp::kNotIn) {
      result = contains(*this, right, left) == (op == CompareOp::kIn);
    } else {
      result = compare(op, left, right);
    }
    if (!result) return Value::boolean(false);
    left = std::move(right);
  }
  return Value::boolean(true);
}

Value Interpreter::eval_slice(const SliceExpr& node, const std::shared_ptr<Scope>& scope) {
  const Value object = eval(*node.object, scope);
  const Value start = node.start ? eval(*node.start, scope) : Value::none();
  const Value stop = node.stop ? eval(*node.stop, scope) : Value::none();
  const Value step = node.step ? eval(*node.step, scope) : Value::none();
  if (object.is_undefined()) fail_undefined(object);
  if (object.is_sequence_like()) {
    const ValueList& items = object.as_list();
    const SliceRange r = slice_range(static_cast<int64_t>(items.size()), start, stop, step);
    ValueList out;
    out.reserve(static_cast<size_t>(r.count));
    for (int64_t k = 0, i = r.start; k < r.count; ++k, i += r.step) out.push_back(items[i]);
    return object.is_list() ? new_list(std::move(out)) : new_tuple(std::move(out));
  }
  if (object.is_string()) {
    const std::string& s = object.as_string();
    const bool ascii = text::is_ascii(s);
    const std::vector<size_t> offsets = ascii ? std::vector<size_t>{} : text::codepoint_offsets(s);
    const int64_t length =
        ascii ? static_cast<int64_t>(s.size()) : static_cast<int64_t>(offsets.size() - 1);
    const SliceRange r = slice_range(length, start, stop, step);
    std::string out;
    if (r.step == 1 && r.count > 0) {
      const size_t begin = ascii ? r.start : offsets[r.start];
      const size_t end = ascii ? r.start + r.count : offsets[r.start + r.count];
      out = s.substr(begin, end - begin);
    } else {
      for (int64_t k = 0, i = r.start; k < r.count; ++k, i += r.step) {
        if (ascii) {
          out.push_back(s[i]);
        } else {
          out.append(s, offsets[i], offsets[i + 1] - offsets[i]);
        }
      }
    }
    return new_string(std::move(out));
  }
  // Jinja compiles slices to plain Python subscripts, so slicing anything else is an error.
  if (object.is_dict()) throw EvalError("unhashable type: 'slice'");
  throw EvalError(fmt::format("'{}' object is not subscriptable", type_name(object)));
}

Value Interpreter::get_attribute(const Value& object, std::string_view name) {
  switch (object.kind()) {
    case Value::Kind::kUndefined:
      fail_undefined(object);
    case Value::Kind::kNamespace: {
      if (const Value* v = object.as_namespace().attributes.find(name)) return *v;
      break;
    }
    case Value::Kind::kLoop: {
      const LoopObj& loop = object.as_loop();
      if (name == "index") return Value::integer(loop.index0 + 1);
      if (name == "index0") return Value::integer(loop.index0);
      if (name == "revindex") return Value::integer(loop.length - loop.index0);
      if (name == "revindex0") return Value::integer(loop.length - loop.index0 - 1);
      if (name == "first") return Value::boolean(loop.index0 == 0);
      if (name == "last") return Value::boolean(loop.index0 + 1 == loop.length);
      if (name == "length") return Value::integer(loop.length);
      if (name == "depth") return Value::integer(loop.depth0 + 1);
      if (name == "depth0") return Value::integer(loop.depth0);
      if (name == "previtem") return loop.previous;
      if (name == "nextitem") return loop.next;
      break;
    }
    default:
      break;
  }
  if (std::optional<Value> method = find_method(object, name)) return *method;
  if (object.is_dict()) {
    if (const Value* v = object.as_dict().find(name)) return *v;
  }
  return Value::undefined(
      fmt::format("'{}' has no attribute '{}'", object_description(object), name));
}

Value Interpreter::get_item(const Value& object, const Value& key) {
  switch (object.kind()) {
    case Value::Kind::kUndefined:
      fail_undefined(object);
    case Value::Kind::kDict:
      if (const Value* v = object.as_dict().find(key)) return *v;
      break;
    case Value::Kind::kList:
    case Value::Kind::kTuple:
    case Value::Kind::kString:
      if (key.is_int() || key.is_bool()) {
        int64_t i = key.as_int();
        if (object.is_string()) {
          const std::string& s = object.as_string();
          if (text::is_ascii(s)) {
            if (i < 0) i += static_cast<int64_t>(s.size());
            if (i >= 0 && i < static_cast<int64_t>(s.size())) return Value::string(s.substr(i, 1));
          } else {
            const std::vector<size_t> offsets = text::codepoint_offsets(s);
            const int64_t n = static_cast<int64_t>(offsets.size() - 1);
            if (i < 0) i += n;
            if (i >= 0 && i < n)
              return Value::string(s.substr(offsets[i], offsets[i + 1] - offsets[i]));
          }
        } else {
          const ValueList& items = object.as_list();
          if (i < 0) i += static_cast<int64_t>(items.size());
          if (i >= 0 && i < static_cast<int64_t>(items.size())) return items[i];
        }
        return Value::undefined(
            fmt::format("{} has no element {}", object_description(object), key.as_int()));
      }
      break;
    default:
      break;
  }
  if (key.is_string()) {
    // obj["name"] falls back to the attribute, as Jinja's getitem does.
    if (object.is_namespace() || object.is_loop()) return get_attribute(object, key.as_string());
    if (std::optional<Value> method = find_method(object, key.as_string())) return *method;
    return Value::undefined(
        fmt::format("'{}' has no attribute '{}'", object_description(object), key.as_string()));
  }
  return Value::undefined(
      fmt::format("{} has no element {}", object_description(object), py_repr(key)));
}

Value Interpreter::call(const Value& callee, CallArgs args) {
  if (callee.is_callable()) return callee.as_callable().call(*this, std::move(args));
  if (callee.is_undefined()) fail_undefined(callee);
  throw EvalError(fmt::format("'{}' object is not callable", type_name(callee)));
}

Value Interpreter::apply_filter(std::string_view name, const Value& operand, CallArgs args) {
  const FilterFn fn = find_filter(name);
  if (fn == nullptr) throw EvalError(fmt::format("no filter named '{}'", name));
  return fn(*this, operand, args);
}

bool Interpreter::apply_test(std::string_view name, const Value& operand, CallArgs args) {
  const TestFn fn = find_test(name);
  if (fn == nullptr) throw EvalError(fmt::format("no test named '{}'", name));
  return fn(*this, operand, args);
}

Value Interpreter::call_macro(const Macro& macro, CallArgs args) {
  const MacroDef& def = macro.def();
  if (call_depth_ >= limits_.max_call_depth) {
    throw EvalError(fmt::format("macro calls nested more than {} deep", limits_.max_call_depth));
  }
  auto scope = std::make_shared<Scope>();
  scope->parent = macro.closure();
  if (!scope->parent) scope->parent = root_;
  const size_t n_params = def.params.size();
  if (args.positional.size() > n_params && !def.uses_varargs) {
    throw EvalError(
        fmt::format("macro '{}' takes not more than {} argument(s)", def.name, n_params));
  }
  std::vector<bool> bound(n_params, false);
  for (size_t i = 0; i < n_params && i < args.positional.size(); ++i) {
    scope->set(def.params[i], args.positional[i]);
    bound[i] = true;
  }
  auto extra_keywords = std::make_shared<DictObj>();
  for (auto& [name, value] : args.keyword) {
    size_t i = 0;
    while (i < n_params && def.params[i] != name) ++i;
    if (i == n_params) {
      if (!def.uses_kwargs) {
        throw EvalError(fmt::format("macro '{}' takes no keyword argument '{}'", def.name, name));
      }
      extra_keywords->set(Value::string(name), value);
      continue;
    }
    if (bound[i]) {
      throw EvalError(
          fmt::format("macro '{}' got multiple values for argument '{}'", def.name, name));
    }
    scope->set(name, value);
    bound[i] = true;
  }
  ++call_depth_;
  struct DepthRestore {
    int& depth;
    ~DepthRestore() { --depth; }
  } restore{call_depth_};
  for (size_t i = 0; i < n_params; ++i) {
    if (bound[i]) continue;
    if (def.defaults[i]) {
      scope->set(def.params[i], eval(*def.defaults[i], scope));
    } else {
      scope->set(def.params[i],
                 Value::undefined(fmt::format("parameter '{}' was not provided", def.params[i])));
    }
  }
  if (def.uses_varargs) {
    ValueList rest;
    for (size_t i = n_params; i < args.positional.size(); ++i) rest.push_back(args.positional[i]);
    scope->set("varargs", new_tuple(std::move(rest)));
  }
  if (def.uses_kwargs) scope->set("kwargs", Value::dict(std::move(extra_keywords)));
  std::string out;
  exec_body(def.body, scope, out);
  return new_string(std::move(out));
}

}  // namespace hwledger::chat
