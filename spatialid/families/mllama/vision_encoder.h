// The Mllama (Llama 3.2 Vision) tiled vision encoder: transformers 5.3.0
// `MllamaVisionModel` (models/mllama/modeling_mllama.py).
//
// For pixels [B, I, T, C, t, t] (I images per sample, T = max_num_tiles tiles
// of side t) and aspect-ratio ids [B, I] / masks [B, I, T]:
//   patch conv (no bias) -> [BI, T, n, D]
//   + pre-tile embedding: embedding[id] as [T, 1, D] * tanh(gate)
//   prepend the class embedding -> P = n + 1 positions per tile
//   + gated positional embedding: (1 - tanh(gate)) * pos [P, D]
//     + tanh(gate) * tile_embedding[id] as [T, P, D]
//   layernorm_pre (nn.LayerNorm's default eps 1e-5, not norm_eps)
//   zero-pad every tile to L = P rounded up to a multiple of 8
//   local transformer (num_hidden_layers pre-norm layers over all T * L
//     positions of an image, with the tile mask below); the outputs of layers
//     `intermediate_layers_indices` (0-based) are kept
//   layernorm_post; + post-tile embedding (gated like the pre-tile one)
//   global transformer (num_global_layers layers whose attention and MLP
//     outputs are scaled by tanh(gate_attn), tanh(gate_ffn))
//   drop the padding positions; concatenate [final, intermediate] on the
//     feature axis: D + D * K features, the intermediates interleaved
//     (feature d of intermediate k at D + d * K + k, torch.stack(dim=-1))
// -> [B, I, T, P, vision_output_dim].
//
// The tile mask (_prepare_aspect_ratio_attention_mask) is additive,
// m_i * m_j * finfo.min, where m is 1 for the padding positions of every
// tile and for every position of a padding tile: only pairs of two such
// positions are blocked, so real positions attend to padding too (kept: it
// changes every real output). Python's `[-pad:]` slice would mark every
// position if pad were 0; it never is, n^2 + 1 not being a multiple of 8.
//
// Weight names under `prefix` (e.g. "vision_model"):
//   patch_embedding.weight, class_embedding,
//   gated_positional_embedding.{embedding, gate, tile_embedding.weight},
//   {pre,post}_tile_positional_embedding.{embedding.weight, gate},
//   layernorm_{pre,post}.{weight,bias},
//   {transformer,global_transformer}.layers.<i>.{input_layernorm,
//     post_attention_layernorm}.{weight,bias},
//   ....layers.<i>.self_attn.{q,k,v,o}_proj.weight, ....layers.<i>.mlp.{fc1,fc2}.{weight,bias},
//   global_transformer.layers.<i>.{gate_attn, gate_ffn}
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/constant_pad_nd.h>
#include <ATen/ops/conv2d.h>
#include <ATen/ops/embedding.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/rsub.h>
#include <ATen/ops/stack.h>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "spatialid/nn/activation.h"
#include "spatialid/families/mllama/additive_mask.h"
#include "spatialid/nn/attention.h"
#include "spatialid/nn/mlp.h"
#include "spatialid/nn/norm.h"
#include "spatialid/nn/transformer_block.h"
#include "spatialid/nn/weights.h"

namespace spatialid::families {

// MllamaVisionConfig fields (HF key names).
struct MllamaVisionShape {
  int64_t hidden_size = 1280;        // hidden_size
  int64_t intermediate_size = 5120;  // intermediate_size
  int64_t num_layers = 32;           // num_hidden_layers (local transformer)
  int64_t num_global_layers = 8;     // num_global_layers (gated transformer)
  int64_t num_heads = 16;            // attention_heads
  int64_t num_channels = 3;          // num_channels
  int64_t image_size = 560;          // image_size: the tile side
  int64_t patch_size = 14;           // patch_size
  double norm_eps = 1e-5;            // norm_eps (encoder layers)
  int64_t max_num_tiles = 4;         // max_num_tiles
  int64_t max_aspect_ratio_id = 8;   // len(supported_aspect_ratios)
  std::vector<int64_t> intermediate_layers_indices = {3, 7, 15, 23, 30};
  nn::Activation act = nn::Activation::kGelu;  // hidden_act

  // Positions per tile: patches plus the class token (1601 at 560 / 14).
  int64_t num_patches() const {
    const int64_t side = image_size / patch_size;
    return side * side + 1;
  }
  // num_patches() rounded up to a multiple of 8 (1608).
  int64_t padded_patches() const { return num_patches() + (8 - num_patches() % 8) % 8; }
  // hidden_size * (1 + number of intermediate layers): vision_output_dim.
  int64_t output_dim() const {
    return hidden_size * (1 + static_cast<int64_t>(intermediate_layers_indices.size()));
  }
};

// MllamaPrecomputedAspectRatioEmbedding (is_gated=True): one [T, D] table
// per aspect-ratio id, added to every position of each tile.
struct MllamaTileEmbedding {
  at::Tensor embedding;  // [max_aspect_ratio_id + 1, max_num_tiles * hidden]
  at::Tensor gate;       // [1]

  template <nn::WeightLoader L>
  static MllamaTileEmbedding Load(L& loader, const std::string& prefix, const MllamaVisionShape& s) {
    MllamaTileEmbedding e;
    e.embedding = loader.Take(nn::Join(prefix, "embedding.weight"),
                              {s.max_aspect_ratio_id + 1, s.max_num_tiles * s.hidden_size});
    e.gate = loader.Take(nn::Join(prefix, "gate"), {1});
    return e;
  }

  // x [BI, T, L, D], ids [BI, 1].
  at::Tensor operator()(const at::Tensor& x, const at::Tensor& ids) const {
    const at::Tensor e = at::embedding(embedding, ids).reshape({-1, x.size(1), 1, x.size(3)});
    return x + e * gate.tanh();
  }
};

// MllamaPrecomputedPositionEmbedding: a gated mix of one position table and
// a per-aspect-ratio table for every (tile, position).
struct MllamaGatedPositionEmbedding {
  at::Tensor embedding;       // [P, D]
  at::Tensor gate;            // [1]
  at::Tensor tile_embedding;  // [max_aspect_ratio_id + 1, T * P * D]

  template <nn::WeightLoader L>
  static MllamaGatedPositionEmbedding Load(L& loader, const std::string& prefix,
                                           const MllamaVisionShape& s) {
    MllamaGatedPositionEmbedding e;
    e.embedding = loader.Take(nn::Join(prefix, "embedding"), {s.num_patches(), s.hidden_size});
    e.gate = loader.Take(nn::Join(prefix, "gate"), {1});
    e.tile_embedding =
        loader.Take(nn::Join(prefix, "tile_embedding.weight"),
                    {s.max_aspect_ratio_id + 1, s.max_num_tiles * s.num_patches() * s.hidden_size});
    return e;
  }

  // x [BI, T, P, D], ids [BI, 1].
  at::Tensor operator()(const at::Tensor& x, const at::Tensor& ids) const {
    const at::Tensor g = gate.tanh();
    at::Tensor h = x + (at::rsub(g, 1) * embedding).view({1, 1, x.size(2), x.size(3)});
    const at::Tensor tiles =
        at::embedding(tile_embedding, ids).reshape({x.size(0), x.size(1), x.size(2), x.size(3)});
    return h + g * tiles;
  }
};

// The additive tile mask [BI, 1, T*L, T*L] (see the file comment).
// `aspect_ratio_mask` [BI, T] holds 1 for real tiles.
inline at::Tensor MllamaTileAttentionMask(const at::Tensor& aspect_ratio_mask, int64_t num_patches,
                                          int64_t target_length, at::ScalarType dtype) {
  const int64_t bi = aspect_ratio_mask.size(0), tiles = aspect_ratio_mask.size(1);
  at::Tensor m = aspect_ratio_mask.reshape({bi, tiles, 1, 1}).to(dtype).repeat({1, 1, target_length, 1});
  const int64_t pad = target_length - num_patches;
  m.slice(2, pad > 0 ? target_length - pad : 0).fill_(0);  // attention_mask[:, :, -pad:] = 0
  m = at::rsub(m, 1).reshape({bi, tiles * target_length, 1});
  return (at::matmul(m, m.transpose(-1, -2)) * FinfoMin(dtype)).unsqueeze(1);
}

struct MllamaVisionEncoder {
  using Layer = nn::TransformerBlock<nn::LayerNorm, nn::Mlp>;

  at::Tensor patch_embedding;  // [D, C, patch, patch]
  at::Tensor class_embedding;  // [D]
  MllamaGatedPositionEmbedding gated_positional_embedding;
  MllamaTileEmbedding pre_tile_positional_embedding;
  MllamaTileEmbedding post_tile_positional_embedding;
  nn::LayerNorm layernorm_pre, layernorm_post;
  std::vector<Layer> layers;         // transformer.layers
  std::vector<Layer> global_layers;  // global_transformer.layers (gated)
  std::vector<int64_t> intermediate;  // resolved intermediate_layers_indices
  MllamaVisionShape shape;

  template <nn::WeightLoader L>
  static absl::StatusOr<MllamaVisionEncoder> Load(L& loader, const std::string& prefix,
                                                  const MllamaVisionShape& s) {
    if (s.hidden_size <= 0 || s.num_heads <= 0 || s.hidden_size % s.num_heads != 0 ||
        s.patch_size <= 0 || s.image_size < s.patch_size || s.num_layers <= 0 ||
        s.num_global_layers < 0 || s.max_num_tiles <= 0 || s.max_aspect_ratio_id <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Mllama vision config: need hidden_size divisible by attention_heads (", s.hidden_size,
          ", ", s.num_heads, "), image_size >= patch_size (", s.image_size, ", ", s.patch_size,
          ") and positive layer, tile and aspect-ratio counts"));
    }
    MllamaVisionEncoder e;
    e.shape = s;
    for (int64_t i : s.intermediate_layers_indices) {
      const int64_t r = i < 0 ? s.num_layers + i : i;  // Python list indexing
      if (r < 0 || r >= s.num_layers) {
        return absl::InvalidArgumentError(absl::StrCat(
            "Mllama vision config: intermediate_layers_indices entry ", i,
            " is outside the ", s.num_layers, " local layers"));
      }
      e.intermediate.push_back(r);
    }
    e.patch_embedding = loader.Take(nn::Join(prefix, "patch_embedding.weight"),
                                    {s.hidden_size, s.num_channels, s.patch_size, s.patch_size});
    e.class_embedding = loader.Take(nn::Join(prefix, "class_embedding"), {s.hidden_size});
    e.gated_positional_embedding =
        MllamaGatedPositionEmbedding::Load(loader, nn::Join(prefix, "gated_positional_embedding"), s);
    e.pre_tile_positional_embedding =
        MllamaTileEmbedding::Load(loader, nn::Join(prefix, "pre_tile_positional_embedding"), s);
    e.post_tile_positional_embedding =
        MllamaTileEmbedding::Load(loader, nn::Join(prefix, "post_tile_positional_embedding"), s);
    constexpr double kTorchLayerNormEps = 1e-5;  // nn.LayerNorm(hidden_size) without eps
    e.layernorm_pre = nn::LayerNorm::Load(loader, nn::Join(prefix, "layernorm_pre"), s.hidden_size, kTorchLayerNormEps);
    e.layernorm_post = nn::LayerNorm::Load(loader, nn::Join(prefix, "layernorm_post"), s.hidden_size, kTorchLayerNormEps);
    for (int64_t i = 0; i < s.num_layers; ++i) {
      e.layers.push_back(LoadLayer(loader, nn::Join(prefix, absl::StrCat("transformer.layers.", i)), s, false));
    }
    for (int64_t i = 0; i < s.num_global_layers; ++i) {
      e.global_layers.push_back(
          LoadLayer(loader, nn::Join(prefix, absl::StrCat("global_transformer.layers.", i)), s, true));
    }
    return e;
  }

  // pixel_values [B, I, T, C, t, t] (any float dtype), aspect_ratio_ids
  // [B, I], aspect_ratio_mask [B, I, T] (integers) -> [B, I, T, P,
  // output_dim] in the weights' dtype.
  at::Tensor operator()(const at::Tensor& pixel_values, const at::Tensor& aspect_ratio_ids,
                        const at::Tensor& aspect_ratio_mask) const {
    const int64_t b = pixel_values.size(0), images = pixel_values.size(1), tiles = pixel_values.size(2);
    const int64_t bi = b * images, d = shape.hidden_size;
    TORCH_CHECK(pixel_values.dim() == 6 && pixel_values.size(3) == shape.num_channels &&
                    pixel_values.size(4) == shape.image_size && pixel_values.size(5) == shape.image_size &&
                    tiles == shape.max_num_tiles,
                "Mllama vision encoder expects pixels [B, I, ", shape.max_num_tiles, ", ",
                shape.num_channels, ", ", shape.image_size, ", ", shape.image_size, "], got ",
                pixel_values.sizes());
    const at::ScalarType dtype = patch_embedding.scalar_type();
    const at::Tensor ids = aspect_ratio_ids.reshape({bi, -1});
    at::Tensor x = at::conv2d(pixel_values.reshape({bi * tiles, shape.num_channels, shape.image_size,
                                                    shape.image_size})
                                  .to(patch_embedding.device(), dtype),
                              patch_embedding, {}, {shape.patch_size, shape.patch_size})
                       .flatten(2)
                       .transpose(1, 2);
    const int64_t patches = x.size(1);
    x = pre_tile_positional_embedding(x.reshape({bi, tiles, -1, d}), ids);
    x = x.reshape({bi * tiles, patches, d});
    x = at::cat({class_embedding.expand({bi * tiles, 1, d}), x}, 1);
    const int64_t p = patches + 1;
    x = gated_positional_embedding(x.reshape({bi, tiles, p, d}), ids);
    x = layernorm_pre(x);
    const int64_t pad = (8 - p % 8) % 8;
    const int64_t len = p + pad;
    x = at::constant_pad_nd(x, {0, 0, 0, pad}, 0);
    const nn::AttentionMask mask = nn::AttentionMask::Explicit(
        MllamaTileAttentionMask(aspect_ratio_mask.reshape({bi, -1}).to(x.device()), p, len, dtype));
    x = x.view({bi, -1, d});
    std::vector<at::Tensor> kept(intermediate.size());
    for (size_t i = 0; i < layers.size(); ++i) {
      x = layers[i](x, nullptr, mask);
      for (size_t k = 0; k < intermediate.size(); ++k) {
        if (intermediate[k] == static_cast<int64_t>(i)) kept[k] = x;
      }
    }
    x = layernorm_post(x);
    x = post_tile_positional_embedding(x.reshape({bi, tiles, len, d}), ids);
    x = x.reshape({bi, tiles * len, d});
    for (const Layer& layer : global_layers) x = layer(x, nullptr, mask);
    x = x.reshape({bi, tiles, len, d}).slice(2, 0, p).reshape({b, images, tiles, p, d});
    if (kept.empty()) return x;
    const at::Tensor inter = at::stack(kept, -1)
                                 .reshape({bi, tiles, len, -1})
                                 .slice(2, 0, p)
                                 .reshape({b, images, tiles, p, -1});
    return at::cat({x, inter}, -1);
  }

 private:
  template <nn::WeightLoader L>
  static Layer LoadLayer(L& loader, const std::string& prefix, const MllamaVisionShape& s, bool gated) {
    nn::AttentionShape attn;
    attn.hidden_size = s.hidden_size;
    attn.num_heads = attn.num_kv_heads = s.num_heads;
    attn.head_dim = s.hidden_size / s.num_heads;
    attn.scale = std::pow(static_cast<double>(attn.head_dim), -0.5);  // head_dim**-0.5
    // MllamaVisionAttention has num_key_value_groups = 1: SDPA's k/v repeat is a no-op.
    attn.hf_kv_groups = true;
    Layer layer;
    layer.attn_norm = nn::LayerNorm::Load(loader, nn::Join(prefix, "input_layernorm"), s.hidden_size, s.norm_eps);
    layer.attn = nn::SelfAttention<>::Load(loader, nn::Join(prefix, "self_attn"), attn);
    layer.mlp_norm =
        nn::LayerNorm::Load(loader, nn::Join(prefix, "post_attention_layernorm"), s.hidden_size, s.norm_eps);
    layer.mlp = nn::Mlp::Load(loader, nn::Join(prefix, "mlp"), s.hidden_size, s.intermediate_size,
                          s.hidden_size, s.act, /*with_bias=*/true);
    if (gated) {
      // tanh(gate) * output, as the layer computes it; left undefined when
      // the weight is missing (the loader reports it).
      const at::Tensor gate_attn = loader.Take(nn::Join(prefix, "gate_attn"), {1});
      const at::Tensor gate_ffn = loader.Take(nn::Join(prefix, "gate_ffn"), {1});
      if (gate_attn.defined()) layer.attn_scale = gate_attn.tanh();
      if (gate_ffn.defined()) layer.mlp_scale = gate_ffn.tanh();
    }
    return layer;
  }
};

}  // namespace spatialid::families
