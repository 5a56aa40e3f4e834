// The one list of model families, and dispatch from run-time names to them.
//
// `Families` is a type list; everything that enumerates families reads it:
// the binaries' `--model` aliases and their help text (each family's
// kPresets), the check that a checkpoint's config.json belongs to the
// alias's family (kModelType), and `DispatchModelType`, which calls a
// generic visitor with the family's traits type so everything downstream
// is compiled per family. Adding a family = its folder, one include and one
// entry in `Families` below.
//
// Example:
//   SPATIALID_ASSIGN_OR_RETURN(PresetOfFamily p, FindPreset("llava-7b"));
//   return DispatchModelType(p.model_type, [&]<class F>() -> absl::Status {
//     return RunWith<F>(...);
//   });
#pragma once

#include <algorithm>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "spatialid/config/fields.h"
#include "spatialid/families/family.h"
#include "spatialid/families/gemma3/gemma3.h"
#include "spatialid/families/internvl/internvl.h"
#include "spatialid/families/llava/llava.h"
#include "spatialid/families/mllama/mllama.h"
#include "spatialid/families/model_preset.h"
#include "spatialid/families/qwen2_vl/qwen2_vl.h"
#include "spatialid/io/json_file.h"
#include "spatialid/util/status.h"

namespace spatialid::families {

template <FamilyTraits... F>
struct FamilyList {
  // Calls visit.template operator()<F>() for each family, in order, until
  // one returns true.
  template <class Visitor>
  static bool Any(Visitor&& visit) {
    return (visit.template operator()<F>() || ...);
  }
};

// Every family spatialid runs, in the order --help lists their models.
using Families = FamilyList<Llava, Qwen2VL, Qwen2_5_VL, Mllama, InternVL, Gemma3>;

// A preset with the model_type of its family.
struct PresetOfFamily {
  ModelPreset preset;
  std::string_view model_type;
  std::string_view family_name;
};

inline std::vector<PresetOfFamily> AllPresets() {
  std::vector<PresetOfFamily> out;
  Families::Any([&]<class F>() {
    for (const ModelPreset& p : F::kPresets) out.push_back({p, F::kModelType, F::kName});
    return false;
  });
  return out;
}

inline std::string KnownAliases() {
  std::vector<std::string> aliases;
  for (const PresetOfFamily& p : AllPresets()) aliases.emplace_back(p.preset.alias);
  return absl::StrJoin(aliases, ", ");
}

inline absl::StatusOr<PresetOfFamily> FindPreset(std::string_view alias) {
  for (const PresetOfFamily& p : AllPresets()) {
    if (p.preset.alias == alias) return p;
  }
  return absl::NotFoundError(
      absl::StrCat("unknown model alias '", std::string(alias), "'; known: ", KnownAliases()));
}

// The aliases whose checkpoints have config.json's `model_type`.
inline std::vector<std::string> AliasesOfModelType(std::string_view model_type) {
  std::vector<std::string> out;
  for (const PresetOfFamily& p : AllPresets()) {
    if (p.model_type == model_type) out.emplace_back(p.preset.alias);
  }
  return out;
}

// `--model`'s help: every alias with its checkpoint.
inline std::string ModelFlagHelp() {
  std::string out =
      "Model alias; picks the family and the reference's dtype and layer range. One of:";
  for (const PresetOfFamily& p : AllPresets()) {
    absl::StrAppend(&out, " ", std::string(p.preset.alias), " (", std::string(p.preset.checkpoint),
                    ")");
  }
  return out;
}

// The model types of every family, in registry order.
inline std::vector<std::string> KnownModelTypes() {
  std::vector<std::string> out;
  Families::Any([&]<class F>() {
    out.emplace_back(F::kModelType);
    return false;
  });
  return out;
}

// config.json's `model_type` in `model_dir` (or a config.json path), which
// must be one a family reads.
inline absl::StatusOr<std::string> ReadModelType(const std::string& model_dir) {
  const std::string file = config::JsonPathIn(model_dir, "config.json");
  SPATIALID_ASSIGN_OR_RETURN(nlohmann::json json, io::ReadJsonFile(file));
  io::JsonFields f(json, file);
  std::string name;
  f.Require("model_type", &name);
  if (!f.ok()) return f.status();
  const std::vector<std::string> known = KnownModelTypes();
  if (std::find(known.begin(), known.end(), name) == known.end()) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": model_type \"", name,
                                                   "\" is not supported (supported: ",
                                                   absl::StrJoin(known, ", "), ")"));
  }
  return name;
}

// Calls visitor.template operator()<F>() for the family whose kModelType is
// `model_type`.
template <class Visitor>
absl::Status DispatchModelType(std::string_view model_type, Visitor&& visit) {
  absl::Status result =
      absl::NotFoundError(absl::StrCat("no family reads model_type \"", std::string(model_type), "\""));
  Families::Any([&]<class F>() {
    if (F::kModelType != model_type) return false;
    result = visit.template operator()<F>();
    return true;
  });
  return result;
}

}  // namespace spatialid::families
