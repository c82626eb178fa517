#include "chat/parser.h"

#include <fmt/format.h>

#include <initializer_list>
#include <string_view>

#include "chat/builtins.h"
#include "chat/chat_template.h"
#include "chat/lexer.h"

namespace hwledger::chat {

namespace {

// Deeper nesting than this (parentheses, blocks, unary chains, and chains such as a+b+c or
// x|f|g, which build trees as deep as they are long) is refused: evaluating and freeing the tree
// recurse through it.
constexpr int kMaxParseDepth = 256;

std::string describe(const Token& t) {
  switch (t.type) {
    case TokenType::kVariableEnd:
      return "end of print statement";
    case TokenType::kBlockEnd:
      return "end of statement block";
    case TokenType::kVariableBegin:
      return "begin of print statement";
    case TokenType::kBlockBegin:
      return "begin of statement block";
    case TokenType::kEnd:
      return "end of template";
    case TokenType::kText:
      return "template data";
    case TokenType::kString:
      return "string";
    default:
      return t.value;
  }
}

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  Body parse() {
    Body body = subparse({});
    if (current().type != TokenType::kEnd) fail_unexpected_tag();
    return body;
  }

 private:
  struct OpenBlock {
    std::string_view tag;
    int line;
    std::vector<std::string_view> ends;  // tag names that may close or continue it
  };

  class DepthGuard {
   public:
    explicit DepthGuard(Parser& p) : parser_(p) {
      if (++parser_.depth_ > kMaxParseDepth) {
        parser_.fail(fmt::format("template nested more than {} deep", kMaxParseDepth));
      }
    }
    ~DepthGuard() { --parser_.depth_; }

   private:
    Parser& parser_;
  };

  // For left-deep chains built in a loop: each link deepens the tree by one until the chain's
  // parse function returns.
  class ChainGuard {
   public:
    explicit ChainGuard(Parser& p) : parser_(p) {}
    void link() {
      ++links_;
      if (++parser_.depth_ > kMaxParseDepth) {
        parser_.fail(fmt::format("template nested more than {} deep", kMaxParseDepth));
      }
    }
    ~ChainGuard() { parser_.depth_ -= links_; }

   private:
    Parser& parser_;
    int links_ = 0;
  };

  // ---- token stream ---------------------------------------------------------------------
  const Token& current() const { return tokens_[index_]; }
  const Token& look() const { return tokens_[std::min(index_ + 1, tokens_.size() - 1)]; }
  const Token& next() {
    const Token& t = tokens_[index_];
    if (index_ + 1 < tokens_.size()) ++index_;
    return t;
  }
  bool is_op(std::string_view op) const {
    return current().type == TokenType::kOperator && current().value == op;
  }
  bool is_name(std::string_view name) const {
    return current().type == TokenType::kName && current().value == name;
  }
  bool skip_op(std::string_view op) {
    if (!is_op(op)) return false;
    next();
    return true;
  }
  bool skip_name(std::string_view name) {
    if (!is_name(name)) return false;
    next();
    return true;
  }
  [[noreturn]] void fail(const std::string& message, int line = -1) const {
    throw TemplateError(message, line < 0 ? current().line : line);
  }
  [[noreturn]] void fail_expected(std::string_view what) const {
    fail(fmt::format("expected {}, got '{}'", what, describe(current())));
  }
  void expect_op(std::string_view op) {
    if (!skip_op(op)) fail_expected(fmt::format("'{}'", op));
  }
  const Token& expect_name() {
    if (current().type != TokenType::kName) fail_expected("a name");
    return next();
  }
  void expect_name(std::string_view name) {
    if (!skip_name(name)) fail_expected(fmt::format("'{}'", name));
  }
  void expect_block_end() {
    if (current().type != TokenType::kBlockEnd) fail_expected("end of statement block");
    next();
  }

  // ---- statements -------------------------------------------------------------------------

  // Template text and tags up to a block tag named in `ends` (left as the current token, after
  // its {%), or the end of the template when `ends` is empty.
  Body subparse(std::initializer_list<std::string_view> ends) {
    Body body;
    while (true) {
      const Token& t = current();
      switch (t.type) {
        case TokenType::kEnd:
          if (ends.size() != 0) fail_unclosed();
          return body;
        case TokenType::kText:
          body.push_back(std::make_unique<TextStmt>(t.line, t.value));
          next();
          break;
        case TokenType::kVariableBegin: {
          next();
          const int line = current().line;
          body.push_back(std::make_unique<PrintStmt>(line, parse_tuple(TupleMode::kFull)));
          if (current().type != TokenType::kVariableEnd) fail_expected("end of print statement");
          next();
          break;
        }
        case TokenType::kBlockBegin: {
          next();
          if (current().type == TokenType::kName) {
            for (const std::string_view end : ends) {
              if (current().value == end) return body;
            }
          }
          body.push_back(parse_statement());
          expect_block_end();
          break;
        }
        default:
          fail(fmt::format("unexpected '{}'", describe(t)));
      }
    }
  }

  // After the tag's header: its %}, then the body up to one of `ends`; with drop_end, the end
  // name is consumed too.
  Body parse_statements(std::initializer_list<std::string_view> ends, bool drop_end) {
    expect_block_end();
    Body body = subparse(ends);
    if (drop_end) next();
    return body;
  }

  [[noreturn]] void fail_unclosed() const {
    const OpenBlock& block = open_blocks_.back();
    std::string expected;
    for (const std::string_view end : block.ends) {
      expected += fmt::format("{}'{}'", expected.empty() ? "" : " or ", end);
    }
    fail(fmt::format("unexpected end of template: the '{}' block opened at line {} was never "
                     "closed (expected {})",
                     block.tag, block.line, expected),
         block.line);
  }

  [[noreturn]] void fail_unexpected_tag() const {
    const std::string& name = current().value;
    if (open_blocks_.empty()) fail(fmt::format("unexpected tag '{}'", name));
    const OpenBlock& block = open_blocks_.back();
    fail(fmt::format("unexpected tag '{}' inside the '{}' block opened at line {} (expected '{}')",
                     name, block.tag, block.line, block.ends.front()));
  }

  StmtPtr parse_statement() {
    DepthGuard guard(*this);
    if (current().type != TokenType::kName) fail("tag name expected");
    const std::string& tag = current().value;
    if (tag == "for") return parse_for();
    if (tag == "if") return parse_if();
    if (tag == "set") return parse_set();
    if (tag == "macro") return parse_macro();
    if (tag == "filter") return parse_filter_block();
    if (tag == "with") return parse_with();
    if (tag == "generation") return parse_generation();
    if (tag == "break" || tag == "continue") {
      if (loop_depth_ == 0) fail(fmt::format("'{}' outside of a loop", tag));
      const int line = next().line;
      return std::make_unique<LoopControlStmt>(
          tag == "break" ? StmtKind::kBreak : StmtKind::kContinue, line);
    }
    static constexpr std::string_view kUnsupported[] = {
        "call", "include", "import", "from", "extends", "block", "autoescape", "do", "trans"};
    for (const std::string_view unsupported : kUnsupported) {
      if (tag == unsupported) {
        fail(fmt::format("the '{}' tag is not supported in chat templates", tag));
      }
    }
    static constexpr std::string_view kEndTags[] = {
        "endfor",   "endif",     "else",    "elif",          "endset",
        "endmacro", "endfilter", "endwith", "endgeneration", "endraw"};
    for (const std::string_view end : kEndTags) {
      if (tag == end) fail_unexpected_tag();
    }
    fail(fmt::format("unknown tag '{}'", tag));
  }

  StmtPtr parse_for() {
    auto node = std::make_unique<ForStmt>(next().line);
    node->target = parse_assign_target("in");
    expect_name("in");
    node->iterable = parse_tuple(TupleMode::kNoCondition, "recursive");
    if (skip_name("if")) node->filter = parse_expression(true);
    if (is_name("recursive")) fail("recursive for loops are not supported");
    open_blocks_.push_back({"for", node->line, {"endfor", "else"}});
    ++loop_depth_;
    node->body = parse_statements({"endfor", "else"}, false);
    --loop_depth_;
    if (next().value == "else") {
      open_blocks_.back().ends = {"endfor"};
      node->otherwise = parse_statements({"endfor"}, true);
    }
    open_blocks_.pop_back();
    return node;
  }

  StmtPtr parse_if() {
    auto node = std::make_unique<IfStmt>(next().line);
    open_blocks_.push_back({"if", node->line, {"endif", "elif", "else"}});
    while (true) {
      ExprPtr test = parse_tuple(TupleMode::kNoCondition);
      Body body = parse_statements({"elif", "else", "endif"}, false);
      node->branches.emplace_back(std::move(test), std::move(body));
      const Token& end = next();
      if (end.value == "elif") continue;
      if (end.value == "else") {
        open_blocks_.back().ends = {"endif"};
        node->otherwise = parse_statements({"endif"}, true);
      }
      break;
    }
    open_blocks_.pop_back();
    return node;
  }

  StmtPtr parse_set() {
    const int line = next().line;
    // {% set ns.attr = value %}
    if (current().type == TokenType::kName && look().type == TokenType::kOperator &&
        look().value == ".") {
      auto node = std::make_unique<SetAttributeStmt>(line);
      node->object = next().value;
      next();
      node->attribute = expect_name().value;
      expect_op("=");
      node->value = parse_tuple(TupleMode::kFull);
      return node;
    }
    AssignTarget target = parse_assign_target({});
    if (skip_op("=")) {
      auto node = std::make_unique<SetStmt>(line);
      node->target = std::move(target);
      node->value = parse_tuple(TupleMode::kFull);
      return node;
    }
    auto node = std::make_unique<SetBlockStmt>(line);
    if (target.unpack) fail("a {% set %} block assigns one name", line);
    node->target = std::move(target);
    if (is_op("|")) node->filters = parse_filter_chain();
    open_blocks_.push_back({"set", line, {"endset"}});
    node->body = parse_statements({"endset"}, true);
    open_blocks_.pop_back();
    return node;
  }

  StmtPtr parse_macro() {
    auto node = std::make_unique<MacroStmt>(next().line);
    MacroDef& def = node->def;
    def.name = expect_name().value;
    expect_op("(");
    while (!is_op(")")) {
      if (!def.params.empty()) expect_op(",");
      def.params.push_back(expect_name().value);
      if (skip_op("=")) {
        def.defaults.push_back(parse_expression(true));
      } else {
        if (!def.defaults.empty() && def.defaults.back() != nullptr) {
          fail("non-default argument follows default argument");
        }
        def.defaults.push_back(nullptr);
      }
    }
    expect_op(")");
    macros_.push_back(&def);
    const int saved_loop_depth = loop_depth_;
    loop_depth_ = 0;
    open_blocks_.push_back({"macro", node->line, {"endmacro"}});
    def.body = parse_statements({"endmacro"}, true);
    open_blocks_.pop_back();
    loop_depth_ = saved_loop_depth;
    macros_.pop_back();
    return node;
  }

  StmtPtr parse_filter_block() {
    auto node = std::make_unique<FilterBlockStmt>(next().line);
    node->filters = parse_filter_chain(/*first_without_pipe=*/true);
    open_blocks_.push_back({"filter", node->line, {"endfilter"}});
    node->body = parse_statements({"endfilter"}, true);
    open_blocks_.pop_back();
    return node;
  }

  StmtPtr parse_with() {
    auto node = std::make_unique<WithStmt>(next().line);
    while (current().type != TokenType::kBlockEnd) {
      if (!node->assignments.empty()) expect_op(",");
      AssignTarget target = parse_assign_target({});
      expect_op("=");
      node->assignments.emplace_back(std::move(target), parse_expression(true));
    }
    open_blocks_.push_back({"with", node->line, {"endwith"}});
    node->body = parse_statements({"endwith"}, true);
    open_blocks_.pop_back();
    return node;
  }

  // transformers' {% generation %} marks assistant text for masks; rendering just runs its body
  // (in its own scope, as Jinja's call block does).
  StmtPtr parse_generation() {
    auto node = std::make_unique<WithStmt>(next().line);
    open_blocks_.push_back({"generation", node->line, {"endgeneration"}});
    node->body = parse_statements({"endgeneration"}, true);
    open_blocks_.pop_back();
    return node;
  }

  // `x` or `a, b` (optionally parenthesized), up to `end_name` or the end of the tag.
  AssignTarget parse_assign_target(std::string_view end_name) {
    AssignTarget target;
    const bool parenthesized = skip_op("(");
    while (true) {
      if (current().type != TokenType::kName) fail_expected("a variable name to assign");
      const std::string& name = current().value;
      if (name == "true" || name == "false" || name == "none" || name == "True" ||
          name == "False" || name == "None") {
        fail(fmt::format("can't assign to '{}'", name));
      }
      target.names.push_back(next().value);
      if (!is_op(",")) break;
      next();
      target.unpack = true;
      if ((parenthesized && is_op(")")) || current().type == TokenType::kBlockEnd ||
          (!end_name.empty() && is_name(end_name)) || is_op("=")) {
        break;
      }
    }
    if (parenthesized) {
      expect_op(")");
      target.unpack = target.unpack || target.names.size() > 1;
    }
    return target;
  }

  // ---- expressions -----------------------------------------------------------------------

  enum class TupleMode { kFull, kNoCondition };

  // Comma-separated expressions: one alone is itself, several (or a trailing comma) a tuple.
  ExprPtr parse_tuple(TupleMode mode, std::string_view extra_end = {},
                      bool explicit_parentheses = false) {
    const int line = current().line;
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) expect_op(",");
      if (is_tuple_end(extra_end)) break;
      items.push_back(parse_expression(mode == TupleMode::kFull));
      if (is_op(",")) {
        is_tuple = true;
      } else {
        break;
      }
    }
    if (!is_tuple) {
      if (!items.empty()) return std::move(items[0]);
      if (!explicit_parentheses) fail_expected("an expression");
    }
    auto node = std::make_unique<SequenceExpr>(ExprKind::kTuple, line);
    node->items = std::move(items);
    return node;
  }

  bool is_tuple_end(std::string_view extra_end) const {
    const Token& t = current();
    if (t.type == TokenType::kVariableEnd || t.type == TokenType::kBlockEnd || is_op(")")) {
      return true;
    }
    return !extra_end.empty() && is_name(extra_end);
  }

  ExprPtr parse_expression(bool with_condition) {
    DepthGuard guard(*this);
    if (!with_condition) return parse_or();
    int line = current().line;
    ExprPtr expr = parse_or();
    while (skip_name("if")) {
      ExprPtr test = parse_or();
      ExprPtr otherwise;
      if (skip_name("else")) otherwise = parse_expression(true);
      expr = std::make_unique<ConditionExpr>(line, std::move(test), std::move(expr),
                                             std::move(otherwise));
      line = current().line;
    }
    return expr;
  }

  ExprPtr parse_or() {
    ChainGuard chain(*this);
    ExprPtr left = parse_and();
    while (is_name("or")) {
      chain.link();
      const int line = next().line;
      left = std::make_unique<BinaryExpr>(ExprKind::kOr, line, BinaryOp::kAdd, std::move(left),
                                          parse_and());
    }
    return left;
  }

  ExprPtr parse_and() {
    ChainGuard chain(*this);
    ExprPtr left = parse_not();
    while (is_name("and")) {
      chain.link();
      const int line = next().line;
      left = std::make_unique<BinaryExpr>(ExprKind::kAnd, line, BinaryOp::kAdd, std::move(left),
                                          parse_not());
    }
    return left;
  }

  ExprPtr parse_not() {
    if (is_name("not")) {
      DepthGuard guard(*this);
      const int line = next().line;
      return std::make_unique<UnaryExpr>(ExprKind::kNot, line, parse_not());
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    const int line = current().line;
    ExprPtr first = parse_math1();
    std::unique_ptr<CompareExpr> node;
    while (true) {
      CompareOp op;
      if (is_op("==")) {
        op = CompareOp::kEq;
      } else if (is_op("!=")) {
        op = CompareOp::kNe;
      } else if (is_op("<")) {
        op = CompareOp::kLt;
      } else if (is_op("<=")) {
        op = CompareOp::kLe;
      } else if (is_op(">")) {
        op = CompareOp::kGt;
      } else if (is_op(">=")) {
        op = CompareOp::kGe;
      } else if (is_name("in")) {
        op = CompareOp::kIn;
      } else if (is_name("not") && look().type == TokenType::kName && look().value == "in") {
        next();
        op = CompareOp::kNotIn;
      } else {
        break;
      }
      next();
      if (!node) node = std::make_unique<CompareExpr>(line, std::move(first));
      node->rest.emplace_back(op, parse_math1());
    }
    if (node) return node;
    return first;
  }

  ExprPtr parse_math1() {
    ChainGuard chain(*this);
    ExprPtr left = parse_concat();
    while (is_op("+") || is_op("-")) {
      chain.link();
      const BinaryOp op = current().value == "+" ? BinaryOp::kAdd : BinaryOp::kSub;
      const int line = next().line;
      left = std::make_unique<BinaryExpr>(ExprKind::kBinary, line, op, std::move(left),
                                          parse_concat());
    }
    return left;
  }

  ExprPtr parse_concat() {
    const int line = current().line;
    ExprPtr first = parse_math2();
    if (!is_op("~")) return first;
    auto node = std::make_unique<ConcatExpr>(line);
    node->parts.push_back(std::move(first));
    while (skip_op("~")) node->parts.push_back(parse_math2());
    return node;
  }

  ExprPtr parse_math2() {
    ChainGuard chain(*this);
    ExprPtr left = parse_pow();
    while (true) {
      chain.link();
      BinaryOp op;
      if (is_op("*")) {
        op = BinaryOp::kMul;
      } else if (is_op("/")) {
        op = BinaryOp::kDiv;
      } else if (is_op("//")) {
        op = BinaryOp::kFloorDiv;
      } else if (is_op("%")) {
        op = BinaryOp::kMod;
      } else {
        return left;
      }
      const int line = next().line;
      left =
          std::make_unique<BinaryExpr>(ExprKind::kBinary, line, op, std::move(left), parse_pow());
    }
  }

  // Left-associative, binding tighter than unary minus on its left: -2**2 is 4, as in Jinja2.
  ExprPtr parse_pow() {
    ChainGuard chain(*this);
    ExprPtr left = parse_unary(true);
    while (is_op("**")) {
      chain.link();
      const int line = next().line;
      left = std::make_unique<BinaryExpr>(ExprKind::kBinary, line, BinaryOp::kPow, std::move(left),
                                          parse_unary(true));
    }
    return left;
  }

  ExprPtr parse_unary(bool with_filter) {
    DepthGuard guard(*this);
    ExprPtr node;
    if (is_op("-") || is_op("+")) {
      const ExprKind kind = current().value == "-" ? ExprKind::kNeg : ExprKind::kPos;
      const int line = next().line;
      node = std::make_unique<UnaryExpr>(kind, line, parse_unary(false));
    } else {
      node = parse_primary();
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  ExprPtr parse_primary() {
    DepthGuard guard(*this);
    const Token& t = current();
    const int line = t.line;
    switch (t.type) {
      case TokenType::kName: {
        const std::string& name = t.value;
        ExprPtr node;
        if (name == "true" || name == "True") {
          node = std::make_unique<ConstExpr>(line, Value::boolean(true));
        } else if (name == "false" || name == "False") {
          node = std::make_unique<ConstExpr>(line, Value::boolean(false));
        } else if (name == "none" || name == "None") {
          node = std::make_unique<ConstExpr>(line, Value::none());
        } else {
          if (!macros_.empty() && name == "varargs") macros_.back()->uses_varargs = true;
          if (!macros_.empty() && name == "kwargs") macros_.back()->uses_kwargs = true;
          node = std::make_unique<NameExpr>(line, name);
        }
        next();
        return node;
      }
      case TokenType::kString: {
        std::string s;
        while (current().type == TokenType::kString) s += next().value;  // "a" "b" is "ab"
        return std::make_unique<ConstExpr>(line, Value::string(std::move(s)));
      }
      case TokenType::kInteger:
        return std::make_unique<ConstExpr>(line, Value::integer(next().int_value));
      case TokenType::kFloat:
        return std::make_unique<ConstExpr>(line, Value::floating(next().float_value));
      case TokenType::kOperator:
        if (t.value == "(") {
          next();
          ExprPtr node = parse_tuple(TupleMode::kFull, {}, /*explicit_parentheses=*/true);
          expect_op(")");
          return node;
        }
        if (t.value == "[") return parse_list();
        if (t.value == "{") return parse_dict();
        break;
      default:
        break;
    }
    fail(fmt::format("unexpected '{}'", describe(t)));
  }

  ExprPtr parse_list() {
    auto node = std::make_unique<SequenceExpr>(ExprKind::kList, next().line);
    while (!is_op("]")) {
      if (!node->items.empty()) expect_op(",");
      if (is_op("]")) break;
      node->items.push_back(parse_expression(true));
    }
    expect_op("]");
    return node;
  }

  ExprPtr parse_dict() {
    auto node = std::make_unique<DictExpr>(next().line);
    while (!is_op("}")) {
      if (!node->items.empty()) expect_op(",");
      if (is_op("}")) break;
      ExprPtr key = parse_expression(true);
      expect_op(":");
      node->items.emplace_back(std::move(key), parse_expression(true));
    }
    expect_op("}");
    return node;
  }

  ExprPtr parse_postfix(ExprPtr node) {
    ChainGuard chain(*this);
    while (true) {
      chain.link();
      if (is_op(".") || is_op("[")) {
        node = parse_subscript(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_filter_expr(ExprPtr node) {
    ChainGuard chain(*this);
    while (true) {
      chain.link();
      if (is_op("|")) {
        auto filters = parse_filter_chain();
        for (auto& f : filters) {
          f->operand = std::move(node);
          node = std::move(f);
        }
      } else if (is_name("is")) {
        node = parse_test(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr node) {
    const Token& t = next();
    const int line = t.line;
    if (t.value == ".") {
      const Token& attr = next();
      if (attr.type == TokenType::kName) {
        return std::make_unique<GetattrExpr>(line, std::move(node), attr.value);
      }
      if (attr.type != TokenType::kInteger) fail("expected name or number after '.'", attr.line);
      return std::make_unique<GetitemExpr>(
          line, std::move(node),
          std::make_unique<ConstExpr>(attr.line, Value::integer(attr.int_value)));
    }
    // [key] or [start:stop:step]
    if (is_op(":")) return parse_slice(line, std::move(node), nullptr);
    if (is_op("]")) fail("expected a subscript expression");
    ExprPtr key = parse_expression(true);
    if (is_op(":")) return parse_slice(line, std::move(node), std::move(key));
    if (is_op(",")) {
      auto tuple = std::make_unique<SequenceExpr>(ExprKind::kTuple, line);
      tuple->items.push_back(std::move(key));
      while (skip_op(",")) {
        if (is_op("]")) break;
        tuple->items.push_back(parse_expression(true));
      }
      key = std::move(tuple);
    }
    expect_op("]");
    return std::make_unique<GetitemExpr>(line, std::move(node), std::move(key));
  }

  ExprPtr parse_slice(int line, ExprPtr object, ExprPtr start) {
    auto node = std::make_unique<SliceExpr>(line, std::move(object));
    node->start = std::move(start);
    expect_op(":");
    if (!is_op(":") && !is_op("]")) node->stop = parse_expression(true);
    if (skip_op(":")) {
      if (!is_op("]")) node->step = parse_expression(true);
    }
    expect_op("]");
    return node;
  }

  Arguments parse_call_args() {
    Arguments args;
    const int line = current().line;
    expect_op("(");
    bool need_comma = false;
    while (!is_op(")")) {
      if (need_comma) {
        expect_op(",");
        if (is_op(")")) break;  // trailing comma
      }
      if (is_op("*") || is_op("**")) fail("*args and **kwargs in calls are not supported");
      if (current().type == TokenType::kName && look().type == TokenType::kOperator &&
          look().value == "=") {
        std::string key = next().value;
        next();
        args.keyword.emplace_back(std::move(key), parse_expression(true));
      } else {
        if (!args.keyword.empty()) fail("invalid syntax for function call expression", line);
        args.positional.push_back(parse_expression(true));
      }
      need_comma = true;
    }
    expect_op(")");
    return args;
  }

  ExprPtr parse_call(ExprPtr callee) {
    auto node = std::make_unique<CallExpr>(current().line, std::move(callee));
    node->args = parse_call_args();
    return node;
  }

  // | name(args) | name ... ; operands are filled in by the caller.
  std::vector<std::unique_ptr<FilterExpr>> parse_filter_chain(bool first_without_pipe = false) {
    std::vector<std::unique_ptr<FilterExpr>> chain;
    while (first_without_pipe || skip_op("|")) {
      first_without_pipe = false;
      const Token& name_token = expect_name();
      const FilterFn fn = find_filter(name_token.value);
      if (fn == nullptr)
        fail(fmt::format("no filter named '{}'", name_token.value), name_token.line);
      auto node = std::make_unique<FilterExpr>(name_token.line, nullptr, name_token.value, fn);
      if (is_op("(")) node->args = parse_call_args();
      chain.push_back(std::move(node));
      if (!is_op("|")) break;
    }
    return chain;
  }

  ExprPtr parse_test(ExprPtr operand) {
    const int line = next().line;  // "is"
    const bool negated = skip_name("not");
    const Token& name_token = expect_name();
    const TestFn fn = find_test(name_token.value);
    if (fn == nullptr) fail(fmt::format("no test named '{}'", name_token.value), name_token.line);
    auto node = std::make_unique<TestExpr>(line, std::move(operand), name_token.value, fn, negated);
    const Token& t = current();
    if (is_op("(")) {
      node->args = parse_call_args();
    } else if ((t.type == TokenType::kName || t.type == TokenType::kString ||
                t.type == TokenType::kInteger || t.type == TokenType::kFloat || is_op("[") ||
                is_op("{")) &&
               !is_name("else") && !is_name("or") && !is_name("and")) {
      // `x is divisibleby 3`: one argument without parentheses.
      if (is_name("is")) fail("You cannot chain multiple tests with is");
      node->args.positional.push_back(parse_postfix(parse_primary()));
    }
    return node;
  }

  std::vector<Token> tokens_;
  size_t index_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
  std::vector<OpenBlock> open_blocks_;
  std::vector<MacroDef*> macros_;
};

}  // namespace

std::shared_ptr<const Program> parse_template(std::string source) {
  auto program = std::make_shared<Program>();
  program->body = Parser(tokenize(source)).parse();
  program->source = std::move(source);
  return program;
}

}  // namespace hwledger::chat
