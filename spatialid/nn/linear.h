// A dense layer, `y = x W^T + b`, as torch.nn.Linear computes it.
//
// Weights are stored [out_features, in_features] exactly as in the HF state
// dict; `at::linear` is what `nn.Linear.forward` calls, so numerics match.
#pragma once

#include <cstdint>
#include <string>

#include <ATen/core/Tensor.h>
#include <ATen/ops/linear.h>

#include "spatialid/nn/weights.h"

namespace spatialid::nn {

struct Linear {
  at::Tensor weight;  // [out_features, in_features]
  at::Tensor bias;    // [out_features], or undefined when the layer has none

  // Takes "<prefix>.weight" and, if `with_bias`, "<prefix>.bias".
  template <WeightLoader L>
  static Linear Load(L& loader, const std::string& prefix, int64_t in_features,
                     int64_t out_features, bool with_bias) {
    Linear l;
    l.weight = loader.Take(Join(prefix, "weight"), {out_features, in_features});
    if (with_bias) l.bias = loader.Take(Join(prefix, "bias"), {out_features});
    return l;
  }

  at::Tensor operator()(const at::Tensor& x) const {
    return bias.defined() ? at::linear(x, weight, bias) : at::linear(x, weight);
  }

  int64_t in_features() const { return weight.size(1); }
  int64_t out_features() const { return weight.size(0); }
};

}  // namespace spatialid::nn
