// Reading fields of tokenizer.json sections with errors that say where.
//
// Every component parser (normalizer, pre-tokenizer, model, post-processor,
// decoder) receives its JSON object and a path such as
// `pre_tokenizer.pretokenizers[1]`, and reports a missing or mistyped field
// as `pre_tokenizer.pretokenizers[1]: field "behavior" must be a string`.
// `Tokenizer::FromFile` prefixes the file name.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>
#include <string_view>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace spatialid::text::json_field {

using Json = nlohmann::json;

inline absl::Status Error(const std::string& where, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": ", what));
}

// The "type" of a component object.
inline absl::StatusOr<std::string> Type(const Json& j, const std::string& where) {
  if (!j.is_object()) return Error(where, "expected an object");
  auto it = j.find("type");
  if (it == j.end() || !it->is_string()) return Error(where, "missing string field \"type\"");
  return it->get<std::string>();
}

inline absl::StatusOr<std::string> String(const Json& j, const std::string& key,
                                          const std::string& where) {
  auto it = j.find(key);
  if (it == j.end()) return Error(where, absl::StrCat("missing field \"", key, "\""));
  if (!it->is_string()) return Error(where, absl::StrCat("field \"", key, "\" must be a string"));
  return it->get<std::string>();
}

// A string field that may be absent or null.
inline absl::StatusOr<std::optional<std::string>> OptionalString(const Json& j,
                                                                 const std::string& key,
                                                                 const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::optional<std::string>();
  if (!it->is_string()) return Error(where, absl::StrCat("field \"", key, "\" must be a string"));
  return std::optional<std::string>(it->get<std::string>());
}

inline absl::StatusOr<bool> Bool(const Json& j, const std::string& key, const std::string& where,
                                 std::optional<bool> fallback = std::nullopt) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (fallback.has_value()) return *fallback;
    return Error(where, absl::StrCat("missing field \"", key, "\""));
  }
  if (!it->is_boolean()) return Error(where, absl::StrCat("field \"", key, "\" must be a bool"));
  return it->get<bool>();
}

inline absl::StatusOr<int64_t> Int(const Json& j, const std::string& key, const std::string& where,
                                   std::optional<int64_t> fallback = std::nullopt) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (fallback.has_value()) return *fallback;
    return Error(where, absl::StrCat("missing field \"", key, "\""));
  }
  if (!it->is_number_integer()) {
    return Error(where, absl::StrCat("field \"", key, "\" must be an integer"));
  }
  return it->get<int64_t>();
}

inline absl::StatusOr<const Json*> Array(const Json& j, const std::string& key,
                                         const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_array()) {
    return Error(where, absl::StrCat("field \"", key, "\" must be an array"));
  }
  return &*it;
}

// A single character field (Metaspace `replacement`, Strip `content`).
inline absl::StatusOr<std::string> Char(const Json& j, const std::string& key,
                                        const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) {
    return Error(where, absl::StrCat("field \"", key, "\" must be a one-character string"));
  }
  std::string s = it->get<std::string>();
  size_t n = 0;
  if (!s.empty()) {
    const auto lead = static_cast<unsigned char>(s[0]);
    n = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
  }
  if (s.empty() || n != s.size()) {
    return Error(where, absl::StrCat("field \"", key, "\" must be exactly one character"));
  }
  return s;
}

inline std::string Index(const std::string& where, const std::string& key, size_t i) {
  return absl::StrCat(where, ".", key, "[", i, "]");
}

// Parses each element of the array field `key` with `parse(element, where)`
// (the `Sequence` components of every section).
template <typename T, typename ParseFn>
absl::StatusOr<std::vector<std::unique_ptr<T>>> ParseEach(const Json& j, const std::string& key,
                                                          const std::string& where,
                                                          ParseFn parse) {
  auto list = Array(j, key, where);
  if (!list.ok()) return list.status();
  std::vector<std::unique_ptr<T>> out;
  for (size_t i = 0; i < (*list)->size(); ++i) {
    auto item = parse((**list)[i], Index(where, key, i));
    if (!item.ok()) return item.status();
    out.push_back(std::move(*item));
  }
  return out;
}

}  // namespace spatialid::text::json_field
