// Jinja2's built-in filters, tests and global functions.
//
// Each follows jinja2/filters.py, tests.py and defaults.py (3.1): `trim` is
// Python's `str.strip`, the `title` filter is Jinja's own word split (not
// `str.title`), `unique` and `sort` ignore case by default, `selectattr`,
// `map`, `select`, `unique` and `reverse` of a list return one-shot
// generators (truthy even when empty, no `length`), `default` replaces only
// undefined values unless its second argument is true. `tojson` is the one
// transformers installs for chat templates (`json.dumps` with
// ensure_ascii=False and the given indent/separators/sort_keys), not Jinja's
// HTML-safe one. Filters that chat templates do not use (truncate, wordwrap,
// urlize, groupby, batch, ...) exist as names so a template parses, and fail
// with a clear message if actually called.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "spatialid/text/jinja_runtime.h"
#include "spatialid/text/jinja_unicode.h"
#include "spatialid/text/jinja_value.h"

namespace spatialid::text::jinja::internal {

struct FilterContext;
using FilterFn = Value (*)(const FilterContext&, const Value&, CallArgs&);
using TestFn = bool (*)(const FilterContext&, const Value&, CallArgs&);

// Lets filters such as map('upper') and select('odd') call other filters
// and tests by name.
struct FilterContext {
  const std::map<std::string, FilterFn, std::less<>>* filters;
  const std::map<std::string, TestFn, std::less<>>* tests;

  Value CallFilter(const std::string& name, const Value& input, CallArgs& args) const {
    auto it = filters->find(name);
    if (it == filters->end()) Fail(TemplateError::Kind::kAssertion, "No filter named '" + name + "'.");
    return it->second(*this, input, args);
  }
  bool CallTest(const std::string& name, const Value& input, CallArgs& args) const {
    auto it = tests->find(name);
    if (it == tests->end()) Fail(TemplateError::Kind::kAssertion, "No test named '" + name + "'.");
    return it->second(*this, input, args);
  }
};

// ---------------------------------------------------------------------------
// Helpers shared by filters.

// Jinja's make_attrgetter: "a.b.0" looked up with getitem part by part.
inline Value LookupAttributePath(const Value& item, const Value& attribute, const Value* default_value) {
  if (attribute.is_none() || attribute.is_undefined()) return item;
  std::vector<Value> parts;
  if (attribute.is_string()) {
    const std::string& path = attribute.str();
    size_t start = 0;
    while (true) {
      size_t dot = path.find('.', start);
      std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
      bool digits = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
      parts.push_back(digits ? Value(static_cast<int64_t>(std::stoll(part))) : Value(part));
      if (dot == std::string::npos) break;
      start = dot + 1;
    }
  } else {
    parts.push_back(attribute);
  }
  Value v = item;
  for (const Value& part : parts) {
    v = GetItem(v, part);
    if (default_value != nullptr && v.is_undefined()) v = *default_value;
  }
  return v;
}

inline Value IgnoreCase(const Value& v) { return v.is_string() ? Value(unicode::Lower(v.str())) : v; }

inline std::string HtmlEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

// Python's float(str): strips whitespace, allows underscores between digits.
inline std::optional<double> ParsePythonFloat(const std::string& text) {
  std::string s = StripImpl(text, {}, true, true, true);
  std::string clean;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '_') {
      bool ok = i > 0 && i + 1 < s.size() && std::isdigit(static_cast<unsigned char>(s[i - 1])) &&
                std::isdigit(static_cast<unsigned char>(s[i + 1]));
      if (!ok) return std::nullopt;
      continue;
    }
    clean.push_back(s[i]);
  }
  if (clean.empty()) return std::nullopt;
  std::string lower = unicode::Lower(clean);
  std::string body = (lower[0] == '+' || lower[0] == '-') ? lower.substr(1) : lower;
  if (body == "inf" || body == "infinity" || body == "nan") {
    double v = body == "nan" ? std::nan("") : INFINITY;
    return lower[0] == '-' ? -v : v;
  }
  for (char c : body) {
    if (!(std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == 'e' || c == '+' || c == '-')) {
      return std::nullopt;
    }
  }
  char* end = nullptr;
  double v = std::strtod(clean.c_str(), &end);
  if (end == nullptr || *end != '\0') return std::nullopt;
  return v;
}

// Python's int(str, base).
inline std::optional<int64_t> ParsePythonInt(const std::string& text, int64_t base) {
  std::string s = StripImpl(text, {}, true, true, true);
  bool negative = false;
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) negative = s[i++] == '-';
  auto prefix_base = [&](char c) -> int64_t {
    c = static_cast<char>(c | 0x20);
    return c == 'x' ? 16 : c == 'o' ? 8 : c == 'b' ? 2 : 0;
  };
  if (i + 1 < s.size() && s[i] == '0' && prefix_base(s[i + 1]) != 0 &&
      (base == 0 || base == prefix_base(s[i + 1]))) {
    base = prefix_base(s[i + 1]);
    i += 2;
    if (i < s.size() && s[i] == '_') ++i;
  } else if (base == 0) {
    base = 10;
    if (s.size() - i > 1 && s[i] == '0') {
      for (size_t k = i; k < s.size(); ++k) {
        if (s[k] != '0' && s[k] != '_') return std::nullopt;
      }
    }
  }
  if (base < 2 || base > 36 || i >= s.size()) return std::nullopt;
  int64_t value = 0;
  bool prev_underscore = true;
  for (; i < s.size(); ++i) {
    char c = s[i];
    if (c == '_') {
      if (prev_underscore) return std::nullopt;
      prev_underscore = true;
      continue;
    }
    int d = (c >= '0' && c <= '9') ? c - '0' : ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ? (c | 0x20) - 'a' + 10 : 99;
    if (d >= base) return std::nullopt;
    if (__builtin_mul_overflow(value, base, &value) || __builtin_add_overflow(value, d, &value)) {
      IntOverflow();
    }
    prev_underscore = false;
  }
  if (prev_underscore) return std::nullopt;
  return negative ? -value : value;
}

inline double PythonRound(double x, int64_t digits) {
  if (!std::isfinite(x)) return x;
  if (digits == 0) return std::nearbyint(x);
  if (digits > 0 && digits < 300) {
    char buf[400];
    std::snprintf(buf, sizeof(buf), "%.*f", static_cast<int>(digits), x);
    return std::strtod(buf, nullptr);
  }
  double scale = std::pow(10.0, static_cast<double>(-digits));
  return std::nearbyint(x / scale) * scale;
}

// Sorts by Python's `<` on keys; stable like sorted().
inline void SortByKey(ValueList& items, const std::vector<Value>& keys, bool reverse) {
  std::vector<size_t> order(items.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return reverse ? Less(keys[b], keys[a]) : Less(keys[a], keys[b]);
  });
  ValueList sorted;
  sorted.reserve(items.size());
  for (size_t i : order) sorted.push_back(items[i]);
  items = std::move(sorted);
}

[[noreturn]] inline void FilterUnsupported(std::string_view name) {
  Fail(TemplateError::Kind::kUnsupported,
       "the '" + std::string(name) + "' filter is not supported by spatialid's Jinja interpreter");
}

// ---------------------------------------------------------------------------
// Filters.

namespace filters {

inline Value Abs(const FilterContext&, const Value& v, CallArgs& a) {
  NoArgs("abs", a);
  if (v.is_float()) return Value(std::fabs(v.as_float()));
  if (IsIntLike(v)) {
    if (v.as_integer() == INT64_MIN) IntOverflow();
    return Value(v.as_integer() < 0 ? -v.as_integer() : v.as_integer());
  }
  if (v.is_undefined()) FailUndefined(v);
  TypeFail("bad operand type for abs(): '" + TypeName(v) + "'");
}

inline Value Attr(const FilterContext&, const Value& v, CallArgs& a) {
  Params p("attr", a, {"name"});
  p.Require(0);
  std::string name = Str(p[0]);
  if (v.is_undefined()) FailUndefined(v);
  if (std::optional<Value> attr = PythonAttribute(v, name)) return *attr;
  return MissingAttribute(v, Value(name));
}

inline Value Capitalize(const FilterContext&, const Value& v, CallArgs& a) {
  NoArgs("capitalize", a);
  return Value(unicode::Capitalize(Str(v)));
}

inline Value Center(const FilterContext&, const Value& v, CallArgs& a) {
  Params p("center", a, {"width"});
  CallArgs inner;
  inner.positional.push_back(p.get(0, Value(int64_t{80})));
  return CallStringMethod(Str(v), "center", inner);
}

inline Value Length(const FilterContext&, const Value& v, CallArgs& a) {
  NoArgs("length", a);
  return Value(Len(v));
}

inline Value Default(const FilterContext&, const Value& v, CallArgs& a) {
  Params p("default", a, {"default_value", "boolean"});
  bool boolean = Truthy(p.get(1, Value(false)));
  if (v.is_undefined() || (boolean && !Truthy(v))) return p.get(0, Value(""));
  return v;
}

inline Value DictSort(const FilterContext&, const Value& v, CallArgs& a) {
  Params p("dictsort", a, {"case_sensitive", "by", "reverse"});
  bool case_sensitive = Truthy(p.get(0, Value(false)));
  std::string by = p.String(1, "key");
  if (by != "key" && by != "value") {
    Fail(TemplateError::Kind::kValue, "You can only sort by either \"key\" or \"value\"");
  }
  if (!v.is_dict()) TypeFail("dictsort expects a mapping, not " + TypeName(v));
  ValueList items;
  std::vector<Value> keys;
  for (const auto& [k, val] : v.dict().items) {
    items.push_back(Value::Tuple({k, val}));
    const Value& key = by == "key" ? k : val;
    keys.push_back(case_sensitive ? key : IgnoreCase(key));
  }
  SortByKey(items, keys, Truthy(p.get(2, Value(false))));
  return Value::List(std::move(items));
}

inline Value Escape(const FilterContext&, const Value& v, CallArgs& a) {
  NoArgs("escape", a);
  return Value(HtmlEscape(Str(v)));
}

inline Value First(const FilterContext&, const Value& v, CallArgs& a) {
  NoArgs("first", a);
  if (v.is_iterator()) {
    IteratorState& it = v.iterator();
    if (it.position < it.items.size()) return it.items[it.position++];
  } else {
    ValueList items = Iterate(v);
    if (!items.empty()) return items.front();
  }
  return Value::Undefined("No first item, sequence was empty.");
}

inline Value Float(const FilterContext&, const Value& v, CallArgs& a) {
  Params p("float", a, {"default"});
  Value fallback = p.get(0, Value(0.0));
  if (v.is_undefined()) FailUndefined(v);  // float(Undefined) raises
  if (v.is_number()) return Value(v.as_double());
  if (v.is_string()) {
    if (std::optional<double> d = ParsePythonFloat(v.str())) return Value(*d);
  }
  return fallback;
}

inline Value Format(const FilterContext&, const Value& v, CallArgs& a) {
  if (!a.positional.empty() && !a.keyword.empty()) {
    Fail(TemplateError::Kind::kValue, "can't handle positional and keyword arguments at the same time");
  }
  if (!a.keyword.empty()) {
    DictEntries d;
    for (const auto& [k, val] : a.keyword) DictSet(d, Value(k), val);
    return Value(PercentFormat(Str(v), Value::Dict(std::move(d))));
  }
  return Value(PercentFormat(Str(v), Value::Tuple(a.positional)));
}

inline Value Indent(const FilterContext&, const Value& v, CallArgs& a) {
  Params p("indent", a, {"width", "first", "blank"});
  Value width = p.get(0, Value(int64_t{4}));
  std::string indention = width.is_string() ? width.str() : std::string(static_cast<size_t>(std::max<int64_t>(0, p.Int(0, 4))), ' ');
  bool first = Truthy(p.get(1, Value(false)));
  bool blank = Truthy(p.get(2, Value(false)));
  // do_indent appends "\n" to its input, so only strings work.
  if (v.is_undefined()) FailUndefined(v);
  if (!v.is_string()) TypeFail("unsupported operand type(s) for +=: '" + TypeName(v) + "' and 'str'");
  std::string s = v.str() + "\n";
  ValueList lines = SplitLines(s, false).items();
  std::string rv;
  if (blank) {
    for (size_t i = 0; i < lines.size(); ++i) {
      if (i > 0) rv += "\n" + indention;
      rv += lines[i].str();
    }
  } else {
    rv = lines.empty() ? "" : lines[0].str();
    for (size_t i = 1; i < lines.size(); ++i) {
      rv += "\n";
      if (!lines[i].str().empty()) rv += indention;
      rv += lines[i].str();
    }
  }
  if (first) rv = indention + rv;
  return Value(std::move(rv));
}

inline Value Int(const FilterContext&, const Value& v, CallArgs& a) {
  Params p("int", a, {"default", "base"});
  Value fallback = p.get(0, Value(int64_t{0}));
  int64_t base = p.Int(1, 10);
  if (v.is_undefined()) FailUndefined(v);  // int(Undefined) raises
  if (v.is_string()) {
    if (std::optional<int64_t> i = ParsePythonInt(v.str(), base)) return Value(*i);
    if (std::optional<double> d = ParsePythonFloat(v.str())) {
      if (!std::isfinite(*d)) return fallback;
      if (std::fabs(*d) >= 9.2e18) IntOverflow();
      return Value(static_cast<int64_t>(std::trunc(*d)));
    }
    return fallback;
  }
  if (IsIntLike(v)) return Value(v.as_integer());
  if (v.is_float()) {
    double d = v.as_float();
    if (std::isnan(d) || std::isinf(d)) return fallback;  // ValueError / OverflowError in int()
    if (std::fabs(d) >= 9.2e18) IntOverflow();  // Python gives a big int
    return Value(static_cast<int64_t>(std::trunc(d)));
  }
  return fallback;
}

inline Value Items(const FilterContext&, const Value& v, CallArgs& a) {
  NoArgs("items", a);
  if (v.is_undefined()) return Value::Iterator("do_items", {});
  if (!v.is_dict()) TypeFail("Can only get item pairs from a mapping.");
  ValueList out;
  for (const auto& [k, val] : v.dict().items) out.push_back(Value::Tuple({k, val}));
  return Value::Iterator("do_items", std::move(out));
}

inline Value Join(const FilterContext&, const Value& v, CallArgs& a) {
  Params p("join", a, {"d", "attribute"});
  std::string sep = Str(p.get(0, Value("")));
  ValueList items = Iterate(v);
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += sep;
    out += Str(p.absent(1) ? items[i] : LookupAttributePath(items[i], p[1], nullptr));
  }
  return Value(std::move(out));
}

inline Value Last(const FilterContext&, const Value& v, CallArgs& a) {
  NoArgs("last", a);
  if (v.is_iterator()) TypeFail("'generator' object is not reversible");
  ValueList items = Iterate(v);
  if (items.empty()) return Value::Undefined("No last item, sequence was empty.");
  return items.back();
}

inline Value List(const FilterContext&, const Value& v, CallArgs& a) {
  NoArgs("list", a);
  return Value::List(Iterate(v));
}

inline Value Lower(const FilterContext&, const Value& v, CallArgs& a) {
  NoArgs("lower", a);
  return Value(unicode::Lower(Str(v)));
}

inline Value Upper(const FilterContext&, const Value& v, CallArgs& a) {
  NoArgs("upper", a);
  return Value(unicode::Upper(Str(v)));
}

inline Value Map(const FilterContext& ctx, const Value& v, CallArgs& a) {
  ValueList out;
  if (!Truthy(v)) return Value::Iterator("do_map", {});  // `if value:` in sync_do_map
  ValueList items = Iterate(v);
  bool by_attribute = a.positional.empty() &&
                      std::any_of(a.keyword.begin(), a.keyword.end(), [](const auto& kv) { return kv.first == "attribute"; });
  if (by_attribute) {
    Value attribute, fallback;
    bool has_default = false;
    for (const auto& [key, value] : a.keyword) {
      if (key == "attribute") {
        attribute = value;
      } else if (key == "default") {
        fallback = value;
        has_default = !value.is_none();
      } else {
        Fail(TemplateError::Kind::kValue, "Unexpected keyword argument '" + key + "'");
      }
    }
    for (const Value& item : items) out.push_back(LookupAttributePath(item, attribute, has_default ? &fallback : nullptr));
  } else {
    if (a.positional.empty()) Fail(TemplateError::Kind::kValue, "map requires a filter argument");
    std::string name = Str(a.positional[0]);
    for (const Value& item : items) {
      CallArgs inner;
      inner.positional.assign(a.positional.begin() + 1, a.positional.end());
      inner.keyword = a.keyword;
      out.push_back(ctx.CallFilter(name, item, inner));
    }
  }
  return Value::Iterator("do_map", std::move(out));
}

inline Value SelectOrReject(const FilterContext& ctx, const Value& v, CallArgs& a, bool select, bool lookup_attr,
                            const char* name) {
  ValueList out;
  if (!Truthy(v) && !v.is_iterator()) return Value::Iterator(name, {});
  size_t off = 0;
  Value attribute;
  if (lookup_attr) {
    if (a.positional.empty()) Fail(TemplateError::Kind::kValue, "Missing parameter for attribute name");
    attribute = a.positional[0];
    off = 1;
  }
  bool has_test = a.positional.size() > off;
  std::string test = has_test ? Str(a.positional[off]) : "";
  for (const Value& item : Iterate(v)) {
    Value target = lookup_attr ? LookupAttributePath(item, attribute, nullptr) : item;
    bool ok;
    if (has_test) {
      CallArgs inner;
      inner.positional.assign(a.positional.begin() + static_cast<std::ptrdiff_t>(off + 1), a.positional.end());
      inner.keyword = a.keyword;
      ok = ctx.CallTest(test, target, inner);
    } else {
      ok = Truthy(target);
    }
    if (ok == select) out.push_back(item);
  }
  return Value::Iterator(name, std::move(out));
}

inline Value Select(const FilterContext& c, const Value& v, CallArgs& a) {
  return SelectOrReject(c, v, a, true, false, "select_or_reject");
}
inline Value Reject(const FilterContext& c, const Value& v, CallArgs& a) {
  return SelectOrReject(c, v, a, false, false, "select_or_reject");
}
inline Value SelectAttr(const FilterContext& c, const Value& v, CallArgs& a) {
  return SelectOrReject(c, v, a, true, true, "select_or_reject");
}
inline Value RejectAttr(const FilterContext& c, const Value& v, CallArgs& a) {
  return SelectOrReject(c, v, a, false, true, "select_or_reject");
}

inline Value MinMax(const Value& v, CallArgs& a, bool max, const char* name) {
  Params p(name, a, {"case_sensitive", "attribute"});
  bool case_sensitive = Truthy(p.get(0, Value(false)));
  ValueList items = Iterate(v);
  if (items.empty()) return Value::Undefined("No aggregated item, sequence was empty.");
  auto key = [&](const Value& item) {
    Value k = LookupAttributePath(item, p[1], nullptr);
    return case_sensitive ? k : IgnoreCase(k);
  };
  size_t best = 0;
  Value best_key = key(items[0]);
  for (size_t i = 1; i < items.size(); ++i) {
    Value k = key(items[i]);
    if (max ? Less(best_key, k) : Less(k, best_key)) {
      best = i;
      best_key = k;
    }
  }
  return items[best];
}

inline Value Max(const FilterContext&, const Value& v, CallArgs& a) { return MinMax(v, a, true, "max"); }
inline Value Min(const FilterContext&, const Value& v, CallArgs& a) { return MinMax(v, a, false, "min"); }

inline Value Replace(const FilterContext&, const Value& v, CallArgs& a) {
  Params p("replace", a, {"old", "new", "count"});
  p.Require(0);
  p.Require(1);
  int64_t count = p.absent(2) ? -1 : p.Int(2, -1);
  return Value(ReplaceImpl(Str(v), Str(p[0]), Str(p[1]), count));
}

inline Value Reverse(const FilterContext&, const Value& v, CallArgs& a) {
  NoArgs("reverse", a);
  if (v.is_string()) {
    std::u32string cps = unicode::Decode(v.str());
    std::reverse(cps.begin(), cps.end());
    return Value(unicode::Encode(cps));
  }
  ValueList items = Iterate(v);
  std::reverse(items.begin(), items.end());
  if (v.is_iterator()) return Value::List(std::move(items));
  return Value::Iterator("reversed", std::move(items));
}

inline Value Round(const FilterContext&, const Value& v, CallArgs& a) {
  Params p("round", a, {"precision", "method"});
  int64_t precision = p.Int(0, 0);
  std::string method = p.String(1, "common");
  if (method != "common" && method != "ceil" && method != "floor") {
    Fail(TemplateError::Kind::kValue, "method must be common, ceil or floor");
  }
  if (!v.is_number()) {
    if (v.is_undefined()) FailUndefined(v);
    TypeFail("type " + TypeName(v) + " doesn't define __round__ method");
  }
  if (method == "common") {
    if (IsIntLike(v) && precision >= 0) return Value(v.as_integer());
    return Value(PythonRound(v.as_double(), precision));
  }
  double scale = std::pow(10.0, static_cast<double>(precision));
  double x = v.as_double() * scale;
  return Value((method == "ceil" ? std::ceil(x) : std::floor(x)) / scale);
}

inline Value Safe(const FilterContext&, const Value& v, CallArgs& a) {
  NoArgs("safe", a);
  return Value(Str(v));
}

inline Value Sort(const FilterContext&, const Value& v, CallArgs& a) {
  Params p("sort", a, {"reverse", "case_sensitive", "attribute"});
  bool reverse = Truthy(p.get(0, Value(false)));
  bool case_sensitive = Truthy(p.get(1, Value(false)));
  ValueList items = Iterate(v);
  std::vector<Value> attributes;
  if (!p.absent(2)) {
    if (p[2].is_string()) {
      // make_multi_attrgetter: "age,name" sorts by several attributes.
      const std::string& spec = p[2].str();
      size_t start = 0;
      while (true) {
        size_t comma = spec.find(',', start);
        attributes.emplace_back(spec.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
    } else {
      attributes.push_back(p[2]);
    }
  }
  std::vector<Value> keys;
  for (const Value& item : items) {
    auto key_of = [&](const Value& attr) {
      Value k = LookupAttributePath(item, attr, nullptr);
      return case_sensitive ? k : IgnoreCase(k);
    };
    if (attributes.size() > 1) {
      ValueList parts;
      for (const Value& attr : attributes) parts.push_back(key_of(attr));
      keys.push_back(Value::List(std::move(parts)));
    } else {
      keys.push_back(key_of(attributes.empty() ? Value::None() : attributes[0]));
    }
  }
  SortByKey(items, keys, reverse);
  return Value::List(std::move(items));
}

inline Value String(const FilterContext&, const Value& v, CallArgs& a) {
  NoArgs("string", a);
  return Value(Str(v));
}

inline Value Sum(const FilterContext&, const Value& v, CallArgs& a) {
  Params p("sum", a, {"attribute", "start"});
  Value total = p.get(1, Value(int64_t{0}));
  for (const Value& item : Iterate(v)) {
    total = BinaryOp("+", total, p.absent(0) ? item : LookupAttributePath(item, p[0], nullptr));
  }
  return total;
}

// Jinja's title filter: words split at whitespace, '-', '(', '{', '[', '<'.
inline Value Title(const FilterContext&, const Value& v, CallArgs& a) {
  NoArgs("title", a);
  std::u32string cps = unicode::Decode(Str(v));
  auto is_sep = [](char32_t c) {
    return unicode::IsSpace(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<';
  };
  std::string out;
  size_t i = 0;
  while (i < cps.size()) {
    size_t j = i;
    bool sep = is_sep(cps[i]);
    while (j < cps.size() && is_sep(cps[j]) == sep) ++j;
    std::u32string_view item = std::u32string_view(cps).substr(i, j - i);
    if (sep) {
      out += unicode::Encode(item);
    } else {
      out += unicode::Upper(unicode::Encode(item.substr(0, 1)));
      out += unicode::Lower(unicode::Encode(item.substr(1)));
    }
    i = j;
  }
  return Value(std::move(out));
}

// transformers' tojson: json.dumps(x, ensure_ascii=False, indent, separators, sort_keys).
inline Value ToJson(const FilterContext&, const Value& v, CallArgs& a) {
  Params p("tojson", a, {"ensure_ascii", "indent", "separators", "sort_keys"});
  JsonDumpOptions opt;
  opt.ensure_ascii = Truthy(p.get(0, Value(false)));
  if (!p.absent(1)) {
    const Value& indent = p[1];
    if (indent.is_string()) {
      opt.indent = indent.str();
    } else if (IsIntLike(indent)) {
      opt.indent = std::string(static_cast<size_t>(std::max<int64_t>(0, indent.as_integer())), ' ');
    } else {
      TypeFail("indent must be an int or a str");
    }
    opt.item_separator = ",";
  }
  if (!p.absent(2)) {
    const Value& seps = p[2];
    if (!seps.is_sequence() || seps.items().size() != 2 || !seps.items()[0].is_string() ||
        !seps.items()[1].is_string()) {
      TypeFail("separators must be a (item_separator, key_separator) pair of strings");
    }
    opt.item_separator = seps.items()[0].str();
    opt.key_separator = seps.items()[1].str();
  }
  opt.sort_keys = Truthy(p.get(3, Value(false)));
  return Value(DumpJson(v, opt));
}

inline Value Trim(const FilterContext&, const Value& v, CallArgs& a) {
  Params p("trim", a, {"chars"});
  bool ws = p.absent(0);
  return Value(StripImpl(Str(v), ws ? std::u32string() : unicode::Decode(Str(p[0])), ws, true, true));
}

inline Value Unique(const FilterContext&, const Value& v, CallArgs& a) {
  Params p("unique", a, {"case_sensitive", "attribute"});
  bool case_sensitive = Truthy(p.get(0, Value(false)));
  ValueList out, seen;
  for (const Value& item : Iterate(v)) {
    Value key = LookupAttributePath(item, p[1], nullptr);
    if (!case_sensitive) key = IgnoreCase(key);
    RequireHashable(key);  // Jinja keeps a set of seen keys
    if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return Equals(s, key); })) {
      seen.push_back(key);
      out.push_back(item);
    }
  }
  return Value::Iterator("sync_do_unique", std::move(out));
}

inline Value WordCount(const FilterContext&, const Value& v, CallArgs& a) {
  NoArgs("wordcount", a);
  int64_t n = 0;
  bool in_word = false;
  for (char32_t c : unicode::Decode(Str(v))) {
    bool w = c == '_' || unicode::IsAlnum(c);
    if (w && !in_word) ++n;
    in_word = w;
  }
  return Value(n);
}

#define SPATIALID_JINJA_UNSUPPORTED_FILTER(fn, name) \
  inline Value fn(const FilterContext&, const Value&, CallArgs&) { FilterUnsupported(name); }
SPATIALID_JINJA_UNSUPPORTED_FILTER(Batch, "batch")
SPATIALID_JINJA_UNSUPPORTED_FILTER(FileSizeFormat, "filesizeformat")
SPATIALID_JINJA_UNSUPPORTED_FILTER(ForceEscape, "forceescape")
SPATIALID_JINJA_UNSUPPORTED_FILTER(GroupBy, "groupby")
SPATIALID_JINJA_UNSUPPORTED_FILTER(PPrint, "pprint")
SPATIALID_JINJA_UNSUPPORTED_FILTER(Random, "random")
SPATIALID_JINJA_UNSUPPORTED_FILTER(SliceFilter, "slice")
SPATIALID_JINJA_UNSUPPORTED_FILTER(StripTags, "striptags")
SPATIALID_JINJA_UNSUPPORTED_FILTER(Truncate, "truncate")
SPATIALID_JINJA_UNSUPPORTED_FILTER(UrlEncode, "urlencode")
SPATIALID_JINJA_UNSUPPORTED_FILTER(Urlize, "urlize")
SPATIALID_JINJA_UNSUPPORTED_FILTER(WordWrap, "wordwrap")
SPATIALID_JINJA_UNSUPPORTED_FILTER(XmlAttr, "xmlattr")
#undef SPATIALID_JINJA_UNSUPPORTED_FILTER

}  // namespace filters

inline const std::map<std::string, FilterFn, std::less<>>& BuiltinFilters() {
  static const auto* table = new std::map<std::string, FilterFn, std::less<>>{
      {"abs", filters::Abs},
      {"attr", filters::Attr},
      {"batch", filters::Batch},
      {"capitalize", filters::Capitalize},
      {"center", filters::Center},
      {"count", filters::Length},
      {"d", filters::Default},
      {"default", filters::Default},
      {"dictsort", filters::DictSort},
      {"e", filters::Escape},
      {"escape", filters::Escape},
      {"filesizeformat", filters::FileSizeFormat},
      {"first", filters::First},
      {"float", filters::Float},
      {"forceescape", filters::ForceEscape},
      {"format", filters::Format},
      {"groupby", filters::GroupBy},
      {"indent", filters::Indent},
      {"int", filters::Int},
      {"items", filters::Items},
      {"join", filters::Join},
      {"last", filters::Last},
      {"length", filters::Length},
      {"list", filters::List},
      {"lower", filters::Lower},
      {"map", filters::Map},
      {"max", filters::Max},
      {"min", filters::Min},
      {"pprint", filters::PPrint},
      {"random", filters::Random},
      {"reject", filters::Reject},
      {"rejectattr", filters::RejectAttr},
      {"replace", filters::Replace},
      {"reverse", filters::Reverse},
      {"round", filters::Round},
      {"safe", filters::Safe},
      {"select", filters::Select},
      {"selectattr", filters::SelectAttr},
      {"slice", filters::SliceFilter},
      {"sort", filters::Sort},
      {"string", filters::String},
      {"striptags", filters::StripTags},
      {"sum", filters::Sum},
      {"title", filters::Title},
      {"tojson", filters::ToJson},
      {"trim", filters::Trim},
      {"truncate", filters::Truncate},
      {"unique", filters::Unique},
      {"upper", filters::Upper},
      {"urlencode", filters::UrlEncode},
      {"urlize", filters::Urlize},
      {"wordcount", filters::WordCount},
      {"wordwrap", filters::WordWrap},
      {"xmlattr", filters::XmlAttr},
  };
  return *table;
}

// ---------------------------------------------------------------------------
// Tests.

namespace tests {

inline const Value& OneArg(const char* name, CallArgs& a) {
  if (a.positional.size() != 1 || !a.keyword.empty()) {
    TypeFail(std::string(name) + "() takes exactly one argument");
  }
  return a.positional[0];
}

inline bool Boolean(const FilterContext&, const Value& v, CallArgs&) { return v.is_bool(); }
// Undefined defines __call__ (it raises when called), so it is callable.
inline bool CallableTest(const FilterContext&, const Value& v, CallArgs&) {
  return v.is_callable() || v.is_undefined();
}
inline bool Defined(const FilterContext&, const Value& v, CallArgs&) { return !v.is_undefined(); }
inline bool UndefinedTest(const FilterContext&, const Value& v, CallArgs&) { return v.is_undefined(); }
inline bool DivisibleBy(const FilterContext&, const Value& v, CallArgs& a) {
  return Equals(BinaryOp("%", v, OneArg("divisibleby", a)), Value(int64_t{0}));
}
inline bool Eq(const FilterContext&, const Value& v, CallArgs& a) { return Equals(v, OneArg("eq", a)); }
inline bool Ne(const FilterContext&, const Value& v, CallArgs& a) { return !Equals(v, OneArg("ne", a)); }
inline bool Lt(const FilterContext&, const Value& v, CallArgs& a) { return CompareOp("<", v, OneArg("lt", a)); }
inline bool Le(const FilterContext&, const Value& v, CallArgs& a) { return CompareOp("<=", v, OneArg("le", a)); }
inline bool Gt(const FilterContext&, const Value& v, CallArgs& a) { return CompareOp(">", v, OneArg("gt", a)); }
inline bool Ge(const FilterContext&, const Value& v, CallArgs& a) { return CompareOp(">=", v, OneArg("ge", a)); }
inline bool Escaped(const FilterContext&, const Value&, CallArgs&) { return false; }
inline bool Even(const FilterContext&, const Value& v, CallArgs&) {
  return Equals(BinaryOp("%", v, Value(int64_t{2})), Value(int64_t{0}));
}
inline bool Odd(const FilterContext&, const Value& v, CallArgs&) {
  return Equals(BinaryOp("%", v, Value(int64_t{2})), Value(int64_t{1}));
}
inline bool False(const FilterContext&, const Value& v, CallArgs&) { return v.is_bool() && !v.as_bool(); }
inline bool True(const FilterContext&, const Value& v, CallArgs&) { return v.is_bool() && v.as_bool(); }
inline bool FilterTest(const FilterContext& c, const Value& v, CallArgs&) {
  return v.is_string() && c.filters->count(v.str()) > 0;
}
inline bool TestTest(const FilterContext& c, const Value& v, CallArgs&) {
  return v.is_string() && c.tests->count(v.str()) > 0;
}
inline bool FloatTest(const FilterContext&, const Value& v, CallArgs&) { return v.is_float(); }
inline bool Integer(const FilterContext&, const Value& v, CallArgs&) { return v.is_int(); }
inline bool In(const FilterContext&, const Value& v, CallArgs& a) { return Contains(OneArg("in", a), v); }
inline bool Iterable(const FilterContext&, const Value& v, CallArgs&) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kString:
    case Value::Kind::kList:
    case Value::Kind::kTuple:
    case Value::Kind::kDict:
    case Value::Kind::kIterator: return true;
    default: return false;
  }
}
inline bool LowerTest(const FilterContext&, const Value& v, CallArgs&) { return unicode::AllLower(Str(v)); }
inline bool UpperTest(const FilterContext&, const Value& v, CallArgs&) { return unicode::AllUpper(Str(v)); }
inline bool Mapping(const FilterContext&, const Value& v, CallArgs&) { return v.is_dict(); }
inline bool None(const FilterContext&, const Value& v, CallArgs&) { return v.is_none(); }
inline bool Number(const FilterContext&, const Value& v, CallArgs&) { return v.is_number(); }
inline bool SameAs(const FilterContext&, const Value& v, CallArgs& a) {
  const Value& other = OneArg("sameas", a);
  if (v.kind() != other.kind()) return false;
  if (v.identity() != nullptr) return v.identity() == other.identity();
  return Equals(v, other);
}
inline bool Sequence(const FilterContext&, const Value& v, CallArgs&) {
  return v.is_undefined() || v.is_string() || v.is_sequence() || v.is_dict();
}
inline bool StringTest(const FilterContext&, const Value& v, CallArgs&) { return v.is_string(); }

}  // namespace tests

inline const std::map<std::string, TestFn, std::less<>>& BuiltinTests() {
  static const auto* table = new std::map<std::string, TestFn, std::less<>>{
      {"!=", tests::Ne},
      {"<", tests::Lt},
      {"<=", tests::Le},
      {"==", tests::Eq},
      {">", tests::Gt},
      {">=", tests::Ge},
      {"boolean", tests::Boolean},
      {"callable", tests::CallableTest},
      {"defined", tests::Defined},
      {"divisibleby", tests::DivisibleBy},
      {"eq", tests::Eq},
      {"equalto", tests::Eq},
      {"escaped", tests::Escaped},
      {"even", tests::Even},
      {"false", tests::False},
      {"filter", tests::FilterTest},
      {"float", tests::FloatTest},
      {"ge", tests::Ge},
      {"greaterthan", tests::Gt},
      {"gt", tests::Gt},
      {"in", tests::In},
      {"integer", tests::Integer},
      {"iterable", tests::Iterable},
      {"le", tests::Le},
      {"lessthan", tests::Lt},
      {"lower", tests::LowerTest},
      {"lt", tests::Lt},
      {"mapping", tests::Mapping},
      {"ne", tests::Ne},
      {"none", tests::None},
      {"number", tests::Number},
      {"odd", tests::Odd},
      {"sameas", tests::SameAs},
      {"sequence", tests::Sequence},
      {"string", tests::StringTest},
      {"test", tests::TestTest},
      {"true", tests::True},
      {"undefined", tests::UndefinedTest},
      {"upper", tests::UpperTest},
  };
  return *table;
}

// ---------------------------------------------------------------------------
// Global functions every Jinja environment has.

// namespace(): the one mutable object, for state that survives loop scopes.
class NamespaceObject : public Object {
 public:
  std::string TypeName() const override { return "Namespace"; }
  std::optional<Value> GetAttr(std::string_view name) override {
    if (const Value* v = DictFindString(attrs_, name)) return *v;
    return std::nullopt;
  }
  bool SetAttr(std::string_view name, const Value& value) override {
    DictSet(attrs_, Value(std::string(name)), value);
    return true;
  }
  std::string Repr() const override {
    // A namespace can hold itself; bound the recursion.
    static thread_local int depth = 0;
    if (depth > 16) return "<Namespace ...>";
    ++depth;
    std::string out = "<Namespace " + jinja::Repr(Value::Dict(attrs_)) + ">";
    --depth;
    return out;
  }

 private:
  DictEntries attrs_;
};

// Python's dict(*args, **kwargs) entries.
inline DictEntries DictFromArgs(std::string_view name, const CallArgs& a) {
  if (a.positional.size() > 1) TypeFail(std::string(name) + " expected at most 1 argument");
  DictEntries d;
  if (!a.positional.empty()) {
    const Value& src = a.positional[0];
    if (src.is_dict()) {
      d = src.dict();
    } else {
      for (const Value& pair : Iterate(src)) {
        ValueList kv = Iterate(pair);
        if (kv.size() != 2) Fail(TemplateError::Kind::kValue, "dictionary update sequence element has wrong length");
        DictSet(d, kv[0], kv[1]);
      }
    }
  }
  for (const auto& [k, v] : a.keyword) DictSet(d, Value(k), v);
  return d;
}

class CyclerObject : public Object, public std::enable_shared_from_this<CyclerObject> {
 public:
  explicit CyclerObject(ValueList items) : items_(std::move(items)) {}
  std::string TypeName() const override { return "Cycler"; }
  std::optional<Value> GetAttr(std::string_view name) override {
    if (name == "current") return items_[position_];
    if (name == "next") {
      return Value::Function("Cycler.next", [self = shared_from_this()](CallArgs& a) {
        NoArgs("next", a);
        Value v = self->items_[self->position_];
        self->position_ = (self->position_ + 1) % self->items_.size();
        return v;
      });
    }
    if (name == "reset") {
      return Value::Function("Cycler.reset", [self = shared_from_this()](CallArgs& a) {
        NoArgs("reset", a);
        self->position_ = 0;
        return Value::None();
      });
    }
    return std::nullopt;
  }
  std::string Repr() const override { return "<Cycler>"; }

 private:
  ValueList items_;
  size_t position_ = 0;
};

inline std::vector<std::pair<std::string, Value>> DefaultGlobals() {
  std::vector<std::pair<std::string, Value>> globals;
  globals.emplace_back("range", Value::Function("range", [](CallArgs& a) {
    if (!a.keyword.empty()) TypeFail("range() takes no keyword arguments");
    std::vector<int64_t> v;
    for (const Value& arg : a.positional) {
      if (!IsIntLike(arg)) TypeFail("'" + TypeName(arg) + "' object cannot be interpreted as an integer");
      v.push_back(arg.as_integer());
    }
    if (v.empty() || v.size() > 3) TypeFail("range expected 1 to 3 arguments, got " + std::to_string(v.size()));
    int64_t start = v.size() == 1 ? 0 : v[0], stop = v.size() == 1 ? v[0] : v[1], step = v.size() == 3 ? v[2] : 1;
    if (step == 0) Fail(TemplateError::Kind::kValue, "range() arg 3 must not be zero");
    double count = std::ceil((static_cast<double>(stop) - static_cast<double>(start)) / static_cast<double>(step));
    if (count > 100000) {
      Fail(TemplateError::Kind::kOverflow,
           "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
    }
    ValueList out;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) out.emplace_back(i);
    return Value::List(std::move(out));
  }));
  globals.emplace_back("dict", Value::Function("dict", [](CallArgs& a) { return Value::Dict(DictFromArgs("dict", a)); }));
  globals.emplace_back("namespace", Value::Function("namespace", [](CallArgs& a) {
    auto ns = std::make_shared<NamespaceObject>();
    for (const auto& [k, v] : DictFromArgs("namespace", a).items) ns->SetAttr(Str(k), v);
    return Value::FromObject(ns);
  }));
  globals.emplace_back("cycler", Value::Function("cycler", [](CallArgs& a) {
    if (a.positional.empty()) TypeFail("cycler() requires at least one item");
    return Value::FromObject(std::make_shared<CyclerObject>(a.positional));
  }));
  globals.emplace_back("joiner", Value::Function("joiner", [](CallArgs& a) {
    Params p("joiner", a, {"sep"});
    std::string sep = Str(p.get(0, Value(", ")));
    auto used = std::make_shared<bool>(false);
    return Value::Function("joiner", [sep, used](CallArgs& inner) {
      NoArgs("joiner", inner);
      if (!*used) {
        *used = true;
        return Value("");
      }
      return Value(sep);
    });
  }));
  globals.emplace_back("lipsum", Value::Function("lipsum", [](CallArgs&) -> Value {
    Fail(TemplateError::Kind::kUnsupported, "lipsum() is not supported by spatialid's Jinja interpreter");
  }));
  return globals;
}

}  // namespace spatialid::text::jinja::internal
