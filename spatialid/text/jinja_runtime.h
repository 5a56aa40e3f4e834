// Python's operators, attribute access and built-in methods, as Jinja's
// ImmutableSandboxedEnvironment exposes them to a template.
//
// - Operators: `+ - * / // % **` with Python's numeric tower (bool is an
//   int, int/int is a float, `//` and `%` floor toward minus infinity,
//   `'%s' % x` formats), `in`, chained comparisons. Ints are 64-bit here; a
//   result that does not fit is an error rather than a Python big int.
// - `obj.name` tries the Python attribute first, then `obj['name']`;
//   `obj[key]` tries the item first, then the attribute (Jinja's
//   Environment.getattr / getitem). So `message.items` is dict.items even
//   when the message has an "items" key, as in Jinja.
// - Methods of str (`upper`, `strip`, `split`, `startswith`, `replace`, ...),
//   dict (`items`, `keys`, `values`, `get`, `copy`) and list/tuple
//   (`count`, `index`, `copy`). Mutating methods (`append`, `pop`,
//   `update`...) raise SecurityError, as the immutable sandbox does.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "spatialid/text/jinja_unicode.h"
#include "spatialid/text/jinja_value.h"

namespace spatialid::text::jinja::internal {

// Binds a call's arguments to named parameters like a Python signature.
class Params {
 public:
  Params(std::string_view function, const CallArgs& call, std::initializer_list<std::string_view> names)
      : function_(function), names_(names), values_(names.size()) {
    if (call.positional.size() > names_.size()) {
      TypeFail(function_ + "() takes at most " + std::to_string(names_.size()) + " argument(s) (" +
               std::to_string(call.positional.size()) + " given)");
    }
    for (size_t i = 0; i < call.positional.size(); ++i) values_[i] = call.positional[i];
    for (const auto& [key, value] : call.keyword) {
      auto it = std::find(names_.begin(), names_.end(), key);
      if (it == names_.end()) TypeFail(function_ + "() got an unexpected keyword argument '" + key + "'");
      size_t i = static_cast<size_t>(it - names_.begin());
      if (values_[i]) TypeFail(function_ + "() got multiple values for argument '" + key + "'");
      values_[i] = value;
    }
  }

  bool has(size_t i) const { return values_[i].has_value(); }
  // Not given, or given as None.
  bool absent(size_t i) const { return !values_[i] || values_[i]->is_none(); }
  const Value& operator[](size_t i) const {
    static const Value kUndefined;
    return values_[i] ? *values_[i] : kUndefined;
  }
  Value get(size_t i, Value fallback) const { return values_[i] ? *values_[i] : std::move(fallback); }
  void Require(size_t i) const {
    if (!values_[i]) {
      TypeFail(function_ + "() missing required argument '" + std::string(names_[i]) + "'");
    }
  }
  int64_t Int(size_t i, int64_t fallback) const {
    if (!values_[i]) return fallback;
    const Value& v = *values_[i];
    if (v.is_int() || v.is_bool()) return v.as_integer();
    TypeFail("'" + TypeName(v) + "' object cannot be interpreted as an integer");
  }
  std::string String(size_t i, std::string fallback) const {
    if (!values_[i]) return fallback;
    const Value& v = *values_[i];
    if (!v.is_string()) TypeFail(function_ + "() argument must be str, not " + TypeName(v));
    return v.str();
  }

 private:
  std::string function_;
  std::vector<std::string_view> names_;
  std::vector<std::optional<Value>> values_;
};

inline void NoArgs(std::string_view function, const CallArgs& call) {
  Params p(function, call, {});
  (void)p;
}

// ---------------------------------------------------------------------------
// Numbers.

[[noreturn]] inline void OperandFail(std::string_view op, const Value& a, const Value& b) {
  TypeFail("unsupported operand type(s) for " + std::string(op) + ": '" + TypeName(a) + "' and '" +
           TypeName(b) + "'");
}

[[noreturn]] inline void IntOverflow() {
  Fail(TemplateError::Kind::kOverflow, "integer result does not fit in 64 bits");
}

inline bool IsIntLike(const Value& v) { return v.is_int() || v.is_bool(); }

inline Value FloorDivide(const Value& a, const Value& b) {
  if (IsIntLike(a) && IsIntLike(b)) {
    int64_t x = a.as_integer(), y = b.as_integer();
    if (y == 0) Fail(TemplateError::Kind::kZeroDivision, "integer division or modulo by zero");
    if (x == INT64_MIN && y == -1) IntOverflow();
    int64_t q = x / y;
    if ((x % y != 0) && ((x < 0) != (y < 0))) --q;
    return Value(q);
  }
  double x = a.as_double(), y = b.as_double();
  if (y == 0.0) Fail(TemplateError::Kind::kZeroDivision, "float floor division by zero");
  // CPython's float_divmod.
  double mod = std::fmod(x, y);
  double div = (x - mod) / y;
  if (mod != 0.0 && ((y < 0) != (mod < 0))) div -= 1.0;
  double floordiv;
  if (div != 0.0) {
    floordiv = std::floor(div);
    if (div - floordiv > 0.5) floordiv += 1.0;
  } else {
    floordiv = std::copysign(0.0, x / y);
  }
  return Value(floordiv);
}

inline Value Modulo(const Value& a, const Value& b) {
  if (IsIntLike(a) && IsIntLike(b)) {
    int64_t x = a.as_integer(), y = b.as_integer();
    if (y == 0) Fail(TemplateError::Kind::kZeroDivision, "integer division or modulo by zero");
    if (y == -1) return Value(int64_t{0});
    int64_t r = x % y;
    if (r != 0 && ((r < 0) != (y < 0))) r += y;
    return Value(r);
  }
  double x = a.as_double(), y = b.as_double();
  if (y == 0.0) Fail(TemplateError::Kind::kZeroDivision, "float modulo");
  double mod = std::fmod(x, y);
  if (mod != 0.0) {
    if ((y < 0) != (mod < 0)) mod += y;
  } else {
    mod = std::copysign(0.0, y);
  }
  return Value(mod);
}

inline Value Power(const Value& a, const Value& b) {
  if (IsIntLike(a) && IsIntLike(b) && b.as_integer() >= 0) {
    int64_t base = a.as_integer(), exp = b.as_integer(), result = 1;
    while (exp > 0) {
      if (exp & 1) {
        if (__builtin_mul_overflow(result, base, &result)) IntOverflow();
      }
      exp >>= 1;
      if (exp > 0 && __builtin_mul_overflow(base, base, &base)) IntOverflow();
    }
    return Value(result);
  }
  double x = a.as_double(), y = b.as_double();
  if (x == 0.0 && y < 0) Fail(TemplateError::Kind::kZeroDivision, "0.0 cannot be raised to a negative power");
  if (x < 0 && y != std::floor(y)) {
    Fail(TemplateError::Kind::kUnsupported, "negative number raised to a fractional power (complex result)");
  }
  return Value(std::pow(x, y));
}

std::string PercentFormat(const std::string& format, const Value& args);

inline Value Repeat(const Value& seq, int64_t times) {
  if (times < 0) times = 0;
  if (seq.is_string()) {
    if (static_cast<double>(seq.str().size()) * static_cast<double>(times) > 1e8) {
      Fail(TemplateError::Kind::kOverflow, "string repetition result is too large");
    }
    std::string out;
    out.reserve(seq.str().size() * static_cast<size_t>(times));
    for (int64_t i = 0; i < times; ++i) out += seq.str();
    return Value(std::move(out));
  }
  if (static_cast<double>(seq.items().size()) * static_cast<double>(times) > 1e7) {
    Fail(TemplateError::Kind::kOverflow, "sequence repetition result is too large");
  }
  ValueList out;
  for (int64_t i = 0; i < times; ++i) out.insert(out.end(), seq.items().begin(), seq.items().end());
  return seq.is_tuple() ? Value::Tuple(std::move(out)) : Value::List(std::move(out));
}

// Python's binary operators; `op` is the Jinja operator text.
inline Value BinaryOp(std::string_view op, const Value& a, const Value& b) {
  // str.__mod__ accepts any right operand, Undefined included.
  if (op == "%" && a.is_string()) return Value(PercentFormat(a.str(), b));
  if (a.is_undefined()) FailUndefined(a);
  if (b.is_undefined()) FailUndefined(b);
  bool numbers = a.is_number() && b.is_number();
  bool floats = numbers && (a.is_float() || b.is_float());
  if (op == "+") {
    if (numbers) {
      if (floats) return Value(a.as_double() + b.as_double());
      int64_t r;
      if (__builtin_add_overflow(a.as_integer(), b.as_integer(), &r)) IntOverflow();
      return Value(r);
    }
    if (a.is_string() && b.is_string()) return Value(a.str() + b.str());
    if (a.kind() == b.kind() && a.is_sequence()) {
      ValueList out = a.items();
      out.insert(out.end(), b.items().begin(), b.items().end());
      return a.is_tuple() ? Value::Tuple(std::move(out)) : Value::List(std::move(out));
    }
    if (a.is_string() || a.is_sequence()) {
      TypeFail("can only concatenate " + TypeName(a) + " (not \"" + TypeName(b) + "\") to " + TypeName(a));
    }
    OperandFail("+", a, b);
  }
  if (op == "-") {
    if (!numbers) OperandFail("-", a, b);
    if (floats) return Value(a.as_double() - b.as_double());
    int64_t r;
    if (__builtin_sub_overflow(a.as_integer(), b.as_integer(), &r)) IntOverflow();
    return Value(r);
  }
  if (op == "*") {
    if (numbers) {
      if (floats) return Value(a.as_double() * b.as_double());
      int64_t r;
      if (__builtin_mul_overflow(a.as_integer(), b.as_integer(), &r)) IntOverflow();
      return Value(r);
    }
    if ((a.is_string() || a.is_sequence()) && IsIntLike(b)) return Repeat(a, b.as_integer());
    if ((b.is_string() || b.is_sequence()) && IsIntLike(a)) return Repeat(b, a.as_integer());
    if (a.is_string() || a.is_sequence() || b.is_string() || b.is_sequence()) {
      const Value& other = (a.is_string() || a.is_sequence()) ? b : a;
      TypeFail("can't multiply sequence by non-int of type '" + TypeName(other) + "'");
    }
    OperandFail("*", a, b);
  }
  if (op == "/") {
    if (!numbers) OperandFail("/", a, b);
    if (b.as_double() == 0.0) Fail(TemplateError::Kind::kZeroDivision, "division by zero");
    return Value(a.as_double() / b.as_double());
  }
  if (op == "//") {
    if (!numbers) OperandFail("//", a, b);
    return FloorDivide(a, b);
  }
  if (op == "%") {
    if (!numbers) OperandFail("%", a, b);
    return Modulo(a, b);
  }
  if (op == "**") {
    if (!numbers) OperandFail("** or pow()", a, b);
    return Power(a, b);
  }
  Fail(TemplateError::Kind::kUnsupported, "unknown operator " + std::string(op));
}

inline Value Negate(const Value& v) {
  if (v.is_undefined()) FailUndefined(v);
  if (v.is_float()) return Value(-v.as_float());
  if (IsIntLike(v)) {
    if (v.as_integer() == INT64_MIN) IntOverflow();
    return Value(-v.as_integer());
  }
  TypeFail("bad operand type for unary -: '" + TypeName(v) + "'");
}

inline Value Positive(const Value& v) {
  if (v.is_undefined()) FailUndefined(v);
  if (v.is_float()) return v;
  if (IsIntLike(v)) return Value(v.as_integer());
  TypeFail("bad operand type for unary +: '" + TypeName(v) + "'");
}

// Python raises for dict lookups with a list or dict key.
inline void RequireHashable(const Value& key) {
  if (key.is_list() || key.is_dict()) TypeFail("unhashable type: '" + TypeName(key) + "'");
  if (key.is_tuple()) {
    for (const Value& v : key.items()) RequireHashable(v);
  }
}

// Python's `item in container`.
inline bool Contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Value::Kind::kUndefined: return false;
    case Value::Kind::kString:
      if (!item.is_string()) {
        TypeFail("'in <string>' requires string as left operand, not " + TypeName(item));
      }
      return container.str().find(item.str()) != std::string::npos;
    case Value::Kind::kList:
    case Value::Kind::kTuple:
      for (const Value& v : container.items()) {
        if (Equals(v, item)) return true;
      }
      return false;
    case Value::Kind::kDict:
      RequireHashable(item);
      return DictFind(container.dict(), item) != nullptr;
    case Value::Kind::kIterator: {
      IteratorState& it = container.iterator();
      while (it.position < it.items.size()) {
        if (Equals(it.items[it.position++], item)) return true;
      }
      return false;
    }
    default: TypeFail("argument of type '" + TypeName(container) + "' is not iterable");
  }
}

// One comparison of a chain: ==, !=, <, <=, >, >=, in, notin.
inline bool CompareOp(std::string_view op, const Value& a, const Value& b) {
  if (op == "==") return Equals(a, b);
  if (op == "!=") return !Equals(a, b);
  if (op == "in") return Contains(b, a);
  if (op == "notin") return !Contains(b, a);
  if (a.is_number() && b.is_number() && (a.is_float() || b.is_float())) {
    double x = a.as_double(), y = b.as_double();
    if (op == "<") return x < y;
    if (op == "<=") return x <= y;
    if (op == ">") return x > y;
    return x >= y;
  }
  if (op == "<") return Less(a, b, "<");
  if (op == ">") return Less(b, a, ">");
  if (op == "<=") return !Less(b, a, "<=");
  return !Less(a, b, ">=");
}

// ---------------------------------------------------------------------------
// printf-style formatting (`'%s' % x`, the `format` filter).

inline std::string PercentFormat(const std::string& format, const Value& args) {
  std::vector<Value> positional;
  const DictEntries* mapping = nullptr;
  // CPython: a non-tuple operand with __getitem__ (dict, list, Undefined) may
  // be used as a mapping, and then unused arguments are not an error.
  bool mapping_like = false;
  if (args.is_tuple()) {
    positional = args.items();
  } else {
    positional.push_back(args);
    if (args.is_dict()) mapping = &args.dict();
    mapping_like = args.is_dict() || args.is_list() || args.is_undefined();
  }
  size_t next_arg = 0;
  std::string out;
  for (size_t i = 0; i < format.size(); ++i) {
    if (format[i] != '%') {
      out.push_back(format[i]);
      continue;
    }
    if (++i >= format.size()) Fail(TemplateError::Kind::kValue, "incomplete format");
    const Value* arg = nullptr;
    if (format[i] == '(') {
      size_t close = format.find(')', i);
      if (close == std::string::npos) Fail(TemplateError::Kind::kValue, "incomplete format key");
      if (mapping == nullptr) {
        if (args.is_undefined()) FailUndefined(args);
        TypeFail(mapping_like ? "list indices must be integers or slices, not str" : "format requires a mapping");
      }
      std::string key = format.substr(i + 1, close - i - 1);
      arg = DictFindString(*mapping, key);
      if (arg == nullptr) Fail(TemplateError::Kind::kValue, "KeyError: " + StringRepr(key));
      i = close + 1;
    }
    std::string flags;
    while (i < format.size() && std::string_view("-+ #0").find(format[i]) != std::string_view::npos) {
      flags.push_back(format[i++]);
    }
    std::string width;
    while (i < format.size() && format[i] >= '0' && format[i] <= '9') width.push_back(format[i++]);
    std::string precision;
    bool has_precision = false;
    if (i < format.size() && format[i] == '.') {
      has_precision = true;
      ++i;
      while (i < format.size() && format[i] >= '0' && format[i] <= '9') precision.push_back(format[i++]);
    }
    if (i < format.size() && (format[i] == '*')) {
      Fail(TemplateError::Kind::kUnsupported, "'*' width in % formatting is not supported");
    }
    while (i < format.size() && (format[i] == 'h' || format[i] == 'l' || format[i] == 'L')) ++i;
    if (i >= format.size()) Fail(TemplateError::Kind::kValue, "incomplete format");
    char conv = format[i];
    if (conv == '%') {
      out.push_back('%');
      continue;
    }
    if (arg == nullptr) {
      if (next_arg >= positional.size()) TypeFail("not enough arguments for format string");
      arg = &positional[next_arg++];
    }
    std::string spec = "%" + flags + width + (has_precision ? "." + precision : "");
    char buf[512];
    std::string piece;
    switch (conv) {
      case 's':
      case 'r':
      case 'a': {
        std::string text = conv == 's' ? Str(*arg) : Repr(*arg);
        if (has_precision) {
          std::u32string cps = unicode::Decode(text);
          size_t keep = static_cast<size_t>(precision.empty() ? 0 : std::stoul(precision));
          if (cps.size() > keep) text = unicode::Encode(std::u32string_view(cps).substr(0, keep));
        }
        size_t w = width.empty() ? 0 : std::stoul(width);
        size_t len = unicode::Length(text);
        if (len < w) {
          std::string pad(w - len, ' ');
          text = flags.find('-') != std::string::npos ? text + pad : pad + text;
        }
        piece = text;
        break;
      }
      case 'd':
      case 'i':
      case 'u':
      case 'x':
      case 'X':
      case 'o':
      case 'c': {
        int64_t v;
        if (arg->is_float()) {
          if (conv == 'x' || conv == 'X' || conv == 'o' || conv == 'c') {
            TypeFail(std::string("%") + conv + " format: an integer is required, not float");
          }
          v = static_cast<int64_t>(std::trunc(arg->as_float()));
        } else if (IsIntLike(*arg)) {
          v = arg->as_integer();
        } else {
          TypeFail(std::string("%") + conv + " format: a real number is required, not " + TypeName(*arg));
        }
        if (conv == 'c') {
          std::string ch;
          unicode::Append(ch, static_cast<char32_t>(v));
          piece = ch;
          break;
        }
        char c = conv == 'i' || conv == 'u' ? 'd' : conv;
        std::snprintf(buf, sizeof(buf), (spec + "ll" + c).c_str(), static_cast<long long>(v));
        piece = buf;
        break;
      }
      case 'f':
      case 'F':
      case 'e':
      case 'E':
      case 'g':
      case 'G': {
        if (!arg->is_number()) TypeFail("must be real number, not " + TypeName(*arg));
        std::snprintf(buf, sizeof(buf), (spec + conv).c_str(), arg->as_double());
        piece = buf;
        break;
      }
      default:
        Fail(TemplateError::Kind::kValue, std::string("unsupported format character '") + conv + "'");
    }
    out += piece;
  }
  if (next_arg < positional.size() && !mapping_like) {
    TypeFail("not all arguments converted during string formatting");
  }
  return out;
}

// ---------------------------------------------------------------------------
// Slicing and indexing.

// Python's slice.indices() followed by range(): the selected positions.
inline std::vector<int64_t> SliceIndices(int64_t length, const Value& start_v, const Value& stop_v,
                                         const Value& step_v) {
  auto as_index = [](const Value& v) -> std::optional<int64_t> {
    if (v.is_none() || v.is_undefined()) return std::nullopt;
    if (!IsIntLike(v)) TypeFail("slice indices must be integers or None or have an __index__ method");
    return v.as_integer();
  };
  std::optional<int64_t> start_o = as_index(start_v), stop_o = as_index(stop_v), step_o = as_index(step_v);
  int64_t step = step_o.value_or(1);
  if (step == 0) Fail(TemplateError::Kind::kValue, "slice step cannot be zero");
  // CPython's PySlice_Unpack + PySlice_AdjustIndices.
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max(), kMin = std::numeric_limits<int64_t>::min();
  int64_t lo = start_o.value_or(step < 0 ? kMax : 0);
  int64_t hi = stop_o.value_or(step < 0 ? kMin : kMax);
  auto adjust = [&](int64_t& v) {
    if (v < 0) {
      v = v == kMin ? -1 : v + length;
      if (v < 0) v = step < 0 ? -1 : 0;
    } else if (v >= length) {
      v = step < 0 ? length - 1 : length;
    }
  };
  adjust(lo);
  adjust(hi);
  std::vector<int64_t> out;
  if (step > 0) {
    for (int64_t i = lo; i < hi; i += step) out.push_back(i);
  } else {
    for (int64_t i = lo; i > hi; i += step) out.push_back(i);
  }
  return out;
}

inline Value SliceValue(const Value& obj, const Value& start, const Value& stop, const Value& step) {
  if (obj.is_string()) {
    std::u32string cps = unicode::Decode(obj.str());
    std::u32string out;
    for (int64_t i : SliceIndices(static_cast<int64_t>(cps.size()), start, stop, step)) {
      out.push_back(cps[static_cast<size_t>(i)]);
    }
    return Value(unicode::Encode(out));
  }
  if (obj.is_sequence()) {
    const ValueList& items = obj.items();
    ValueList out;
    for (int64_t i : SliceIndices(static_cast<int64_t>(items.size()), start, stop, step)) {
      out.push_back(items[static_cast<size_t>(i)]);
    }
    return obj.is_tuple() ? Value::Tuple(std::move(out)) : Value::List(std::move(out));
  }
  TypeFail("'" + TypeName(obj) + "' object is not subscriptable");
}

// ---------------------------------------------------------------------------
// Built-in methods.

inline std::u32string StripSet(const Params& p, size_t i) {
  if (p.absent(i)) return {};
  if (!p[i].is_string()) TypeFail("strip arg must be None or str");
  return unicode::Decode(p[i].str());
}

inline std::string StripImpl(std::string_view s, const std::u32string& chars, bool whitespace, bool left,
                             bool right) {
  std::u32string cps = unicode::Decode(s);
  auto strip = [&](char32_t c) {
    return whitespace ? unicode::IsSpace(c) : chars.find(c) != std::u32string::npos;
  };
  size_t b = 0, e = cps.size();
  if (left) {
    while (b < e && strip(cps[b])) ++b;
  }
  if (right) {
    while (e > b && strip(cps[e - 1])) --e;
  }
  return unicode::Encode(std::u32string_view(cps).substr(b, e - b));
}

inline Value SplitImpl(const std::string& s, const Params& p, bool from_right) {
  int64_t maxsplit = p.Int(1, -1);
  ValueList out;
  if (p.absent(0)) {
    std::u32string cps = unicode::Decode(s);
    std::vector<std::u32string> parts;
    if (!from_right) {
      size_t i = 0, n = cps.size();
      int64_t splits = 0;
      while (true) {
        while (i < n && unicode::IsSpace(cps[i])) ++i;
        if (i >= n) break;
        if (maxsplit >= 0 && splits >= maxsplit) {
          parts.push_back(cps.substr(i));
          break;
        }
        size_t j = i;
        while (j < n && !unicode::IsSpace(cps[j])) ++j;
        parts.push_back(cps.substr(i, j - i));
        ++splits;
        i = j;
      }
    } else {
      int64_t i = static_cast<int64_t>(cps.size()) - 1;
      int64_t splits = 0;
      while (true) {
        while (i >= 0 && unicode::IsSpace(cps[static_cast<size_t>(i)])) --i;
        if (i < 0) break;
        if (maxsplit >= 0 && splits >= maxsplit) {
          parts.push_back(cps.substr(0, static_cast<size_t>(i) + 1));
          break;
        }
        int64_t j = i;
        while (j >= 0 && !unicode::IsSpace(cps[static_cast<size_t>(j)])) --j;
        parts.push_back(cps.substr(static_cast<size_t>(j + 1), static_cast<size_t>(i - j)));
        ++splits;
        i = j;
      }
      std::reverse(parts.begin(), parts.end());
    }
    for (auto& part : parts) out.emplace_back(unicode::Encode(part));
    return Value::List(std::move(out));
  }
  if (!p[0].is_string()) TypeFail("must be str or None, not " + TypeName(p[0]));
  const std::string& sep = p[0].str();
  if (sep.empty()) Fail(TemplateError::Kind::kValue, "empty separator");
  std::vector<std::string> parts;
  if (!from_right) {
    size_t start = 0;
    int64_t splits = 0;
    while (maxsplit < 0 || splits < maxsplit) {
      size_t at = s.find(sep, start);
      if (at == std::string::npos) break;
      parts.push_back(s.substr(start, at - start));
      start = at + sep.size();
      ++splits;
    }
    parts.push_back(s.substr(start));
  } else {
    size_t end = s.size();
    int64_t splits = 0;
    while (maxsplit < 0 || splits < maxsplit) {
      if (end < sep.size()) break;
      size_t at = s.rfind(sep, end - sep.size());
      if (at == std::string::npos) break;
      parts.push_back(s.substr(at + sep.size(), end - at - sep.size()));
      end = at;
      ++splits;
    }
    parts.push_back(s.substr(0, end));
    std::reverse(parts.begin(), parts.end());
  }
  for (auto& part : parts) out.emplace_back(std::move(part));
  return Value::List(std::move(out));
}

inline bool IsLineBreak(char32_t c) {
  return c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E ||
         c == 0x85 || c == 0x2028 || c == 0x2029;
}

inline Value SplitLines(const std::string& s, bool keepends) {
  std::u32string cps = unicode::Decode(s);
  ValueList out;
  size_t i = 0, n = cps.size();
  while (i < n) {
    size_t j = i;
    while (j < n && !IsLineBreak(cps[j])) ++j;
    size_t eol = j;
    if (j < n) {
      j += (cps[j] == '\r' && j + 1 < n && cps[j + 1] == '\n') ? 2 : 1;
    }
    out.emplace_back(unicode::Encode(std::u32string_view(cps).substr(i, (keepends ? j : eol) - i)));
    i = j;
  }
  return Value::List(std::move(out));
}

// start/end code point arguments clamped like Python's slice notation.
inline std::pair<size_t, size_t> SubRange(const Params& p, size_t start_i, size_t n) {
  auto clamp = [&](size_t i, int64_t fallback) -> size_t {
    int64_t v = p.absent(i) ? fallback : p.Int(i, fallback);
    if (v < 0) v = std::max<int64_t>(v + static_cast<int64_t>(n), 0);
    return static_cast<size_t>(std::min<int64_t>(v, static_cast<int64_t>(n)));
  };
  return {clamp(start_i, 0), clamp(start_i + 1, static_cast<int64_t>(n))};
}

inline int64_t FindImpl(const std::string& s, const Params& p, bool reverse) {
  if (!p[0].is_string()) TypeFail("must be str, not " + TypeName(p[0]));
  std::u32string hay = unicode::Decode(s), needle = unicode::Decode(p[0].str());
  auto [b, e] = SubRange(p, 1, hay.size());
  if (b > e || e - b < needle.size()) return -1;
  std::u32string_view window = std::u32string_view(hay).substr(b, e - b);
  size_t at = reverse ? window.rfind(needle) : window.find(needle);
  return at == std::u32string_view::npos ? -1 : static_cast<int64_t>(b + at);
}

inline bool AffixMatch(const std::string& s, const Params& p, bool suffix) {
  std::u32string hay = unicode::Decode(s);
  size_t b, e;  std::tie(b, e) = SubRange(p, 1, hay.size());  // not a structured binding: clang 14 cannot capture those
  std::u32string_view window = b <= e ? std::u32string_view(hay).substr(b, e - b) : std::u32string_view();
  auto one = [&](const Value& affix) {
    if (!affix.is_string()) {
      TypeFail(std::string(suffix ? "endswith" : "startswith") +
               " first arg must be str or a tuple of str, not " + TypeName(affix));
    }
    std::u32string a = unicode::Decode(affix.str());
    if (b > e || a.size() > window.size()) return false;
    return suffix ? window.substr(window.size() - a.size()) == a : window.substr(0, a.size()) == a;
  };
  p.Require(0);
  if (p[0].is_tuple()) {
    for (const Value& v : p[0].items()) {
      if (one(v)) return true;
    }
    return false;
  }
  return one(p[0]);
}

inline std::string ReplaceImpl(const std::string& s, const std::string& old, const std::string& replacement,
                               int64_t count) {
  std::string out;
  if (old.empty()) {
    std::u32string cps = unicode::Decode(s);
    int64_t done = 0;
    for (size_t i = 0; i <= cps.size(); ++i) {
      if (count < 0 || done < count) {
        out += replacement;
        ++done;
      }
      if (i < cps.size()) unicode::Append(out, cps[i]);
    }
    return out;
  }
  size_t start = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    size_t at = s.find(old, start);
    if (at == std::string::npos) break;
    out.append(s, start, at - start);
    out += replacement;
    start = at + old.size();
    ++done;
  }
  out.append(s, start, std::string::npos);
  return out;
}

inline std::string PadImpl(const std::string& s, const Params& p, int where /* -1 left, 0 center, 1 right */) {
  p.Require(0);
  int64_t width = p.Int(0, 0);
  std::string fill = p.String(1, " ");
  if (unicode::Length(fill) != 1) TypeFail("The fill character must be exactly one character long");
  int64_t len = static_cast<int64_t>(unicode::Length(s));
  if (width <= len) return s;
  int64_t total = width - len;
  int64_t left;
  if (where < 0) {
    left = 0;
  } else if (where > 0) {
    left = total;
  } else {
    left = total / 2 + (total & width & 1);  // CPython's pad() for center
  }
  std::string out;
  for (int64_t i = 0; i < left; ++i) out += fill;
  out += s;
  for (int64_t i = 0; i < total - left; ++i) out += fill;
  return out;
}

// Jinja's str.format in the sandbox, for plain `{}`, `{0}` and `{name}`
// fields without format specs.
inline std::string FormatImpl(const std::string& s, const CallArgs& args) {
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '{') {
      if (i + 1 < s.size() && s[i + 1] == '{') {
        out.push_back('{');
        ++i;
        continue;
      }
      size_t close = s.find('}', i);
      if (close == std::string::npos) Fail(TemplateError::Kind::kValue, "Single '{' encountered in format string");
      std::string field = s.substr(i + 1, close - i - 1);
      if (field.find_first_of(":!.[") != std::string::npos) {
        Fail(TemplateError::Kind::kUnsupported, "str.format fields with specs or lookups are not supported");
      }
      const Value* v = nullptr;
      if (field.empty()) {
        if (auto_index >= args.positional.size()) Fail(TemplateError::Kind::kValue, "Replacement index out of range");
        v = &args.positional[auto_index++];
      } else if (std::all_of(field.begin(), field.end(), [](char d) { return d >= '0' && d <= '9'; })) {
        size_t k = std::stoul(field);
        if (k >= args.positional.size()) Fail(TemplateError::Kind::kValue, "Replacement index out of range");
        v = &args.positional[k];
      } else {
        for (const auto& [key, value] : args.keyword) {
          if (key == field) v = &value;
        }
        if (v == nullptr) Fail(TemplateError::Kind::kValue, "KeyError: " + StringRepr(field));
      }
      out += Str(*v);
      i = close;
    } else if (c == '}') {
      if (i + 1 < s.size() && s[i + 1] == '}') ++i;
      else Fail(TemplateError::Kind::kValue, "Single '}' encountered in format string");
      out.push_back('}');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

inline bool AllChars(const std::string& s, bool (*pred)(char32_t)) {
  std::u32string cps = unicode::Decode(s);
  if (cps.empty()) return false;
  return std::all_of(cps.begin(), cps.end(), pred);
}

inline Value CallStringMethod(const std::string& s, const std::string& method, CallArgs& args) {
  const std::string fn = "str." + method;
  if (method == "upper") return NoArgs(fn, args), Value(unicode::Upper(s));
  if (method == "lower" || method == "casefold") return NoArgs(fn, args), Value(unicode::Lower(s));
  if (method == "title") return NoArgs(fn, args), Value(unicode::Title(s));
  if (method == "capitalize") return NoArgs(fn, args), Value(unicode::Capitalize(s));
  if (method == "swapcase") return NoArgs(fn, args), Value(unicode::SwapCase(s));
  if (method == "strip" || method == "lstrip" || method == "rstrip") {
    Params p(fn, args, {"chars"});
    bool ws = p.absent(0);
    return Value(StripImpl(s, StripSet(p, 0), ws, method != "rstrip", method != "lstrip"));
  }
  if (method == "split" || method == "rsplit") {
    Params p(fn, args, {"sep", "maxsplit"});
    return SplitImpl(s, p, method == "rsplit");
  }
  if (method == "splitlines") {
    Params p(fn, args, {"keepends"});
    return SplitLines(s, Truthy(p.get(0, Value(false))));
  }
  if (method == "startswith" || method == "endswith") {
    Params p(fn, args, {"prefix", "start", "end"});
    return Value(AffixMatch(s, p, method == "endswith"));
  }
  if (method == "find" || method == "rfind" || method == "index" || method == "rindex") {
    Params p(fn, args, {"sub", "start", "end"});
    p.Require(0);
    int64_t at = FindImpl(s, p, method[0] == 'r');
    if (at < 0 && (method == "index" || method == "rindex")) Fail(TemplateError::Kind::kValue, "substring not found");
    return Value(at);
  }
  if (method == "count") {
    Params p(fn, args, {"sub", "start", "end"});
    p.Require(0);
    if (!p[0].is_string()) TypeFail("must be str, not " + TypeName(p[0]));
    std::u32string hay = unicode::Decode(s), needle = unicode::Decode(p[0].str());
    auto [b, e] = SubRange(p, 1, hay.size());
    if (b > e) return Value(int64_t{0});
    if (needle.empty()) return Value(static_cast<int64_t>(e - b + 1));
    int64_t n = 0;
    for (size_t at = b; at + needle.size() <= e;) {
      if (std::u32string_view(hay).substr(at, needle.size()) == needle) {
        ++n;
        at += needle.size();
      } else {
        ++at;
      }
    }
    return Value(n);
  }
  if (method == "replace") {
    Params p(fn, args, {"old", "new", "count"});
    p.Require(0);
    p.Require(1);
    if (!p[0].is_string() || !p[1].is_string()) TypeFail("replace() arguments must be str");
    return Value(ReplaceImpl(s, p[0].str(), p[1].str(), p.Int(2, -1)));
  }
  if (method == "join") {
    Params p(fn, args, {"iterable"});
    p.Require(0);
    ValueList items = Iterate(p[0]);
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) {
      if (!items[i].is_string()) {
        TypeFail("sequence item " + std::to_string(i) + ": expected str instance, " + TypeName(items[i]) +
                 " found");
      }
      if (i > 0) out += s;
      out += items[i].str();
    }
    return Value(std::move(out));
  }
  if (method == "removeprefix" || method == "removesuffix") {
    Params p(fn, args, {"affix"});
    std::string affix = p.String(0, "");
    if (method == "removeprefix") {
      return Value(s.compare(0, affix.size(), affix) == 0 ? s.substr(affix.size()) : s);
    }
    bool ends = s.size() >= affix.size() && s.compare(s.size() - affix.size(), affix.size(), affix) == 0;
    return Value(ends && !affix.empty() ? s.substr(0, s.size() - affix.size()) : s);
  }
  if (method == "partition" || method == "rpartition") {
    Params p(fn, args, {"sep"});
    std::string sep = p.String(0, "");
    if (sep.empty()) Fail(TemplateError::Kind::kValue, "empty separator");
    size_t at = method == "partition" ? s.find(sep) : s.rfind(sep);
    if (at == std::string::npos) {
      return method == "partition" ? Value::Tuple({Value(s), Value(""), Value("")})
                                   : Value::Tuple({Value(""), Value(""), Value(s)});
    }
    return Value::Tuple({Value(s.substr(0, at)), Value(sep), Value(s.substr(at + sep.size()))});
  }
  if (method == "center" || method == "ljust" || method == "rjust") {
    Params p(fn, args, {"width", "fillchar"});
    return Value(PadImpl(s, p, method == "ljust" ? -1 : method == "rjust" ? 1 : 0));
  }
  if (method == "zfill") {
    Params p(fn, args, {"width"});
    p.Require(0);
    int64_t width = p.Int(0, 0);
    std::u32string cps = unicode::Decode(s);
    if (width <= static_cast<int64_t>(cps.size())) return Value(s);
    size_t fill = static_cast<size_t>(width) - cps.size();
    size_t sign = (!cps.empty() && (cps[0] == '+' || cps[0] == '-')) ? 1 : 0;
    cps.insert(sign, fill, U'0');
    return Value(unicode::Encode(cps));
  }
  if (method == "format") return Value(FormatImpl(s, args));
  if (method == "isalpha") return NoArgs(fn, args), Value(AllChars(s, unicode::IsAlpha));
  if (method == "isalnum") return NoArgs(fn, args), Value(AllChars(s, unicode::IsAlnum));
  if (method == "isdigit" || method == "isdecimal") return NoArgs(fn, args), Value(AllChars(s, unicode::IsDecimal));
  if (method == "isnumeric") return NoArgs(fn, args), Value(AllChars(s, unicode::IsNumeric));
  if (method == "isspace") return NoArgs(fn, args), Value(AllChars(s, unicode::IsSpace));
  if (method == "isascii") {
    NoArgs(fn, args);
    return Value(std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; }));
  }
  if (method == "isupper") return NoArgs(fn, args), Value(unicode::AllUpper(s));
  if (method == "islower") return NoArgs(fn, args), Value(unicode::AllLower(s));
  if (method == "istitle") return NoArgs(fn, args), Value(!s.empty() && unicode::Title(s) == s && unicode::Lower(s) != s);
  Fail(TemplateError::Kind::kUnsupported, "str." + method + "() is not supported by spatialid's Jinja interpreter");
}

inline bool IsStringMethod(std::string_view name) {
  static constexpr std::string_view kNames[] = {
      "capitalize", "casefold",  "center",    "count",        "encode",       "endswith",  "expandtabs",
      "find",       "format",    "format_map", "index",       "isalnum",      "isalpha",   "isascii",
      "isdecimal",  "isdigit",   "isidentifier", "islower",   "isnumeric",    "isprintable", "isspace",
      "istitle",    "isupper",   "join",      "ljust",        "lower",        "lstrip",    "maketrans",
      "partition",  "removeprefix", "removesuffix", "replace", "rfind",       "rindex",    "rjust",
      "rpartition", "rsplit",    "rstrip",    "split",        "splitlines",   "startswith", "strip",
      "swapcase",   "title",     "translate", "upper",        "zfill"};
  return std::find(std::begin(kNames), std::end(kNames), name) != std::end(kNames);
}

inline bool IsDictMethod(std::string_view name) {
  static constexpr std::string_view kNames[] = {"clear", "copy",    "fromkeys",   "get",    "items", "keys",
                                                "pop",   "popitem", "setdefault", "update", "values"};
  return std::find(std::begin(kNames), std::end(kNames), name) != std::end(kNames);
}

inline bool IsListMethod(std::string_view name, bool tuple) {
  if (name == "count" || name == "index") return true;
  static constexpr std::string_view kNames[] = {"append", "clear",  "copy",    "extend",
                                                "insert", "pop",    "remove",  "reverse", "sort"};
  return !tuple && std::find(std::begin(kNames), std::end(kNames), name) != std::end(kNames);
}

[[noreturn]] inline void UnsafeFail(const Value& obj, std::string_view name) {
  Fail(TemplateError::Kind::kSecurity,
       "access to attribute '" + std::string(name) + "' of '" + TypeName(obj) + "' object is unsafe.");
}

inline Value CallDictMethod(const Value& obj, const std::string& method, CallArgs& args) {
  const std::string fn = "dict." + method;
  const DictEntries& d = obj.dict();
  if (method == "get") {
    Params p(fn, args, {"key", "default"});
    p.Require(0);
    RequireHashable(p[0]);
    const Value* v = DictFind(d, p[0]);
    return v != nullptr ? *v : p.get(1, Value::None());
  }
  if (method == "items") {
    NoArgs(fn, args);
    ValueList out;
    for (const auto& [k, v] : d.items) out.push_back(Value::Tuple({k, v}));
    return Value::List(std::move(out));
  }
  if (method == "keys" || method == "values") {
    NoArgs(fn, args);
    ValueList out;
    for (const auto& [k, v] : d.items) out.push_back(method == "keys" ? k : v);
    return Value::List(std::move(out));
  }
  if (method == "copy") return NoArgs(fn, args), Value::Dict(d);
  if (method == "fromkeys") Fail(TemplateError::Kind::kUnsupported, "dict.fromkeys() is not supported");
  UnsafeFail(obj, method);
}

inline Value CallListMethod(const Value& obj, const std::string& method, CallArgs& args) {
  const std::string fn = TypeName(obj) + "." + method;
  const ValueList& items = obj.items();
  if (method == "count") {
    Params p(fn, args, {"value"});
    p.Require(0);
    return Value(static_cast<int64_t>(
        std::count_if(items.begin(), items.end(), [&](const Value& v) { return Equals(v, p[0]); })));
  }
  if (method == "index") {
    Params p(fn, args, {"value", "start", "stop"});
    p.Require(0);
    auto [b, e] = SubRange(p, 1, items.size());
    for (size_t i = b; i < e; ++i) {
      if (Equals(items[i], p[0])) return Value(static_cast<int64_t>(i));
    }
    Fail(TemplateError::Kind::kValue, Repr(p[0]) + " is not in " + TypeName(obj));
  }
  if (method == "copy") return NoArgs(fn, args), Value::List(items);
  UnsafeFail(obj, method);
}

// A bound method as a callable value.
inline Value BoundMethod(const Value& obj, std::string name) {
  std::string label = TypeName(obj) + "." + name;
  return Value::Function(label, [obj, name](CallArgs& args) -> Value {
    if (obj.is_string()) return CallStringMethod(obj.str(), name, args);
    if (obj.is_dict()) return CallDictMethod(obj, name, args);
    return CallListMethod(obj, name, args);
  });
}

// An undefined value that raises when used, with Jinja's message.
inline Value MissingAttribute(const Value& obj, const Value& name) {
  if (!name.is_string()) return Value::Undefined(ObjectTypeRepr(obj) + " has no element " + Repr(name));
  return Value::Undefined("'" + ObjectTypeRepr(obj) + "' has no attribute " + StringRepr(name.str()));
}

// The immutable sandbox's answer for private attributes and methods that
// mutate a list or dict: an undefined value that raises SecurityError when
// used (and prints as nothing).
inline Value UnsafeAttribute(const Value& obj, const std::string& name) {
  return Value::Undefined(std::string(kUnsafeUndefinedPrefix) + "access to attribute '" + name + "' of '" +
                          TypeName(obj) + "' object is unsafe.");
}

inline bool IsUnsafeMethod(const Value& obj, std::string_view name) {
  static constexpr std::string_view kDict[] = {"clear", "pop", "popitem", "setdefault", "update"};
  static constexpr std::string_view kList[] = {"append", "clear", "extend", "insert", "pop", "remove", "reverse",
                                               "sort"};
  if (obj.is_dict()) return std::find(std::begin(kDict), std::end(kDict), name) != std::end(kDict);
  if (obj.is_list()) return std::find(std::begin(kList), std::end(kList), name) != std::end(kList);
  return false;
}

// The Python attribute `obj.name`, if it exists.
inline std::optional<Value> PythonAttribute(const Value& obj, const std::string& name) {
  if (!name.empty() && name[0] == '_') return UnsafeAttribute(obj, name);
  switch (obj.kind()) {
    case Value::Kind::kString:
      if (IsStringMethod(name)) return BoundMethod(obj, name);
      return std::nullopt;
    case Value::Kind::kDict:
      if (IsUnsafeMethod(obj, name)) return UnsafeAttribute(obj, name);
      if (IsDictMethod(name)) return BoundMethod(obj, name);
      return std::nullopt;
    case Value::Kind::kList:
    case Value::Kind::kTuple:
      if (IsUnsafeMethod(obj, name)) return UnsafeAttribute(obj, name);
      if (IsListMethod(name, obj.is_tuple())) return BoundMethod(obj, name);
      return std::nullopt;
    case Value::Kind::kObject: return obj.object().GetAttr(name);
    default: return std::nullopt;
  }
}

// Jinja's Environment.getattr: `obj.name`.
inline Value GetAttr(const Value& obj, const std::string& name) {
  if (obj.is_undefined()) FailUndefined(obj);
  if (std::optional<Value> attr = PythonAttribute(obj, name)) return *attr;
  if (obj.is_dict()) {
    if (const Value* v = DictFindString(obj.dict(), name)) return *v;
  }
  return MissingAttribute(obj, Value(name));
}

// Jinja's Environment.getitem: `obj[key]`.
inline Value GetItem(const Value& obj, const Value& key) {
  if (obj.is_undefined()) FailUndefined(obj);
  switch (obj.kind()) {
    case Value::Kind::kDict:
      if (const Value* v = DictFind(obj.dict(), key)) return *v;
      break;
    case Value::Kind::kList:
    case Value::Kind::kTuple:
    case Value::Kind::kString:
      if (IsIntLike(key)) {
        int64_t n = obj.is_string() ? static_cast<int64_t>(unicode::Length(obj.str()))
                                    : static_cast<int64_t>(obj.items().size());
        int64_t i = key.as_integer();
        if (i < 0) i += n;
        if (i >= 0 && i < n) {
          if (!obj.is_string()) return obj.items()[static_cast<size_t>(i)];
          std::string one;
          unicode::Append(one, unicode::Decode(obj.str())[static_cast<size_t>(i)]);
          return Value(std::move(one));
        }
      }
      break;
    default: break;
  }
  if (key.is_string()) {
    if (std::optional<Value> attr = PythonAttribute(obj, key.str())) return *attr;
  }
  return MissingAttribute(obj, key);
}

inline Value CallValue(const Value& callee, CallArgs& args) {
  if (callee.is_callable()) return callee.callable().fn(args);
  if (callee.is_undefined()) FailUndefined(callee);
  TypeFail("'" + TypeName(callee) + "' object is not callable");
}

}  // namespace spatialid::text::jinja::internal
