// Normalisation layers: LayerNorm and RMSNorm, computed as transformers does.
//
// RMSNorm always normalises in fp32 (HF upcasts the input), then comes back
// to the input dtype; where the weight is applied differs between families,
// so it is a compile-time choice:
// - `RmsNormWeight::kMultiply` (Llama, Qwen2, Mllama, InternViT, Qwen2.5-VL
//   vision): `weight * normalized.to(input_dtype)`, i.e. the product is taken
//   in the weight's dtype.
// - `RmsNormWeight::kOnePlus` (Gemma 3): `(normalized * (1 + weight.float()))
//   .to(input_dtype)`, the product is taken in fp32 and the stored weight is
//   an offset from 1.
#pragma once

#include <cstdint>
#include <string>

#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/layer_norm.h>
#include <ATen/ops/rsqrt.h>

#include "spatialid/nn/weights.h"

namespace spatialid::nn {

// torch.nn.LayerNorm over the last dimension.
struct LayerNorm {
  at::Tensor weight;  // [dim]
  at::Tensor bias;    // [dim], undefined when the layer has none
  double eps = 1e-5;

  template <WeightLoader L>
  static LayerNorm Load(L& loader, const std::string& prefix, int64_t dim, double eps,
                        bool with_bias = true) {
    LayerNorm n;
    n.weight = loader.Take(Join(prefix, "weight"), {dim});
    if (with_bias) n.bias = loader.Take(Join(prefix, "bias"), {dim});
    n.eps = eps;
    return n;
  }

  at::Tensor operator()(const at::Tensor& x) const {
    return at::layer_norm(x, {weight.size(0)}, weight, bias, eps);
  }
};

enum class RmsNormWeight {
  kMultiply,  // weight * x_hat, in the input dtype (LlamaRMSNorm)
  kOnePlus,   // (1 + weight) * x_hat, in fp32 (Gemma3RMSNorm)
};

template <RmsNormWeight kWeight = RmsNormWeight::kMultiply>
struct RmsNorm {
  at::Tensor weight;  // [dim]
  double eps = 1e-6;

  template <WeightLoader L>
  static RmsNorm Load(L& loader, const std::string& prefix, int64_t dim, double eps) {
    RmsNorm n;
    n.weight = loader.Take(Join(prefix, "weight"), {dim});
    n.eps = eps;
    return n;
  }

  at::Tensor operator()(const at::Tensor& x) const {
    const at::ScalarType input_dtype = x.scalar_type();
    at::Tensor h = x.to(at::kFloat);
    const at::Tensor variance = h.pow(2).mean(-1, /*keepdim=*/true);
    h = h * at::rsqrt(variance + eps);
    if constexpr (kWeight == RmsNormWeight::kMultiply) {
      return weight * h.to(input_dtype);
    } else {
      return (h * (weight.to(at::kFloat) + 1.0)).to(input_dtype);
    }
  }
};

}  // namespace spatialid::nn
