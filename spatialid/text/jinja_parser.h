// Jinja2's parser: tokens to a syntax tree.
//
// Follows jinja2/parser.py (3.1) production by production, because operator
// precedence decides what a chat template prints: a filter binds tighter
// than `+` (`'a' + x | trim` trims only x), `not` binds looser than `is`,
// a unary minus is filtered as a whole (`-1|abs` is 1), comparisons chain
// like Python's, `for ... in ... if cond` filters the iteration. Statements:
// for/else, if/elif/else, set (expression, block, `ns.attr`, tuples), macro,
// filter blocks, with, print, raw (lexer), break/continue (loopcontrols) and
// generation/endgeneration (transformers' AssistantTracker, a no-op here).
// extends/block/include/import/call need a loader or are unused by chat
// templates and are rejected with a clear message.
// Unknown filter or test names fail at parse time, as Jinja's compiler does.
#pragma once

#include <algorithm>
#include <functional>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "spatialid/text/jinja_lexer.h"
#include "spatialid/text/jinja_value.h"

namespace spatialid::text::jinja::internal {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Keyword {
  std::string name;
  ExprPtr value;
};

struct Expr {
  enum class Kind {
    kConst,
    kName,
    kList,
    kTuple,
    kDict,      // children: key, value, key, value...
    kGetAttr,   // children[0] . name
    kGetItem,   // children[0] [children[1]]
    kSlice,     // children: start, stop, step (each may be null)
    kCall,      // children[0](children[1..], kwargs, *dyn_args, **dyn_kwargs)
    kFilter,    // children[0] | name(children[1..]); children[0] null in filter blocks
    kTest,      // children[0] is name(children[1..])
    kNeg,
    kPos,
    kNot,
    kBinary,    // name: + - * / // % **
    kAnd,
    kOr,
    kCompare,   // children[0] ops[0] children[1] ops[1] children[2]...
    kConcat,    // ~
    kCondExpr,  // children: test, then, else (may be null)
    kNsRef,     // name.attr, only as an assignment target
  };

  Kind kind;
  int line = 0;
  Value constant;
  std::string name;
  std::string attr;  // kNsRef attribute
  std::vector<ExprPtr> children;
  std::vector<Keyword> kwargs;
  ExprPtr dyn_args;
  ExprPtr dyn_kwargs;
  std::vector<std::string> ops;
};

struct Node;
using NodePtr = std::unique_ptr<Node>;
using Body = std::vector<NodePtr>;

struct Node {
  enum class Kind {
    kData,         // data
    kOutput,       // {{ expr }}
    kFor,          // for target in expr [if filter_test]: body else else_body
    kIf,           // branches, else_body
    kSet,          // target = expr
    kSetBlock,     // target = body | filter
    kMacro,        // name(params=defaults): body
    kFilterBlock,  // body | filter
    kWith,         // with targets = values: body
    kScope,        // body in the enclosing scope ({% print %})
    kGeneration,   // transformers' generation block: a caller macro, own scope
    kBreak,
    kContinue,
  };

  Kind kind;
  int line = 0;
  std::string data;
  ExprPtr expr;
  ExprPtr target;
  ExprPtr filter_test;
  ExprPtr filter;
  Body body;
  Body else_body;
  std::vector<std::pair<ExprPtr, Body>> branches;
  std::string name;
  std::vector<std::string> params;
  std::vector<ExprPtr> defaults;  // one per param, null when required
  std::vector<ExprPtr> targets;
  std::vector<ExprPtr> values;
  // Names Jinja's compiler starts as "missing" in the scope this node opens
  // (its body; else_body for a for loop): see ScopeAnalyzer.
  std::vector<std::string> body_missing;
  std::vector<std::string> else_missing;
  // A macro whose body reads `varargs` / `kwargs` takes extra arguments.
  bool macro_varargs = false;
  bool macro_kwargs = false;
};

// Which filter and test names exist (Jinja fails on others at parse time)
// and which extensions are on.
struct ParserConfig {
  std::function<bool(std::string_view)> is_filter;
  std::function<bool(std::string_view)> is_test;
  bool loop_controls = false;   // jinja2.ext.loopcontrols: break, continue
  bool generation_tag = false;  // transformers' AssistantTracker: generation
};

class Parser {
 public:
  Parser(std::vector<Token> tokens, ParserConfig config) : tokens_(std::move(tokens)), known_(std::move(config)) {}

  Body ParseTemplate() {
    Body body = Subparse(nullptr);
    if (Current().type != TokenType::kEof) FailAt("unexpected " + Describe(Current()), Current().line);
    return body;
  }

 private:
  using EndTokens = std::vector<std::string>;

  const Token& Current() const { return tokens_[pos_]; }
  const Token& Look() const { return tokens_[std::min(pos_ + 1, tokens_.size() - 1)]; }
  const Token& Next() {
    const Token& t = tokens_[pos_];
    if (pos_ + 1 < tokens_.size()) ++pos_;
    return t;
  }

  static bool IsName(const Token& t, std::string_view value) {
    return t.type == TokenType::kName && t.value == value;
  }
  static bool IsOp(const Token& t, std::string_view op) { return t.type == TokenType::kOperator && t.value == op; }

  bool SkipName(std::string_view value) {
    if (IsName(Current(), value)) {
      Next();
      return true;
    }
    return false;
  }
  bool SkipOp(std::string_view op) {
    if (IsOp(Current(), op)) {
      Next();
      return true;
    }
    return false;
  }

  // Jinja's describe_token.
  static std::string Describe(const Token& t) {
    switch (t.type) {
      case TokenType::kName: return t.value;
      case TokenType::kOperator: return t.value;
      case TokenType::kData: return "template data / text";
      case TokenType::kVariableBegin: return "begin of print statement";
      case TokenType::kVariableEnd: return "end of print statement";
      case TokenType::kBlockBegin: return "begin of statement block";
      case TokenType::kBlockEnd: return "end of statement block";
      case TokenType::kString: return "string";
      case TokenType::kInteger: return "integer";
      case TokenType::kFloat: return "float";
      case TokenType::kEof: return "end of template";
    }
    return "token";
  }

  [[noreturn]] void FailAt(const std::string& message, int line) const {
    throw TemplateError(TemplateError::Kind::kSyntax, message, line);
  }

  void Expect(TokenType type, std::string_view what) {
    if (Current().type != type) ExpectFail(what);
    Next();
  }
  void ExpectOp(std::string_view op) {
    if (!IsOp(Current(), op)) ExpectFail(op);
    Next();
  }
  std::string ExpectNameToken() {
    if (Current().type != TokenType::kName) ExpectFail("name");
    return Next().value;
  }
  [[noreturn]] void ExpectFail(std::string_view what) const {
    if (Current().type == TokenType::kEof) {
      FailAt("unexpected end of template, expected '" + std::string(what) + "'.", Current().line);
    }
    FailAt("expected token '" + std::string(what) + "', got '" + Describe(Current()) + "'", Current().line);
  }

  // Guards the C++ stack against hostile nesting.
  struct DepthGuard {
    explicit DepthGuard(Parser* p) : parser(p) {
      if (++parser->depth_ > 200) {
        parser->FailAt("template nesting is too deep", parser->Current().line);
      }
    }
    ~DepthGuard() { --parser->depth_; }
    Parser* parser;
  };

  // Left-associative chains (a + b + c..., x|f|g..., a.b.c...) grow the
  // tree's depth without recursion here; bound them so evaluating and
  // destroying the tree cannot exhaust the stack (Python's own parser
  // refuses such expressions long before this).
  void ChainStep(int& links) {
    if (++links > 1000) FailAt("expression is too long", Current().line);
  }

  static ExprPtr MakeExpr(Expr::Kind kind, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line;
    return e;
  }
  static NodePtr MakeNode(Node::Kind kind, int line) {
    auto n = std::make_unique<Node>();
    n->kind = kind;
    n->line = line;
    return n;
  }

  bool AtEndToken(const EndTokens* end_tokens) const {
    if (end_tokens == nullptr) return false;
    for (const auto& t : *end_tokens) {
      if (IsName(Current(), t)) return true;
    }
    return false;
  }

  Body Subparse(const EndTokens* end_tokens) {
    DepthGuard guard(this);
    Body body;
    while (Current().type != TokenType::kEof) {
      const Token& token = Current();
      if (token.type == TokenType::kData) {
        auto n = MakeNode(Node::Kind::kData, token.line);
        n->data = token.value;
        body.push_back(std::move(n));
        Next();
      } else if (token.type == TokenType::kVariableBegin) {
        int line = token.line;
        Next();
        auto n = MakeNode(Node::Kind::kOutput, line);
        n->expr = ParseTuple(false, true, nullptr, false);
        Expect(TokenType::kVariableEnd, "end of print statement");
        body.push_back(std::move(n));
      } else if (token.type == TokenType::kBlockBegin) {
        Next();
        if (AtEndToken(end_tokens)) return body;
        NodePtr statement = ParseStatement();
        if (statement) body.push_back(std::move(statement));
        Expect(TokenType::kBlockEnd, "end of statement block");
      } else {
        FailAt("unexpected " + Describe(token), token.line);
      }
    }
    return body;
  }

  std::string DescribeEndTokens(const EndTokens& tokens) const {
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i > 0) out += " or ";
      out += "'" + tokens[i] + "'";
    }
    return out;
  }

  // Jinja's _fail_ut_eof message.
  [[noreturn]] void FailUnclosed(const std::string* unknown_tag, const EndTokens* looking_for, int line) const {
    std::string message = unknown_tag == nullptr ? "Unexpected end of template."
                                                 : "Encountered unknown tag '" + *unknown_tag + "'.";
    std::vector<const EndTokens*> stack = end_token_stack_;
    if (looking_for != nullptr) stack.push_back(looking_for);
    if (!stack.empty()) {
      bool expected = false;
      if (unknown_tag != nullptr) {
        for (const auto* tokens : stack) {
          for (const auto& t : *tokens) expected = expected || t == *unknown_tag;
        }
      }
      std::string looking = DescribeEndTokens(*stack.back());
      if (expected) {
        message += " You probably made a nesting mistake. Jinja is expecting this tag, but currently looking for " +
                   looking + ".";
      } else {
        message += " Jinja was looking for the following tags: " + looking + ".";
      }
    }
    if (!tag_stack_.empty()) {
      message += " The innermost block that needs to be closed is '" + tag_stack_.back() + "'.";
    }
    FailAt(message, line);
  }

  Body ParseStatements(const EndTokens& end_tokens, bool drop_needle) {
    SkipOp(":");
    Expect(TokenType::kBlockEnd, "end of statement block");
    end_token_stack_.push_back(&end_tokens);
    Body body = Subparse(&end_tokens);
    end_token_stack_.pop_back();
    if (Current().type == TokenType::kEof) FailUnclosed(nullptr, &end_tokens, Current().line);
    if (drop_needle) Next();
    return body;
  }

  NodePtr ParseStatement() {
    const Token& token = Current();
    if (token.type != TokenType::kName) FailAt("tag name expected", token.line);
    std::string tag = token.value;
    int line = token.line;
    if (tag == "block" || tag == "extends" || tag == "include" || tag == "import" || tag == "from" ||
        tag == "call" || tag == "autoescape" || tag == "do" || tag == "trans") {
      throw TemplateError(TemplateError::Kind::kUnsupported,
                          "the '" + tag + "' tag is not supported by spatialid's Jinja interpreter", line);
    }
    static constexpr std::string_view kTags[] = {"for",   "if",   "set",        "macro", "filter",
                                                 "with",  "print", "generation", "break", "continue"};
    bool extension_off = ((tag == "break" || tag == "continue") && !known_.loop_controls) ||
                         (tag == "generation" && !known_.generation_tag);
    if (extension_off || std::find(std::begin(kTags), std::end(kTags), tag) == std::end(kTags)) {
      FailUnclosed(&tag, nullptr, line);
    }
    tag_stack_.push_back(tag);
    NodePtr node = ParseTag(tag, line);
    tag_stack_.pop_back();
    return node;
  }

  NodePtr ParseTag(const std::string& tag, int line) {
    if (tag == "for") return ParseFor();
    if (tag == "if") return ParseIf();
    if (tag == "set") return ParseSet();
    if (tag == "macro") return ParseMacro();
    if (tag == "filter") return ParseFilterBlock();
    if (tag == "with") return ParseWith();
    if (tag == "print") return ParsePrint();
    if (tag == "generation") {
      Next();
      auto n = MakeNode(Node::Kind::kGeneration, line);
      // The body becomes a caller() macro: no break/continue across it.
      int saved_loop_depth = loop_depth_;
      loop_depth_ = 0;
      n->body = ParseStatements({"endgeneration"}, true);
      loop_depth_ = saved_loop_depth;
      return n;
    }
    Next();  // break / continue
    if (loop_depth_ == 0) FailAt("'" + tag + "' outside loop", line);
    return MakeNode(tag == "break" ? Node::Kind::kBreak : Node::Kind::kContinue, line);
  }

  NodePtr ParseFor() {
    int line = Next().line;
    auto n = MakeNode(Node::Kind::kFor, line);
    EndTokens in_rule = {"in"};
    n->target = ParseAssignTarget(true, false, &in_rule, false);
    if (!SkipName("in")) ExpectFail("in");
    EndTokens recursive_rule = {"recursive"};
    n->expr = ParseTuple(false, false, &recursive_rule, false);
    if (SkipName("if")) n->filter_test = ParseExpression(true);
    if (IsName(Current(), "recursive")) {
      throw TemplateError(TemplateError::Kind::kUnsupported, "recursive for loops are not supported", line);
    }
    ++loop_depth_;
    n->body = ParseStatements({"endfor", "else"}, false);
    --loop_depth_;
    if (Next().value != "endfor") n->else_body = ParseStatements({"endfor"}, true);
    return n;
  }

  NodePtr ParseIf() {
    int line = Next().line;
    auto n = MakeNode(Node::Kind::kIf, line);
    while (true) {
      ExprPtr test = ParseTuple(false, false, nullptr, false);
      Body body = ParseStatements({"elif", "else", "endif"}, false);
      n->branches.emplace_back(std::move(test), std::move(body));
      const Token& token = Next();
      if (token.value == "elif") continue;
      if (token.value == "else") n->else_body = ParseStatements({"endif"}, true);
      break;
    }
    return n;
  }

  NodePtr ParseSet() {
    int line = Next().line;
    ExprPtr target = ParseAssignTarget(true, false, nullptr, true);
    if (SkipOp("=")) {
      auto n = MakeNode(Node::Kind::kSet, line);
      n->target = std::move(target);
      n->expr = ParseTuple(false, true, nullptr, false);
      return n;
    }
    auto n = MakeNode(Node::Kind::kSetBlock, line);
    n->target = std::move(target);
    n->filter = ParseFilter(nullptr, false);
    n->body = ParseStatements({"endset"}, true);
    return n;
  }

  NodePtr ParseMacro() {
    int line = Next().line;
    auto n = MakeNode(Node::Kind::kMacro, line);
    n->name = ExpectNameToken();
    ParseSignature(n.get());
    int saved_loop_depth = loop_depth_;
    loop_depth_ = 0;
    n->body = ParseStatements({"endmacro"}, true);
    loop_depth_ = saved_loop_depth;
    return n;
  }

  void ParseSignature(Node* n) {
    ExpectOp("(");
    while (!IsOp(Current(), ")")) {
      if (!n->params.empty()) ExpectOp(",");
      std::string param = ExpectNameToken();
      if (SkipOp("=")) {
        n->defaults.push_back(ParseExpression(true));
      } else {
        for (const auto& d : n->defaults) {
          if (d) FailAt("non-default argument follows default argument", Current().line);
        }
        n->defaults.push_back(nullptr);
      }
      n->params.push_back(std::move(param));
    }
    ExpectOp(")");
  }

  NodePtr ParseFilterBlock() {
    int line = Next().line;
    auto n = MakeNode(Node::Kind::kFilterBlock, line);
    n->filter = ParseFilter(nullptr, true);
    n->body = ParseStatements({"endfilter"}, true);
    return n;
  }

  NodePtr ParseWith() {
    int line = Next().line;
    auto n = MakeNode(Node::Kind::kWith, line);
    while (Current().type != TokenType::kBlockEnd) {
      if (!n->targets.empty()) ExpectOp(",");
      n->targets.push_back(ParseAssignTarget(true, false, nullptr, false));
      ExpectOp("=");
      n->values.push_back(ParseExpression(true));
    }
    n->body = ParseStatements({"endwith"}, true);
    return n;
  }

  NodePtr ParsePrint() {
    int line = Next().line;
    auto tuple = MakeExpr(Expr::Kind::kTuple, line);
    while (Current().type != TokenType::kBlockEnd) {
      if (!tuple->children.empty()) ExpectOp(",");
      tuple->children.push_back(ParseExpression(true));
    }
    auto n = MakeNode(Node::Kind::kScope, line);
    for (auto& child : tuple->children) {
      auto out = MakeNode(Node::Kind::kOutput, line);
      out->expr = std::move(child);
      n->body.push_back(std::move(out));
    }
    return n;
  }

  ExprPtr ParseAssignTarget(bool with_tuple, bool name_only, const EndTokens* extra_end_rules,
                            bool with_namespace) {
    ExprPtr target;
    if (name_only) {
      int line = Current().line;
      target = MakeExpr(Expr::Kind::kName, line);
      target->name = ExpectNameToken();
    } else if (with_tuple) {
      target = ParseTuple(true, true, extra_end_rules, false, with_namespace);
    } else {
      target = ParsePrimary(with_namespace);
    }
    bool ok = target->kind == Expr::Kind::kName || target->kind == Expr::Kind::kNsRef;
    if (target->kind == Expr::Kind::kTuple) {
      ok = true;
      for (const auto& item : target->children) ok = ok && item->kind == Expr::Kind::kName;
    }
    if (target->kind == Expr::Kind::kName &&
        (target->name == "true" || target->name == "false" || target->name == "none")) {
      ok = false;
    }
    if (!ok) FailAt("can't assign to " + TargetKindName(*target), target->line);
    return target;
  }

  static std::string TargetKindName(const Expr& e) {
    switch (e.kind) {
      case Expr::Kind::kConst: return "'const'";
      case Expr::Kind::kTuple: return "'tuple'";
      case Expr::Kind::kList: return "'list'";
      case Expr::Kind::kDict: return "'dict'";
      default: return "'expression'";
    }
  }

  ExprPtr ParseExpression(bool with_condexpr) {
    DepthGuard guard(this);
    return with_condexpr ? ParseCondExpr() : ParseOr();
  }

  ExprPtr ParseCondExpr() {
    int line = Current().line;
    ExprPtr expr1 = ParseOr();
    int links = 0;
    while (SkipName("if")) {
      ChainStep(links);
      ExprPtr expr2 = ParseOr();
      ExprPtr expr3;
      if (SkipName("else")) expr3 = ParseCondExpr();
      auto cond = MakeExpr(Expr::Kind::kCondExpr, line);
      cond->children.push_back(std::move(expr2));
      cond->children.push_back(std::move(expr1));
      cond->children.push_back(std::move(expr3));
      expr1 = std::move(cond);
      line = Current().line;
    }
    return expr1;
  }

  ExprPtr ParseOr() {
    int line = Current().line;
    ExprPtr left = ParseAnd();
    int links = 0;
    while (SkipName("or")) {
      ChainStep(links);
      auto node = MakeExpr(Expr::Kind::kOr, line);
      node->children.push_back(std::move(left));
      node->children.push_back(ParseAnd());
      left = std::move(node);
      line = Current().line;
    }
    return left;
  }

  ExprPtr ParseAnd() {
    int line = Current().line;
    ExprPtr left = ParseNot();
    int links = 0;
    while (SkipName("and")) {
      ChainStep(links);
      auto node = MakeExpr(Expr::Kind::kAnd, line);
      node->children.push_back(std::move(left));
      node->children.push_back(ParseNot());
      left = std::move(node);
      line = Current().line;
    }
    return left;
  }

  ExprPtr ParseNot() {
    if (IsName(Current(), "not")) {
      int line = Next().line;
      DepthGuard guard(this);
      auto node = MakeExpr(Expr::Kind::kNot, line);
      node->children.push_back(ParseNot());
      return node;
    }
    return ParseCompare();
  }

  ExprPtr ParseCompare() {
    int line = Current().line;
    ExprPtr expr = ParseMath1();
    std::vector<std::string> ops;
    std::vector<ExprPtr> operands;
    while (true) {
      const Token& t = Current();
      if (t.type == TokenType::kOperator &&
          (t.value == "==" || t.value == "!=" || t.value == "<" || t.value == "<=" || t.value == ">" ||
           t.value == ">=")) {
        ops.push_back(Next().value);
        operands.push_back(ParseMath1());
      } else if (SkipName("in")) {
        ops.emplace_back("in");
        operands.push_back(ParseMath1());
      } else if (IsName(t, "not") && IsName(Look(), "in")) {
        Next();
        Next();
        ops.emplace_back("notin");
        operands.push_back(ParseMath1());
      } else {
        break;
      }
      line = Current().line;
    }
    if (ops.empty()) return expr;
    auto node = MakeExpr(Expr::Kind::kCompare, line);
    node->children.push_back(std::move(expr));
    for (auto& operand : operands) node->children.push_back(std::move(operand));
    node->ops = std::move(ops);
    return node;
  }

  ExprPtr Binary(std::string op, ExprPtr left, ExprPtr right, int line) {
    auto node = MakeExpr(Expr::Kind::kBinary, line);
    node->name = std::move(op);
    node->children.push_back(std::move(left));
    node->children.push_back(std::move(right));
    return node;
  }

  ExprPtr ParseMath1() {
    int line = Current().line;
    ExprPtr left = ParseConcat();
    int links = 0;
    while (IsOp(Current(), "+") || IsOp(Current(), "-")) {
      ChainStep(links);
      std::string op = Next().value;
      left = Binary(op, std::move(left), ParseConcat(), line);
      line = Current().line;
    }
    return left;
  }

  ExprPtr ParseConcat() {
    int line = Current().line;
    std::vector<ExprPtr> args;
    args.push_back(ParseMath2());
    while (SkipOp("~")) args.push_back(ParseMath2());
    if (args.size() == 1) return std::move(args[0]);
    auto node = MakeExpr(Expr::Kind::kConcat, line);
    node->children = std::move(args);
    return node;
  }

  ExprPtr ParseMath2() {
    int line = Current().line;
    ExprPtr left = ParsePow();
    int links = 0;
    while (IsOp(Current(), "*") || IsOp(Current(), "/") || IsOp(Current(), "//") || IsOp(Current(), "%")) {
      ChainStep(links);
      std::string op = Next().value;
      left = Binary(op, std::move(left), ParsePow(), line);
      line = Current().line;
    }
    return left;
  }

  ExprPtr ParsePow() {
    int line = Current().line;
    ExprPtr left = ParseUnary(true);
    int links = 0;
    while (SkipOp("**")) {
      ChainStep(links);
      left = Binary("**", std::move(left), ParseUnary(true), line);
      line = Current().line;
    }
    return left;
  }

  ExprPtr ParseUnary(bool with_filter) {
    DepthGuard guard(this);
    int line = Current().line;
    ExprPtr node;
    if (SkipOp("-")) {
      node = MakeExpr(Expr::Kind::kNeg, line);
      node->children.push_back(ParseUnary(false));
    } else if (SkipOp("+")) {
      node = MakeExpr(Expr::Kind::kPos, line);
      node->children.push_back(ParseUnary(false));
    } else {
      node = ParsePrimary(false);
    }
    node = ParsePostfix(std::move(node));
    if (with_filter) node = ParseFilterExpr(std::move(node));
    return node;
  }

  ExprPtr ParsePrimary(bool with_namespace) {
    const Token& token = Current();
    int line = token.line;
    if (token.type == TokenType::kName) {
      std::string value = Next().value;
      auto node = MakeExpr(Expr::Kind::kConst, line);
      if (value == "true" || value == "True" || value == "false" || value == "False") {
        node->constant = Value(value == "true" || value == "True");
        return node;
      }
      if (value == "none" || value == "None") {
        node->constant = Value::None();
        return node;
      }
      if (with_namespace && IsOp(Current(), ".")) {
        Next();
        auto ref = MakeExpr(Expr::Kind::kNsRef, line);
        ref->name = value;
        ref->attr = ExpectNameToken();
        return ref;
      }
      node->kind = Expr::Kind::kName;
      node->name = value;
      return node;
    }
    if (token.type == TokenType::kString) {
      std::string buf;
      while (Current().type == TokenType::kString) buf += Next().value;
      auto node = MakeExpr(Expr::Kind::kConst, line);
      node->constant = Value(std::move(buf));
      return node;
    }
    if (token.type == TokenType::kInteger || token.type == TokenType::kFloat) {
      auto node = MakeExpr(Expr::Kind::kConst, line);
      node->constant = token.type == TokenType::kInteger ? Value(token.int_value) : Value(token.float_value);
      Next();
      return node;
    }
    if (IsOp(token, "(")) {
      Next();
      ExprPtr node = ParseTuple(false, true, nullptr, true);
      ExpectOp(")");
      return node;
    }
    if (IsOp(token, "[")) return ParseList();
    if (IsOp(token, "{")) return ParseDict();
    FailAt("unexpected '" + Describe(token) + "'", line);
  }

  bool IsTupleEnd(const EndTokens* extra_end_rules) const {
    const Token& t = Current();
    if (t.type == TokenType::kVariableEnd || t.type == TokenType::kBlockEnd || IsOp(t, ")")) return true;
    if (extra_end_rules != nullptr) {
      for (const auto& rule : *extra_end_rules) {
        if (IsName(t, rule)) return true;
      }
    }
    return false;
  }

  ExprPtr ParseTuple(bool simplified, bool with_condexpr, const EndTokens* extra_end_rules,
                     bool explicit_parentheses, bool with_namespace = false) {
    int line = Current().line;
    std::vector<ExprPtr> args;
    bool is_tuple = false;
    while (true) {
      if (!args.empty()) ExpectOp(",");
      if (IsTupleEnd(extra_end_rules)) break;
      args.push_back(simplified ? ParsePrimary(with_namespace) : ParseExpression(with_condexpr));
      if (IsOp(Current(), ",")) {
        is_tuple = true;
      } else {
        break;
      }
      line = Current().line;
    }
    if (!is_tuple) {
      if (!args.empty()) return std::move(args[0]);
      if (!explicit_parentheses) {
        FailAt("Expected an expression, got '" + Describe(Current()) + "'", Current().line);
      }
    }
    auto node = MakeExpr(Expr::Kind::kTuple, line);
    node->children = std::move(args);
    return node;
  }

  ExprPtr ParseList() {
    int line = Next().line;
    auto node = MakeExpr(Expr::Kind::kList, line);
    while (!IsOp(Current(), "]")) {
      if (!node->children.empty()) ExpectOp(",");
      if (IsOp(Current(), "]")) break;
      node->children.push_back(ParseExpression(true));
    }
    ExpectOp("]");
    return node;
  }

  ExprPtr ParseDict() {
    int line = Next().line;
    auto node = MakeExpr(Expr::Kind::kDict, line);
    while (!IsOp(Current(), "}")) {
      if (!node->children.empty()) ExpectOp(",");
      if (IsOp(Current(), "}")) break;
      node->children.push_back(ParseExpression(true));
      ExpectOp(":");
      node->children.push_back(ParseExpression(true));
    }
    ExpectOp("}");
    return node;
  }

  ExprPtr ParsePostfix(ExprPtr node) {
    int links = 0;
    while (true) {
      ChainStep(links);
      if (IsOp(Current(), ".") || IsOp(Current(), "[")) {
        node = ParseSubscript(std::move(node));
      } else if (IsOp(Current(), "(")) {
        node = ParseCall(std::move(node));
      } else {
        break;
      }
    }
    return node;
  }

  ExprPtr ParseFilterExpr(ExprPtr node) {
    int links = 0;
    while (true) {
      ChainStep(links);
      if (IsOp(Current(), "|")) {
        node = ParseFilter(std::move(node), false);
      } else if (IsName(Current(), "is")) {
        node = ParseTest(std::move(node));
      } else if (IsOp(Current(), "(")) {
        node = ParseCall(std::move(node));
      } else {
        break;
      }
    }
    return node;
  }

  ExprPtr ParseSubscript(ExprPtr node) {
    const Token& token = Next();
    int line = token.line;
    if (token.value == ".") {
      const Token& attr = Current();
      if (attr.type == TokenType::kName) {
        auto get = MakeExpr(Expr::Kind::kGetAttr, line);
        get->name = Next().value;
        get->children.push_back(std::move(node));
        return get;
      }
      if (attr.type != TokenType::kInteger) FailAt("expected name or number", attr.line);
      auto key = MakeExpr(Expr::Kind::kConst, attr.line);
      key->constant = Value(attr.int_value);
      Next();
      auto get = MakeExpr(Expr::Kind::kGetItem, line);
      get->children.push_back(std::move(node));
      get->children.push_back(std::move(key));
      return get;
    }
    std::vector<ExprPtr> args;
    while (!IsOp(Current(), "]")) {
      if (!args.empty()) ExpectOp(",");
      args.push_back(ParseSubscribed());
    }
    ExpectOp("]");
    ExprPtr key;
    if (args.size() == 1) {
      key = std::move(args[0]);
    } else {
      key = MakeExpr(Expr::Kind::kTuple, line);
      key->children = std::move(args);
    }
    auto get = MakeExpr(Expr::Kind::kGetItem, line);
    get->children.push_back(std::move(node));
    get->children.push_back(std::move(key));
    return get;
  }

  ExprPtr ParseSubscribed() {
    int line = Current().line;
    std::vector<ExprPtr> args;
    if (IsOp(Current(), ":")) {
      Next();
      args.push_back(nullptr);
    } else {
      ExprPtr node = ParseExpression(true);
      if (!IsOp(Current(), ":")) return node;
      Next();
      args.push_back(std::move(node));
    }
    if (IsOp(Current(), ":")) {
      args.push_back(nullptr);
    } else if (!IsOp(Current(), "]") && !IsOp(Current(), ",")) {
      args.push_back(ParseExpression(true));
    } else {
      args.push_back(nullptr);
    }
    if (IsOp(Current(), ":")) {
      Next();
      if (!IsOp(Current(), "]") && !IsOp(Current(), ",")) {
        args.push_back(ParseExpression(true));
      } else {
        args.push_back(nullptr);
      }
    } else {
      args.push_back(nullptr);
    }
    auto slice = MakeExpr(Expr::Kind::kSlice, line);
    slice->children = std::move(args);
    return slice;
  }

  void ParseCallArgs(Expr* node) {
    int line = Current().line;
    ExpectOp("(");
    bool require_comma = false;
    auto ensure = [&](bool ok) {
      if (!ok) FailAt("invalid syntax for function call expression", line);
    };
    size_t first_arg = node->children.size();
    while (!IsOp(Current(), ")")) {
      if (require_comma) {
        ExpectOp(",");
        if (IsOp(Current(), ")")) break;
      }
      if (IsOp(Current(), "*")) {
        ensure(!node->dyn_args && !node->dyn_kwargs);
        Next();
        node->dyn_args = ParseExpression(true);
      } else if (IsOp(Current(), "**")) {
        ensure(!node->dyn_kwargs);
        Next();
        node->dyn_kwargs = ParseExpression(true);
      } else if (Current().type == TokenType::kName && IsOp(Look(), "=")) {
        ensure(!node->dyn_kwargs);
        std::string key = Next().value;
        Next();
        node->kwargs.push_back(Keyword{std::move(key), ParseExpression(true)});
      } else {
        ensure(!node->dyn_args && !node->dyn_kwargs && node->kwargs.empty());
        node->children.push_back(ParseExpression(true));
      }
      require_comma = true;
    }
    (void)first_arg;
    ExpectOp(")");
  }

  ExprPtr ParseCall(ExprPtr callee) {
    auto node = MakeExpr(Expr::Kind::kCall, Current().line);
    node->children.push_back(std::move(callee));
    ParseCallArgs(node.get());
    return node;
  }

  std::string ParseDottedName() {
    std::string name = ExpectNameToken();
    while (IsOp(Current(), ".")) {
      Next();
      name += "." + ExpectNameToken();
    }
    return name;
  }

  ExprPtr ParseFilter(ExprPtr node, bool start_inline) {
    int links = 0;
    while (IsOp(Current(), "|") || start_inline) {
      ChainStep(links);
      if (!start_inline) Next();
      int line = Current().line;
      std::string name = ParseDottedName();
      if (!known_.is_filter(name)) {
        throw TemplateError(TemplateError::Kind::kAssertion, "No filter named '" + name + "'.", line);
      }
      auto filter = MakeExpr(Expr::Kind::kFilter, line);
      filter->name = std::move(name);
      filter->children.push_back(std::move(node));
      if (IsOp(Current(), "(")) ParseCallArgs(filter.get());
      node = std::move(filter);
      start_inline = false;
    }
    return node;
  }

  ExprPtr ParseTest(ExprPtr node) {
    int line = Next().line;
    bool negated = SkipName("not");
    std::string name = ParseDottedName();
    if (!known_.is_test(name)) {
      throw TemplateError(TemplateError::Kind::kAssertion, "No test named '" + name + "'.", line);
    }
    auto test = MakeExpr(Expr::Kind::kTest, line);
    test->name = std::move(name);
    test->children.push_back(std::move(node));
    const Token& t = Current();
    if (IsOp(t, "(")) {
      ParseCallArgs(test.get());
    } else if ((t.type == TokenType::kName || t.type == TokenType::kString || t.type == TokenType::kInteger ||
                t.type == TokenType::kFloat || IsOp(t, "[") || IsOp(t, "{")) &&
               !IsName(t, "else") && !IsName(t, "or") && !IsName(t, "and")) {
      if (IsName(t, "is")) FailAt("You cannot chain multiple tests with is", t.line);
      ExprPtr arg = ParsePostfix(ParsePrimary(false));
      test->children.push_back(std::move(arg));
    }
    if (!negated) return test;
    auto n = MakeExpr(Expr::Kind::kNot, line);
    n->children.push_back(std::move(test));
    return n;
  }

  std::vector<Token> tokens_;
  ParserConfig known_;
  size_t pos_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
  std::vector<std::string> tag_stack_;
  std::vector<const EndTokens*> end_token_stack_;
};

}  // namespace spatialid::text::jinja::internal
