// Feed-forward blocks.
//
// - `Mlp`: fc1 -> activation -> fc2 (CLIP/SigLIP encoders, the LLaVA
//   projector, InternViT), with the HF layer names chosen by the caller.
// - `GatedMlp`: down(act(gate(x)) * up(x)) (Llama/Qwen SwiGLU with silu,
//   Gemma GeGLU with gelu_pytorch_tanh), in LlamaMLP's order of operations.
#pragma once

#include <cstdint>
#include <string>

#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>

#include "spatialid/nn/activation.h"
#include "spatialid/nn/linear.h"
#include "spatialid/nn/weights.h"

namespace spatialid::nn {

struct Mlp {
  Linear fc1;
  Linear fc2;
  Activation act = Activation::kGelu;

  // Names of the two layers under `prefix`: CLIP uses "fc1"/"fc2", the LLaVA
  // projector "linear_1"/"linear_2".
  struct Names {
    std::string fc1 = "fc1";
    std::string fc2 = "fc2";
  };

  template <WeightLoader L>
  static Mlp Load(L& loader, const std::string& prefix, int64_t in_features,
                  int64_t hidden_features, int64_t out_features, Activation act, bool with_bias,
                  const Names& names = {}) {
    Mlp m;
    m.fc1 = Linear::Load(loader, Join(prefix, names.fc1), in_features, hidden_features, with_bias);
    m.fc2 = Linear::Load(loader, Join(prefix, names.fc2), hidden_features, out_features, with_bias);
    m.act = act;
    return m;
  }

  at::Tensor operator()(const at::Tensor& x) const { return fc2(Apply(act, fc1(x))); }
};

struct GatedMlp {
  Linear gate_proj;
  Linear up_proj;
  Linear down_proj;
  Activation act = Activation::kSilu;

  // Takes "<prefix>.gate_proj", "<prefix>.up_proj", "<prefix>.down_proj".
  template <WeightLoader L>
  static GatedMlp Load(L& loader, const std::string& prefix, int64_t hidden_size,
                       int64_t intermediate_size, Activation act, bool with_bias) {
    GatedMlp m;
    m.gate_proj =
        Linear::Load(loader, Join(prefix, "gate_proj"), hidden_size, intermediate_size, with_bias);
    m.up_proj =
        Linear::Load(loader, Join(prefix, "up_proj"), hidden_size, intermediate_size, with_bias);
    m.down_proj =
        Linear::Load(loader, Join(prefix, "down_proj"), intermediate_size, hidden_size, with_bias);
    m.act = act;
    return m;
  }

  at::Tensor operator()(const at::Tensor& x) const {
    return down_proj(Apply(act, gate_proj(x)) * up_proj(x));
  }
};

}  // namespace spatialid::nn
