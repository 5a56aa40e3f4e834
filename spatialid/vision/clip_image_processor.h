// CLIP image preprocessing (LLaVA-1.5), matching transformers' processors.
//
// Steps, with the settings of `preprocessor_config.json`: resize so the
// shortest edge is `size.shortest_edge` (or to `size.height` x `size.width`),
// centre-crop to `crop_size`, rescale by `rescale_factor`, normalise with
// `image_mean` / `image_std`. Output: float32 [3, crop_h, crop_w] per image.
//
// Two engines, because transformers has two processors that differ by about
// one grey level after resizing:
// - `ResizeEngine::kTorchvision` (default): `CLIPImageProcessorFast`, what
//   transformers 5 loads when torchvision is installed. uint8 CHW tensor,
//   torchvision resize (antialiased bicubic in ATen's uint8 kernel), crop,
//   then rescale and normalise fused as (x - mean/rf) / (std/rf) in fp32.
//   Bit-exact with transformers 5.3.0 / torchvision 0.23 on the CPU.
// - `ResizeEngine::kPillow`: `CLIPImageProcessor`, the slow processor of
//   transformers 4.x that the paper's pixels came from. Pillow's 8-bit
//   two-pass resize (io::PillowResize), numpy's crop, x * rf in float64 cast
//   to fp32, then (x - mean) / std in fp32.
//
// Input: an `io::Image`; images with alpha or grey are converted like
// Pillow's `.convert("RGB")` (alpha dropped, not composited), as both the
// processor's `do_convert_rgb` and the reference's loader do.
//
// Example:
//   SPATIALID_ASSIGN_OR_RETURN(auto cfg, LoadClipImageProcessorConfig(dir));
//   SPATIALID_ASSIGN_OR_RETURN(auto proc, ClipImageProcessor::Create(cfg));
//   SPATIALID_ASSIGN_OR_RETURN(at::Tensor pixels, proc.Preprocess(images));  // [N, 3, 336, 336]
#pragma once

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/constant_pad_nd.h>
#include <ATen/ops/stack.h>
#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "spatialid/config/processor_config.h"
#include "spatialid/io/image.h"
#include "spatialid/io/image_resample.h"
#include "spatialid/io/json_file.h"
#include "spatialid/util/status.h"
#include "spatialid/vision/rescale_normalize.h"
#include "spatialid/vision/resize_engine.h"
#include "spatialid/vision/torchvision_resize.h"

namespace spatialid::vision {

// The image-processor settings of a model folder: `preprocessor_config.json`,
// or the "image_processor" object of `processor_config.json` (how
// transformers 5 saves a processor), parsed as `T` (a config::*ImageProcessorConfig).
template <class T>
absl::StatusOr<T> LoadImageProcessorConfig(const std::string& model_dir);

// LoadImageProcessorConfig<config::CLIPImageProcessorConfig>.
inline absl::StatusOr<config::CLIPImageProcessorConfig> LoadClipImageProcessorConfig(
    const std::string& model_dir);

class ClipImageProcessor {
 public:
  static absl::StatusOr<ClipImageProcessor> Create(const config::CLIPImageProcessorConfig& config,
                                                   ResizeEngine engine = ResizeEngine::kTorchvision);

  // One image -> float32 [3, out_height(), out_width()] on the CPU.
  absl::StatusOr<at::Tensor> Preprocess(const io::Image& image) const;
  // A batch -> float32 [N, 3, out_height(), out_width()].
  absl::StatusOr<at::Tensor> Preprocess(std::span<const io::Image> images) const;

  // (height, width) the resize step produces for an input of this size.
  std::pair<int64_t, int64_t> ResizedSize(int64_t height, int64_t width) const;

  const config::CLIPImageProcessorConfig& config() const { return config_; }
  ResizeEngine engine() const { return engine_; }

 private:
  at::Tensor PreprocessTorchvision(const io::Image& rgb) const;
  absl::StatusOr<at::Tensor> PreprocessPillow(const io::Image& rgb) const;

  config::CLIPImageProcessorConfig config_;
  ResizeEngine engine_ = ResizeEngine::kTorchvision;
  // size: shortest edge (> 0) or a fixed height x width; crop: height x width.
  int64_t shortest_edge_ = 0, size_height_ = 0, size_width_ = 0;
  int64_t crop_height_ = 0, crop_width_ = 0;
  Interpolation interpolation_ = Interpolation::kBicubic;
  io::ResampleFilter pillow_filter_ = io::ResampleFilter::kBicubic;
};

// ---------------------------------------------------------------------------
// Implementation.

namespace internal {

// Python's a // b.
inline int64_t FloorDiv(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

// PIL resample code -> Pillow filter (PIL.Image.Resampling numbering).
inline absl::StatusOr<io::ResampleFilter> PillowFilterFromCode(int code) {
  switch (code) {
    case 0: return io::ResampleFilter::kNearest;
    case 1: return io::ResampleFilter::kLanczos;
    case 2: return io::ResampleFilter::kBilinear;
    case 3: return io::ResampleFilter::kBicubic;
    case 4: return io::ResampleFilter::kBox;
    case 5: return io::ResampleFilter::kHamming;
  }
  return absl::InvalidArgumentError(absl::StrCat("resample ", code, " is not a PIL filter (0..5)"));
}

}  // namespace internal

template <class T>
absl::StatusOr<T> LoadImageProcessorConfig(const std::string& model_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const std::string pre = (fs::path(model_dir) / "preprocessor_config.json").string();
  if (fs::is_regular_file(pre, ec)) {
    return config::LoadProcessorConfig<T>(pre);
  }
  const std::string proc = (fs::path(model_dir) / "processor_config.json").string();
  if (fs::is_regular_file(proc, ec)) {
    SPATIALID_ASSIGN_OR_RETURN(nlohmann::json j, io::ReadJsonFile(proc));
    if (j.is_object() && j.contains("image_processor") && j["image_processor"].is_object()) {
      return config::ParseProcessorConfigJson<T>(j["image_processor"], proc + " (image_processor)");
    }
    return absl::InvalidArgumentError(
        absl::StrCat(proc, ": no \"image_processor\" object (and no preprocessor_config.json)"));
  }
  return absl::NotFoundError(absl::StrCat(
      model_dir, ": neither preprocessor_config.json nor processor_config.json is there"));
}

inline absl::StatusOr<config::CLIPImageProcessorConfig> LoadClipImageProcessorConfig(
    const std::string& model_dir) {
  return LoadImageProcessorConfig<config::CLIPImageProcessorConfig>(model_dir);
}

inline absl::StatusOr<ClipImageProcessor> ClipImageProcessor::Create(
    const config::CLIPImageProcessorConfig& config, ResizeEngine engine) {
  ClipImageProcessor p;
  p.config_ = config;
  p.engine_ = engine;
  if (config.image_mean.size() != 3 || config.image_std.size() != 3) {
    return absl::InvalidArgumentError("CLIP image processor: image_mean and image_std need 3 values");
  }
  for (double s : config.image_std) {
    if (s == 0) return absl::InvalidArgumentError("CLIP image processor: image_std has a zero");
  }
  if (config.do_resize) {
    const config::ImageSizeDict& size = config.size;
    if (size.shortest_edge && !size.longest_edge && *size.shortest_edge > 0) {
      p.shortest_edge_ = *size.shortest_edge;
    } else if (size.height && size.width && *size.height > 0 && *size.width > 0) {
      p.size_height_ = *size.height;
      p.size_width_ = *size.width;
    } else {
      return absl::UnimplementedError(
          "CLIP image processor: size must be {shortest_edge} or {height, width} with positive "
          "values");
    }
    if (engine == ResizeEngine::kTorchvision) {
      SPATIALID_ASSIGN_OR_RETURN(p.interpolation_,
                                 InterpolationFromPilCode(static_cast<int>(config.resample)));
    } else {
      SPATIALID_ASSIGN_OR_RETURN(p.pillow_filter_,
                                 internal::PillowFilterFromCode(static_cast<int>(config.resample)));
    }
  }
  if (config.do_center_crop) {
    const config::ImageSizeDict& crop = config.crop_size;
    if (!crop.height || !crop.width || *crop.height <= 0 || *crop.width <= 0) {
      return absl::InvalidArgumentError(
          "CLIP image processor: crop_size needs a positive height and width");
    }
    p.crop_height_ = *crop.height;
    p.crop_width_ = *crop.width;
  }
  return p;
}

inline std::pair<int64_t, int64_t> ClipImageProcessor::ResizedSize(int64_t height,
                                                                   int64_t width) const {
  if (!config_.do_resize) return {height, width};
  if (shortest_edge_ <= 0) return {size_height_, size_width_};
  // transformers' get_resize_output_image_size(default_to_square=False).
  const bool portrait = width <= height;
  const int64_t short_side = portrait ? width : height;
  const int64_t long_side = portrait ? height : width;
  const int64_t new_short = shortest_edge_;
  const auto new_long = static_cast<int64_t>(static_cast<double>(new_short * long_side) /
                                             static_cast<double>(short_side));
  return portrait ? std::make_pair(new_long, new_short) : std::make_pair(new_short, new_long);
}

inline at::Tensor ClipImageProcessor::PreprocessTorchvision(const io::Image& rgb) const {
  at::Tensor img = ImageToUint8Tensor(rgb);
  if (config_.do_resize) {
    const auto [h, w] = ResizedSize(rgb.height, rgb.width);
    img = TorchvisionResize(img, h, w, interpolation_, /*antialias=*/true);
  }
  if (config_.do_center_crop) {
    // BaseImageProcessorFast.center_crop: zero-pad when smaller, then crop at
    // int((size - crop) / 2).
    int64_t h = img.size(2), w = img.size(3);
    const int64_t ch = crop_height_, cw = crop_width_;
    if (cw > w || ch > h) {
      const int64_t left = cw > w ? (cw - w) / 2 : 0, top = ch > h ? (ch - h) / 2 : 0;
      const int64_t right = cw > w ? (cw - w + 1) / 2 : 0, bottom = ch > h ? (ch - h + 1) / 2 : 0;
      img = at::constant_pad_nd(img, {left, right, top, bottom}, 0);
      h = img.size(2);
      w = img.size(3);
    }
    const auto top = static_cast<int64_t>(static_cast<double>(h - ch) / 2.0);
    const auto left = static_cast<int64_t>(static_cast<double>(w - cw) / 2.0);
    img = img.slice(2, top, top + ch).slice(3, left, left + cw);
  }
  return RescaleNormalizeFast(img, config_).squeeze(0).contiguous();
}

inline absl::StatusOr<at::Tensor> ClipImageProcessor::PreprocessPillow(const io::Image& rgb) const {
  io::Image img = rgb;
  if (config_.do_resize) {
    const auto [h, w] = ResizedSize(rgb.height, rgb.width);
    // PIL's Image.resize returns a copy when the size does not change.
    if (h != rgb.height || w != rgb.width) {
      SPATIALID_ASSIGN_OR_RETURN(img, io::PillowResize(rgb, static_cast<int>(w),
                                                       static_cast<int>(h), pillow_filter_));
    }
  }
  if (config_.do_center_crop) {
    // transformers.image_transforms.center_crop (numpy): floor-centred crop,
    // zero padding centred with ceil when the image is smaller.
    const int64_t ch = crop_height_, cw = crop_width_;
    const int64_t h = img.height, w = img.width;
    const int64_t nh = std::max(ch, h), nw = std::max(cw, w);
    const int64_t top_pad = (nh - h + 1) / 2, left_pad = (nw - w + 1) / 2;
    const int64_t top = internal::FloorDiv(h - ch, 2) + top_pad;  // in the padded image
    const int64_t left = internal::FloorDiv(w - cw, 2) + left_pad;
    io::Image out(static_cast<int>(cw), static_cast<int>(ch), 3, 0);
    for (int64_t y = 0; y < ch; ++y) {
      const int64_t sy = top + y - top_pad;  // row in the unpadded image
      if (sy < 0 || sy >= h) continue;
      for (int64_t x = 0; x < cw; ++x) {
        const int64_t sx = left + x - left_pad;
        if (sx < 0 || sx >= w) continue;
        for (int c = 0; c < 3; ++c) {
          out.at(static_cast<int>(x), static_cast<int>(y), c) =
              img.at(static_cast<int>(sx), static_cast<int>(sy), c);
        }
      }
    }
    img = std::move(out);
  }
  return RescaleNormalizeSlow(img, config_);
}

inline absl::StatusOr<at::Tensor> ClipImageProcessor::Preprocess(const io::Image& image) const {
  if (image.empty() || image.width <= 0 || image.height <= 0 || image.channels < 1 ||
      image.channels > 4 ||
      image.pixels.size() != static_cast<size_t>(image.width) * image.height * image.channels) {
    return absl::InvalidArgumentError("CLIP image processor: empty or malformed image");
  }
  const io::Image rgb = io::DropAlpha(image);
  try {
    if (engine_ == ResizeEngine::kPillow) return PreprocessPillow(rgb);
    return PreprocessTorchvision(rgb);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("CLIP image processor: ", e.what_without_backtrace()));
  }
}

inline absl::StatusOr<at::Tensor> ClipImageProcessor::Preprocess(
    std::span<const io::Image> images) const {
  if (images.empty()) return absl::InvalidArgumentError("CLIP image processor: no images");
  std::vector<at::Tensor> out;
  out.reserve(images.size());
  for (size_t i = 0; i < images.size(); ++i) {
    absl::StatusOr<at::Tensor> t = Preprocess(images[i]);
    if (!t.ok()) {
      return absl::Status(t.status().code(),
                          absl::StrCat("image ", i, ": ", t.status().message()));
    }
    if (!out.empty() && !t->sizes().equals(out.front().sizes())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "CLIP image processor: image ", i, " gives ", t->size(1), "x", t->size(2),
          " pixels but image 0 gives ", out.front().size(1), "x", out.front().size(2),
          " (turn center crop on to batch images of different sizes)"));
    }
    out.push_back(*std::move(t));
  }
  return at::stack(out);
}

}  // namespace spatialid::vision
