// Activation functions under their Hugging Face names.
//
// Configs name activations by string (`hidden_act: "silu"`,
// `projector_hidden_act: "gelu"`). `ParseActivation` turns the string into an
// `Activation` once, when the config is read, so forward code never compares
// strings. Each activation is computed with the same ATen ops, in the same
// order, as `transformers.activations.ACT2FN[name]`, so results agree bit for
// bit with transformers on the same device and dtype.
#pragma once

#include <string>
#include <string_view>

#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/gelu.h>
#include <ATen/ops/relu.h>
#include <ATen/ops/sigmoid.h>
#include <ATen/ops/silu.h>
#include <ATen/ops/tanh.h>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace spatialid::nn {

enum class Activation {
  kGelu,          // "gelu": exact erf GELU (GELUActivation)
  kGeluTanh,      // "gelu_pytorch_tanh": torch's fused tanh approximation (GELUTanh)
  kGeluNew,       // "gelu_new" / "gelu_python_tanh": the tanh formula spelled out in Python
  kQuickGelu,     // "quick_gelu": x * sigmoid(1.702 x) (CLIP)
  kSilu,          // "silu" / "swish"
  kRelu,          // "relu"
};

// The HF name of an activation (its first spelling).
inline std::string_view ActivationName(Activation a) {
  switch (a) {
    case Activation::kGelu: return "gelu";
    case Activation::kGeluTanh: return "gelu_pytorch_tanh";
    case Activation::kGeluNew: return "gelu_new";
    case Activation::kQuickGelu: return "quick_gelu";
    case Activation::kSilu: return "silu";
    case Activation::kRelu: return "relu";
  }
  return "?";
}

// Maps an HF `hidden_act` string to an Activation; unknown names are an error
// that lists the supported ones.
inline absl::StatusOr<Activation> ParseActivation(std::string_view name) {
  if (name == "gelu") return Activation::kGelu;
  if (name == "gelu_pytorch_tanh") return Activation::kGeluTanh;
  if (name == "gelu_new" || name == "gelu_python_tanh") return Activation::kGeluNew;
  if (name == "quick_gelu") return Activation::kQuickGelu;
  if (name == "silu" || name == "swish") return Activation::kSilu;
  if (name == "relu") return Activation::kRelu;
  return absl::InvalidArgumentError(absl::StrCat(
      "unsupported activation \"", std::string(name),
      "\" (supported: gelu, gelu_pytorch_tanh, gelu_new, gelu_python_tanh, quick_gelu, silu, "
      "swish, relu)"));
}

inline at::Tensor Apply(Activation a, const at::Tensor& x) {
  switch (a) {
    case Activation::kGelu:
      return at::gelu(x);
    case Activation::kGeluTanh:
      return at::gelu(x, "tanh");
    case Activation::kGeluNew: {
      // 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3))), in NewGELUActivation's order.
      constexpr double kSqrt2OverPi = 0.7978845608028654;
      return x * 0.5 * (at::tanh((x + x.pow(3.0) * 0.044715) * kSqrt2OverPi) + 1.0);
    }
    case Activation::kQuickGelu:
      return x * at::sigmoid(x * 1.702);
    case Activation::kSilu:
      return at::silu(x);
    case Activation::kRelu:
      return at::relu(x);
  }
  return x;
}

}  // namespace spatialid::nn
