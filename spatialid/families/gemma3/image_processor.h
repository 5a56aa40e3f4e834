// Gemma 3 image preprocessing (SigLIP style), matching the pixels that
// transformers' Gemma3Processor produces.
//
// Steps, with the settings of `preprocessor_config.json` (or the
// "image_processor" object of transformers 5's `processor_config.json`):
// resize to `size.height` x `size.width` (896 x 896 for gemma-3-{4b,12b},
// bilinear), rescale by `rescale_factor`, normalise with `image_mean` /
// `image_std` (0.5 each). No crop. Output: float32 [3, height, width] per
// image.
//
// These are the CLIP processor's steps without the centre crop, so the work
// is done by `ClipImageProcessor` (bit-exact with both transformers
// processors): `ResizeEngine::kTorchvision` reproduces
// `Gemma3ImageProcessorFast` (transformers 5's default; antialiased
// bilinear on uint8, then the fused (x - mean/rf) / (std/rf)) and
// `ResizeEngine::kPillow` the slow Pillow-based `Gemma3ImageProcessor` of
// transformers 4.x.
//
// Pan-and-scan: Gemma3Processor passes `do_pan_and_scan=False` on every call
// (Gemma3ProcessorKwargs defaults, transformers 5.3.0
// models/gemma3/processing_gemma3.py), whatever the saved image-processor
// settings say, so one image is always one 896 x 896 crop and 256 soft
// tokens. This processor does the same and ignores `do_pan_and_scan`.
//
// Example:
//   SPATIALID_ASSIGN_OR_RETURN(auto cfg, LoadImageProcessorConfig<
//       Gemma3ImageProcessorConfig>(model_dir));
//   SPATIALID_ASSIGN_OR_RETURN(auto proc, Gemma3ImageProcessor::Create(cfg));
//   SPATIALID_ASSIGN_OR_RETURN(at::Tensor pixels, proc.Preprocess(images));  // [N, 3, 896, 896]
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <utility>

#include <ATen/core/Tensor.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "spatialid/config/processor_config.h"
#include "spatialid/io/image.h"
#include "spatialid/vision/clip_image_processor.h"
#include "spatialid/vision/resize_engine.h"

namespace spatialid::families {

class Gemma3ImageProcessor {
 public:
  static absl::StatusOr<Gemma3ImageProcessor> Create(
      const Gemma3ImageProcessorConfig& config,
      vision::ResizeEngine engine = vision::ResizeEngine::kTorchvision) {
    if (config.do_resize && (!config.size.height || !config.size.width)) {
      return absl::InvalidArgumentError(
          "Gemma 3 image processor: size must give height and width (e.g. {\"height\": 896, "
          "\"width\": 896})");
    }
    config::CLIPImageProcessorConfig steps;
    static_cast<config::CommonImageProcessorFields&>(steps) = config;
    steps.do_center_crop = false;
    absl::StatusOr<vision::ClipImageProcessor> impl = vision::ClipImageProcessor::Create(steps, engine);
    if (!impl.ok()) return Relabel(impl.status());
    return Gemma3ImageProcessor(config, *std::move(impl));
  }

  // One image -> float32 [3, height, width] on the CPU.
  absl::StatusOr<at::Tensor> Preprocess(const io::Image& image) const {
    absl::StatusOr<at::Tensor> t = impl_.Preprocess(image);
    if (!t.ok()) return Relabel(t.status());
    return t;
  }

  // A batch -> float32 [N, 3, height, width].
  absl::StatusOr<at::Tensor> Preprocess(std::span<const io::Image> images) const {
    absl::StatusOr<at::Tensor> t = impl_.Preprocess(images);
    if (!t.ok()) return Relabel(t.status());
    return t;
  }

  // (height, width) of the output for an input of this size.
  std::pair<int64_t, int64_t> OutputSize(int64_t height, int64_t width) const {
    return impl_.ResizedSize(height, width);
  }

  const Gemma3ImageProcessorConfig& config() const { return config_; }
  vision::ResizeEngine engine() const { return impl_.engine(); }

 private:
  Gemma3ImageProcessor(Gemma3ImageProcessorConfig config, vision::ClipImageProcessor impl)
      : config_(std::move(config)), impl_(std::move(impl)) {}

  // The shared steps report as "CLIP image processor"; say whose they are.
  static absl::Status Relabel(const absl::Status& s) {
    return absl::Status(s.code(), absl::StrCat("Gemma 3 image processor (SigLIP resize and "
                                                "normalise): ",
                                                s.message()));
  }

  Gemma3ImageProcessorConfig config_;
  vision::ClipImageProcessor impl_;
};

}  // namespace spatialid::families
