// The InternViT vision transformer (transformers' InternVLVisionModel), the
// image encoder of InternVL3 (InternViT-300M: 24 layers, 1024 wide, 448 px
// tiles, patch 14).
//
// patch conv (with bias) -> prepend the class token -> + absolute position
// embeddings -> layers -> [layernorm]. Each layer is
//   x = x + lambda_1 * attention(layernorm_before(x))
//   x = x + lambda_2 * mlp(layernorm_after(x))
// (nn::TransformerBlock with layer scales). Config switches, as in
// InternVLVisionConfig (transformers 5.3.0,
// models/internvl/modeling_internvl.py):
// - norm_type "layer_norm" or "rms_norm" for the two layer norms;
// - attention_bias: q/k/v biases (projection_layer always has one);
// - use_qk_norm: RMSNorm (eps 1e-6, HF's fixed default) over the whole
//   projected query and key, before the split into heads;
// - use_mean_pooling: when false a final LayerNorm (`layernorm`) produces
//   last_hidden_state; when true (InternVL3) that module is an Identity;
// - use_absolute_position_embeddings.
// Attention is unmasked SDPA with scale head_dim**-0.5. Position embeddings
// are used as stored (no `interpolate_pos_encoding`), so tiles must be
// image_size x image_size, which the GOT-OCR2 processor guarantees.
//
// Which features InternVL takes (`InternVLModel.get_image_features`):
// vision_feature_layer -1 means `last_hidden_state` (after `layernorm`);
// any other index picks from `hidden_states` (0 = embeddings, i = output of
// layer i, never normed; InternVLVisionModel records them with
// tie_last_hidden_states=False). `Features` implements exactly that and runs
// only the layers it needs.
//
// Weight names under `prefix` (e.g. "vision_tower"):
//   embeddings.{cls_token, position_embeddings}
//   embeddings.patch_embeddings.projection.{weight,bias}
//   encoder.layer.<i>.{layernorm_before,layernorm_after}.{weight[,bias]}
//   encoder.layer.<i>.attention.{q,k,v}_proj.{weight[,bias]}
//   encoder.layer.<i>.attention.projection_layer.{weight,bias}
//   encoder.layer.<i>.attention.{q_norm,k_norm}.weight   (use_qk_norm)
//   encoder.layer.<i>.mlp.{fc1,fc2}.{weight,bias}, encoder.layer.<i>.lambda_{1,2}
//   layernorm.{weight,bias}                               (not use_mean_pooling)
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/conv2d.h>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "spatialid/nn/activation.h"
#include "spatialid/nn/attention.h"
#include "spatialid/nn/mlp.h"
#include "spatialid/nn/norm.h"
#include "spatialid/nn/transformer_block.h"
#include "spatialid/nn/weights.h"

namespace spatialid::families {

// InternVLVisionConfig.norm_type.
enum class VisionNormType { kLayerNorm, kRmsNorm };

// InternVLVisionConfig fields (HF key names).
struct InternVisionShape {
  int64_t hidden_size = 1024;        // hidden_size
  int64_t intermediate_size = 4096;  // intermediate_size
  int64_t num_layers = 24;           // num_hidden_layers
  int64_t num_heads = 16;            // num_attention_heads
  int64_t num_channels = 3;          // num_channels
  int64_t image_size = 448;          // image_size (square)
  int64_t patch_size = 14;           // patch_size (square)
  double layer_norm_eps = 1e-6;      // layer_norm_eps
  nn::Activation act = nn::Activation::kGelu;             // hidden_act
  VisionNormType norm_type = VisionNormType::kLayerNorm;  // norm_type
  bool attention_bias = false;       // attention_bias (q/k/v)
  bool use_qk_norm = false;          // use_qk_norm
  bool use_mean_pooling = true;      // use_mean_pooling (false: final layernorm)
  bool use_absolute_position_embeddings = true;  // use_absolute_position_embeddings

  int64_t patches_per_side() const { return image_size / patch_size; }
  int64_t num_patches() const { return patches_per_side() * patches_per_side(); }
  int64_t num_positions() const { return num_patches() + 1; }  // + class token
};

// The per-layer norm InternVLVisionLayer builds from norm_type.
struct InternVisionNorm {
  VisionNormType type = VisionNormType::kLayerNorm;
  nn::LayerNorm layer;
  nn::RmsNorm<> rms;

  template <nn::WeightLoader L>
  static InternVisionNorm Load(L& loader, const std::string& prefix, int64_t dim, double eps,
                               VisionNormType type) {
    InternVisionNorm n;
    n.type = type;
    if (type == VisionNormType::kLayerNorm) {
      n.layer = nn::LayerNorm::Load(loader, prefix, dim, eps);
    } else {
      n.rms = nn::RmsNorm<>::Load(loader, prefix, dim, eps);
    }
    return n;
  }

  at::Tensor operator()(const at::Tensor& x) const {
    return type == VisionNormType::kLayerNorm ? layer(x) : rms(x);
  }
};

struct InternVisionTower {
  using Layer = nn::TransformerBlock<InternVisionNorm, nn::Mlp, nn::SelfAttention<nn::RmsNorm<>>>;

  at::Tensor cls_token;            // [1, 1, hidden]
  at::Tensor patch_weight;         // [hidden, channels, patch, patch]
  at::Tensor patch_bias;           // [hidden]
  at::Tensor position_embeddings;  // [1, num_positions, hidden], or undefined
  std::vector<Layer> layers;
  std::optional<nn::LayerNorm> layernorm;  // only without mean pooling
  InternVisionShape shape;

  // HF's InternVLVisionRMSNorm default, used by q_norm / k_norm.
  static constexpr double kQkNormEps = 1e-6;

  template <nn::WeightLoader L>
  static absl::StatusOr<InternVisionTower> Load(L& loader, const std::string& prefix,
                                                const InternVisionShape& s) {
    if (s.hidden_size <= 0 || s.num_heads <= 0 || s.hidden_size % s.num_heads != 0 ||
        s.patch_size <= 0 || s.image_size % s.patch_size != 0 || s.num_layers <= 0 ||
        s.intermediate_size <= 0 || s.num_channels <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "InternViT config: need hidden_size divisible by num_attention_heads (", s.hidden_size,
          ", ", s.num_heads, "), image_size divisible by patch_size (", s.image_size, ", ",
          s.patch_size, ") and positive sizes"));
    }
    InternVisionTower t;
    t.shape = s;
    const std::string emb = nn::Join(prefix, "embeddings");
    t.cls_token = loader.Take(nn::Join(emb, "cls_token"), {1, 1, s.hidden_size});
    t.patch_weight = loader.Take(nn::Join(emb, "patch_embeddings.projection.weight"),
                                 {s.hidden_size, s.num_channels, s.patch_size, s.patch_size});
    t.patch_bias = loader.Take(nn::Join(emb, "patch_embeddings.projection.bias"), {s.hidden_size});
    if (s.use_absolute_position_embeddings) {
      t.position_embeddings =
          loader.Take(nn::Join(emb, "position_embeddings"), {1, s.num_positions(), s.hidden_size});
    }
    nn::AttentionShape attn;
    attn.hidden_size = s.hidden_size;
    attn.num_heads = attn.num_kv_heads = s.num_heads;
    attn.head_dim = s.hidden_size / s.num_heads;
    attn.qkv_bias = s.attention_bias;
    attn.o_bias = true;
    attn.hf_kv_groups = false;
    attn.o_proj_name = "projection_layer";
    attn.scale = std::pow(static_cast<double>(attn.head_dim), -0.5);  // Python's head_dim**-0.5
    if (s.use_qk_norm) {
      attn.qk_norm = nn::QkNormScope::kWholeProjection;
      attn.qk_norm_eps = kQkNormEps;
    }
    t.layers.reserve(static_cast<size_t>(s.num_layers));
    for (int64_t i = 0; i < s.num_layers; ++i) {
      const std::string p = nn::Join(prefix, absl::StrCat("encoder.layer.", i));
      Layer layer;
      layer.attn_norm = InternVisionNorm::Load(loader, nn::Join(p, "layernorm_before"), s.hidden_size,
                                               s.layer_norm_eps, s.norm_type);
      layer.attn = nn::SelfAttention<nn::RmsNorm<>>::Load(loader, nn::Join(p, "attention"), attn);
      layer.attn_scale = loader.Take(nn::Join(p, "lambda_1"), {s.hidden_size});
      layer.mlp_norm = InternVisionNorm::Load(loader, nn::Join(p, "layernorm_after"), s.hidden_size,
                                              s.layer_norm_eps, s.norm_type);
      layer.mlp = nn::Mlp::Load(loader, nn::Join(p, "mlp"), s.hidden_size, s.intermediate_size,
                            s.hidden_size, s.act, /*with_bias=*/true);
      layer.mlp_scale = loader.Take(nn::Join(p, "lambda_2"), {s.hidden_size});
      t.layers.push_back(std::move(layer));
    }
    if (!s.use_mean_pooling) {
      t.layernorm = nn::LayerNorm::Load(loader, nn::Join(prefix, "layernorm"), s.hidden_size,
                                    s.layer_norm_eps);
    }
    return t;
  }

  int64_t num_layers() const { return static_cast<int64_t>(layers.size()); }

  // pixels [B, C, image_size, image_size] (any float dtype) -> hidden state 0,
  // [B, num_positions, hidden] in the weights' dtype.
  at::Tensor Embed(const at::Tensor& pixel_values) const {
    TORCH_CHECK(pixel_values.dim() == 4 && pixel_values.size(1) == shape.num_channels &&
                    pixel_values.size(2) == shape.image_size &&
                    pixel_values.size(3) == shape.image_size,
                "InternViT expects pixels [B, ", shape.num_channels, ", ", shape.image_size, ", ",
                shape.image_size, "], got ", pixel_values.sizes());
    const int64_t b = pixel_values.size(0);
    const at::Tensor patches =
        at::conv2d(pixel_values.to(patch_weight.scalar_type()), patch_weight, patch_bias,
                   {shape.patch_size, shape.patch_size})
            .flatten(2)
            .transpose(1, 2);
    at::Tensor x = at::cat({cls_token.expand({b, -1, -1}), patches}, 1);
    if (position_embeddings.defined()) x = x + position_embeddings;
    return x;
  }

  // The features InternVL's vision_feature_layer names: -1 is
  // last_hidden_state, any other index a hidden state (negative from the
  // end of the num_layers + 1 states, as Python indexes). [B, num_positions, hidden].
  at::Tensor Features(const at::Tensor& pixel_values, int64_t feature_layer) const {
    const int64_t n = num_layers();
    const bool last = feature_layer == -1;
    const int64_t index = last ? n : (feature_layer < 0 ? n + 1 + feature_layer : feature_layer);
    TORCH_CHECK(index >= 0 && index <= n, "InternViT hidden state ", feature_layer,
                " is outside 0..", n);
    at::Tensor x = Embed(pixel_values);
    const nn::AttentionMask no_mask = nn::AttentionMask::None();
    for (int64_t i = 0; i < index; ++i) x = layers[static_cast<size_t>(i)](x, nullptr, no_mask);
    if (last && layernorm) x = (*layernorm)(x);
    return x;
  }
};

}  // namespace spatialid::families
