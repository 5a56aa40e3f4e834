// Which family a model folder holds, and its typed config.
//
// `DetectModelType` reads `model_type` from `config.json`; an unknown value
// is an error listing the supported ones. `LoadModelConfig` returns the
// family's config struct in a variant, for code that dispatches on the
// family once (the family registry) rather than everywhere.
//
// Example:
//   SPATIALID_ASSIGN_OR_RETURN(ModelType type, DetectModelType(model_dir));
//   if (type == ModelType::kGemma3) { ... }
#pragma once

#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "spatialid/config/fields.h"
#include "spatialid/families/gemma3/config.h"
#include "spatialid/families/internvl/config.h"
#include "spatialid/families/llava/config.h"
#include "spatialid/families/mllama/config.h"
#include "spatialid/families/qwen2_vl/config.h"
#include "spatialid/io/json_file.h"

namespace spatialid::config {

enum class ModelType { kLlava, kInternVL, kQwen2VL, kQwen2_5_VL, kGemma3, kMllama };

// The `model_type` string transformers uses for each family.
inline std::string_view ModelTypeName(ModelType t) {
  switch (t) {
    case ModelType::kLlava: return families::LlavaConfig::kModelType;
    case ModelType::kInternVL: return families::InternVLConfig::kModelType;
    case ModelType::kQwen2VL: return families::Qwen2VLConfig::kModelType;
    case ModelType::kQwen2_5_VL: return families::Qwen2_5_VLConfig::kModelType;
    case ModelType::kGemma3: return families::Gemma3Config::kModelType;
    case ModelType::kMllama: return families::MllamaConfig::kModelType;
  }
  return "?";
}

inline const std::vector<ModelType>& AllModelTypes() {
  static const std::vector<ModelType> kAll = {ModelType::kLlava,   ModelType::kInternVL,
                                              ModelType::kQwen2VL, ModelType::kQwen2_5_VL,
                                              ModelType::kGemma3,  ModelType::kMllama};
  return kAll;
}

// The family named by a config.json object's `model_type`.
inline absl::StatusOr<ModelType> ModelTypeFromJson(const nlohmann::json& json,
                                                   const std::string& file) {
  io::JsonFields f(json, file);
  std::string name;
  f.Require("model_type", &name);
  if (!f.ok()) return f.status();
  std::vector<std::string> supported;
  for (ModelType t : AllModelTypes()) {
    if (name == ModelTypeName(t)) return t;
    supported.push_back(std::string(ModelTypeName(t)));
  }
  return absl::InvalidArgumentError(absl::StrCat(file, ": model_type \"", name,
                                                 "\" is not supported (supported: ",
                                                 absl::StrJoin(supported, ", "), ")"));
}

// Reads `model_type` from `model_dir`/config.json (or a config.json path).
inline absl::StatusOr<ModelType> DetectModelType(const std::string& model_dir) {
  const std::string file = JsonPathIn(model_dir, "config.json");
  absl::StatusOr<nlohmann::json> json = io::ReadJsonFile(file);
  if (!json.ok()) return json.status();
  return ModelTypeFromJson(*json, file);
}

using ModelConfig = std::variant<families::LlavaConfig, families::InternVLConfig, families::Qwen2VLConfig, families::Qwen2_5_VLConfig,
                                 families::Gemma3Config, families::MllamaConfig>;

// Parses a config.json object as whichever family its model_type names.
inline absl::StatusOr<ModelConfig> ParseModelConfigJson(const nlohmann::json& json,
                                                        const std::string& file) {
  absl::StatusOr<ModelType> type = ModelTypeFromJson(json, file);
  if (!type.ok()) return type.status();
  auto wrap = [](auto cfg) -> absl::StatusOr<ModelConfig> {
    if (!cfg.ok()) return cfg.status();
    return ModelConfig(*std::move(cfg));
  };
  switch (*type) {
    case ModelType::kLlava: return wrap(ParseConfigJson<families::LlavaConfig>(json, file));
    case ModelType::kInternVL: return wrap(ParseConfigJson<families::InternVLConfig>(json, file));
    case ModelType::kQwen2VL: return wrap(ParseConfigJson<families::Qwen2VLConfig>(json, file));
    case ModelType::kQwen2_5_VL: return wrap(ParseConfigJson<families::Qwen2_5_VLConfig>(json, file));
    case ModelType::kGemma3: return wrap(ParseConfigJson<families::Gemma3Config>(json, file));
    case ModelType::kMllama: return wrap(ParseConfigJson<families::MllamaConfig>(json, file));
  }
  return absl::InternalError("unreachable model type");
}

inline absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& model_dir) {
  const std::string file = JsonPathIn(model_dir, "config.json");
  absl::StatusOr<nlohmann::json> json = io::ReadJsonFile(file);
  if (!json.ok()) return json.status();
  return ParseModelConfigJson(*json, file);
}

}  // namespace spatialid::config
