// Qwen2-VL / Qwen2.5-VL image preprocessing, matching transformers'
// `Qwen2VLImageProcessorFast` (the default of transformers 5, and the one
// transformers 4.x forced for these models) and, with ResizeEngine::kPillow,
// the slow `Qwen2VLImageProcessor`.
//
// Steps for each image (settings from `preprocessor_config.json`):
// 1. `smart_resize`: the nearest size whose sides are multiples of
//    patch_size * merge_size (28) and whose area lies in
//    [min_pixels, max_pixels], keeping the aspect ratio as well as that
//    allows (Python's round-half-to-even included); then a bicubic resize
//    (antialiased torchvision, or Pillow's).
// 2. rescale and normalise (CLIP mean/std), as each processor does it
//    (vision/rescale_normalize.h).
// 3. The still image is repeated to temporal_patch_size (2) frames and cut
//    into patches flattened to rows of C * 2 * 14 * 14 = 1176 values, listed
//    merge block by merge block (nn/patch_grid.h): the processor's
//    `(grid_t, grid_h/m, grid_w/m, m, m, C, t, p, p)` order.
// Output: `pixel_values` float32 [sum of patches, 1176] and
// `image_grid_thw` int64 [N, 3]; each image gives (h/14) * (w/14) / 4 LLM
// tokens (1024 for 896 x 896).
//
// Example:
//   SPATIALID_ASSIGN_OR_RETURN(auto cfg, LoadImageProcessorConfig<Qwen2VLImageProcessorConfig>(dir));
//   SPATIALID_ASSIGN_OR_RETURN(auto proc, Qwen2VLImageProcessor::Create(cfg));
//   SPATIALID_ASSIGN_OR_RETURN(Qwen2VLImages px, proc.Preprocess(images));
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/tensor.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "spatialid/config/processor_config.h"
#include "spatialid/io/image.h"
#include "spatialid/io/image_resample.h"
#include "spatialid/families/qwen2_vl/patch_grid.h"
#include "spatialid/util/status.h"
#include "spatialid/vision/clip_image_processor.h"  // vision::internal::PillowFilterFromCode
#include "spatialid/vision/rescale_normalize.h"
#include "spatialid/vision/resize_engine.h"
#include "spatialid/vision/torchvision_resize.h"

namespace spatialid::families {

// Preprocessed images for the Qwen-VL vision tower, all on the CPU.
struct Qwen2VLImages {
  at::Tensor pixel_values;        // float32 [sum of patches, C * t * p * p]
  at::Tensor image_grid_thw;      // int64 [N, 3]
  std::vector<GridThw> grids; // image_grid_thw as values

  int64_t num_images() const { return static_cast<int64_t>(grids.size()); }
};

// transformers' `smart_resize` -> (height, width).
inline absl::StatusOr<std::pair<int64_t, int64_t>> SmartResize(int64_t height, int64_t width,
                                                                int64_t factor, int64_t min_pixels,
                                                                int64_t max_pixels) {
  if (height <= 0 || width <= 0 || factor <= 0) {
    return absl::InvalidArgumentError("smart_resize: sizes must be positive");
  }
  const double h = static_cast<double>(height), w = static_cast<double>(width);
  const double f = static_cast<double>(factor);
  if (std::max(h, w) / std::min(h, w) > 200) {
    return absl::InvalidArgumentError(absl::StrCat(
        "absolute aspect ratio must be smaller than 200, got ", std::max(h, w) / std::min(h, w),
        " for a ", width, "x", height, " image"));
  }
  // Python's round() on a float rounds half to even, like nearbyint.
  auto h_bar = static_cast<int64_t>(std::nearbyint(h / f)) * factor;
  auto w_bar = static_cast<int64_t>(std::nearbyint(w / f)) * factor;
  const double area = static_cast<double>(height * width);
  if (h_bar * w_bar > max_pixels) {
    const double beta = std::sqrt(area / static_cast<double>(max_pixels));
    h_bar = std::max(factor, static_cast<int64_t>(std::floor(h / beta / f)) * factor);
    w_bar = std::max(factor, static_cast<int64_t>(std::floor(w / beta / f)) * factor);
  } else if (h_bar * w_bar < min_pixels) {
    const double beta = std::sqrt(static_cast<double>(min_pixels) / area);
    h_bar = static_cast<int64_t>(std::ceil(h * beta / f)) * factor;
    w_bar = static_cast<int64_t>(std::ceil(w * beta / f)) * factor;
  }
  return std::make_pair(h_bar, w_bar);
}

class Qwen2VLImageProcessor {
 public:
  static absl::StatusOr<Qwen2VLImageProcessor> Create(
      const Qwen2VLImageProcessorConfig& config,
      vision::ResizeEngine engine = vision::ResizeEngine::kTorchvision) {
    if (config.image_mean.size() != 3 || config.image_std.size() != 3) {
      return absl::InvalidArgumentError("Qwen2-VL image processor: image_mean and image_std need 3 values");
    }
    for (double s : config.image_std) {
      if (s == 0) return absl::InvalidArgumentError("Qwen2-VL image processor: image_std has a zero");
    }
    if (config.patch_size <= 0 || config.merge_size <= 0 || config.temporal_patch_size <= 0) {
      return absl::InvalidArgumentError(
          "Qwen2-VL image processor: patch_size, merge_size and temporal_patch_size must be positive");
    }
    if (config.min_pixels > config.max_pixels) {
      return absl::InvalidArgumentError(absl::StrCat("Qwen2-VL image processor: min_pixels ",
                                                     config.min_pixels, " > max_pixels ",
                                                     config.max_pixels));
    }
    Qwen2VLImageProcessor p;
    p.config_ = config;
    p.engine_ = engine;
    if (config.do_resize) {
      if (engine == vision::ResizeEngine::kTorchvision) {
        SPATIALID_ASSIGN_OR_RETURN(p.interpolation_,
                                   vision::InterpolationFromPilCode(static_cast<int>(config.resample)));
      } else {
        SPATIALID_ASSIGN_OR_RETURN(p.pillow_filter_,
                                   vision::internal::PillowFilterFromCode(static_cast<int>(config.resample)));
      }
    }
    return p;
  }

  const Qwen2VLImageProcessorConfig& config() const { return config_; }
  vision::ResizeEngine engine() const { return engine_; }
  int64_t merge_size() const { return config_.merge_size; }

  // (height, width) after the resize step for an input of this size.
  absl::StatusOr<std::pair<int64_t, int64_t>> ResizedSize(int64_t height, int64_t width) const {
    if (!config_.do_resize) return std::make_pair(height, width);
    return SmartResize(height, width, config_.patch_size * config_.merge_size, config_.min_pixels,
                       config_.max_pixels);
  }

  // The grid (in patches) and LLM token count an image of this size gets.
  absl::StatusOr<GridThw> GridFor(int64_t height, int64_t width) const {
    SPATIALID_ASSIGN_OR_RETURN(auto hw, ResizedSize(height, width));
    const int64_t unit = config_.patch_size * config_.merge_size;
    if (hw.first % unit != 0 || hw.second % unit != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Qwen2-VL image processor: a ", hw.second, "x", hw.first,
          " image is not a whole number of ", unit, "-pixel merge blocks (turn do_resize on)"));
    }
    return GridThw{1, hw.first / config_.patch_size, hw.second / config_.patch_size};
  }

  absl::StatusOr<Qwen2VLImages> Preprocess(std::span<const io::Image> images) const {
    if (images.empty()) return absl::InvalidArgumentError("Qwen2-VL image processor: no images");
    Qwen2VLImages out;
    std::vector<at::Tensor> rows;
    std::vector<int64_t> thw;
    for (size_t i = 0; i < images.size(); ++i) {
      absl::StatusOr<std::pair<at::Tensor, GridThw>> one = PreprocessOne(images[i]);
      if (!one.ok()) {
        return absl::Status(one.status().code(), absl::StrCat("image ", i, ": ", one.status().message()));
      }
      rows.push_back(std::move(one->first));
      out.grids.push_back(one->second);
      thw.insert(thw.end(), {one->second.t, one->second.h, one->second.w});
    }
    out.pixel_values = rows.size() == 1 ? rows[0] : at::cat(rows, 0);
    out.image_grid_thw = at::tensor(thw, at::kLong).view({-1, 3});
    return out;
  }

 private:
  // One image -> (patch rows [patches, 1176], grid).
  absl::StatusOr<std::pair<at::Tensor, GridThw>> PreprocessOne(const io::Image& image) const {
    if (image.empty() || image.width <= 0 || image.height <= 0 || image.channels < 1 ||
        image.channels > 4 ||
        image.pixels.size() != static_cast<size_t>(image.width) * image.height * image.channels) {
      return absl::InvalidArgumentError("Qwen2-VL image processor: empty or malformed image");
    }
    const io::Image rgb = io::DropAlpha(image);
    SPATIALID_ASSIGN_OR_RETURN(const GridThw grid, GridFor(rgb.height, rgb.width));
    const int64_t h = grid.h * config_.patch_size, w = grid.w * config_.patch_size;
    try {
      at::Tensor chw;  // float32 [3, h, w]
      if (engine_ == vision::ResizeEngine::kPillow) {
        io::Image resized = rgb;
        // PIL's resize returns a copy when the size does not change.
        if (h != rgb.height || w != rgb.width) {
          SPATIALID_ASSIGN_OR_RETURN(resized, io::PillowResize(rgb, static_cast<int>(w),
                                                               static_cast<int>(h), pillow_filter_));
        }
        chw = vision::RescaleNormalizeSlow(resized, config_);
      } else {
        at::Tensor u8 = vision::ImageToUint8Tensor(rgb);
        if (config_.do_resize) u8 = vision::TorchvisionResize(u8, h, w, interpolation_, /*antialias=*/true);
        chw = vision::RescaleNormalizeFast(u8, config_).squeeze(0);
      }
      return std::make_pair(Patchify(chw, grid), grid);
    } catch (const c10::Error& e) {
      return absl::InternalError(
          absl::StrCat("Qwen2-VL image processor: ", e.what_without_backtrace()));
    }
  }

  // float32 [C, H, W] -> [grid patches, C * t * p * p] in the processor's order.
  at::Tensor Patchify(const at::Tensor& chw, const GridThw& grid) const {
    const int64_t c = chw.size(0), p = config_.patch_size, m = config_.merge_size;
    const int64_t tp = config_.temporal_patch_size;
    // A still image fills every frame of the temporal patch (the last frame
    // repeated).
    const at::Tensor frames = chw.unsqueeze(0).expand({tp, c, chw.size(1), chw.size(2)});
    return frames
        .reshape({1, tp, c, grid.h / m, m, p, grid.w / m, m, p})
        .permute({0, 3, 6, 4, 7, 2, 1, 5, 8})
        .reshape({grid.h * grid.w, c * tp * p * p})
        .contiguous();
  }

  Qwen2VLImageProcessorConfig config_;
  vision::ResizeEngine engine_ = vision::ResizeEngine::kTorchvision;
  vision::Interpolation interpolation_ = vision::Interpolation::kBicubic;
  io::ResampleFilter pillow_filter_ = io::ResampleFilter::kBicubic;
};

}  // namespace spatialid::families
