// The Llama-style decoder stack: token embeddings, pre-norm layers (RMSNorm,
// RoPE self-attention, gated MLP) and a final RMSNorm.
//
// One struct covers the text towers of LLaVA (Llama / Vicuna), InternVL3 and
// Qwen2-VL (Qwen2: q/k/v biases) and the self-attention layers of Mllama
// (Llama 3). Weight names are the HF ones under a prefix that ends before
// "embed_tokens" / "layers" / "norm":
//   <prefix>.embed_tokens.weight
//   <prefix>.layers.<i>.input_layernorm.weight
//   <prefix>.layers.<i>.self_attn.{q,k,v,o}_proj.{weight,bias}
//   <prefix>.layers.<i>.post_attention_layernorm.weight
//   <prefix>.layers.<i>.mlp.{gate,up,down}_proj.weight
//   <prefix>.norm.weight
// Layers listed in `other_layers` are of another kind (Mllama's
// cross-attention layers): the stack neither loads nor runs them, and the
// family supplies them. The stack exposes its pieces (Embed, Layer,
// FinalNorm, the rotary embedding) rather than one forward, so each family
// runs them in the loop that collects hidden states (families/hidden_states.h)
// and can swap in its own positions (Qwen2-VL's multimodal RoPE) or masks.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/embedding.h>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "spatialid/nn/activation.h"
#include "spatialid/nn/attention.h"
#include "spatialid/nn/mlp.h"
#include "spatialid/nn/norm.h"
#include "spatialid/nn/rotary.h"
#include "spatialid/nn/transformer_block.h"
#include "spatialid/nn/weights.h"

namespace spatialid::nn {

// The numbers of a Llama-style text config (HF key names in comments).
struct TextDecoderShape {
  int64_t vocab_size = 0;               // vocab_size
  int64_t hidden_size = 0;              // hidden_size
  int64_t intermediate_size = 0;        // intermediate_size
  int64_t num_layers = 0;               // num_hidden_layers
  int64_t num_heads = 0;                // num_attention_heads
  int64_t num_kv_heads = 0;             // num_key_value_heads
  int64_t head_dim = 0;                 // head_dim (hidden_size / num_heads if absent)
  int64_t max_position_embeddings = 0;  // max_position_embeddings
  double rms_norm_eps = 1e-6;           // rms_norm_eps
  Activation act = Activation::kSilu;   // hidden_act
  bool attention_bias = false;          // attention_bias (q/k/v and o)
  bool qkv_bias_only = false;           // Qwen2: biases on q/k/v but not o
  bool mlp_bias = false;                // mlp_bias
  RopeParameters rope;                  // rope_parameters / rope_theta + rope_scaling
  std::vector<int64_t> other_layers;    // layer indices the family loads and runs itself
};

struct TextDecoder {
  using Layer = TransformerBlock<RmsNorm<>, GatedMlp>;

  at::Tensor embed_tokens;  // [vocab, hidden]
  std::vector<Layer> layers;
  RmsNorm<> norm;
  RotaryEmbedding rotary;
  TextDecoderShape shape;

  template <WeightLoader L>
  static absl::StatusOr<TextDecoder> Load(L& loader, const std::string& prefix,
                                          const TextDecoderShape& s, at::Device device) {
    if (s.hidden_size <= 0 || s.num_layers <= 0 || s.num_heads <= 0 || s.num_kv_heads <= 0 ||
        s.head_dim <= 0 || s.vocab_size <= 0 || s.intermediate_size <= 0) {
      return absl::InvalidArgumentError(
          "text decoder: sizes (vocab, hidden, intermediate, layers, heads, kv heads, "
          "head_dim) must all be positive");
    }
    if (s.num_heads % s.num_kv_heads != 0) {
      return absl::InvalidArgumentError(absl::StrCat("text decoder: num_attention_heads ",
                                                     s.num_heads, " is not a multiple of "
                                                     "num_key_value_heads ",
                                                     s.num_kv_heads));
    }
    TextDecoder d;
    d.shape = s;
    auto rotary = RotaryEmbedding::Create(s.rope, s.head_dim, s.max_position_embeddings, device);
    if (!rotary.ok()) return rotary.status();
    d.rotary = *std::move(rotary);
    d.embed_tokens = loader.Take(Join(prefix, "embed_tokens.weight"), {s.vocab_size, s.hidden_size});
    AttentionShape attn;
    attn.hidden_size = s.hidden_size;
    attn.num_heads = s.num_heads;
    attn.num_kv_heads = s.num_kv_heads;
    attn.head_dim = s.head_dim;
    attn.qkv_bias = s.attention_bias || s.qkv_bias_only;
    attn.o_bias = s.attention_bias && !s.qkv_bias_only;
    d.layers.reserve(static_cast<size_t>(s.num_layers));
    for (int64_t i = 0; i < s.num_layers; ++i) {
      const std::string p = Join(prefix, absl::StrCat("layers.", i));
      Layer layer;
      if (d.IsOtherLayer(i)) {  // left empty for the family
        d.layers.push_back(std::move(layer));
        continue;
      }
      layer.attn_norm = RmsNorm<>::Load(loader, Join(p, "input_layernorm"), s.hidden_size,
                                        s.rms_norm_eps);
      layer.attn = SelfAttention<>::Load(loader, Join(p, "self_attn"), attn);
      layer.mlp_norm = RmsNorm<>::Load(loader, Join(p, "post_attention_layernorm"),
                                       s.hidden_size, s.rms_norm_eps);
      layer.mlp = GatedMlp::Load(loader, Join(p, "mlp"), s.hidden_size, s.intermediate_size,
                                 s.act, s.mlp_bias);
      d.layers.push_back(std::move(layer));
    }
    d.norm = RmsNorm<>::Load(loader, Join(prefix, "norm"), s.hidden_size, s.rms_norm_eps);
    return d;
  }

  int64_t num_layers() const { return static_cast<int64_t>(layers.size()); }
  bool IsOtherLayer(int64_t i) const {
    for (int64_t o : shape.other_layers) {
      if (o == i) return true;
    }
    return false;
  }
  int64_t hidden_size() const { return shape.hidden_size; }

  // int64 ids [B, S] -> [B, S, hidden] in the weights' dtype.
  at::Tensor Embed(const at::Tensor& input_ids) const {
    return at::embedding(embed_tokens, input_ids);
  }

  // Decoder layer `i` (0-based) on x [B, S, hidden].
  at::Tensor RunLayer(int64_t i, const at::Tensor& x, const CosSin& rotary_cs,
                      const AttentionMask& mask) const {
    TORCH_CHECK(!IsOtherLayer(i), "text decoder layer ", i,
                " is not a Llama layer; the family runs it");
    return layers[static_cast<size_t>(i)](x, &rotary_cs, mask);
  }

  // The extraction engine's call of layer `i` (nn/attention.h ExtendedCall;
  // a plain call runs the plain layer).
  at::Tensor RunLayer(int64_t i, const at::Tensor& x, const CosSin& rotary_cs,
                      const AttentionMask& mask, const ExtendedCall& call) const {
    TORCH_CHECK(!IsOtherLayer(i), "text decoder layer ", i,
                " is not a Llama layer; the family runs it");
    const Layer& layer = layers[static_cast<size_t>(i)];
    return call.IsPlain() ? layer(x, &rotary_cs, mask) : layer.Extended(x, &rotary_cs, mask, call);
  }

  // Packs every layer's q/k/v and gate/up weights for ExtendedCall::packed;
  // the plain RunLayer is unchanged (the unpacked weights become views).
  void PackWeights() {
    for (int64_t i = 0; i < num_layers(); ++i) {
      if (IsOtherLayer(i)) continue;
      layers[static_cast<size_t>(i)].attn.PackProjections();
      layers[static_cast<size_t>(i)].mlp.PackGateUp();
    }
  }

  at::Tensor FinalNorm(const at::Tensor& x) const { return norm(x); }

  // RoPE of positions past..length-1 of a sequence of seq_len tokens (the
  // untruncated length, which dynamic-NTK scaling depends on, as in HF).
  CosSin RotaryFor(int64_t past, int64_t length, int64_t seq_len, at::ScalarType dtype) const {
    const at::Tensor positions =
        at::arange(past, length, at::TensorOptions().dtype(at::kLong).device(embed_tokens.device()))
            .unsqueeze(0);
    return rotary(positions, dtype, seq_len);
  }

  // Layer i under causal attention (the Llama-style families' only mask).
  at::Tensor RunCausalLayer(int64_t i, const at::Tensor& x, const CosSin& rotary_cs,
                            const ExtendedCall& call) const {
    return RunLayer(i, x, rotary_cs, AttentionMask::Causal(), call);
  }
};

}  // namespace spatialid::nn
