// The last steps every image processor here shares: 8-bit pixels to
// normalised floats, computed the way each transformers processor does.
//
// - Fast (torchvision) processors, `BaseImageProcessorFast.rescale_and_normalize`:
//   rescale and normalise fused as (x - mean/rf) / (std/rf) in fp32, with
//   mean/rf and std/rf formed as fp32 tensors; rescale alone is x * rf.
// - Slow (Pillow/numpy) processors, `BaseImageProcessor.rescale` then
//   `.normalize`: x * rf in float64 cast to fp32, then (x - mean) / std in
//   fp32.
// The two differ in the last bit for some pixels, so each processor calls
// the one its transformers class uses.
//
// Example:
//   at::Tensor u8 = ImageToUint8Tensor(rgb);                     // [1, 3, H, W]
//   at::Tensor px = RescaleNormalizeFast(u8, cfg);               // float32
//   at::Tensor px_slow = RescaleNormalizeSlow(rgb, cfg);         // float32 [3, H, W]
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/tensor.h>

#include "spatialid/config/processor_config.h"
#include "spatialid/io/image.h"

namespace spatialid::vision {

// An RGB io::Image (HWC bytes) -> contiguous uint8 [1, 3, H, W] (a copy), as
// transformers turns a PIL image into a tensor before stacking.
inline at::Tensor ImageToUint8Tensor(const io::Image& rgb) {
  return at::from_blob(const_cast<uint8_t*>(rgb.pixels.data()), {1, rgb.height, rgb.width, 3},
                       at::kByte)
      .permute({0, 3, 1, 2})
      .contiguous();
}

// uint8 (or float) images [..., 3, H, W] -> float32, as the fast processors do.
inline at::Tensor RescaleNormalizeFast(const at::Tensor& images,
                                       const config::CommonImageProcessorFields& c) {
  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  if (c.do_normalize) {
    at::Tensor mean = at::tensor(at::ArrayRef<double>(c.image_mean.data(), 3), f32);
    at::Tensor std = at::tensor(at::ArrayRef<double>(c.image_std.data(), 3), f32);
    if (c.do_rescale) {  // fused: (x - mean/rf) / (std/rf)
      mean = mean * (1.0 / c.rescale_factor);
      std = std * (1.0 / c.rescale_factor);
    }
    return images.to(at::kFloat).sub(mean.view({-1, 1, 1})).div_(std.view({-1, 1, 1}));
  }
  if (c.do_rescale) return images * c.rescale_factor;
  return images.to(at::kFloat);
}

// An RGB io::Image -> float32 [3, H, W], as the slow processors do.
inline at::Tensor RescaleNormalizeSlow(const io::Image& img,
                                       const config::CommonImageProcessorFields& c) {
  const int64_t h = img.height, w = img.width;
  std::vector<float> chw(static_cast<size_t>(3 * h * w));
  std::array<float, 3> mean{}, stdv{};
  for (int ch = 0; ch < 3; ++ch) {
    mean[ch] = static_cast<float>(c.image_mean[ch]);
    stdv[ch] = static_cast<float>(c.image_std[ch]);
  }
  for (int ch = 0; ch < 3; ++ch) {
    for (int64_t y = 0; y < h; ++y) {
      for (int64_t x = 0; x < w; ++x) {
        const uint8_t v = img.at(static_cast<int>(x), static_cast<int>(y), ch);
        // rescale: float64 product, then cast to fp32; normalize: fp32.
        float f = c.do_rescale ? static_cast<float>(static_cast<double>(v) * c.rescale_factor)
                               : static_cast<float>(v);
        if (c.do_normalize) f = (f - mean[ch]) / stdv[ch];
        chw[static_cast<size_t>((ch * h + y) * w + x)] = f;
      }
    }
  }
  return at::from_blob(chw.data(), {3, h, w}, at::kFloat).clone();
}

}  // namespace spatialid::vision
