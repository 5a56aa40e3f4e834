// The "minus infinity" of additive attention masks, as transformers writes it.
//
// transformers blocks a query/key pair by adding `torch.finfo(dtype).min`
// (not -inf) to its score, so a row whose keys are all blocked still gets a
// finite, uniform softmax instead of NaNs. Some masks (Mllama's tile and
// cross-attention masks) depend on that, so blocks that build such masks use
// the same number.
#pragma once

#include <limits>

#include <ATen/core/Tensor.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

namespace spatialid::families {

// torch.finfo(dtype).min for the floating dtypes models run in.
inline double FinfoMin(at::ScalarType dtype) {
  switch (dtype) {
    case at::kBFloat16: return static_cast<double>(std::numeric_limits<c10::BFloat16>::lowest());
    case at::kHalf: return static_cast<double>(std::numeric_limits<c10::Half>::lowest());
    case at::kDouble: return std::numeric_limits<double>::lowest();
    default: return static_cast<double>(std::numeric_limits<float>::lowest());
  }
}

}  // namespace spatialid::families
