// Gated cross-attention decoder layers: text positions attend to image
// features, as transformers 5.3.0 `MllamaCrossAttentionDecoderLayer` and
// `MllamaTextCrossAttention` compute it (models/mllama/modeling_mllama.py).
//
//   h = cross_attn(input_layernorm(x), image states, mask)
//   x = x + tanh(cross_attn_attn_gate) * h
//   h = mlp(post_attention_layernorm(x)) * row_mask
//   x = x + tanh(cross_attn_mlp_gate) * h
// cross_attn: q = q_norm(q_proj(x) per head) (RMSNorm over head_dim), no
// RoPE; k = k_norm(k_proj(states)), v = v_proj(states) with GQA (k/v heads
// repeated, as SDPA with an explicit mask gets them in transformers);
// softmax scale head_dim**-0.5.
//
// The mask (`MllamaCrossAttentionMask`, transformers'
// _prepare_cross_attention_mask) comes from the processor's 0/1
// cross_attention_mask [B, S, images, tiles]: each tile entry is repeated
// over its P vision positions, 0 becomes finfo.min; text rows that may see
// no vision position at all (those before the image token) get an all-zero
// mask row, i.e. a uniform attention over every vision position, padding
// tiles included, and `row_mask` 0, which zeroes their MLP output but not
// their attention output. Both quirks are transformers', kept for parity.
//
// Weight names under `prefix` (e.g. "language_model.model.layers.3"):
//   input_layernorm.weight, post_attention_layernorm.weight,
//   cross_attn.{q,k,v,o}_proj.weight, cross_attn.{q,k}_norm.weight,
//   cross_attn_attn_gate, cross_attn_mlp_gate, mlp.{gate,up,down}_proj.weight
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <utility>

#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/rsub.h>

#include "spatialid/nn/activation.h"
#include "spatialid/families/mllama/additive_mask.h"
#include "spatialid/nn/attention.h"
#include "spatialid/nn/linear.h"
#include "spatialid/nn/mlp.h"
#include "spatialid/nn/norm.h"
#include "spatialid/nn/weights.h"

namespace spatialid::families {

struct CrossAttentionShape {
  int64_t hidden_size = 0;       // hidden_size (queries and image states)
  int64_t num_heads = 0;         // num_attention_heads
  int64_t num_kv_heads = 0;      // num_key_value_heads
  int64_t head_dim = 0;          // hidden_size / num_attention_heads
  int64_t intermediate_size = 0; // intermediate_size (the layer's gated MLP)
  double rms_norm_eps = 1e-5;    // rms_norm_eps (layer norms and q/k norms)
  nn::Activation act = nn::Activation::kSilu;  // hidden_act
};

// Keys and values of the image states for one layer, [B, kv_heads, K, head_dim].
struct CrossKeyValues {
  at::Tensor keys;
  at::Tensor values;
};

struct CrossAttention {
  nn::Linear q_proj, k_proj, v_proj, o_proj;
  nn::RmsNorm<> q_norm, k_norm;
  CrossAttentionShape shape;

  template <nn::WeightLoader L>
  static CrossAttention Load(L& loader, const std::string& prefix, const CrossAttentionShape& s) {
    CrossAttention a;
    a.shape = s;
    const int64_t q_out = s.num_heads * s.head_dim, kv_out = s.num_kv_heads * s.head_dim;
    a.q_proj = nn::Linear::Load(loader, nn::Join(prefix, "q_proj"), s.hidden_size, q_out, false);
    a.k_proj = nn::Linear::Load(loader, nn::Join(prefix, "k_proj"), s.hidden_size, kv_out, false);
    a.v_proj = nn::Linear::Load(loader, nn::Join(prefix, "v_proj"), s.hidden_size, kv_out, false);
    a.o_proj = nn::Linear::Load(loader, nn::Join(prefix, "o_proj"), q_out, s.hidden_size, false);
    a.q_norm = nn::RmsNorm<>::Load(loader, nn::Join(prefix, "q_norm"), s.head_dim, s.rms_norm_eps);
    a.k_norm = nn::RmsNorm<>::Load(loader, nn::Join(prefix, "k_norm"), s.head_dim, s.rms_norm_eps);
    return a;
  }

  // Image states with `batch * K` rows in any leading shape (Mllama passes
  // [B * images * tiles, P, hidden]) -> keys and values of `batch` sequences.
  CrossKeyValues Project(const at::Tensor& states, int64_t batch) const {
    const int64_t kv_heads = shape.num_kv_heads, d = shape.head_dim;
    CrossKeyValues kv;
    kv.keys = k_norm(k_proj(states).view({batch, -1, kv_heads, d}).transpose(1, 2));
    kv.values = v_proj(states).view({batch, -1, kv_heads, d}).transpose(1, 2);
    return kv;
  }

  // x [B, S, hidden] -> [B, S, hidden]; `mask` additive, [B, 1, S, K].
  at::Tensor operator()(const at::Tensor& x, const CrossKeyValues& kv, const nn::AttentionMask& mask) const {
    const int64_t b = x.size(0), s = x.size(1);
    const at::Tensor q = q_norm(q_proj(x).view({b, s, shape.num_heads, shape.head_dim}).transpose(1, 2));
    const double scale = std::pow(static_cast<double>(shape.head_dim), -0.5);
    const at::Tensor out = nn::Attend(q, kv.keys, kv.values, mask, scale, /*hf_kv_groups=*/true);
    return o_proj(out.transpose(1, 2).reshape({b, s, -1}));
  }
};

struct GatedCrossAttentionLayer {
  nn::RmsNorm<> input_layernorm;
  CrossAttention cross_attn;
  at::Tensor attn_gate;  // cross_attn_attn_gate [1]
  nn::RmsNorm<> post_attention_layernorm;
  nn::GatedMlp mlp;
  at::Tensor mlp_gate;   // cross_attn_mlp_gate [1]

  template <nn::WeightLoader L>
  static GatedCrossAttentionLayer Load(L& loader, const std::string& prefix,
                                       const CrossAttentionShape& s) {
    GatedCrossAttentionLayer l;
    l.input_layernorm = nn::RmsNorm<>::Load(loader, nn::Join(prefix, "input_layernorm"), s.hidden_size, s.rms_norm_eps);
    l.cross_attn = CrossAttention::Load(loader, nn::Join(prefix, "cross_attn"), s);
    l.attn_gate = loader.Take(nn::Join(prefix, "cross_attn_attn_gate"), {1});
    l.post_attention_layernorm =
        nn::RmsNorm<>::Load(loader, nn::Join(prefix, "post_attention_layernorm"), s.hidden_size, s.rms_norm_eps);
    l.mlp = nn::GatedMlp::Load(loader, nn::Join(prefix, "mlp"), s.hidden_size, s.intermediate_size, s.act,
                           /*with_bias=*/false);
    l.mlp_gate = loader.Take(nn::Join(prefix, "cross_attn_mlp_gate"), {1});
    return l;
  }

  // x [B, S, hidden]; `row_mask` [B, S, 1] in x's dtype (1 = the row sees
  // the image), or undefined for none.
  at::Tensor operator()(const at::Tensor& x, const CrossKeyValues& kv, const nn::AttentionMask& mask,
                        const at::Tensor& row_mask) const {
    at::Tensor h = cross_attn(input_layernorm(x), kv, mask);
    const at::Tensor y = x + attn_gate.tanh() * h;
    h = mlp(post_attention_layernorm(y));
    if (row_mask.defined()) h = row_mask * h;
    return y + mlp_gate.tanh() * h;
  }
};

// transformers' _prepare_cross_attention_mask: the 0/1 mask [B, S, images,
// tiles] (integers) -> {additive mask [B, 1, S, images * tiles * P], row
// mask [B, 1, S, 1]} in `dtype`, P = vision positions per tile.
inline std::pair<at::Tensor, at::Tensor> MllamaCrossAttentionMask(const at::Tensor& tile_mask,
                                                                  int64_t num_vision_tokens,
                                                                  at::ScalarType dtype) {
  const int64_t b = tile_mask.size(0), s = tile_mask.size(1);
  const at::Tensor m =
      tile_mask.repeat_interleave(num_vision_tokens, /*dim=*/3).reshape({b, s, -1}).unsqueeze(1);
  const at::Tensor inverted = at::rsub(m.to(at::kFloat), 1.0).to(dtype);  // (1.0 - m).to(dtype)
  const double min = FinfoMin(dtype);
  at::Tensor mask = inverted.masked_fill(inverted.to(at::kBool), min);
  const at::Tensor rows = (mask != min).any(-1).to(dtype).unsqueeze(-1);
  mask = mask * rows;
  return {mask, rows};
}

}  // namespace spatialid::families
