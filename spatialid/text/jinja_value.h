// Values of the Jinja interpreter, with Python's semantics.
//
// Chat templates are Jinja2 programs evaluated over Python objects, and
// their output depends on Python's rules: `str(1.0)` is "1.0", `[1] == (1,)`
// is false, `'a' + 1` is an error, an empty list is falsy, `{{ x }}` of a
// missing variable prints nothing. `jinja::Value` is the small dynamic type
// the interpreter works on (undefined, none, bool, int, float, str, list,
// tuple, dict, a one-shot iterator for Jinja's generator-returning filters,
// objects such as `namespace()` and `loop`, and callables), and the free
// functions here give Python's `str()`, `repr()`, truthiness, equality,
// ordering, `len()`, iteration and `json.dumps()` for them.
//
// Lists and dicts are shared, immutable after construction (the sandbox HF
// renders in forbids mutating them); only objects such as `namespace()` are
// mutable. Errors inside the interpreter are `jinja::TemplateError`
// exceptions, turned into `absl::Status` by `JinjaTemplate` at the API.
#pragma once

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "spatialid/text/jinja_unicode.h"

namespace spatialid::text::jinja {

// An error raised while parsing or rendering, named like the Python
// exception Jinja2 would raise.
class TemplateError : public std::exception {
 public:
  enum class Kind {
    kSyntax,        // TemplateSyntaxError
    kAssertion,     // TemplateAssertionError (unknown filter or test)
    kUndefined,     // UndefinedError
    kType,          // TypeError
    kValue,         // ValueError
    kZeroDivision,  // ZeroDivisionError
    kOverflow,      // OverflowError
    kSecurity,      // SecurityError (the sandbox refused an operation)
    kRaised,        // TemplateError from raise_exception()
    kUnsupported,   // valid Jinja that this interpreter does not implement
  };

  TemplateError(Kind kind, std::string message, int line = 0)
      : kind_(kind), message_(std::move(message)), line_(line) {}

  const char* what() const noexcept override { return message_.c_str(); }
  Kind kind() const { return kind_; }
  const std::string& message() const { return message_; }
  int line() const { return line_; }
  void set_line(int line) { line_ = line; }

  std::string_view KindName() const {
    switch (kind_) {
      case Kind::kSyntax: return "TemplateSyntaxError";
      case Kind::kAssertion: return "TemplateAssertionError";
      case Kind::kUndefined: return "UndefinedError";
      case Kind::kType: return "TypeError";
      case Kind::kValue: return "ValueError";
      case Kind::kZeroDivision: return "ZeroDivisionError";
      case Kind::kOverflow: return "OverflowError";
      case Kind::kSecurity: return "SecurityError";
      case Kind::kRaised: return "TemplateError";
      case Kind::kUnsupported: return "Unsupported";
    }
    return "TemplateError";
  }

 private:
  Kind kind_;
  std::string message_;
  int line_;
};

[[noreturn]] inline void Fail(TemplateError::Kind kind, std::string message) {
  throw TemplateError(kind, std::move(message));
}
[[noreturn]] inline void TypeFail(std::string message) {
  Fail(TemplateError::Kind::kType, std::move(message));
}

class Value;
using ValueList = std::vector<Value>;

struct DictEntries {
  std::vector<std::pair<Value, Value>> items;
};

// Arguments of a call, as Python passes them.
struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

struct Callable {
  std::string name;
  std::function<Value(CallArgs&)> fn;
  std::string repr;  // Python's repr when not "<function name>"
};

// A Python object with attributes (namespace(), the loop variable, macros'
// helpers): attribute lookup is the only protocol.
class Object {
 public:
  virtual ~Object() = default;
  // Python class name, for messages ("Namespace", "LoopContext").
  virtual std::string TypeName() const = 0;
  // nullopt: no such attribute (Jinja then yields an undefined value).
  virtual std::optional<Value> GetAttr(std::string_view name) = 0;
  // false: the object does not accept attribute assignment.
  virtual bool SetAttr(std::string_view name, const Value& value) {
    (void)name;
    (void)value;
    return false;
  }
  virtual std::string Repr() const = 0;
};

// What a one-shot iterator (a Python generator) still has to yield.
struct IteratorState {
  std::string name;
  ValueList items;
  size_t position = 0;
};

class Value {
 public:
  enum class Kind {
    kUndefined,
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kList,
    kTuple,
    kDict,
    kIterator,
    kObject,
    kCallable,
  };

  // The default value is Jinja's Undefined.
  Value() = default;
  Value(bool b) : kind_(Kind::kBool), data_(b) {}  // NOLINT: implicit like Python literals
  Value(int i) : kind_(Kind::kInt), data_(static_cast<int64_t>(i)) {}  // NOLINT
  Value(int64_t i) : kind_(Kind::kInt), data_(i) {}                     // NOLINT
  Value(double f) : kind_(Kind::kFloat), data_(f) {}                    // NOLINT
  Value(std::string s) : kind_(Kind::kString), data_(std::move(s)) {}   // NOLINT
  Value(std::string_view s) : Value(std::string(s)) {}                  // NOLINT
  Value(const char* s) : Value(std::string(s)) {}                       // NOLINT

  // `hint` is the message UndefinedError carries when the value is used.
  static Value Undefined(std::string hint) {
    Value v;
    v.data_ = std::move(hint);
    return v;
  }
  static Value None() {
    Value v;
    v.kind_ = Kind::kNone;
    return v;
  }
  static Value List(ValueList items) {
    return Value(Kind::kList, std::make_shared<const ValueList>(std::move(items)));
  }
  static Value Tuple(ValueList items) {
    return Value(Kind::kTuple, std::make_shared<const ValueList>(std::move(items)));
  }
  static Value Dict(DictEntries entries) {
    Value v;
    v.kind_ = Kind::kDict;
    v.data_ = std::make_shared<const DictEntries>(std::move(entries));
    return v;
  }
  // A generator: truthy, without len(), consumed by the first iteration.
  static Value Iterator(std::string name, ValueList items) {
    Value v;
    v.kind_ = Kind::kIterator;
    auto state = std::make_shared<IteratorState>();
    state->name = std::move(name);
    state->items = std::move(items);
    v.data_ = std::move(state);
    return v;
  }
  static Value FromObject(std::shared_ptr<Object> object) {
    Value v;
    v.kind_ = Kind::kObject;
    v.data_ = std::move(object);
    return v;
  }
  static Value Function(std::string name, std::function<Value(CallArgs&)> fn, std::string repr = "") {
    Value v;
    v.kind_ = Kind::kCallable;
    v.data_ = std::make_shared<const Callable>(Callable{std::move(name), std::move(fn), std::move(repr)});
    return v;
  }

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_float() const { return kind_ == Kind::kFloat; }
  // Python's numbers.Number: bool, int and float.
  bool is_number() const { return kind_ == Kind::kBool || kind_ == Kind::kInt || kind_ == Kind::kFloat; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_tuple() const { return kind_ == Kind::kTuple; }
  bool is_sequence() const { return kind_ == Kind::kList || kind_ == Kind::kTuple; }
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_iterator() const { return kind_ == Kind::kIterator; }
  bool is_object() const { return kind_ == Kind::kObject; }
  bool is_callable() const { return kind_ == Kind::kCallable; }

  bool as_bool() const { return std::get<bool>(data_); }
  int64_t as_int() const { return std::get<int64_t>(data_); }
  double as_float() const { return std::get<double>(data_); }
  // bool, int or float as a double (Python's numeric tower).
  double as_double() const {
    if (kind_ == Kind::kFloat) return as_float();
    if (kind_ == Kind::kBool) return as_bool() ? 1.0 : 0.0;
    return static_cast<double>(as_int());
  }
  // bool or int as an integer.
  int64_t as_integer() const { return kind_ == Kind::kBool ? (as_bool() ? 1 : 0) : as_int(); }
  const std::string& str() const { return std::get<std::string>(data_); }
  const std::string& undefined_hint() const {
    static const std::string kEmpty;
    const auto* s = std::get_if<std::string>(&data_);
    return s != nullptr ? *s : kEmpty;
  }
  const ValueList& items() const { return *std::get<std::shared_ptr<const ValueList>>(data_); }
  const DictEntries& dict() const { return *std::get<std::shared_ptr<const DictEntries>>(data_); }
  IteratorState& iterator() const { return *std::get<std::shared_ptr<IteratorState>>(data_); }
  Object& object() const { return *std::get<std::shared_ptr<Object>>(data_); }
  const Callable& callable() const { return *std::get<std::shared_ptr<const Callable>>(data_); }
  // Identity of a shared container or object (Python's `is`), or nullptr.
  const void* identity() const {
    if (const auto* p = std::get_if<std::shared_ptr<const ValueList>>(&data_)) return p->get();
    if (const auto* p = std::get_if<std::shared_ptr<const DictEntries>>(&data_)) return p->get();
    if (const auto* p = std::get_if<std::shared_ptr<Object>>(&data_)) return p->get();
    if (const auto* p = std::get_if<std::shared_ptr<IteratorState>>(&data_)) return p->get();
    if (const auto* p = std::get_if<std::shared_ptr<const Callable>>(&data_)) return p->get();
    return nullptr;
  }

 private:
  Value(Kind kind, std::shared_ptr<const ValueList> items) : kind_(kind), data_(std::move(items)) {}

  Kind kind_ = Kind::kUndefined;
  std::variant<std::monostate, bool, int64_t, double, std::string, std::shared_ptr<const ValueList>,
               std::shared_ptr<const DictEntries>, std::shared_ptr<IteratorState>, std::shared_ptr<Object>,
               std::shared_ptr<const Callable>>
      data_;
};

// ---------------------------------------------------------------------------
// Python's formatting of values.

// Python's repr(float): the shortest digits that round-trip, fixed notation
// for decimal exponents in (-4, 16], otherwise "1e+16" style.
inline std::string FloatRepr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  bool negative = !sci.empty() && sci[0] == '-';
  if (negative) sci.erase(0, 1);
  size_t e = sci.find('e');
  std::string mantissa = sci.substr(0, e);
  int exponent = std::stoi(sci.substr(e + 1));
  std::string digits;
  for (char c : mantissa) {
    if (c != '.') digits.push_back(c);
  }
  int decpt = exponent + 1;  // value = 0.digits * 10^decpt
  std::string out = negative ? "-" : "";
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) {
      out += "0.";
      out.append(static_cast<size_t>(-decpt), '0');
      out += digits;
    } else if (static_cast<size_t>(decpt) < digits.size()) {
      out += digits.substr(0, static_cast<size_t>(decpt));
      out += ".";
      out += digits.substr(static_cast<size_t>(decpt));
    } else {
      out += digits;
      out.append(static_cast<size_t>(decpt) - digits.size(), '0');
      out += ".0";
    }
    return out;
  }
  out += digits.substr(0, 1);
  if (digits.size() > 1) {
    out += ".";
    out += digits.substr(1);
  }
  int exp10 = decpt - 1;
  out += exp10 < 0 ? "e-" : "e+";
  int mag = exp10 < 0 ? -exp10 : exp10;
  if (mag < 10) out += "0";
  out += std::to_string(mag);
  return out;
}

// Python's repr(str).
inline std::string StringRepr(std::string_view s) {
  bool has_single = s.find('\'') != std::string_view::npos;
  bool has_double = s.find('"') != std::string_view::npos;
  char quote = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, quote);
  for (char32_t c : unicode::Decode(s)) {
    if (c == static_cast<char32_t>(quote) || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c < 0x20 || c == 0x7F || !unicode::IsPrintable(c)) {
      char buf[16];
      if (c <= 0xFF) {
        std::snprintf(buf, sizeof(buf), "\\x%02x", static_cast<unsigned>(c));
      } else if (c <= 0xFFFF) {
        std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(c));
      } else {
        std::snprintf(buf, sizeof(buf), "\\U%08x", static_cast<unsigned>(c));
      }
      out += buf;
    } else {
      unicode::Append(out, c);
    }
  }
  out.push_back(quote);
  return out;
}

// Python class name of a value, as TypeError messages show it.
inline std::string TypeName(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined: return "Undefined";
    case Value::Kind::kNone: return "NoneType";
    case Value::Kind::kBool: return "bool";
    case Value::Kind::kInt: return "int";
    case Value::Kind::kFloat: return "float";
    case Value::Kind::kString: return "str";
    case Value::Kind::kList: return "list";
    case Value::Kind::kTuple: return "tuple";
    case Value::Kind::kDict: return "dict";
    case Value::Kind::kIterator: return "generator";
    case Value::Kind::kObject: return v.object().TypeName();
    case Value::Kind::kCallable: return "function";
  }
  return "object";
}

// Jinja's object_type_repr: "None", or "<type> object".
inline std::string ObjectTypeRepr(const Value& v) {
  if (v.is_none()) return "None";
  return TypeName(v) + " object";
}

inline std::string Repr(const Value& v, int depth = 0);

// Python's str().
inline std::string Str(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined: return "";
    case Value::Kind::kString: return v.str();
    default: return Repr(v);
  }
}

inline std::string Repr(const Value& v, int depth) {
  if (depth > 64) return "...";
  switch (v.kind()) {
    case Value::Kind::kUndefined: return "Undefined";
    case Value::Kind::kNone: return "None";
    case Value::Kind::kBool: return v.as_bool() ? "True" : "False";
    case Value::Kind::kInt: return std::to_string(v.as_int());
    case Value::Kind::kFloat: return FloatRepr(v.as_float());
    case Value::Kind::kString: return StringRepr(v.str());
    case Value::Kind::kList:
    case Value::Kind::kTuple: {
      bool tuple = v.is_tuple();
      std::string out = tuple ? "(" : "[";
      const ValueList& items = v.items();
      for (size_t i = 0; i < items.size(); ++i) {
        if (i > 0) out += ", ";
        out += Repr(items[i], depth + 1);
      }
      if (tuple && items.size() == 1) out += ",";
      out += tuple ? ")" : "]";
      return out;
    }
    case Value::Kind::kDict: {
      std::string out = "{";
      bool first = true;
      for (const auto& [key, value] : v.dict().items) {
        if (!first) out += ", ";
        first = false;
        out += Repr(key, depth + 1) + ": " + Repr(value, depth + 1);
      }
      return out + "}";
    }
    case Value::Kind::kIterator: return "<generator object " + v.iterator().name + ">";
    case Value::Kind::kObject: return v.object().Repr();
    case Value::Kind::kCallable:
      return v.callable().repr.empty() ? "<function " + v.callable().name + ">" : v.callable().repr;
  }
  return "";
}

// Hints of undefined values that stand for an attribute the sandbox refused
// start with this; using one raises SecurityError instead of UndefinedError.
inline constexpr std::string_view kUnsafeUndefinedPrefix = "\x01unsafe:";

[[noreturn]] inline void FailUndefined(const Value& v) {
  std::string hint = v.undefined_hint();
  if (hint.compare(0, kUnsafeUndefinedPrefix.size(), kUnsafeUndefinedPrefix) == 0) {
    Fail(TemplateError::Kind::kSecurity, hint.substr(kUnsafeUndefinedPrefix.size()));
  }
  Fail(TemplateError::Kind::kUndefined, hint.empty() ? "value is undefined" : hint);
}

// Python's bool().
inline bool Truthy(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone: return false;
    case Value::Kind::kBool: return v.as_bool();
    case Value::Kind::kInt: return v.as_int() != 0;
    case Value::Kind::kFloat: return v.as_float() != 0.0;
    case Value::Kind::kString: return !v.str().empty();
    case Value::Kind::kList:
    case Value::Kind::kTuple: return !v.items().empty();
    case Value::Kind::kDict: return !v.dict().items.empty();
    default: return true;
  }
}

// Python's ==. Undefined equals only another Undefined (Jinja2's rule).
inline bool Equals(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_double() == b.as_double();
    return a.as_integer() == b.as_integer();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone: return true;
    case Value::Kind::kString: return a.str() == b.str();
    case Value::Kind::kList:
    case Value::Kind::kTuple: {
      const ValueList& x = a.items();
      const ValueList& y = b.items();
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i) {
        if (!Equals(x[i], y[i])) return false;
      }
      return true;
    }
    case Value::Kind::kDict: {
      const auto& x = a.dict().items;
      const auto& y = b.dict().items;
      if (x.size() != y.size()) return false;
      for (const auto& [key, value] : x) {
        bool found = false;
        for (const auto& [key2, value2] : y) {
          if (Equals(key, key2)) {
            if (!Equals(value, value2)) return false;
            found = true;
            break;
          }
        }
        if (!found) return false;
      }
      return true;
    }
    default: return a.identity() == b.identity();
  }
}

// Python's a < b (throws TypeError where Python does).
inline bool Less(const Value& a, const Value& b, std::string_view op = "<") {
  if (a.is_undefined()) FailUndefined(a);
  if (b.is_undefined()) FailUndefined(b);
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_double() < b.as_double();
    return a.as_integer() < b.as_integer();
  }
  if (a.is_string() && b.is_string()) return a.str() < b.str();  // UTF-8 order is code point order
  if (a.kind() == b.kind() && a.is_sequence()) {
    const ValueList& x = a.items();
    const ValueList& y = b.items();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (!Equals(x[i], y[i])) return Less(x[i], y[i], op);
    }
    return x.size() < y.size();
  }
  TypeFail("'" + std::string(op) + "' not supported between instances of '" + TypeName(a) + "' and '" +
           TypeName(b) + "'");
}

// Python's len().
inline int64_t Len(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined: return 0;
    case Value::Kind::kString: return static_cast<int64_t>(unicode::Length(v.str()));
    case Value::Kind::kList:
    case Value::Kind::kTuple: return static_cast<int64_t>(v.items().size());
    case Value::Kind::kDict: return static_cast<int64_t>(v.dict().items.size());
    default: TypeFail("object of type '" + TypeName(v) + "' has no len()");
  }
}

// The characters of a string, each as a one-character string.
inline ValueList Characters(std::string_view s) {
  ValueList out;
  for (char32_t c : unicode::Decode(s)) {
    std::string one;
    unicode::Append(one, c);
    out.emplace_back(std::move(one));
  }
  return out;
}

// Python's iter(): what a for loop or a filter walks over. A generator is
// consumed; a dict yields its keys; Undefined yields nothing.
inline ValueList Iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined: return {};
    case Value::Kind::kString: return Characters(v.str());
    case Value::Kind::kList:
    case Value::Kind::kTuple: return v.items();
    case Value::Kind::kDict: {
      ValueList keys;
      for (const auto& entry : v.dict().items) keys.push_back(entry.first);
      return keys;
    }
    case Value::Kind::kIterator: {
      IteratorState& it = v.iterator();
      ValueList rest(it.items.begin() + static_cast<std::ptrdiff_t>(it.position), it.items.end());
      it.position = it.items.size();
      return rest;
    }
    default: TypeFail("'" + TypeName(v) + "' object is not iterable");
  }
}

inline const Value* DictFind(const DictEntries& dict, const Value& key) {
  for (const auto& entry : dict.items) {
    if (Equals(entry.first, key)) return &entry.second;
  }
  return nullptr;
}

inline const Value* DictFindString(const DictEntries& dict, std::string_view key) {
  for (const auto& entry : dict.items) {
    if (entry.first.is_string() && entry.first.str() == key) return &entry.second;
  }
  return nullptr;
}

// Adds or replaces a key, keeping first-insertion order like a Python dict.
inline void DictSet(DictEntries& dict, Value key, Value value) {
  for (auto& entry : dict.items) {
    if (Equals(entry.first, key)) {
      entry.second = std::move(value);
      return;
    }
  }
  dict.items.emplace_back(std::move(key), std::move(value));
}

// ---------------------------------------------------------------------------
// JSON in and out.

inline Value FromJson(const nlohmann::ordered_json& j) {
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null: return Value::None();
    case nlohmann::ordered_json::value_t::boolean: return Value(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer: return Value(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      uint64_t u = j.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) return Value(static_cast<double>(u));
      return Value(static_cast<int64_t>(u));
    }
    case nlohmann::ordered_json::value_t::number_float: return Value(j.get<double>());
    case nlohmann::ordered_json::value_t::string: return Value(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      ValueList items;
      items.reserve(j.size());
      for (const auto& e : j) items.push_back(FromJson(e));
      return Value::List(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      DictEntries d;
      d.items.reserve(j.size());
      for (const auto& [key, e] : j.items()) d.items.emplace_back(Value(key), FromJson(e));
      return Value::Dict(std::move(d));
    }
    default: return Value::None();
  }
}

// Python's json.dumps options (HF's `tojson` passes them through).
struct JsonDumpOptions {
  std::optional<std::string> indent;  // nullopt: one line
  std::string item_separator = ", ";
  std::string key_separator = ": ";
  bool sort_keys = false;
  bool ensure_ascii = false;
};

inline void DumpJsonString(std::string& out, std::string_view s, bool ensure_ascii) {
  out.push_back('"');
  for (char32_t c : unicode::Decode(s)) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default: {
        char buf[16];
        if (c < 0x20) {
          std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(c));
          out += buf;
        } else if (ensure_ascii && c > 0x7F) {
          if (c > 0xFFFF) {
            char32_t v = c - 0x10000;
            std::snprintf(buf, sizeof(buf), "\\u%04x\\u%04x", static_cast<unsigned>(0xD800 + (v >> 10)),
                          static_cast<unsigned>(0xDC00 + (v & 0x3FF)));
          } else {
            std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(c));
          }
          out += buf;
        } else {
          unicode::Append(out, c);
        }
      }
    }
  }
  out.push_back('"');
}

inline std::string JsonFloat(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  return FloatRepr(d);
}

inline void DumpJson(std::string& out, const Value& v, const JsonDumpOptions& opt, int level) {
  if (level > 200) Fail(TemplateError::Kind::kValue, "Circular reference detected");
  auto newline = [&](int lvl) {
    out.push_back('\n');
    for (int i = 0; i < lvl; ++i) out += *opt.indent;
  };
  switch (v.kind()) {
    case Value::Kind::kNone: out += "null"; return;
    case Value::Kind::kBool: out += v.as_bool() ? "true" : "false"; return;
    case Value::Kind::kInt: out += std::to_string(v.as_int()); return;
    case Value::Kind::kFloat: out += JsonFloat(v.as_float()); return;
    case Value::Kind::kString: DumpJsonString(out, v.str(), opt.ensure_ascii); return;
    case Value::Kind::kList:
    case Value::Kind::kTuple: {
      const ValueList& items = v.items();
      if (items.empty()) {
        out += "[]";
        return;
      }
      out.push_back('[');
      for (size_t i = 0; i < items.size(); ++i) {
        if (i > 0) out += opt.item_separator;
        if (opt.indent) newline(level + 1);
        DumpJson(out, items[i], opt, level + 1);
      }
      if (opt.indent) newline(level);
      out.push_back(']');
      return;
    }
    case Value::Kind::kDict: {
      const auto& entries = v.dict().items;
      if (entries.empty()) {
        out += "{}";
        return;
      }
      std::vector<const std::pair<Value, Value>*> order;
      for (const auto& e : entries) order.push_back(&e);
      if (opt.sort_keys) {
        std::stable_sort(order.begin(), order.end(),
                         [](const auto* a, const auto* b) { return Less(a->first, b->first); });
      }
      out.push_back('{');
      bool first = true;
      for (const auto* e : order) {
        const Value& key = e->first;
        std::string key_text;
        if (key.is_string()) {
          key_text = key.str();
        } else if (key.is_bool()) {
          key_text = key.as_bool() ? "true" : "false";
        } else if (key.is_int()) {
          key_text = std::to_string(key.as_int());
        } else if (key.is_float()) {
          key_text = JsonFloat(key.as_float());
        } else if (key.is_none()) {
          key_text = "null";
        } else {
          TypeFail("keys must be str, int, float, bool or None, not " + TypeName(key));
        }
        if (!first) out += opt.item_separator;
        first = false;
        if (opt.indent) newline(level + 1);
        DumpJsonString(out, key_text, opt.ensure_ascii);
        out += opt.key_separator;
        DumpJson(out, e->second, opt, level + 1);
      }
      if (opt.indent) newline(level);
      out.push_back('}');
      return;
    }
    default: TypeFail("Object of type " + TypeName(v) + " is not JSON serializable");
  }
}

inline std::string DumpJson(const Value& v, const JsonDumpOptions& opt = {}) {
  std::string out;
  DumpJson(out, v, opt, 0);
  return out;
}

}  // namespace spatialid::text::jinja
