// From typed configs (spatialid/config) to the shapes the shared blocks take.
//
// Families read config.json through spatialid::config; the blocks in
// spatialid/nn know nothing about JSON. These helpers translate the pieces
// several families share (RoPE settings, dtype names) and refuse, with a
// message, what the blocks do not implement.
#pragma once

#include <optional>
#include <string>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "spatialid/config/rope.h"
#include "spatialid/nn/rotary.h"
#include "spatialid/util/status.h"

namespace spatialid::families {

// config::RopeParameters (HF rope_parameters, either spelling) -> the block's.
inline absl::StatusOr<nn::RopeParameters> RopeFromConfig(const config::RopeParameters& r) {
  nn::RopeParameters p;
  SPATIALID_ASSIGN_OR_RETURN(p.type, nn::ParseRopeType(r.rope_type));
  if (r.partial_rotary_factor && *r.partial_rotary_factor != 1.0) {
    return absl::UnimplementedError(absl::StrCat("partial_rotary_factor ",
                                                 *r.partial_rotary_factor, " is not supported"));
  }
  p.theta = r.rope_theta;
  p.factor = r.factor.value_or(1.0);
  p.low_freq_factor = r.low_freq_factor.value_or(p.low_freq_factor);
  p.high_freq_factor = r.high_freq_factor.value_or(p.high_freq_factor);
  p.original_max_position_embeddings = r.original_max_position_embeddings.value_or(0);
  return p;
}

// PreTrainedConfig's dtype name ("float16", "bfloat16", "float32"); unset is
// fp32, transformers' default when loading without a dtype.
inline absl::StatusOr<at::ScalarType> DtypeFromConfig(const std::optional<std::string>& name) {
  if (!name || *name == "float32" || *name == "float") return at::kFloat;
  if (*name == "float16" || *name == "half") return at::kHalf;
  if (*name == "bfloat16") return at::kBFloat16;
  return absl::InvalidArgumentError(
      absl::StrCat("dtype \"", *name, "\" is not supported (float32, float16, bfloat16 are)"));
}

}  // namespace spatialid::families
