// Run-time model aliases to compile-time families.
//
// One binary serves every model: `--model=llava-7b` finds the preset
// (extract/model_presets.h) and `DispatchFamily` calls a generic visitor
// with the family's traits type, so everything downstream is compiled per
// family. Adding a family = include its header and add one case here.
//
// Example:
//   return DispatchFamily(preset.family, [&]<class F>() -> absl::Status {
//     return RunWith<F>(...);
//   });
#pragma once

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "spatialid/extract/model_presets.h"
#include "spatialid/families/gemma3.h"
#include "spatialid/families/internvl.h"
#include "spatialid/families/llava.h"
#include "spatialid/families/mllama.h"
#include "spatialid/families/qwen2_vl.h"

namespace spatialid::extract {

template <class Visitor>
absl::Status DispatchFamily(FamilyId family, Visitor&& visit) {
  switch (family) {
    case FamilyId::kLlava:
      return std::forward<Visitor>(visit).template operator()<families::Llava>();
    case FamilyId::kGemma3:
      return std::forward<Visitor>(visit).template operator()<families::Gemma3>();
    case FamilyId::kMllama:
      return std::forward<Visitor>(visit).template operator()<families::Mllama>();
    case FamilyId::kInternVL:
      return std::forward<Visitor>(visit).template operator()<families::InternVL>();
    case FamilyId::kQwen2VL:
      return std::forward<Visitor>(visit).template operator()<families::Qwen2VL>();
    case FamilyId::kQwen2_5VL:
      return std::forward<Visitor>(visit).template operator()<families::Qwen2_5_VL>();
  }
  return absl::InternalError(
      absl::StrCat("unknown family ", std::string(FamilyModelType(family))));
}

}  // namespace spatialid::extract
