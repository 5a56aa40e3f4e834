// The SigLIP vision transformer (SiglipVisionModel's `vision_model`), the
// image encoder of Gemma 3 (SigLIP so400m/14 at 896 px).
//
// patch conv (with bias) -> + position embeddings (one per patch: no class
// token, no pre-norm) -> encoder layers (vision_encoder_layer.h: LayerNorm,
// biased attention without mask, fc1 -> gelu_pytorch_tanh -> fc2) ->
// post_layernorm. transformers 5.3.0 models/siglip/modeling_siglip.py.
//
// `LastHiddenState` is SiglipVisionTransformer's `last_hidden_state`: the
// post_layernorm output, which is what Gemma 3 pools and projects. (SigLIP's
// `hidden_states` tuple is recorded with tie_last_hidden_states=False, so its
// last entry is the un-normed output; nothing here needs it.) The attention
// pooling head (`vision_use_head`) is not part of Gemma 3 and is not loaded;
// a family that finds head weights in a checkpoint ignores them. Position
// embeddings are used as stored (no `interpolate_pos_encoding`), so pixels
// must be image_size x image_size.
//
// Weight names under `prefix` (e.g. "vision_tower.vision_model"):
//   embeddings.patch_embedding.{weight,bias}, embeddings.position_embedding.weight
//   encoder.layers.<i>.* (vision_encoder_layer.h)
//   post_layernorm.{weight,bias}
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/conv2d.h>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "spatialid/nn/activation.h"
#include "spatialid/nn/attention.h"
#include "spatialid/nn/norm.h"
#include "spatialid/nn/vision_encoder_layer.h"
#include "spatialid/nn/weights.h"

namespace spatialid::families {

// SiglipVisionConfig fields (HF key names); the encoder-layer sizes
// (hidden_size, intermediate_size, num_attention_heads, layer_norm_eps,
// hidden_act) come from the base.
struct SiglipVisionShape : nn::VisionEncoderLayerShape {
  int64_t num_layers = 12;   // num_hidden_layers
  int64_t num_channels = 3;  // num_channels
  int64_t image_size = 224;  // image_size
  int64_t patch_size = 16;   // patch_size

  SiglipVisionShape() {
    hidden_size = 768;
    intermediate_size = 3072;
    num_heads = 12;
    layer_norm_eps = 1e-6;
    act = nn::Activation::kGeluTanh;
  }

  int64_t patches_per_side() const { return image_size / patch_size; }
  int64_t num_patches() const { return patches_per_side() * patches_per_side(); }
};

struct SiglipVisionTower {
  at::Tensor patch_weight;        // [hidden, channels, patch, patch]
  at::Tensor patch_bias;          // [hidden]
  at::Tensor position_embedding;  // [num_patches, hidden]
  std::vector<nn::VisionEncoderLayer> layers;
  nn::LayerNorm post_layernorm;
  SiglipVisionShape shape;

  template <nn::WeightLoader L>
  static absl::StatusOr<SiglipVisionTower> Load(L& loader, const std::string& prefix,
                                                const SiglipVisionShape& s) {
    if (s.hidden_size <= 0 || s.num_heads <= 0 || s.hidden_size % s.num_heads != 0 ||
        s.patch_size <= 0 || s.image_size % s.patch_size != 0 || s.num_layers <= 0 ||
        s.intermediate_size <= 0 || s.num_channels <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "SigLIP vision config: need positive sizes, hidden_size divisible by "
          "num_attention_heads (",
          s.hidden_size, ", ", s.num_heads, ") and image_size divisible by patch_size (",
          s.image_size, ", ", s.patch_size, ")"));
    }
    SiglipVisionTower t;
    t.shape = s;
    const std::string emb = nn::Join(prefix, "embeddings");
    t.patch_weight = loader.Take(nn::Join(emb, "patch_embedding.weight"),
                                 {s.hidden_size, s.num_channels, s.patch_size, s.patch_size});
    t.patch_bias = loader.Take(nn::Join(emb, "patch_embedding.bias"), {s.hidden_size});
    t.position_embedding =
        loader.Take(nn::Join(emb, "position_embedding.weight"), {s.num_patches(), s.hidden_size});
    t.layers.reserve(static_cast<size_t>(s.num_layers));
    for (int64_t i = 0; i < s.num_layers; ++i) {
      t.layers.push_back(
          nn::LoadVisionEncoderLayer(loader, nn::Join(prefix, absl::StrCat("encoder.layers.", i)), s));
    }
    t.post_layernorm =
        nn::LayerNorm::Load(loader, nn::Join(prefix, "post_layernorm"), s.hidden_size, s.layer_norm_eps);
    return t;
  }

  // pixels [B, C, image_size, image_size] (any float dtype) -> the encoder's
  // input, [B, num_patches, hidden] in the weights' dtype.
  at::Tensor Embed(const at::Tensor& pixel_values) const {
    TORCH_CHECK(pixel_values.dim() == 4 && pixel_values.size(1) == shape.num_channels &&
                    pixel_values.size(2) == shape.image_size &&
                    pixel_values.size(3) == shape.image_size,
                "SigLIP vision tower expects pixels [B, ", shape.num_channels, ", ",
                shape.image_size, ", ", shape.image_size, "], got ", pixel_values.sizes());
    const at::Tensor patches =
        at::conv2d(pixel_values.to(patch_weight.scalar_type()), patch_weight, patch_bias,
                   {shape.patch_size, shape.patch_size})
            .flatten(2)
            .transpose(1, 2);
    return patches + position_embedding.unsqueeze(0);
  }

  // post_layernorm(encoder(Embed(pixels))): [B, num_patches, hidden].
  at::Tensor LastHiddenState(const at::Tensor& pixel_values) const {
    at::Tensor x = Embed(pixel_values);
    const nn::AttentionMask no_mask = nn::AttentionMask::None();
    for (const nn::VisionEncoderLayer& layer : layers) x = layer(x, nullptr, no_mask);
    return post_layernorm(x);
  }
};

}  // namespace spatialid::families
