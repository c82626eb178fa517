// Runs a parsed template: Jinja2's scoping (for-loop bodies and macros get their own scope, if
// does not; namespace() objects cross scopes), its Undefined (prints as "", fails when used), and
// transformers' sandbox (lists and dicts are read-only). One Interpreter serves one render.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "chat/ast.h"
#include "chat/chat_template.h"
#include "chat/parser.h"
#include "chat/value.h"

namespace hwledger::chat {

class Interpreter {
 public:
  Interpreter(std::shared_ptr<const Program> program, const RenderLimits& limits);

  // `context` is a dict of the template's variables.
  std::string render(const Value& context);

  // ---- services for filters, tests and methods ----
  // Throws EvalError once the render has used up its step or memory budget.
  void charge_steps(uint64_t steps);
  void charge_bytes(size_t bytes);
  // Values built by the template, charged against the memory budget.
  Value new_string(std::string s);
  Value new_list(ValueList items);
  Value new_tuple(ValueList items);

  Value call(const Value& callee, CallArgs args);
  // Jinja's getattr (obj.name: Python attribute, then item) and getitem (obj[key]: item, then
  // attribute); both give Undefined for what is missing and fail on an Undefined object.
  Value get_attribute(const Value& object, std::string_view name);
  Value get_item(const Value& object, const Value& key);
  Value apply_filter(std::string_view name, const Value& operand, CallArgs args);
  bool apply_test(std::string_view name, const Value& operand, CallArgs args);
  // Items of an iterable (list, tuple, dict keys, string characters; Undefined is empty).
  ValueList iterate(const Value& iterable);

  struct Scope;
  class Macro;

 private:
  enum class Flow { kNormal, kBreak, kContinue };

  Flow exec_body(const Body& body, const std::shared_ptr<Scope>& scope, std::string& out);
  Flow exec(const Stmt& stmt, const std::shared_ptr<Scope>& scope, std::string& out);
  Flow exec_for(const ForStmt& node, const std::shared_ptr<Scope>& scope, std::string& out);
  void exec_set_attribute(const SetAttributeStmt& node, const std::shared_ptr<Scope>& scope);
  Value eval(const Expr& expr, const std::shared_ptr<Scope>& scope);
  Value eval_node(const Expr& expr, const std::shared_ptr<Scope>& scope);
  Value eval_compare(const CompareExpr& node, const std::shared_ptr<Scope>& scope);
  Value eval_slice(const SliceExpr& node, const std::shared_ptr<Scope>& scope);
  CallArgs eval_args(const Arguments& args, const std::shared_ptr<Scope>& scope);
  Value apply_filter_chain(const std::vector<std::unique_ptr<FilterExpr>>& chain, Value value,
                           const std::shared_ptr<Scope>& scope);

  Value lookup(std::string_view name, const Scope& scope) const;
  void assign(const AssignTarget& target, const Value& value, Scope& scope);
  void emit(std::string& out, std::string_view text);

  friend class Macro;
  Value call_macro(const Macro& macro, CallArgs args);

  std::shared_ptr<const Program> program_;
  const RenderLimits& limits_;
  const DictObj* context_ = nullptr;
  std::shared_ptr<Scope> root_;
  uint64_t steps_ = 0;
  size_t bytes_ = 0;
  int call_depth_ = 0;
  int eval_depth_ = 0;  // nested eval/exec calls: bounds the C++ stack a render uses
};

// Python's binary operators (+ - * / // % **) on template values.
Value binary_op(Interpreter& interpreter, BinaryOp op, const Value& a, const Value& b);

}  // namespace hwledger::chat
