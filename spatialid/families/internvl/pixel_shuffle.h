// InternVL's pixel-shuffle downsampling of a grid of vision features.
//
// A [B, S, S, C] grid becomes [B, S*r, S*r, C/r^2] (r = downsample_ratio,
// 0.5 in InternVL3): each output cell concatenates the channels of an
// (1/r) x (1/r) block, so 32 x 32 patches of 1024 channels become 16 x 16
// tokens of 4096. It is transformers' `InternVLModel.pixel_shuffle`
// (models/internvl/modeling_internvl.py, 5.3.0), the same views and
// permutes in the same order, so the channel order of each token matches the
// projector's weights. Pure data movement: results are exact.
#pragma once

#include <cmath>
#include <cstdint>

#include <ATen/core/Tensor.h>

namespace spatialid::families {

// True when a side of `side` cells and `channels` channels divide evenly by
// the ratio (what the reshape needs).
inline bool PixelShuffleFits(int64_t side, int64_t channels, double ratio) {
  if (ratio <= 0 || ratio > 1) return false;
  const double scaled = static_cast<double>(side) * ratio;
  const double grown = static_cast<double>(channels) / ratio;
  const double grown2 = static_cast<double>(channels) / (ratio * ratio);
  return scaled == std::floor(scaled) && grown == std::floor(grown) && grown2 == std::floor(grown2);
}

// x: [B, W, H, C] (HF's naming; InternVL's grids are square) -> [B, W*r, H*r, C/r^2].
inline at::Tensor PixelShuffleDownsample(const at::Tensor& x, double ratio) {
  TORCH_CHECK(x.dim() == 4, "pixel shuffle expects [batch, width, height, channels], got ",
              x.sizes());
  const int64_t b = x.size(0), w = x.size(1), h = x.size(2), c = x.size(3);
  TORCH_CHECK(PixelShuffleFits(w, c, ratio) && PixelShuffleFits(h, c, ratio),
              "pixel shuffle: a ", w, "x", h, " grid of ", c,
              " channels does not divide by the ratio ", ratio);
  // Python's int() truncates, as the reshapes there do.
  at::Tensor y = x.view({b, w, static_cast<int64_t>(static_cast<double>(h) * ratio),
                         static_cast<int64_t>(static_cast<double>(c) / ratio)});
  y = y.permute({0, 2, 1, 3}).contiguous();
  y = y.view({b, static_cast<int64_t>(static_cast<double>(h) * ratio),
              static_cast<int64_t>(static_cast<double>(w) * ratio),
              static_cast<int64_t>(static_cast<double>(c) / (ratio * ratio))});
  return y.permute({0, 2, 1, 3}).contiguous();
}

}  // namespace spatialid::families
