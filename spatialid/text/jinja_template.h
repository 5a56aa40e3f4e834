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
};

class Renderer {
 public:
  Renderer(const FilterContext& filters, std::shared_ptr<Frame> root) : filters_(filters), root_(std::move(root)) {}

  std::string Render(const Body& body) {
    std::string out;
    out_ = &out;
    auto top = ChildFrame(root_);
    Exec(body, top);
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
          Exec(node.body, ChildFrame(frame));
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
          Exec(node.body, ChildFrame(frame));
          text = std::move(capture.text());
        }
        *out_ += Str(ApplyFilterChain(*node.filter, Value(std::move(text)), frame));
        return Flow::kNormal;
      }
      case Node::Kind::kWith: {
        auto inner = ChildFrame(frame);
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
    if (kept.empty()) {
      Exec(node.else_body, ChildFrame(frame));
      return Flow::kNormal;
    }
    auto items = std::make_shared<const ValueList>(std::move(kept));
    auto loop = std::make_shared<LoopObject>(items);
    Value loop_value = Value::FromObject(loop);
    for (size_t i = 0; i < items->size(); ++i) {
      auto f = ChildFrame(frame);
      Assign(*node.target, (*items)[i], f);
      loop->SetIndex(i);
      f->Set("loop", loop_value);
      if (Exec(node.body, f) == Flow::kBreak) break;
    }
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
      auto local = ChildFrame(parent);
      const size_t n = macro->params.size();
      if (args.positional.size() > n) {
        TypeFail("macro '" + macro->name + "' takes not more than " + std::to_string(n) + " argument(s)");
      }
      std::vector<bool> given(n, false);
      for (size_t i = 0; i < args.positional.size(); ++i) {
        local->Set(macro->params[i], args.positional[i]);
        given[i] = true;
      }
      for (const auto& [key, value] : args.keyword) {
        auto it = std::find(macro->params.begin(), macro->params.end(), key);
        if (it == macro->params.end()) {
          TypeFail("macro '" + macro->name + "' takes no keyword argument '" + key + "'");
        }
        size_t i = static_cast<size_t>(it - macro->params.begin());
        if (given[i]) TypeFail("macro '" + macro->name + "' got multiple values for argument '" + key + "'");
        local->Set(key, value);
        given[i] = true;
      }
      for (size_t i = 0; i < n; ++i) {
        if (given[i]) continue;
        local->Set(macro->params[i], macro->defaults[i]
                                         ? Eval(*macro->defaults[i], local)
                                         : Value::Undefined("parameter '" + macro->params[i] + "' was not provided"));
      }
      Capture capture(this);
      Exec(macro->body, local);
      return Value(std::move(capture.text()));
    });
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
          if (key.is_sequence() && key.is_list()) TypeFail("unhashable type: 'list'");
          if (key.is_dict()) TypeFail("unhashable type: 'dict'");
          DictSet(d, std::move(key), Eval(*e.children[i + 1], frame));
        }
        return Value::Dict(std::move(d));
      }
      case Expr::Kind::kGetAttr: return GetAttr(Eval(*e.children[0], frame), e.name);
      case Expr::Kind::kGetItem: {
        Value obj = Eval(*e.children[0], frame);
        const Expr& key = *e.children[1];
        if (key.kind == Expr::Kind::kSlice) {
          if (obj.is_undefined()) FailUndefined(obj);
          Value start = key.children[0] ? Eval(*key.children[0], frame) : Value::None();
          Value stop = key.children[1] ? Eval(*key.children[1], frame) : Value::None();
          Value step = key.children[2] ? Eval(*key.children[2], frame) : Value::None();
          if (!obj.is_string() && !obj.is_sequence()) {
            return Value::Undefined(ObjectTypeRepr(obj) + " has no element slice");
          }
          try {
            return SliceValue(obj, start, stop, step);
          } catch (const TemplateError& err) {
            if (err.kind() != TemplateError::Kind::kType) throw;
            return Value::Undefined(ObjectTypeRepr(obj) + " has no element slice");
          }
        }
        return GetItem(obj, Eval(key, frame));
      }
      case Expr::Kind::kSlice: Fail(TemplateError::Kind::kSyntax, "slice outside of a subscript");
      case Expr::Kind::kCall: {
        Value callee = Eval(*e.children[0], frame);
        CallArgs args = EvalArgs(e, 1, frame);
        return CallValue(callee, args);
      }
      case Expr::Kind::kFilter: {
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
    static const jinja::internal::FilterContext kFilters{&jinja::internal::BuiltinFilters(),
                                                          &jinja::internal::BuiltinTests()};
    auto global_frame = std::make_shared<jinja::internal::Frame>();
    for (auto& [key, value] : jinja::internal::DefaultGlobals()) global_frame->Set(key, value);
    for (const auto& [key, value] : globals) global_frame->Set(key, value);
    auto variable_frame = jinja::internal::ChildFrame(global_frame);
    for (const auto& [key, value] : variables.dict().items) {
      if (!key.is_string()) return absl::InvalidArgumentError(absl::StrCat(name(), ": variable names must be strings"));
      variable_frame->Set(key.str(), value);
    }
    try {
      jinja::internal::Renderer renderer(kFilters, variable_frame);
      return renderer.Render(parsed_->body);
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
  std::shared_ptr<const jinja::internal::ParsedTemplate> parsed_;
};

}  // namespace spatialid::text
