// The CLIP vision transformer (CLIPVisionModel's `vision_model`), the image
// encoder of LLaVA-1.5 (ViT-L/14 at 336 px).
//
// patch conv (no bias) -> prepend class embedding -> + position embeddings
// -> pre_layrnorm (sic, HF's name) -> encoder layers (LayerNorm, biased
// attention without mask or RoPE, fc1 -> quick_gelu -> fc2).
//
// Hidden-state indices follow CLIPVisionModel(output_hidden_states=True):
// 0 is the pre_layrnorm output, i the output of encoder layer i. The last one
// is *not* post-layernormed (CLIP records hidden states with
// tie_last_hidden_states=False); post_layernorm only feeds the pooled CLS
// output, which LLaVA never uses, so it is loaded (it is in the checkpoint)
// but never run. `HiddenStates` runs only as many layers as the deepest
// index asked for.
//
// Weight names under `prefix` (e.g. "vision_tower.vision_model"):
//   embeddings.{class_embedding, patch_embedding.weight, position_embedding.weight}
//   pre_layrnorm.{weight,bias}, post_layernorm.{weight,bias}
//   encoder.layers.<i>.{layer_norm1, layer_norm2}.{weight,bias}
//   encoder.layers.<i>.self_attn.{q,k,v,out}_proj.{weight,bias}
//   encoder.layers.<i>.mlp.{fc1,fc2}.{weight,bias}
#pragma once

#include <algorithm>
#include <cstdint>
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
#include "spatialid/nn/vision_encoder_layer.h"
#include "spatialid/nn/weights.h"

namespace spatialid::families {

// CLIPVisionConfig fields (HF key names).
struct ClipVisionShape {
  int64_t hidden_size = 768;         // hidden_size
  int64_t intermediate_size = 3072;  // intermediate_size
  int64_t num_layers = 12;           // num_hidden_layers
  int64_t num_heads = 12;            // num_attention_heads
  int64_t num_channels = 3;          // num_channels
  int64_t image_size = 224;          // image_size
  int64_t patch_size = 32;           // patch_size
  double layer_norm_eps = 1e-5;      // layer_norm_eps
  nn::Activation act = nn::Activation::kQuickGelu;  // hidden_act

  int64_t patches_per_side() const { return image_size / patch_size; }
  int64_t num_patches() const { return patches_per_side() * patches_per_side(); }
  int64_t num_positions() const { return num_patches() + 1; }  // + class token
};

struct ClipVisionTower {
  using Layer = nn::VisionEncoderLayer;

  at::Tensor class_embedding;     // [hidden]
  at::Tensor patch_embedding;     // [hidden, channels, patch, patch]
  at::Tensor position_embedding;  // [num_positions, hidden]
  nn::LayerNorm pre_layrnorm;
  std::vector<Layer> layers;
  nn::LayerNorm post_layernorm;  // loaded for completeness; see the file comment
  ClipVisionShape shape;

  template <nn::WeightLoader L>
  static absl::StatusOr<ClipVisionTower> Load(L& loader, const std::string& prefix,
                                              const ClipVisionShape& s) {
    if (s.hidden_size <= 0 || s.num_heads <= 0 || s.hidden_size % s.num_heads != 0 ||
        s.patch_size <= 0 || s.image_size % s.patch_size != 0 || s.num_layers <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "CLIP vision config: need hidden_size divisible by num_attention_heads (", s.hidden_size,
          ", ", s.num_heads, ") and image_size divisible by patch_size (", s.image_size, ", ",
          s.patch_size, ")"));
    }
    ClipVisionTower t;
    t.shape = s;
    const std::string emb = nn::Join(prefix, "embeddings");
    t.class_embedding = loader.Take(nn::Join(emb, "class_embedding"), {s.hidden_size});
    t.patch_embedding = loader.Take(nn::Join(emb, "patch_embedding.weight"),
                                    {s.hidden_size, s.num_channels, s.patch_size, s.patch_size});
    t.position_embedding =
        loader.Take(nn::Join(emb, "position_embedding.weight"), {s.num_positions(), s.hidden_size});
    t.pre_layrnorm =
        nn::LayerNorm::Load(loader, nn::Join(prefix, "pre_layrnorm"), s.hidden_size, s.layer_norm_eps);
    const nn::VisionEncoderLayerShape layer{s.hidden_size, s.intermediate_size, s.num_heads,
                                        s.layer_norm_eps, s.act};
    t.layers.reserve(static_cast<size_t>(s.num_layers));
    for (int64_t i = 0; i < s.num_layers; ++i) {
      t.layers.push_back(
          nn::LoadVisionEncoderLayer(loader, nn::Join(prefix, absl::StrCat("encoder.layers.", i)), layer));
    }
    t.post_layernorm =
        nn::LayerNorm::Load(loader, nn::Join(prefix, "post_layernorm"), s.hidden_size, s.layer_norm_eps);
    return t;
  }

  // pixels [B, C, image_size, image_size] (any float dtype) -> hidden state 0,
  // [B, num_positions, hidden] in the weights' dtype.
  at::Tensor Embed(const at::Tensor& pixel_values) const {
    TORCH_CHECK(pixel_values.dim() == 4 && pixel_values.size(1) == shape.num_channels &&
                    pixel_values.size(2) == shape.image_size &&
                    pixel_values.size(3) == shape.image_size,
                "CLIP vision tower expects pixels [B, ", shape.num_channels, ", ", shape.image_size,
                ", ", shape.image_size, "], got ", pixel_values.sizes());
    const int64_t b = pixel_values.size(0);
    const at::Tensor patches =
        at::conv2d(pixel_values.to(patch_embedding.scalar_type()), patch_embedding, {},
                   {shape.patch_size, shape.patch_size})
            .flatten(2)
            .transpose(1, 2);
    const at::Tensor cls = class_embedding.expand({b, 1, -1});
    const at::Tensor x = at::cat({cls, patches}, 1) + position_embedding.unsqueeze(0);
    return pre_layrnorm(x);
  }

  // Packs every layer's q/k/v weights for HiddenStates(..., packed=true);
  // the unpacked call is unchanged.
  void PackWeights() {
    for (Layer& layer : layers) layer.attn.PackProjections();
  }

  // The hidden states at `indices` (0..num_layers, negative counts from the
  // end as in Python), in that order, running only the layers needed;
  // `packed`: one q/k/v matmul per layer (after PackWeights).
  std::vector<at::Tensor> HiddenStates(const at::Tensor& pixel_values,
                                       const std::vector<int64_t>& indices,
                                       bool packed = false) const {
    const int64_t n = static_cast<int64_t>(layers.size());
    std::vector<int64_t> resolved;
    for (int64_t i : indices) {
      const int64_t r = i < 0 ? n + 1 + i : i;
      TORCH_CHECK(r >= 0 && r <= n, "CLIP vision hidden state ", i, " is outside 0..", n);
      resolved.push_back(r);
    }
    const int64_t deepest = *std::max_element(resolved.begin(), resolved.end());
    std::vector<at::Tensor> out(resolved.size());
    at::Tensor x = Embed(pixel_values);
    const nn::AttentionMask no_mask = nn::AttentionMask::None();
    nn::ExtendedCall call;
    call.packed = true;
    for (int64_t layer = 0;; ++layer) {
      for (size_t k = 0; k < resolved.size(); ++k) {
        if (resolved[k] == layer) out[k] = x;
      }
      if (layer == deepest) break;
      const Layer& l = layers[static_cast<size_t>(layer)];
      x = packed ? l.Extended(x, nullptr, no_mask, call) : l(x, nullptr, no_mask);
    }
    return out;
  }
};

}  // namespace spatialid::families
