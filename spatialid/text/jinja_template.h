// A Jinja2 template: parse once, render many times (libtorch-free).
//
// This is the interpreter chat templates run on. It reproduces what Python's
// jinja2 3.1 prints, byte for byte, for the constructs Hugging Face chat
// templates use (see jinja_lexer.h, jinja_parser.h, jinja_runtime.h and
// jinja_filters.h for the details of each layer), with Jinja's scoping:
// every loop iteration gets a fresh scope (a `set` inside a loop does not
// leak out, nor survive into the next iteration), `if` blocks share their
// enclosing scope, macros get their own, and `namespace()` objects are the
// way to carry state across scopes. Undefined names follow Jinja's default
// Undefined: printing one gives "", testing it is false, iterating it yields
// nothing, but reading an attribute of it, calling it or doing arithmetic
// with it is an UndefinedError.
//
// Errors are absl::Status: InvalidArgument for syntax errors, unknown
// filters and tests, runtime errors (TypeError, UndefinedError, ...) and
// `raise_exception(...)` from the template; Unimplemented for valid Jinja this
// interpreter does not implement. Messages read
// "<name>:<line>: <Python exception name>: <message>".
//
// Example:
//   SPATIALID_ASSIGN_OR_RETURN(JinjaTemplate t,
//       JinjaTemplate::Parse("{{ greeting | upper }}!", JinjaOptions{}));
//   SPATIALID_ASSIGN_OR_RETURN(std::string s,
//       t.Render(nlohmann::ordered_json{{"greeting", "hi"}}));   // "HI!"
#pragma once

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "spatialid/text/jinja_filters.h"
#include "spatialid/text/jinja_lexer.h"
#include "spatialid/text/jinja_parser.h"
#include "spatialid/text/jinja_runtime.h"
#include "spatialid/text/jinja_value.h"

namespace spatialid::text {

// How template text is lexed.
struct JinjaOptions {
  bool trim_blocks = false;
  bool lstrip_blocks = false;
  bool keep_trailing_newline = false;
  // jinja2.ext.loopcontrols: {% break %} and {% continue %}.
  bool loop_controls = false;
  // transformers' {% generation %}...{% endgeneration %} (rendered as is).
  bool generation_tag = false;

  // What transformers uses for chat templates.
  static JinjaOptions HuggingFace() {
    JinjaOptions o;
    o.trim_blocks = true;
    o.lstrip_blocks = true;
    o.loop_controls = true;
    o.generation_tag = true;
    return o;
  }
};

// Names a render sees besides its variables, on top of Jinja's own globals
// (range, dict, namespace, cycler, joiner).
using JinjaGlobals = std::vector<std::pair<std::string, jinja::Value>>;

namespace jinja::internal {

// One scope. Variables are few, so a vector beats a hash map.
struct Frame {
  std::shared_ptr<Frame> parent;
  std::vector<std::pair<std::string, Value>> vars;

  const Value* Find(std::string_view name) const {
    for (const Frame* f = this; f != nullptr; f = f->parent.get()) {
      for (const auto& [key, value] : f->vars) {
        if (key == name) return &value;
      }
    }
    return nullptr;
  }
  void Set(const std::string& name, Value value) {
    for (auto& [key, v] : vars) {
      if (key == name) {
        v = std::move(value);
        return;
      }
    }
    vars.emplace_back(name, std::move(value));
  }
};

inline std::shared_ptr<Frame> ChildFrame(const std::shared_ptr<Frame>& parent) {
  auto f = std::make_shared<Frame>();
  f->parent = parent;
  return f;
}

// The `loop` variable of a for loop.
class LoopObject : public Object, public std::enable_shared_from_this<LoopObject> {
 public:
  explicit LoopObject(std::shared_ptr<const ValueList> items) : items_(std::move(items)) {}
  void SetIndex(size_t i) { index_ = i; }

  std::string TypeName() const override { return "LoopContext"; }
  std::optional<Value> GetAttr(std::string_view name) override {
    const int64_t n = static_cast<int64_t>(items_->size());
    const int64_t i = static_cast<int64_t>(index_);
    if (name == "index") return Value(i + 1);
    if (name == "index0") return Value(i);
    if (name == "revindex") return Value(n - i);
    if (name == "revindex0") return Value(n - i - 1);
    if (name == "first") return Value(i == 0);
    if (name == "last") return Value(i == n - 1);
    if (name == "length") return Value(n);
    if (name == "depth") return Value(int64_t{1});
    if (name == "depth0") return Value(int64_t{0});
    if (name == "previtem") {
      if (i == 0) return Value::Undefined("there is no previous item");
      return (*items_)[index_ - 1];
    }
    if (name == "nextitem") {
      if (i + 1 >= n) return Value::Undefined("there is no next item");
      return (*items_)[index_ + 1];
    }
    if (name == "cycle") {
      return Value::Function("loop.cycle", [self = shared_from_this()](CallArgs& a) {
        if (a.positional.empty()) TypeFail("no items for cycling given");
        return a.positional[self->index_ % a.positional.size()];
      });
    }
    if (name == "changed") {
      return Value::Function("loop.changed", [self = shared_from_this()](CallArgs& a) {
        Value now = Value::List(a.positional);
        if (self->has_last_ && Equals(now, self->last_changed_)) return Value(false);
        self->has_last_ = true;
        self->last_changed_ = now;
        return Value(true);
      });
    }
    return std::nullopt;
  }
  std::string Repr() const override {
    return "<LoopContext " + std::to_string(index_ + 1) + "/" + std::to_string(items_->size()) + ">";
  }

 private:
  std::shared_ptr<const ValueList> items_;
  size_t index_ = 0;
  bool has_last_ = false;
  Value last_changed_;
};

struct ParsedTemplate {
  std::string name;
  Body body;
  std::vector<std::string> root_missing;  // see ScopeAnalyzer
};

// Jinja's compiler resolves names statically (idtracking.py), which shows in
// one case a dynamic scope chain gets wrong: when a scope's first mention of
// a name is an assignment (outside any if-branch) and no enclosing scope
// mentions the name, the compiled code starts that local as "missing". A
// nested scope (loop body, with, macro, set block) reading it before the
// assignment then sees an undefined value, even when the render variables
// have that name. ScopeAnalyzer finds those names per scope; the renderer
// starts each scope with them set to undefined.
class ScopeAnalyzer {
 public:
  // Fills root_missing and every node's body_missing / else_missing.
  static void Analyze(ParsedTemplate& t) {
    std::vector<const std::set<std::string>*> no_ancestors;
    t.root_missing = AnalyzeScope(t.body, {}, nullptr, no_ancestors);
  }

 private:
  struct Scope {
    std::set<std::string> refs;
    std::vector<std::string> missing;
    const std::vector<const std::set<std::string>*>* ancestors;

    bool AncestorHas(const std::string& name) const {
      for (const auto* refs_of : *ancestors) {
        if (refs_of->count(name)) return true;
      }
      return false;
    }
    void Load(const std::string& name) { refs.insert(name); }
    void Param(const std::string& name) { refs.insert(name); }
    void Store(const std::string& name, bool in_branch) {
      if (refs.count(name)) return;
      refs.insert(name);
      if (!in_branch && !AncestorHas(name)) missing.push_back(name);
    }
  };

  // Analyzes one scope: `params` are its parameters, `extra_loads` an
  // expression visited first (macro defaults, a for loop's test); then the
  // body's nested scopes, with this scope's references as an ancestor.
  static std::vector<std::string> AnalyzeScope(Body& body, const std::vector<std::string>& params,
                                               const std::vector<const Expr*>* extra_loads,
                                               const std::vector<const std::set<std::string>*>& ancestors) {
    Scope scope{{}, {}, &ancestors};
    for (const std::string& p : params) scope.Param(p);
    if (extra_loads != nullptr) {
      for (const Expr* e : *extra_loads) VisitExpr(e, scope);
    }
    for (NodePtr& node : body) VisitNode(*node, scope, false);
    std::vector<const std::set<std::string>*> inner = ancestors;
    inner.push_back(&scope.refs);
    for (NodePtr& node : body) AnalyzeNested(*node, inner);
    return scope.missing;
  }

  static void VisitExpr(const Expr* e, Scope& scope) {
    if (e == nullptr) return;
    if (e->kind == Expr::Kind::kName || e->kind == Expr::Kind::kNsRef) scope.Load(e->name);
    for (const ExprPtr& c : e->children) VisitExpr(c.get(), scope);
    for (const Keyword& kw : e->kwargs) VisitExpr(kw.value.get(), scope);
    VisitExpr(e->dyn_args.get(), scope);
    VisitExpr(e->dyn_kwargs.get(), scope);
  }

  static void StoreTarget(const Expr* target, Scope& scope, bool in_branch) {
    if (target->kind == Expr::Kind::kName) {
      scope.Store(target->name, in_branch);
    } else if (target->kind == Expr::Kind::kTuple) {
      for (const ExprPtr& c : target->children) StoreTarget(c.get(), scope, in_branch);
    } else if (target->kind == Expr::Kind::kNsRef) {
      scope.Load(target->name);
    }
  }

  // What Jinja's FrameSymbolVisitor sees of a node inside its scope: nested
  // scopes contribute only what is evaluated outside them.
  static void VisitNode(Node& node, Scope& scope, bool in_branch) {
    switch (node.kind) {
      case Node::Kind::kOutput: VisitExpr(node.expr.get(), scope); break;
      case Node::Kind::kSet:
        VisitExpr(node.expr.get(), scope);
        StoreTarget(node.target.get(), scope, in_branch);
        break;
      case Node::Kind::kSetBlock: StoreTarget(node.target.get(), scope, in_branch); break;
      case Node::Kind::kFor: VisitExpr(node.expr.get(), scope); break;
      case Node::Kind::kIf:
        for (auto& [test, body] : node.branches) {
          VisitExpr(test.get(), scope);
          for (NodePtr& child : body) VisitNode(*child, scope, true);
        }
        for (NodePtr& child : node.else_body) VisitNode(*child, scope, true);
        break;
      case Node::Kind::kWith:
        for (const ExprPtr& v : node.values) VisitExpr(v.get(), scope);
        break;
      case Node::Kind::kMacro: scope.Store(node.name, in_branch); break;
      case Node::Kind::kFilterBlock: VisitExpr(node.filter.get(), scope); break;
      case Node::Kind::kScope:
        for (NodePtr& child : node.body) VisitNode(*child, scope, in_branch);
        break;
      default: break;
    }
  }

  static void TargetNames(const Expr* target, std::vector<std::string>& out) {
    if (target->kind == Expr::Kind::kName) out.push_back(target->name);
    for (const ExprPtr& c : target->children) TargetNames(c.get(), out);
  }

  static bool UsesName(const Body& body, const std::string& name);
  static bool UsesName(const Expr* e, const std::string& name) {
    if (e == nullptr) return false;
    if (e->kind == Expr::Kind::kName && e->name == name) return true;
    for (const ExprPtr& c : e->children) {
      if (UsesName(c.get(), name)) return true;
    }
    for (const Keyword& kw : e->kwargs) {
      if (UsesName(kw.value.get(), name)) return true;
    }
    return UsesName(e->dyn_args.get(), name) || UsesName(e->dyn_kwargs.get(), name);
  }

  // Scopes opened inside a scope, analyzed once the outer one is complete.
  static void AnalyzeNested(Node& node, const std::vector<const std::set<std::string>*>& ancestors) {
    switch (node.kind) {
      case Node::Kind::kFor: {
        std::vector<std::string> params;
        TargetNames(node.target.get(), params);
        if (UsesName(node.body, "loop")) params.push_back("loop");
        node.body_missing = AnalyzeScope(node.body, params, nullptr, ancestors);
        node.else_missing = AnalyzeScope(node.else_body, {}, nullptr, ancestors);
        break;
      }
      case Node::Kind::kWith: {
        std::vector<std::string> params;
        for (const ExprPtr& t : node.targets) TargetNames(t.get(), params);
        node.body_missing = AnalyzeScope(node.body, params, nullptr, ancestors);
        break;
      }
      case Node::Kind::kMacro: {
        std::vector<const Expr*> defaults;
        for (const ExprPtr& d : node.defaults) defaults.push_back(d.get());
        node.macro_varargs = UsesName(node.body, "varargs");
        node.macro_kwargs = UsesName(node.body, "kwargs");
        std::vector<std::string> params = node.params;
        if (node.macro_varargs) params.emplace_back("varargs");
        if (node.macro_kwargs) params.emplace_back("kwargs");
        node.body_missing = AnalyzeScope(node.body, params, &defaults, ancestors);
        break;
      }
      case Node::Kind::kSetBlock:
      case Node::Kind::kGeneration:
        node.body_missing = AnalyzeScope(node.body, {}, nullptr, ancestors);
        break;
      case Node::Kind::kFilterBlock: {
        std::vector<const Expr*> filter = {node.filter.get()};
        node.body_missing = AnalyzeScope(node.body, {}, &filter, ancestors);
        break;
      }
      case Node::Kind::kIf:
        for (auto& branch : node.branches) {
          for (NodePtr& child : branch.second) AnalyzeNested(*child, ancestors);
        }
        for (NodePtr& child : node.else_body) AnalyzeNested(*child, ancestors);
        break;
      case Node::Kind::kScope:
        for (NodePtr& child : node.body) AnalyzeNested(*child, ancestors);
        break;
      default: break;
    }
  }
};

inline bool ScopeAnalyzer::UsesName(const Body& body, const std::string& name) {
  for (const NodePtr& n : body) {
    if (UsesName(n->expr.get(), name) || UsesName(n->target.get(), name) || UsesName(n->filter_test.get(), name) ||
        UsesName(n->filter.get(), name) || UsesName(n->body, name) || UsesName(n->else_body, name)) {
      return true;
    }
    for (const auto& [test, b] : n->branches) {
      if (UsesName(test.get(), name) || UsesName(b, name)) return true;
    }
    for (const ExprPtr& v : n->values) {
      if (UsesName(v.get(), name)) return true;
    }
    for (const ExprPtr& d : n->defaults) {
      if (UsesName(d.get(), name)) return true;
    }
  }
  return false;
}

// A scope as compiled code starts it: names ScopeAnalyzer found are missing.
inline std::shared_ptr<Frame> ScopeFrame(const std::shared_ptr<Frame>& parent, const std::vector<std::string>& missing) {
  auto f = ChildFrame(parent);
  for (const std::string& name : missing) f->Set(name, Value::Undefined("'" + name + "' is undefined"));
  return f;
}

// Thrown while evaluating an expression at "compile time" when it is not a
// constant (Jinja's nodes.Impossible).
struct NotConstant {};

// Filters that receive the render context; Jinja never folds them.
inline bool IsContextFilter(std::string_view name) {
  return name == "map" || name == "select" || name == "reject" || name == "selectattr" || name == "rejectattr";
}

// Python's compiler.has_safe_repr: values Jinja may inline as constants.
inline bool HasSafeRepr(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kNone:
    case Value::Kind::kBool:
    case Value::Kind::kInt:
    case Value::Kind::kFloat:
    case Value::Kind::kString: return true;
    case Value::Kind::kList:
    case Value::Kind::kTuple:
      return std::all_of(v.items().begin(), v.items().end(), [](const Value& x) { return HasSafeRepr(x); });
    case Value::Kind::kDict:
      return std::all_of(v.dict().items.begin(), v.dict().items.end(),
                         [](const auto& kv) { return HasSafeRepr(kv.first) && HasSafeRepr(kv.second); });
    default: return false;
  }
}

class Renderer {
 public:
  Renderer(const FilterContext& filters, std::shared_ptr<Frame> root) : filters_(filters), root_(std::move(root)) {}

  // Jinja's Node.as_const: the value of an expression made only of
  // literals, evaluated the way the optimizer does (a slice goes through
  // getitem, so slicing a number gives an undefined value instead of a
  // TypeError), or nullopt when it is not constant or fails.
  std::optional<Value> ConstValue(const Expr& e) {
    const bool saved = const_mode_;
    const_mode_ = true;
    std::optional<Value> out;
    try {
      out = Eval(e, nullptr);
    } catch (const NotConstant&) {
    } catch (const TemplateError&) {
    }
    const_mode_ = saved;
    return out;
  }

  std::string Render(const ParsedTemplate& t) {
    std::string out;
    out_ = &out;
    Exec(t.body, ScopeFrame(root_, t.root_missing));
    return out;
  }

 private:
  enum class Flow { kNormal, kBreak, kContinue };

  // Redirects output into a buffer for set blocks, filter blocks, macros.
  class Capture {
   public:
    explicit Capture(Renderer* r) : renderer_(r), saved_(r->out_) { r->out_ = &buffer_; }
    ~Capture() { renderer_->out_ = saved_; }
    std::string& text() { return buffer_; }

   private:
    Renderer* renderer_;
    std::string* saved_;
    std::string buffer_;
  };

  struct DepthGuard {
    explicit DepthGuard(Renderer* r) : renderer(r) {
      if (++renderer->depth_ > 400) {
        Fail(TemplateError::Kind::kOverflow, "maximum recursion depth exceeded");
      }
    }
    ~DepthGuard() { --renderer->depth_; }
    Renderer* renderer;
  };

  Flow Exec(const Body& body, const std::shared_ptr<Frame>& frame) {
    for (const NodePtr& node : body) {
      Flow flow;
      try {
        flow = ExecNode(*node, frame);
      } catch (TemplateError& e) {
        if (e.line() == 0) e.set_line(node->line);
        throw;
      }
      if (flow != Flow::kNormal) return flow;
    }
    return Flow::kNormal;
  }

  Flow ExecNode(const Node& node, const std::shared_ptr<Frame>& frame) {
    DepthGuard guard(this);
    switch (node.kind) {
      case Node::Kind::kData: *out_ += node.data; return Flow::kNormal;
      case Node::Kind::kOutput: *out_ += Str(Eval(*node.expr, frame)); return Flow::kNormal;
      case Node::Kind::kScope: return Exec(node.body, frame);
      case Node::Kind::kGeneration: Exec(node.body, ScopeFrame(frame, node.body_missing)); return Flow::kNormal;
      case Node::Kind::kBreak: return Flow::kBreak;
      case Node::Kind::kContinue: return Flow::kContinue;
      case Node::Kind::kIf:
        for (const auto& [test, body] : node.branches) {
          if (Truthy(Eval(*test, frame))) return Exec(body, frame);
        }
        return Exec(node.else_body, frame);
      case Node::Kind::kFor: return ExecFor(node, frame);
      case Node::Kind::kSet: Assign(*node.target, Eval(*node.expr, frame), frame); return Flow::kNormal;
      case Node::Kind::kSetBlock: {
        std::string text;
        {
          Capture capture(this);
          // Compiled inline: break/continue leave before the assignment.
          if (Flow flow = Exec(node.body, ScopeFrame(frame, node.body_missing)); flow != Flow::kNormal) return flow;
          text = std::move(capture.text());
        }
        Value value(std::move(text));
        if (node.filter) value = ApplyFilterChain(*node.filter, value, frame);
        Assign(*node.target, value, frame);
        return Flow::kNormal;
      }
      case Node::Kind::kFilterBlock: {
        std::string text;
        {
          Capture capture(this);
          if (Flow flow = Exec(node.body, ScopeFrame(frame, node.body_missing)); flow != Flow::kNormal) return flow;
          text = std::move(capture.text());
        }
        *out_ += Str(ApplyFilterChain(*node.filter, Value(std::move(text)), frame));
        return Flow::kNormal;
      }
      case Node::Kind::kWith: {
        auto inner = ScopeFrame(frame, node.body_missing);
        for (size_t i = 0; i < node.targets.size(); ++i) {
          Assign(*node.targets[i], Eval(*node.values[i], frame), inner);
        }
        return Exec(node.body, inner);
      }
      case Node::Kind::kMacro: frame->Set(node.name, MakeMacro(node, frame)); return Flow::kNormal;
    }
    return Flow::kNormal;
  }

  Flow ExecFor(const Node& node, const std::shared_ptr<Frame>& frame) {
    ValueList all = Iterate(Eval(*node.expr, frame));
    ValueList kept;
    if (node.filter_test) {
      for (Value& item : all) {
        auto f = ChildFrame(frame);
        Assign(*node.target, item, f);
        if (Truthy(Eval(*node.filter_test, f))) kept.push_back(std::move(item));
      }
    } else {
      kept = std::move(all);
    }
    auto items = std::make_shared<const ValueList>(std::move(kept));
    auto loop = std::make_shared<LoopObject>(items);
    Value loop_value = Value::FromObject(loop);
    // Jinja marks the loop as iterated at the end of the body, which
    // break and continue skip: else runs unless an iteration completed.
    bool completed = false;
    for (size_t i = 0; i < items->size(); ++i) {
      auto f = ScopeFrame(frame, node.body_missing);
      Assign(*node.target, (*items)[i], f);
      loop->SetIndex(i);
      f->Set("loop", loop_value);
      Flow flow = Exec(node.body, f);
      if (flow == Flow::kNormal) completed = true;
      if (flow == Flow::kBreak) break;
    }
    if (!completed) Exec(node.else_body, ScopeFrame(frame, node.else_missing));
    return Flow::kNormal;
  }

  void Assign(const Expr& target, const Value& value, const std::shared_ptr<Frame>& frame) {
    switch (target.kind) {
      case Expr::Kind::kName: frame->Set(target.name, value); return;
      case Expr::Kind::kTuple: {
        ValueList parts = Iterate(value);
        size_t want = target.children.size();
        if (parts.size() > want) {
          Fail(TemplateError::Kind::kValue, "too many values to unpack (expected " + std::to_string(want) + ")");
        }
        if (parts.size() < want) {
          Fail(TemplateError::Kind::kValue, "not enough values to unpack (expected " + std::to_string(want) +
                                                ", got " + std::to_string(parts.size()) + ")");
        }
        for (size_t i = 0; i < want; ++i) Assign(*target.children[i], parts[i], frame);
        return;
      }
      case Expr::Kind::kNsRef: {
        const Value* ns = frame->Find(target.name);
        if (ns == nullptr || !ns->is_object() || !ns->object().SetAttr(target.attr, value)) {
          Fail(TemplateError::Kind::kType, "cannot assign attribute on non-namespace object");
        }
        return;
      }
      default: Fail(TemplateError::Kind::kSyntax, "invalid assignment target");
    }
  }

  Value MakeMacro(const Node& node, const std::shared_ptr<Frame>& frame) {
    std::weak_ptr<Frame> defined_in = frame;
    const Node* macro = &node;
    return Value::Function(node.name, [this, macro, defined_in](CallArgs& args) -> Value {
      std::shared_ptr<Frame> parent = defined_in.lock();
      if (!parent) parent = root_;
      auto local = ScopeFrame(parent, macro->body_missing);
      const size_t n = macro->params.size();
      if (args.positional.size() > n && !macro->macro_varargs) {
        TypeFail("macro '" + macro->name + "' takes not more than " + std::to_string(n) + " argument(s)");
      }
      std::vector<bool> given(n, false);
      ValueList extra_positional;
      DictEntries extra_keyword;
      for (size_t i = 0; i < args.positional.size(); ++i) {
        if (i >= n) {
          extra_positional.push_back(args.positional[i]);
          continue;
        }
        local->Set(macro->params[i], args.positional[i]);
        given[i] = true;
      }
      for (const auto& [key, value] : args.keyword) {
        auto it = std::find(macro->params.begin(), macro->params.end(), key);
        if (it == macro->params.end()) {
          if (macro->macro_kwargs) {
            DictSet(extra_keyword, Value(key), value);
            continue;
          }
          TypeFail("macro '" + macro->name + "' takes no keyword argument '" + key + "'");
        }
        size_t i = static_cast<size_t>(it - macro->params.begin());
        if (given[i]) TypeFail("macro '" + macro->name + "' got multiple values for argument '" + key + "'");
        local->Set(key, value);
        given[i] = true;
      }
      if (macro->macro_varargs) local->Set("varargs", Value::Tuple(std::move(extra_positional)));
      if (macro->macro_kwargs) local->Set("kwargs", Value::Dict(std::move(extra_keyword)));
      for (size_t i = 0; i < n; ++i) {
        if (given[i]) continue;
        local->Set(macro->params[i], macro->defaults[i]
                                         ? Eval(*macro->defaults[i], local)
                                         : Value::Undefined("parameter '" + macro->params[i] + "' was not provided"));
      }
      Capture capture(this);
      Exec(macro->body, local);
      return Value(std::move(capture.text()));
    }, "<Macro '" + node.name + "'>");
  }

  Value ApplyFilterChain(const Expr& filter, const Value& input, const std::shared_ptr<Frame>& frame) {
    Value in = filter.children[0] ? ApplyFilterChain(*filter.children[0], input, frame) : input;
    CallArgs args = EvalArgs(filter, 1, frame);
    return filters_.CallFilter(filter.name, in, args);
  }

  CallArgs EvalArgs(const Expr& e, size_t first, const std::shared_ptr<Frame>& frame) {
    CallArgs args;
    for (size_t i = first; i < e.children.size(); ++i) args.positional.push_back(Eval(*e.children[i], frame));
    for (const Keyword& kw : e.kwargs) args.keyword.emplace_back(kw.name, Eval(*kw.value, frame));
    if (e.dyn_args) {
      for (Value& v : Iterate(Eval(*e.dyn_args, frame))) args.positional.push_back(std::move(v));
    }
    if (e.dyn_kwargs) {
      Value kw = Eval(*e.dyn_kwargs, frame);
      if (!kw.is_dict()) TypeFail("argument after ** must be a mapping, not " + TypeName(kw));
      for (const auto& [k, v] : kw.dict().items) {
        if (!k.is_string()) TypeFail("keywords must be strings");
        args.keyword.emplace_back(k.str(), v);
      }
    }
    return args;
  }

  Value Eval(const Expr& e, const std::shared_ptr<Frame>& frame) {
    try {
      return EvalInner(e, frame);
    } catch (TemplateError& err) {
      if (err.line() == 0) err.set_line(e.line);
      throw;
    }
  }

  Value EvalInner(const Expr& e, const std::shared_ptr<Frame>& frame) {
    DepthGuard guard(this);
    switch (e.kind) {
      case Expr::Kind::kConst: return e.constant;
      case Expr::Kind::kName: {
        if (const_mode_) throw NotConstant{};
        if (const Value* v = frame->Find(e.name)) return *v;
        return Value::Undefined("'" + e.name + "' is undefined");
      }
      case Expr::Kind::kList:
      case Expr::Kind::kTuple: {
        ValueList items;
        for (const auto& child : e.children) items.push_back(Eval(*child, frame));
        return e.kind == Expr::Kind::kList ? Value::List(std::move(items)) : Value::Tuple(std::move(items));
      }
      case Expr::Kind::kDict: {
        DictEntries d;
        for (size_t i = 0; i + 1 < e.children.size(); i += 2) {
          Value key = Eval(*e.children[i], frame);
          RequireHashable(key);
          DictSet(d, std::move(key), Eval(*e.children[i + 1], frame));
        }
        return Value::Dict(std::move(d));
      }
      case Expr::Kind::kGetAttr: return GetAttr(Eval(*e.children[0], frame), e.name);
      case Expr::Kind::kGetItem: {
        Value obj = Eval(*e.children[0], frame);
        const Expr& key = *e.children[1];
        if (key.kind == Expr::Kind::kSlice) {
          // Jinja compiles slices to a plain Python subscript, bypassing the
          // environment's getitem: errors are raised, not made undefined.
          Value start = key.children[0] ? Eval(*key.children[0], frame) : Value::None();
          Value stop = key.children[1] ? Eval(*key.children[1], frame) : Value::None();
          Value step = key.children[2] ? Eval(*key.children[2], frame) : Value::None();
          if (const_mode_) {
            // Folded through environment.getitem: TypeError becomes undefined.
            auto undefined = [&] {
              return Value::Undefined(ObjectTypeRepr(obj) + " has no element slice(" + Repr(start) + ", " +
                                      Repr(stop) + ", " + Repr(step) + ")");
            };
            if (!obj.is_string() && !obj.is_sequence()) {
              if (obj.is_undefined()) FailUndefined(obj);
              return undefined();
            }
            try {
              return SliceValue(obj, start, stop, step);
            } catch (const TemplateError& err) {
              if (err.kind() == TemplateError::Kind::kType) return undefined();
              throw;
            }
          }
          if (obj.is_undefined()) FailUndefined(obj);
          if (obj.is_dict()) TypeFail("unhashable type: 'slice'");
          return SliceValue(obj, start, stop, step);
        }
        return GetItem(obj, Eval(key, frame));
      }
      case Expr::Kind::kSlice: Fail(TemplateError::Kind::kSyntax, "slice outside of a subscript");
      case Expr::Kind::kCall: {
        if (const_mode_) throw NotConstant{};
        Value callee = Eval(*e.children[0], frame);
        CallArgs args = EvalArgs(e, 1, frame);
        return CallValue(callee, args);
      }
      case Expr::Kind::kFilter: {
        if (const_mode_ && (!e.children[0] || IsContextFilter(e.name))) throw NotConstant{};
        Value input = e.children[0] ? Eval(*e.children[0], frame) : Value();
        CallArgs args = EvalArgs(e, 1, frame);
        return filters_.CallFilter(e.name, input, args);
      }
      case Expr::Kind::kTest: {
        Value input = Eval(*e.children[0], frame);
        CallArgs args = EvalArgs(e, 1, frame);
        return Value(filters_.CallTest(e.name, input, args));
      }
      case Expr::Kind::kNeg: return Negate(Eval(*e.children[0], frame));
      case Expr::Kind::kPos: return Positive(Eval(*e.children[0], frame));
      case Expr::Kind::kNot: return Value(!Truthy(Eval(*e.children[0], frame)));
      case Expr::Kind::kBinary: {
        Value a = Eval(*e.children[0], frame);
        Value b = Eval(*e.children[1], frame);
        return BinaryOp(e.name, a, b);
      }
      case Expr::Kind::kAnd: {
        Value a = Eval(*e.children[0], frame);
        return Truthy(a) ? Eval(*e.children[1], frame) : a;
      }
      case Expr::Kind::kOr: {
        Value a = Eval(*e.children[0], frame);
        return Truthy(a) ? a : Eval(*e.children[1], frame);
      }
      case Expr::Kind::kConcat: {
        std::string out;
        for (const auto& child : e.children) out += Str(Eval(*child, frame));
        return Value(std::move(out));
      }
      case Expr::Kind::kCompare: {
        Value left = Eval(*e.children[0], frame);
        for (size_t i = 0; i < e.ops.size(); ++i) {
          Value right = Eval(*e.children[i + 1], frame);
          if (!CompareOp(e.ops[i], left, right)) return Value(false);
          left = std::move(right);
        }
        return Value(true);
      }
      case Expr::Kind::kCondExpr: {
        if (Truthy(Eval(*e.children[0], frame))) return Eval(*e.children[1], frame);
        if (e.children[2]) return Eval(*e.children[2], frame);
        if (const_mode_) throw NotConstant{};
        return Value::Undefined("the inline if-expression on line " + std::to_string(e.line) +
                                " evaluated to false and no else section was defined.");
      }
      case Expr::Kind::kNsRef: Fail(TemplateError::Kind::kSyntax, "namespace reference outside of an assignment");
    }
    return Value();
  }

  const FilterContext& filters_;
  std::shared_ptr<Frame> root_;
  std::string* out_ = nullptr;
  int depth_ = 0;
  bool const_mode_ = false;
};

// Jinja's compile-time constant folding, which changes what some templates
// print: optimizer.py replaces every literal-only subexpression whose value
// has a safe repr by that value, and the compiler prints a literal-only
// `{{ }}` expression as data (whatever its value). Both evaluate with
// as_const semantics (see Renderer::ConstValue).
class ConstantFolder {
 public:
  explicit ConstantFolder(Renderer* renderer) : renderer_(renderer) {}

  void FoldBody(Body& body) {
    for (NodePtr& node : body) FoldNode(node);
  }

 private:
  void FoldExpr(ExprPtr& e) {
    if (!e) return;
    for (ExprPtr& child : e->children) FoldExpr(child);
    for (Keyword& kw : e->kwargs) FoldExpr(kw.value);
    FoldExpr(e->dyn_args);
    FoldExpr(e->dyn_kwargs);
    if (e->kind == Expr::Kind::kConst || e->kind == Expr::Kind::kSlice || e->kind == Expr::Kind::kNsRef) return;
    std::optional<Value> v = renderer_->ConstValue(*e);
    if (!v || !HasSafeRepr(*v)) return;
    auto c = std::make_unique<Expr>();
    c->kind = Expr::Kind::kConst;
    c->line = e->line;
    c->constant = std::move(*v);
    e = std::move(c);
  }

  void FoldNode(NodePtr& node) {
    switch (node->kind) {
      case Node::Kind::kOutput: {
        FoldExpr(node->expr);
        if (std::optional<Value> v = renderer_->ConstValue(*node->expr)) {
          node->kind = Node::Kind::kData;
          node->data = Str(*v);
          node->expr.reset();
        }
        return;
      }
      case Node::Kind::kIf:
        for (auto& [test, body] : node->branches) {
          FoldExpr(test);
          FoldBody(body);
        }
        break;
      case Node::Kind::kWith:
        for (ExprPtr& value : node->values) FoldExpr(value);
        break;
      case Node::Kind::kMacro:
        for (ExprPtr& d : node->defaults) FoldExpr(d);
        break;
      default: break;
    }
    FoldExpr(node->expr);
    FoldExpr(node->filter_test);
    FoldExpr(node->filter);
    FoldBody(node->body);
    FoldBody(node->else_body);
  }

  Renderer* renderer_;
};

inline absl::Status ToStatus(const TemplateError& e, std::string_view name) {
  std::string message = absl::StrCat(std::string(name), ":", e.line(), ": ", std::string(e.KindName()), ": ", e.message());
  if (e.kind() == TemplateError::Kind::kUnsupported) return absl::UnimplementedError(message);
  return absl::InvalidArgumentError(message);
}

}  // namespace jinja::internal

class JinjaTemplate {
 public:
  // `name` labels error messages (a file name, say).
  static absl::StatusOr<JinjaTemplate> Parse(std::string_view source, const JinjaOptions& options = {},
                                             std::string name = "<template>") {
    using jinja::internal::BuiltinFilters;
    using jinja::internal::BuiltinTests;
    if (!jinja::unicode::IsValidUtf8(source)) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": template is not valid UTF-8"));
    }
    try {
      jinja::internal::LexerOptions lex;
      lex.trim_blocks = options.trim_blocks;
      lex.lstrip_blocks = options.lstrip_blocks;
      lex.keep_trailing_newline = options.keep_trailing_newline;
      jinja::internal::Lexer lexer(source, lex);
      jinja::internal::ParserConfig config;
      config.is_filter = [](std::string_view n) { return BuiltinFilters().count(n) > 0; };
      config.is_test = [](std::string_view n) { return BuiltinTests().count(n) > 0; };
      config.loop_controls = options.loop_controls;
      config.generation_tag = options.generation_tag;
      jinja::internal::Parser parser(lexer.Tokenize(), std::move(config));
      auto parsed = std::make_shared<jinja::internal::ParsedTemplate>();
      parsed->name = name;
      parsed->body = parser.ParseTemplate();
      jinja::internal::Renderer folder_renderer(FilterContextInstance(), nullptr);
      jinja::internal::ConstantFolder(&folder_renderer).FoldBody(parsed->body);
      jinja::internal::ScopeAnalyzer::Analyze(*parsed);
      JinjaTemplate t;
      t.parsed_ = std::move(parsed);
      return t;
    } catch (const jinja::TemplateError& e) {
      return jinja::internal::ToStatus(e, name);
    }
  }

  // `variables` must be a dict (the template's context).
  absl::StatusOr<std::string> Render(const jinja::Value& variables, const JinjaGlobals& globals = {}) const {
    if (!variables.is_dict()) {
      return absl::InvalidArgumentError(absl::StrCat(name(), ": render variables must be a mapping"));
    }
    auto global_frame = std::make_shared<jinja::internal::Frame>();
    for (auto& [key, value] : jinja::internal::DefaultGlobals()) global_frame->Set(key, value);
    for (const auto& [key, value] : globals) global_frame->Set(key, value);
    auto variable_frame = jinja::internal::ChildFrame(global_frame);
    for (const auto& [key, value] : variables.dict().items) {
      if (!key.is_string()) return absl::InvalidArgumentError(absl::StrCat(name(), ": variable names must be strings"));
      variable_frame->Set(key.str(), value);
    }
    try {
      jinja::internal::Renderer renderer(FilterContextInstance(), variable_frame);
      return renderer.Render(*parsed_);
    } catch (const jinja::TemplateError& e) {
      return jinja::internal::ToStatus(e, name());
    }
  }

  absl::StatusOr<std::string> Render(const nlohmann::ordered_json& variables, const JinjaGlobals& globals = {}) const {
    if (!variables.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(name(), ": render variables must be a JSON object"));
    }
    return Render(jinja::FromJson(variables), globals);
  }

  const std::string& name() const { return parsed_->name; }

 private:
  JinjaTemplate() = default;

  static const jinja::internal::FilterContext& FilterContextInstance() {
    static const jinja::internal::FilterContext kFilters{&jinja::internal::BuiltinFilters(),
                                                          &jinja::internal::BuiltinTests()};
    return kFilters;
  }
  std::shared_ptr<const jinja::internal::ParsedTemplate> parsed_;
};

}  // namespace spatialid::text
