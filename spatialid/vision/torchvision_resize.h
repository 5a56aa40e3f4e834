// Resizing 8-bit image tensors exactly as torchvision does on the CPU.
//
// transformers 5 image processors ("fast" processors) resize with
// `torchvision.transforms.v2.functional.resize` on uint8 tensors. What that
// computes depends on the mode and the CPU (torchvision 0.23,
// `resize_image`):
// - BICUBIC: the uint8 tensor goes straight into ATen's antialiased bicubic
//   kernel (integer arithmetic inside ATen).
// - BILINEAR: straight into ATen's uint8 kernel only when the CPU capability
//   string contains "AVX2" (an AVX512 machine does not match); otherwise the
//   image is converted to fp32, interpolated, rounded and cast back.
// Calling the same ATen kernels with the same inputs reproduces the pixels
// bit for bit. Preprocessing always runs on the CPU, as the reference's does.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>
#include <string>

#include <ATen/Version.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/_upsample_bicubic2d_aa.h>
#include <ATen/ops/_upsample_bilinear2d_aa.h>
#include <ATen/ops/upsample_bicubic2d.h>
#include <ATen/ops/upsample_bilinear2d.h>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace spatialid::vision {

enum class Interpolation { kBilinear, kBicubic };

// PIL resample codes as stored in preprocessor_config.json ("resample": 3).
inline absl::StatusOr<Interpolation> InterpolationFromPilCode(int code) {
  if (code == 2) return Interpolation::kBilinear;
  if (code == 3) return Interpolation::kBicubic;
  return absl::UnimplementedError(absl::StrCat(
      "resample ", code, " is not supported (2 = BILINEAR and 3 = BICUBIC are)"));
}

namespace internal {

inline at::Tensor Interpolate(const at::Tensor& x, int64_t h, int64_t w, Interpolation mode,
                              bool antialias) {
  // F.interpolate(size=...) passes no scale factors, i.e. scales derived
  // from the sizes.
  const std::vector<int64_t> size = {h, w};
  const std::optional<double> none;
  if (mode == Interpolation::kBicubic) {
    return antialias ? at::_upsample_bicubic2d_aa(x, size, false, none, none)
                     : at::upsample_bicubic2d(x, size, false, none, none);
  }
  return antialias ? at::_upsample_bilinear2d_aa(x, size, false, none, none)
                   : at::upsample_bilinear2d(x, size, false, none, none);
}

inline bool NativeUint8Resize(Interpolation mode) {
  if (mode == Interpolation::kBicubic) return true;
  return at::get_cpu_capability().find("AVX2") != std::string::npos;
}

}  // namespace internal

// images: uint8 [N, C, H, W] on the CPU. Returns uint8 [N, C, h, w].
inline at::Tensor TorchvisionResize(const at::Tensor& images, int64_t h, int64_t w,
                                    Interpolation mode, bool antialias = true) {
  TORCH_CHECK(images.dim() == 4 && images.scalar_type() == at::kByte,
              "TorchvisionResize expects uint8 [N, C, H, W], got ", images.sizes());
  if (images.size(2) == h && images.size(3) == w) return images;
  if (internal::NativeUint8Resize(mode)) {
    return internal::Interpolate(images, h, w, mode, antialias);
  }
  at::Tensor out = internal::Interpolate(images.to(at::kFloat), h, w, mode, antialias);
  // torchvision clamps only after bicubic (the non-native branch), then rounds.
  if (mode == Interpolation::kBicubic) out = out.clamp_(0, 255);
  return out.round_().to(at::kByte);
}

}  // namespace spatialid::vision
