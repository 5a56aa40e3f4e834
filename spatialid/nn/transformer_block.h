// The residual block every encoder and decoder here is made of.
//
//   h = attn_norm(x) -> attention -> [attn_out_norm] -> [* attn_scale];  x = x + h
//   h = mlp_norm(x)  -> mlp       -> [mlp_out_norm]  -> [* mlp_scale];   x = x + h
//
// With only the two pre-norms this is LlamaDecoderLayer (input_layernorm,
// post_attention_layernorm, RMSNorm, gated MLP, RoPE, causal) and
// CLIPEncoderLayer (layer_norm1, layer_norm2, LayerNorm, fc1/fc2 MLP, no
// RoPE, no mask). The optional output norms are Gemma 3's sandwich norms
// (post_attention_layernorm, post_feedforward_layernorm) and the optional
// scales InternViT's layer scale (lambda_1, lambda_2). Which HF names fill
// which member is the family's business: it loads the members itself.
// `Apply` runs the block around an attention with its own arguments (the
// Qwen2-VL vision tower's segmented attention). `Extended` is the
// extraction engine's call (nn/attention.h ExtendedCall): the block's
// output at chosen rows only, with a shared prefix's keys/values and packed
// weights.
#pragma once

#include <optional>

#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>

#include "spatialid/nn/attention.h"
#include "spatialid/nn/rotary.h"

namespace spatialid::nn {

// `Norm`: LayerNorm or RmsNorm<...>; `Mlp`: Mlp or GatedMlp;
// `Attention`: SelfAttention<...> or anything with the same call.
template <class Norm, class Mlp, class Attention = SelfAttention<>>
struct TransformerBlock {
  Norm attn_norm;
  Attention attn;
  std::optional<Norm> attn_out_norm;
  at::Tensor attn_scale;  // per-channel layer scale, or undefined
  Norm mlp_norm;
  Mlp mlp;
  std::optional<Norm> mlp_out_norm;
  at::Tensor mlp_scale;

  at::Tensor operator()(const at::Tensor& x, const CosSin* rotary,
                        const AttentionMask& mask) const {
    return Apply(x, rotary, mask);
  }

  // The same block around an attention that takes other arguments, e.g.
  // Qwen2-VL's vision attention (cos/sin and variable-length segments):
  // `attn(attn_norm(x), attn_args...)`.
  template <class... AttnArgs>
  at::Tensor Apply(const at::Tensor& x, const AttnArgs&... attn_args) const {
    return AfterAttention(x, attn(attn_norm(x), attn_args...), /*packed=*/false);
  }

  // x [B, S, hidden] -> [B, R, hidden] at `call.query_rows` (all S rows when
  // undefined); needs an attention with `Extended` (SelfAttention).
  at::Tensor Extended(const at::Tensor& x, const CosSin* rotary, const AttentionMask& mask,
                      const ExtendedCall& call) const {
    return AfterAttention(call.query_rows.defined() ? x.index_select(1, call.query_rows) : x,
                          attn.Extended(attn_norm(x), rotary, mask, call), call.packed);
  }

 private:
  // The rest of the block once the attention output `h` of rows x is known.
  at::Tensor AfterAttention(const at::Tensor& x, at::Tensor h, bool packed) const {
    if (attn_out_norm) h = (*attn_out_norm)(h);
    if (attn_scale.defined()) h = h * attn_scale;
    const at::Tensor y = x + h;
    const at::Tensor n = mlp_norm(y);
    if constexpr (requires { mlp.Packed(n); }) {
      h = packed ? mlp.Packed(n) : mlp(n);
    } else {
      h = mlp(n);
    }
    if (mlp_out_norm) h = (*mlp_out_norm)(h);
    if (mlp_scale.defined()) h = h * mlp_scale;
    return y + h;
  }
};

}  // namespace spatialid::nn
