// The machinery shared by spatialid's typed configs: one field list per
// struct, used both to read `config.json` and to dump the parsed values.
//
// A config struct spells its members with the Hugging Face key names and
// initialises them with transformers' defaults, then lists them once:
//
//   struct FooConfig {
//     using IsConfig = void;
//     int64_t hidden_size = 768;
//     std::optional<int64_t> pad_token_id;
//     int64_t head_dim = 0;  // derived
//     template <class V> void VisitFields(V& v) {
//       v("hidden_size", hidden_size);
//       v("pad_token_id", pad_token_id);
//       v.Derived("head_dim", head_dim);   // dumped, read by ResolveDefaults
//     }
//     // Optional: fields whose default depends on other fields.
//     void ResolveDefaults(io::JsonFields& f) { ... }
//   };
//
// `ReadConfig<FooConfig>(fields)` fills a FooConfig from a JSON object (absent
// keys keep their defaults, wrong types are errors naming the dotted key);
// `ConfigToJson(cfg)` writes every listed field back out, which is what the
// transformers oracle test compares against `getattr` on the Python config.
#pragma once

#include <algorithm>
#include <concepts>
#include <initializer_list>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "spatialid/io/json_file.h"

namespace spatialid::config {

template <typename T>
concept HasResolveDefaults = requires(T& t, io::JsonFields& f) { t.ResolveDefaults(f); };

// A struct that opts in with `using IsConfig = void;` and has VisitFields.
template <typename T>
concept ConfigStruct = requires { typename T::IsConfig; };

template <ConfigStruct T>
T ReadConfig(io::JsonFields& fields);

template <typename T>
nlohmann::json ConfigValueToJson(const T& value);

namespace internal {

// Reads each listed field; sub-configs recurse into their own object.
class FieldReader {
 public:
  explicit FieldReader(io::JsonFields& fields) : fields_(fields) {}

  template <typename T>
  void operator()(std::string_view key, T& member) {
    if constexpr (ConfigStruct<T>) {
      // Absent or null reads as {}: transformers builds the sub-config from
      // its defaults, and derived defaults still need resolving.
      io::JsonFields child = fields_.Child(key);
      member = ReadConfig<T>(child);
    } else {
      fields_.Get(key, &member);
    }
  }
  template <typename T>
  void Derived(std::string_view, T&) {}

 private:
  io::JsonFields& fields_;
};

class FieldDumper {
 public:
  explicit FieldDumper(nlohmann::json& out) : out_(out) {}
  template <typename T>
  void operator()(std::string_view key, T& member) {
    out_[std::string(key)] = ConfigValueToJson(member);
  }
  template <typename T>
  void Derived(std::string_view key, T& member) {
    (*this)(key, member);
  }

 private:
  nlohmann::json& out_;
};

template <typename T>
struct IsOptional : std::false_type {};
template <typename T>
struct IsOptional<std::optional<T>> : std::true_type {};
template <typename T>
struct IsVector : std::false_type {};
template <typename T>
struct IsVector<std::vector<T>> : std::true_type {};
template <typename T>
struct IsStringMap : std::false_type {};
template <typename T>
struct IsStringMap<std::map<std::string, T>> : std::true_type {};

}  // namespace internal

// Fills a T from the object `fields` points at: defaults, then the listed
// fields, then T::ResolveDefaults for derived ones. Errors go to `fields`.
template <ConfigStruct T>
T ReadConfig(io::JsonFields& fields) {
  T value;
  internal::FieldReader reader(fields);
  value.VisitFields(reader);
  if constexpr (HasResolveDefaults<T>) value.ResolveDefaults(fields);
  return value;
}

// The JSON form of a config value (structs become objects of their fields).
template <typename T>
nlohmann::json ConfigValueToJson(const T& value) {
  if constexpr (ConfigStruct<T>) {
    nlohmann::json out = nlohmann::json::object();
    T copy = value;  // VisitFields takes members by non-const reference
    internal::FieldDumper dumper(out);
    copy.VisitFields(dumper);
    return out;
  } else if constexpr (internal::IsOptional<T>::value) {
    return value.has_value() ? ConfigValueToJson(*value) : nlohmann::json(nullptr);
  } else if constexpr (internal::IsVector<T>::value) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& v : value) out.push_back(ConfigValueToJson(v));
    return out;
  } else if constexpr (internal::IsStringMap<T>::value) {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& [k, v] : value) out[k] = ConfigValueToJson(v);
    return out;
  } else {
    return nlohmann::json(value);
  }
}

template <ConfigStruct T>
nlohmann::json ConfigToJson(const T& cfg) {
  return ConfigValueToJson(cfg);
}

// Helpers for the few fields transformers lets take more than one shape.

// An int or a list of ints (eos_token_id, vision_feature_layer); null clears.
inline void ReadIntOrList(io::JsonFields& f, std::string_view key, std::vector<int64_t>* out) {
  const nlohmann::json* v = f.Find(key);
  if (v == nullptr) return;
  if (v->is_null()) {
    out->clear();
  } else if (v->is_array()) {
    f.Get(key, out);
  } else {
    int64_t one = 0;
    if (f.Get(key, &one)) *out = {one};
  }
}

// An int or an [h, w] pair (image_size, patch_size), stored as a pair.
inline void ReadIntOrPair(io::JsonFields& f, std::string_view key, std::vector<int64_t>* out) {
  const nlohmann::json* v = f.Find(key);
  if (v == nullptr) return;
  if (v->is_array()) {
    std::vector<int64_t> pair;
    if (f.Get(key, &pair)) {
      if (pair.size() != 2) {
        f.Fail(key, absl::StrCat("expected an integer or a list of 2 integers, got ", pair.size(),
                                 " values"));
      } else {
        *out = pair;
      }
    }
  } else {
    int64_t one = 0;
    if (f.Get(key, &one)) *out = {one, one};
  }
}

// Layer lists computed from num_hidden_layers stop here: a hostile count
// must not make us allocate without bound (validation then reports the
// mismatch). Real models have at most a few hundred layers.
inline constexpr int64_t kMaxComputedLayers = 1 << 20;

// `layer_types` as transformers' layer_type_validation checks it: one entry
// per layer, each an attention kind it knows.
inline void ValidateLayerTypes(io::JsonFields& f, const std::vector<std::string>& layer_types,
                               int64_t num_hidden_layers) {
  for (const std::string& t : layer_types) {
    if (t != "full_attention" && t != "sliding_attention" && t != "chunked_attention" &&
        t != "linear_attention") {
      f.Fail("layer_types", absl::StrCat("unknown layer type \"", t,
                                         "\" (expected full_attention, sliding_attention, "
                                         "chunked_attention or linear_attention)"));
      return;
    }
  }
  if (static_cast<int64_t>(layer_types.size()) != num_hidden_layers) {
    f.Fail("layer_types", absl::StrCat(layer_types.size(), " entries but num_hidden_layers is ",
                                       num_hidden_layers));
  }
}

// PreTrainedConfig's `dtype` (spelled `torch_dtype` before transformers 5).
inline std::optional<std::string> ReadDtype(io::JsonFields& f) {
  std::optional<std::string> dtype;
  f.Get("torch_dtype", &dtype);
  if (f.HasValue("dtype")) f.Get("dtype", &dtype);
  return dtype;
}

// A sub-config's `model_type`, if present, must be one the family supports.
inline void CheckModelType(io::JsonFields& f, std::initializer_list<std::string_view> allowed) {
  std::string got;
  if (!f.HasValue("model_type") || !f.Get("model_type", &got)) return;
  for (std::string_view a : allowed) {
    if (got == a) return;
  }
  std::vector<std::string> names;
  for (std::string_view a : allowed) names.push_back(absl::StrCat("\"", io::json_internal::AsAbsl(a), "\""));
  f.Fail("model_type", absl::StrCat("\"", got, "\" is not supported here (expected ",
                                    absl::StrJoin(names, " or "), ")"));
}

// Parses a whole config.json object as T, whose `kModelType` the root's
// required `model_type` must name. `file` prefixes error messages.
template <ConfigStruct T>
absl::StatusOr<T> ParseConfigJson(const nlohmann::json& json, const std::string& file) {
  io::JsonFields f(json, file);
  if (!f.ok()) return f.status();
  std::string model_type;
  if (!f.Require("model_type", &model_type)) return f.status();
  if (model_type != T::kModelType) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": model_type: expected \"", T::kModelType,
                                                   "\", got \"", model_type, "\""));
  }
  T cfg = ReadConfig<T>(f);
  if (!f.ok()) return f.status();
  return cfg;
}

// `path` if it names a .json file, else `path`/`default_name` (a model folder).
inline std::string JsonPathIn(const std::string& path, std::string_view default_name) {
  if (path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0) return path;
  return absl::StrCat(path, "/", io::json_internal::AsAbsl(default_name));
}

// Reads `path` (a config.json, or a model folder holding one) as T.
template <ConfigStruct T>
absl::StatusOr<T> LoadConfig(const std::string& path) {
  const std::string file = JsonPathIn(path, "config.json");
  absl::StatusOr<nlohmann::json> json = io::ReadJsonFile(file);
  if (!json.ok()) return json.status();
  return ParseConfigJson<T>(*json, file);
}

}  // namespace spatialid::config
