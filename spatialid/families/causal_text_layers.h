// The decoder-layer hooks of a family whose language model is a plain causal
// nn::TextDecoder with one-dimensional RoPE over positions 0..S-1: LLaVA-1.5
// (Llama) and InternVL3 (Qwen2). Those two families differ only in their
// vision side, so their MultimodalForward layer hooks (PrepareLayers,
// RunLayer, FinalNorm) are written once here; a family with its own layer
// particulars (M-RoPE, cross-attention, sandwich norms, sliding windows)
// writes its hooks itself. The model derives this next to
// MultimodalForward and loads `text_` and `dtype_`.
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>

#include "spatialid/families/multimodal_forward.h"
#include "spatialid/nn/attention.h"
#include "spatialid/nn/rotary.h"
#include "spatialid/nn/text_decoder.h"

namespace spatialid::families {

// The per-prompt context of a causal decoder: RoPE of the rows that run.
struct RopeContext {
  nn::CosSin cos_sin;
};

template <class Pixels>
class CausalTextLayers {
 public:
  RopeContext PrepareLayers(const TokenLayout& tokens, const Pixels* /*pixels*/, int64_t past,
                            int64_t length) const {
    return {text_.RotaryFor(past, length, tokens.seq_len(), dtype_)};
  }

  at::Tensor RunLayer(int64_t i, const at::Tensor& x, const RopeContext& context,
                      const at::Tensor& /*image_features: merged*/,
                      const nn::ExtendedCall& call) const {
    return text_.RunCausalLayer(i, x, context.cos_sin, call);
  }

  at::Tensor FinalNorm(const at::Tensor& x) const { return text_.FinalNorm(x); }

 protected:
  at::ScalarType dtype_ = at::kFloat;
  nn::TextDecoder text_;
};

}  // namespace spatialid::families
