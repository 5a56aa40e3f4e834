// Reading JSON files (config.json, preprocessor_config.json, indexes) with
// errors a user can act on.
//
// `ReadJsonFile` / `ParseJson` report syntax errors as `file:line:column`.
// `JsonFields` reads typed fields out of one object: each call names a key
// and a destination that already holds the default, so a config struct's
// member initialisers are its defaults and an absent key keeps them (the way
// transformers' `__init__` defaults work). Type errors are collected rather
// than returned one by one; `status()` gives the first, spelled with the
// dotted path from the file's root:
//   config.json: text_config.hidden_size: expected an integer, got "4096"
//
// Example:
//   SPATIALID_ASSIGN_OR_RETURN(nlohmann::json j, ReadJsonFile(dir + "/config.json"));
//   JsonFields root(j, "config.json");
//   root.Get("image_token_index", &cfg.image_token_index);
//   JsonFields text = root.Child("text_config");
//   text.Get("hidden_size", &cfg.text_config.hidden_size);
//   SPATIALID_RETURN_IF_ERROR(root.status());
#pragma once

#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace spatialid::io {

// Config-like files are small; tokenizer.json files reach ~35 MB. Anything
// larger is not a file we mean to read.
inline constexpr size_t kMaxJsonFileBytes = 256u << 20;

// Deeper nesting than this is refused while parsing: configs are a few
// levels deep, and nlohmann copies and compares values recursively, so an
// unbounded depth would let a file exhaust the stack.
inline constexpr int kMaxJsonDepth = 256;

namespace json_internal {

inline absl::string_view AsAbsl(std::string_view s) { return {s.data(), s.size()}; }

// 1-based line and column of byte offset `pos` in `text`.
inline std::pair<size_t, size_t> LineColumn(std::string_view text, size_t pos) {
  pos = std::min(pos, text.size());
  size_t line = 1, col = 1;
  for (size_t i = 0; i < pos; ++i) {
    if (text[i] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
  return {line, col};
}

// Renders `j` into `out` up to about `budget` characters, descending at
// most a few levels (so a hostile, deeply nested value costs no stack).
inline void AppendPreview(const nlohmann::json& j, int depth, size_t budget, std::string* out) {
  if (out->size() > budget) return;
  if (j.is_array() || j.is_object()) {
    const bool arr = j.is_array();
    out->push_back(arr ? '[' : '{');
    if (depth >= 2 && !j.empty()) {
      out->append("...");
    } else {
      bool first = true;
      for (auto it = j.begin(); it != j.end() && out->size() <= budget; ++it) {
        if (!first) out->push_back(',');
        first = false;
        if (!arr) {
          out->append(nlohmann::json(it.key()).dump(-1, ' ', true,
                                                    nlohmann::json::error_handler_t::replace));
          out->push_back(':');
        }
        AppendPreview(*it, depth + 1, budget, out);
      }
    }
    out->push_back(arr ? ']' : '}');
  } else {
    out->append(j.dump(-1, ' ', /*ensure_ascii=*/true, nlohmann::json::error_handler_t::replace));
  }
}

// A short rendering of a JSON value for error messages.
inline std::string Preview(const nlohmann::json& j) {
  std::string s;
  AppendPreview(j, 0, 60, &s);
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

struct TooDeep {
  size_t dummy = 0;
};

}  // namespace json_internal

// Parses `text`; `name` (a file name) prefixes errors, which carry the line
// and column of the syntax error.
inline absl::StatusOr<nlohmann::json> ParseJson(std::string_view text, std::string_view name) {
  nlohmann::json::parser_callback_t limit_depth = [](int depth, nlohmann::json::parse_event_t event,
                                                     nlohmann::json&) {
    if ((event == nlohmann::json::parse_event_t::object_start ||
         event == nlohmann::json::parse_event_t::array_start) &&
        depth >= kMaxJsonDepth) {
      throw json_internal::TooDeep{};
    }
    return true;
  };
  try {
    return nlohmann::json::parse(text.begin(), text.end(), limit_depth);
  } catch (const json_internal::TooDeep&) {
    return absl::InvalidArgumentError(absl::StrCat(json_internal::AsAbsl(name),
                                                   ": invalid JSON: nested deeper than ",
                                                   kMaxJsonDepth, " levels"));
  } catch (const nlohmann::json::parse_error& e) {
    // e.byte is 1-based and points one past the offending character.
    const size_t at = e.byte > 0 ? e.byte - 1 : 0;
    auto [line, col] = json_internal::LineColumn(text, at);
    std::string what = e.what();
    // nlohmann prefixes "[json.exception.parse_error.101] parse error at line L, column C: ";
    // keep only the description after the location.
    if (size_t p = what.find(": "); p != std::string::npos) what = what.substr(p + 2);
    return absl::InvalidArgumentError(absl::StrCat(json_internal::AsAbsl(name), ":", line, ":",
                                                   col, ": invalid JSON: ", what));
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(json_internal::AsAbsl(name), ": invalid JSON: ", e.what()));
  }
}

inline absl::StatusOr<nlohmann::json> ReadJsonFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  const std::streamoff size = in.tellg();
  if (size < 0) return absl::InternalError(absl::StrCat(path, ": cannot read"));
  if (static_cast<uint64_t>(size) > kMaxJsonFileBytes) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", size, " bytes is larger than the ",
                                                   kMaxJsonFileBytes, "-byte limit for JSON"));
  }
  std::string text(static_cast<size_t>(size), '\0');
  in.seekg(0);
  if (!in.read(text.data(), size)) return absl::InternalError(absl::StrCat(path, ": read failed"));
  return ParseJson(text, path);
}

// Typed reads of one JSON object's fields; see the file comment. Children
// share their parent's error list, so checking the root's status covers them.
class JsonFields {
 public:
  // `json` must outlive this reader. `file` names the source in messages.
  JsonFields(const nlohmann::json& json, std::string file)
      : json_(&json), file_(std::move(file)), errors_(std::make_shared<std::vector<std::string>>()) {
    if (!json.is_object()) Fail("", absl::StrCat("expected a JSON object, got ", Describe(json)));
  }

  const nlohmann::json& json() const { return *json_; }
  // The dotted path of this object from the file's root ("" for the root).
  const std::string& path() const { return path_; }
  const std::string& file() const { return file_; }

  // True if the key is present (null counts as present).
  bool Has(std::string_view key) const { return Find(key) != nullptr; }
  // True if the key is present and not null.
  bool HasValue(std::string_view key) const {
    const nlohmann::json* v = Find(key);
    return v != nullptr && !v->is_null();
  }
  // The raw value, or nullptr if absent (or this is not an object).
  const nlohmann::json* Find(std::string_view key) const {
    if (!json_->is_object()) return nullptr;
    auto it = json_->find(key);
    return it == json_->end() ? nullptr : &*it;
  }

  // Reads `key` into `*out` if present; absent keeps `*out` (the default).
  // Supported: bool, integers, double, std::string, std::optional<T> (JSON
  // null -> nullopt), std::vector<T>. Returns true if the key was present
  // and well typed.
  template <typename T>
  bool Get(std::string_view key, T* out) {
    const nlohmann::json* v = Find(key);
    if (v == nullptr) return false;
    std::string error;
    if (!Convert(*v, out, &error)) {
      Fail(key, error);
      return false;
    }
    return true;
  }

  // Like Get, but an absent key is an error.
  template <typename T>
  bool Require(std::string_view key, T* out) {
    if (Find(key) == nullptr) {
      Fail(key, "required field is missing");
      return false;
    }
    return Get(key, out);
  }

  // The object under `key` (an empty object if absent or null; an error if
  // present and not an object). Errors land in this reader's list.
  JsonFields Child(std::string_view key) {
    const nlohmann::json* v = Find(key);
    if (v != nullptr && v->is_null()) v = nullptr;
    JsonFields child(*this, Join(key), v != nullptr ? v : &EmptyObject());
    if (v != nullptr && !v->is_object()) {
      Fail(key, absl::StrCat("expected a JSON object, got ", Describe(*v)));
      child.json_ = &EmptyObject();
    }
    return child;
  }

  // A reader over `json` (which must outlive it) that reports into this
  // reader's error list under the dotted `path`: for values assembled in
  // memory, such as a merge of two objects.
  JsonFields Sibling(const nlohmann::json& json, std::string path) {
    JsonFields other(*this, std::move(path), &json);
    if (!json.is_object()) {
      other.json_ = &EmptyObject();
      other.Fail("", absl::StrCat("expected a JSON object, got ", Describe(json)));
    }
    return other;
  }

  // Records an error about `key` (a field of this object; "" for the object).
  void Fail(std::string_view key, std::string_view message) {
    const std::string where = Join(key);
    errors_->push_back(absl::StrCat(file_, ": ", where.empty() ? "" : where + ": ",
                                    json_internal::AsAbsl(message)));
  }

  bool ok() const { return errors_->empty(); }
  // OK, or the first error (with the count of further ones).
  absl::Status status() const {
    if (errors_->empty()) return absl::OkStatus();
    std::string msg = errors_->front();
    if (errors_->size() > 1) absl::StrAppend(&msg, " (and ", errors_->size() - 1, " more errors)");
    return absl::InvalidArgumentError(msg);
  }
  const std::vector<std::string>& errors() const { return *errors_; }

 private:
  JsonFields(const JsonFields& parent, std::string path, const nlohmann::json* json)
      : json_(json), file_(parent.file_), path_(std::move(path)), errors_(parent.errors_) {}

  static const nlohmann::json& EmptyObject() {
    static const nlohmann::json* empty = new nlohmann::json(nlohmann::json::object());
    return *empty;
  }

  std::string Join(std::string_view key) const {
    if (path_.empty()) return std::string(key);
    if (key.empty()) return path_;
    return absl::StrCat(path_, ".", json_internal::AsAbsl(key));
  }

  static std::string Describe(const nlohmann::json& j) {
    if (j.is_null()) return "null";
    return json_internal::Preview(j);
  }

  static bool Convert(const nlohmann::json& j, bool* out, std::string* error) {
    if (!j.is_boolean()) return Mismatch("a boolean", j, error);
    *out = j.get<bool>();
    return true;
  }
  static bool Convert(const nlohmann::json& j, std::string* out, std::string* error) {
    if (!j.is_string()) return Mismatch("a string", j, error);
    *out = j.get<std::string>();
    return true;
  }
  static bool Convert(const nlohmann::json& j, double* out, std::string* error) {
    if (!j.is_number()) return Mismatch("a number", j, error);
    *out = j.get<double>();
    return true;
  }
  template <typename Int>
    requires(std::is_integral_v<Int> && !std::is_same_v<Int, bool>)
  static bool Convert(const nlohmann::json& j, Int* out, std::string* error) {
    // An integral float (2.0) is accepted as Python would accept it; 2.5 is not.
    if (j.is_number_unsigned()) {
      const uint64_t v = j.get<uint64_t>();
      if (v > static_cast<uint64_t>(std::numeric_limits<Int>::max())) {
        return Mismatch("an integer in range", j, error);
      }
      *out = static_cast<Int>(v);
      return true;
    }
    if (j.is_number_integer()) {
      const int64_t v = j.get<int64_t>();
      if (v < static_cast<int64_t>(std::numeric_limits<Int>::min()) ||
          (v > 0 && static_cast<uint64_t>(v) > static_cast<uint64_t>(std::numeric_limits<Int>::max()))) {
        return Mismatch("an integer in range", j, error);
      }
      *out = static_cast<Int>(v);
      return true;
    }
    if (j.is_number_float()) {
      const double d = j.get<double>();
      if (std::isfinite(d) && d == std::floor(d) &&
          d >= static_cast<double>(std::numeric_limits<Int>::min()) &&
          d <= static_cast<double>(std::numeric_limits<Int>::max()) && std::fabs(d) < 9.0e15) {
        *out = static_cast<Int>(d);
        return true;
      }
    }
    return Mismatch("an integer", j, error);
  }
  template <typename T>
  static bool Convert(const nlohmann::json& j, std::optional<T>* out, std::string* error) {
    if (j.is_null()) {
      out->reset();
      return true;
    }
    T value = out->has_value() ? **out : T{};
    if (!Convert(j, &value, error)) return false;
    *out = std::move(value);
    return true;
  }
  template <typename T>
  static bool Convert(const nlohmann::json& j, std::vector<T>* out, std::string* error) {
    if (!j.is_array()) return Mismatch("a list", j, error);
    std::vector<T> values;
    values.reserve(j.size());
    for (size_t i = 0; i < j.size(); ++i) {
      T v{};
      std::string inner;
      if (!Convert(j[i], &v, &inner)) {
        *error = absl::StrCat("element ", i, ": ", inner);
        return false;
      }
      values.push_back(std::move(v));
    }
    *out = std::move(values);
    return true;
  }

  static bool Mismatch(std::string_view expected, const nlohmann::json& j, std::string* error) {
    *error = absl::StrCat("expected ", json_internal::AsAbsl(expected), ", got ", Describe(j));
    return false;
  }

  const nlohmann::json* json_;
  std::string file_;
  std::string path_;
  std::shared_ptr<std::vector<std::string>> errors_;
};

}  // namespace spatialid::io
