// The pre-norm encoder layer CLIP and SigLIP vision transformers share.
//
//   x = x + self_attn(layer_norm1(x))     (biased q/k/v/out_proj, no mask, no RoPE)
//   x = x + mlp(layer_norm2(x))           (fc1 -> activation -> fc2, biased)
//
// CLIPEncoderLayer and SiglipEncoderLayer (transformers 5.3.0) have the same
// modules under the same names, so both towers load their layers here:
//   <prefix>.layer_norm1.{weight,bias}, <prefix>.layer_norm2.{weight,bias}
//   <prefix>.self_attn.{q,k,v,out}_proj.{weight,bias}
//   <prefix>.mlp.{fc1,fc2}.{weight,bias}
// The softmax scale is `head_dim**-0.5` as both modules compute it in Python
// (pow, not 1/sqrt, so non-power-of-two head sizes such as SigLIP-so400m's
// 72 round alike).
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include "spatialid/nn/activation.h"
#include "spatialid/nn/attention.h"
#include "spatialid/nn/mlp.h"
#include "spatialid/nn/norm.h"
#include "spatialid/nn/transformer_block.h"
#include "spatialid/nn/weights.h"

namespace spatialid::nn {

using VisionEncoderLayer = TransformerBlock<LayerNorm, Mlp>;

// The sizes of one layer (HF vision-config keys in comments).
struct VisionEncoderLayerShape {
  int64_t hidden_size = 0;        // hidden_size
  int64_t intermediate_size = 0;  // intermediate_size
  int64_t num_heads = 0;          // num_attention_heads (divides hidden_size)
  double layer_norm_eps = 1e-5;   // layer_norm_eps
  Activation act = Activation::kGelu;  // hidden_act
};

template <WeightLoader L>
VisionEncoderLayer LoadVisionEncoderLayer(L& loader, const std::string& prefix,
                                          const VisionEncoderLayerShape& s) {
  AttentionShape attn;
  attn.hidden_size = s.hidden_size;
  attn.num_heads = attn.num_kv_heads = s.num_heads;
  attn.head_dim = s.hidden_size / s.num_heads;
  attn.qkv_bias = attn.o_bias = true;
  attn.hf_kv_groups = false;
  attn.o_proj_name = "out_proj";
  attn.scale = std::pow(static_cast<double>(attn.head_dim), -0.5);
  VisionEncoderLayer layer;
  layer.attn_norm = LayerNorm::Load(loader, Join(prefix, "layer_norm1"), s.hidden_size, s.layer_norm_eps);
  layer.attn = SelfAttention<>::Load(loader, Join(prefix, "self_attn"), attn);
  layer.mlp_norm = LayerNorm::Load(loader, Join(prefix, "layer_norm2"), s.hidden_size, s.layer_norm_eps);
  layer.mlp = Mlp::Load(loader, Join(prefix, "mlp"), s.hidden_size, s.intermediate_size, s.hidden_size,
                        s.act, /*with_bias=*/true);
  return layer;
}

}  // namespace spatialid::nn
