// Feed-forward blocks.
//
// - `Mlp`: fc1 -> activation -> fc2 (CLIP/SigLIP encoders, the LLaVA
//   projector, InternViT), with the HF layer names chosen by the caller.
// - `GatedMlp`: down(act(gate(x)) * up(x)) (Llama/Qwen SwiGLU with silu,
//   Gemma GeGLU with gelu_pytorch_tanh), in LlamaMLP's order of operations.
//   `PackGateUp` stacks gate and up into one weight so `Packed` runs them as
//   one matmul (the extraction engine's path); the plain call is unchanged.
#pragma once

#include <cstdint>
#include <string>

#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/cat.h>

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
  // gate and up stacked [2 * intermediate, hidden] by PackGateUp; gate_proj
  // and up_proj then view into it.
  Linear gate_up_packed;

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

  void PackGateUp() {
    if (gate_up_packed.weight.defined()) return;
    const int64_t n = gate_proj.out_features();
    gate_up_packed.weight = at::cat({gate_proj.weight, up_proj.weight}, 0);
    gate_proj.weight = gate_up_packed.weight.narrow(0, 0, n);
    up_proj.weight = gate_up_packed.weight.narrow(0, n, n);
    if (gate_proj.bias.defined()) {
      gate_up_packed.bias = at::cat({gate_proj.bias, up_proj.bias}, 0);
      gate_proj.bias = gate_up_packed.bias.narrow(0, 0, n);
      up_proj.bias = gate_up_packed.bias.narrow(0, n, n);
    }
  }

  // The same function with the packed weights (operator() without them).
  at::Tensor Packed(const at::Tensor& x) const {
    if (!gate_up_packed.weight.defined()) return (*this)(x);
    const at::Tensor gate_up = gate_up_packed(x);
    const int64_t n = gate_proj.out_features();
    return down_proj(Apply(act, gate_up.narrow(-1, 0, n)) * gate_up.narrow(-1, n, n));
  }
};

}  // namespace spatialid::nn
