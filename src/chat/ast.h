// The parsed form of a template: expressions and statements, each with its template line.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "chat/callable.h"
#include "chat/value.h"

namespace hwledger::chat {

class Interpreter;

// A filter gets its operand and the call's arguments; a test answers yes or no.
using FilterFn = Value (*)(Interpreter&, const Value& operand, CallArgs& args);
using TestFn = bool (*)(Interpreter&, const Value& operand, CallArgs& args);

enum class ExprKind {
  kConst,
  kName,
  kGetattr,
  kGetitem,
  kSlice,
  kCall,
  kFilter,
  kTest,
  kNeg,
  kPos,
  kBinary,
  kAnd,
  kOr,
  kNot,
  kCompare,
  kConcat,
  kCondition,
  kList,
  kTuple,
  kDict,
};

struct Expr {
  Expr(ExprKind k, int l) : kind(k), line(l) {}
  virtual ~Expr() = default;
  ExprKind kind;
  int line;
};
using ExprPtr = std::unique_ptr<Expr>;

struct Arguments {
  std::vector<ExprPtr> positional;
  std::vector<std::pair<std::string, ExprPtr>> keyword;
};

struct ConstExpr : Expr {
  ConstExpr(int l, Value v) : Expr(ExprKind::kConst, l), value(std::move(v)) {}
  Value value;
};

struct NameExpr : Expr {
  NameExpr(int l, std::string n) : Expr(ExprKind::kName, l), name(std::move(n)) {}
  std::string name;
};

// object.attribute: Python attribute first (methods), then item, as Jinja's getattr does.
struct GetattrExpr : Expr {
  GetattrExpr(int l, ExprPtr o, std::string a)
      : Expr(ExprKind::kGetattr, l), object(std::move(o)), attribute(std::move(a)) {}
  ExprPtr object;
  std::string attribute;
};

// object[key]: item first, then attribute.
struct GetitemExpr : Expr {
  GetitemExpr(int l, ExprPtr o, ExprPtr k)
      : Expr(ExprKind::kGetitem, l), object(std::move(o)), key(std::move(k)) {}
  ExprPtr object;
  ExprPtr key;
};

// object[start:stop:step]; absent parts are null.
struct SliceExpr : Expr {
  SliceExpr(int l, ExprPtr o) : Expr(ExprKind::kSlice, l), object(std::move(o)) {}
  ExprPtr object, start, stop, step;
};

struct CallExpr : Expr {
  CallExpr(int l, ExprPtr c) : Expr(ExprKind::kCall, l), callee(std::move(c)) {}
  ExprPtr callee;
  Arguments args;
};

// operand | name(args). `operand` is null in a filter block's chain.
struct FilterExpr : Expr {
  FilterExpr(int l, ExprPtr o, std::string n, FilterFn f)
      : Expr(ExprKind::kFilter, l), operand(std::move(o)), name(std::move(n)), fn(f) {}
  ExprPtr operand;
  std::string name;
  FilterFn fn;
  Arguments args;
};

// operand is [not] name(args)
struct TestExpr : Expr {
  TestExpr(int l, ExprPtr o, std::string n, TestFn f, bool neg)
      : Expr(ExprKind::kTest, l), operand(std::move(o)), name(std::move(n)), fn(f), negated(neg) {}
  ExprPtr operand;
  std::string name;
  TestFn fn;
  bool negated;
  Arguments args;
};

// -x, +x, not x
struct UnaryExpr : Expr {
  UnaryExpr(ExprKind k, int l, ExprPtr o) : Expr(k, l), operand(std::move(o)) {}
  ExprPtr operand;
};

enum class BinaryOp { kAdd, kSub, kMul, kDiv, kFloorDiv, kMod, kPow };

// Arithmetic, and `and` / `or` (kind kAnd / kOr, which short-circuit and yield an operand).
struct BinaryExpr : Expr {
  BinaryExpr(ExprKind k, int l, BinaryOp o, ExprPtr a, ExprPtr b)
      : Expr(k, l), op(o), left(std::move(a)), right(std::move(b)) {}
  BinaryOp op;
  ExprPtr left, right;
};

enum class CompareOp { kEq, kNe, kLt, kLe, kGt, kGe, kIn, kNotIn };

// a < b < c chains as in Python.
struct CompareExpr : Expr {
  CompareExpr(int l, ExprPtr f) : Expr(ExprKind::kCompare, l), first(std::move(f)) {}
  ExprPtr first;
  std::vector<std::pair<CompareOp, ExprPtr>> rest;
};

// a ~ b ~ c: the str() of each, joined.
struct ConcatExpr : Expr {
  explicit ConcatExpr(int l) : Expr(ExprKind::kConcat, l) {}
  std::vector<ExprPtr> parts;
};

// then if test else otherwise (otherwise may be null: undefined).
struct ConditionExpr : Expr {
  ConditionExpr(int l, ExprPtr t, ExprPtr a, ExprPtr b)
      : Expr(ExprKind::kCondition, l),
        test(std::move(t)),
        then(std::move(a)),
        otherwise(std::move(b)) {}
  ExprPtr test, then, otherwise;
};

// [a, b] (kind kList) or (a, b) (kind kTuple)
struct SequenceExpr : Expr {
  SequenceExpr(ExprKind k, int l) : Expr(k, l) {}
  std::vector<ExprPtr> items;
};

struct DictExpr : Expr {
  explicit DictExpr(int l) : Expr(ExprKind::kDict, l) {}
  std::vector<std::pair<ExprPtr, ExprPtr>> items;
};

// ---- statements ----------------------------------------------------------------------------

enum class StmtKind {
  kText,
  kPrint,
  kIf,
  kFor,
  kSet,
  kSetAttribute,
  kSetBlock,
  kMacro,
  kFilterBlock,
  kWith,
  kBreak,
  kContinue,
};

struct Stmt {
  Stmt(StmtKind k, int l) : kind(k), line(l) {}
  virtual ~Stmt() = default;
  StmtKind kind;
  int line;
};
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct TextStmt : Stmt {
  TextStmt(int l, std::string t) : Stmt(StmtKind::kText, l), text(std::move(t)) {}
  std::string text;
};

struct PrintStmt : Stmt {
  PrintStmt(int l, ExprPtr e) : Stmt(StmtKind::kPrint, l), expr(std::move(e)) {}
  ExprPtr expr;
};

struct IfStmt : Stmt {
  explicit IfStmt(int l) : Stmt(StmtKind::kIf, l) {}
  std::vector<std::pair<ExprPtr, Body>> branches;  // if, elif...
  Body otherwise;
};

// Names to assign: `x` or `a, b` (unpacking).
struct AssignTarget {
  std::vector<std::string> names;
  bool unpack = false;
};

struct ForStmt : Stmt {
  explicit ForStmt(int l) : Stmt(StmtKind::kFor, l) {}
  AssignTarget target;
  ExprPtr iterable;
  ExprPtr filter;  // {% for x in xs if cond %}; may be null
  Body body;
  Body otherwise;  // {% else %}: when nothing was iterated
};

struct SetStmt : Stmt {
  explicit SetStmt(int l) : Stmt(StmtKind::kSet, l) {}
  AssignTarget target;
  ExprPtr value;
};

// {% set ns.attribute = value %}
struct SetAttributeStmt : Stmt {
  explicit SetAttributeStmt(int l) : Stmt(StmtKind::kSetAttribute, l) {}
  std::string object;
  std::string attribute;
  ExprPtr value;
};

// {% set x | filters %}body{% endset %}
struct SetBlockStmt : Stmt {
  explicit SetBlockStmt(int l) : Stmt(StmtKind::kSetBlock, l) {}
  AssignTarget target;
  std::vector<std::unique_ptr<FilterExpr>> filters;
  Body body;
};

struct MacroDef {
  std::string name;
  std::vector<std::string> params;
  std::vector<ExprPtr> defaults;  // one per param; null where there is none
  Body body;
  bool uses_varargs = false;  // the body reads `varargs` / `kwargs`, which then take extra args
  bool uses_kwargs = false;
};

struct MacroStmt : Stmt {
  explicit MacroStmt(int l) : Stmt(StmtKind::kMacro, l) {}
  MacroDef def;
};

// {% filter upper %}body{% endfilter %}
struct FilterBlockStmt : Stmt {
  explicit FilterBlockStmt(int l) : Stmt(StmtKind::kFilterBlock, l) {}
  std::vector<std::unique_ptr<FilterExpr>> filters;
  Body body;
};

struct WithStmt : Stmt {
  explicit WithStmt(int l) : Stmt(StmtKind::kWith, l) {}
  std::vector<std::pair<AssignTarget, ExprPtr>> assignments;
  Body body;
};

struct LoopControlStmt : Stmt {
  LoopControlStmt(StmtKind k, int l) : Stmt(k, l) {}
};

}  // namespace hwledger::chat
