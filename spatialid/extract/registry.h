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
#include "spatialid/families/llava.h"

namespace spatialid::extract {

template <class Visitor>
absl::Status DispatchFamily(FamilyId family, Visitor&& visit) {
  switch (family) {
    case FamilyId::kLlava:
      return std::forward<Visitor>(visit).template operator()<families::Llava>();
    default:
      return absl::UnimplementedError(absl::StrCat(
          "the ", std::string(FamilyModelType(family)),
          " family is not built into spatialid yet; supported here: llava"));
  }
}

}  // namespace spatialid::extract
