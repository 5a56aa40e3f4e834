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
#include "spatialid/nn/activation.h"
#include "spatialid/nn/rotary.h"
#include "spatialid/nn/text_decoder.h"
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

// Any Qwen2 text config -> the decoder's shape: Qwen2Config (InternVL3's
// language model), Qwen2VLTextConfig / Qwen2_5_VLTextConfig, or anything
// else with config::Qwen2TextFields. Qwen2Attention has biases on q/k/v but
// not on o_proj, and head_dim = hidden_size / num_attention_heads.
// Sliding-window attention is refused (no InternVL3 or Qwen-VL checkpoint
// turns it on).
template <class Qwen2Text>
absl::StatusOr<nn::TextDecoderShape> Qwen2DecoderShape(const Qwen2Text& t) {
  if (t.use_sliding_window || t.sliding_window.has_value()) {
    return absl::UnimplementedError(
        "text_config: use_sliding_window is on; sliding-window attention is not supported");
  }
  for (const std::string& type : t.layer_types) {
    if (type != "full_attention") {
      return absl::UnimplementedError(absl::StrCat(
          "text_config.layer_types: \"", type, "\" layers are not supported (full_attention is)"));
    }
  }
  nn::TextDecoderShape s;
  s.vocab_size = t.vocab_size;
  s.hidden_size = t.hidden_size;
  s.intermediate_size = t.intermediate_size;
  s.num_layers = t.num_hidden_layers;
  s.num_heads = t.num_attention_heads;
  s.num_kv_heads = t.num_key_value_heads;
  s.head_dim = t.head_dim();
  s.max_position_embeddings = t.max_position_embeddings;
  s.rms_norm_eps = t.rms_norm_eps;
  SPATIALID_ASSIGN_OR_RETURN(s.act, nn::ParseActivation(t.hidden_act));
  s.qkv_bias_only = true;
  SPATIALID_ASSIGN_OR_RETURN(s.rope, RopeFromConfig(t.rope_parameters));
  return s;
}

}  // namespace spatialid::families
