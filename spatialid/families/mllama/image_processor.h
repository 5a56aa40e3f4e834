// Llama 3.2 Vision (Mllama) image preprocessing: aspect-preserving resize
// onto the best canvas of up to `max_image_tiles` square tiles, zero
// padding, split into tiles, as transformers' MllamaImageProcessor(Fast)
// makes them (transformers 5.3.0, models/mllama/image_processing_mllama*.py).
//
// Steps for one image of h x w with tile size t (= size.height = size.width,
// 560 for llama-11b / llava-cot) and n = max_image_tiles (4):
//  1. Tile layouts: every (rows, cols) with rows * cols <= n, rows-major
//     ((1,1), (1,2), (1,3), (1,4), (2,1), (2,2), (3,1), (4,1) for n = 4);
//     aspect_ratio_id = 1 + the layout's index (0 marks a padding image).
//  2. Canvas (get_optimal_tiled_canvas): per layout, the scale that fits
//     the image in (rows*t) x (cols*t) without distortion; the smallest
//     scale >= 1 if any layout upscales, else the largest one; ties go to
//     the smallest canvas area (first in layout order). float64 arithmetic
//     as numpy does it.
//  3. Resize (get_image_size_fit_to_canvas): each side is clipped into
//     [t, canvas side] first, so an image is never scaled past its canvas
//     nor below one tile, e.g. 896x896 picks the 2x2 canvas (1120) but stays
//     896x896 and is then padded; bilinear.
//  4. Pad right and bottom with 0 (pixel value 0, normalised to -mean/std)
//     to the canvas, split into rows x cols tiles (row-major), rescale and
//     normalise, and pad the tile axis with zeros (0.0 after
//     normalisation) up to n tiles.
// Outputs, as the processor returns them for a batch of one image per
// sample: pixel_values float32 [B, 1, n, 3, t, t], aspect_ratio_ids int64
// [B, 1], aspect_ratio_mask int64 [B, 1, n] (1 for the image's tiles).
//
// Engines (vision/resize_engine.h): `kTorchvision` (default) is
// MllamaImageProcessorFast, what transformers 5 loads with torchvision
// installed: uint8 resize with torchvision's antialiased bilinear kernel,
// tvF.pad, then the fused (x - mean/rf) / (std/rf). `kPillow` is the slow
// MllamaImageProcessor of transformers 4.x: Pillow's 8-bit bilinear resize,
// numpy zero padding, x * rf in float64 cast to fp32, (x - mean) / std.
//
// Alpha: images are turned into RGB by dropping alpha (io::DropAlpha), as
// the reference does with `.convert("RGB")` before the processor sees them.
// (Mllama's own do_convert_rgb would composite RGBA onto white; it never
// runs on the reference's already-RGB images.)
//
// Example:
//   SPATIALID_ASSIGN_OR_RETURN(auto cfg, LoadImageProcessorConfig<
//       MllamaImageProcessorConfig>(model_dir));
//   SPATIALID_ASSIGN_OR_RETURN(auto proc, MllamaImageProcessor::Create(cfg));
//   SPATIALID_ASSIGN_OR_RETURN(MllamaPixelBatch px, proc.Preprocess(images));
//   // px.pixel_values [N, 1, 4, 3, 560, 560]; an 896x896 image: id 6, mask [1,1,1,1]
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/constant_pad_nd.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/zeros.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "spatialid/config/processor_config.h"
#include "spatialid/io/image.h"
#include "spatialid/io/image_resample.h"
#include "spatialid/util/status.h"
#include "spatialid/vision/clip_image_processor.h"
#include "spatialid/vision/rescale_normalize.h"
#include "spatialid/vision/resize_engine.h"
#include "spatialid/vision/torchvision_resize.h"

namespace spatialid::families {

// A tile layout: `rows` tiles down, `cols` tiles across.
struct MllamaTileLayout {
  int64_t rows = 1;
  int64_t cols = 1;
  int64_t num_tiles() const { return rows * cols; }
  bool operator==(const MllamaTileLayout&) const = default;
};

// get_all_supported_aspect_ratios(max_image_tiles), in its order.
inline std::vector<MllamaTileLayout> MllamaSupportedLayouts(int64_t max_image_tiles) {
  std::vector<MllamaTileLayout> out;
  for (int64_t r = 1; r <= max_image_tiles; ++r) {
    for (int64_t c = 1; c <= max_image_tiles; ++c) {
      if (r * c <= max_image_tiles) out.push_back({r, c});
    }
  }
  return out;
}

// get_optimal_tiled_canvas: the layout whose canvas the image goes on.
inline MllamaTileLayout MllamaOptimalLayout(int64_t image_height, int64_t image_width,
                                            int64_t max_image_tiles, int64_t tile_size) {
  const std::vector<MllamaTileLayout> layouts = MllamaSupportedLayouts(max_image_tiles);
  std::vector<double> scales;
  for (const MllamaTileLayout& l : layouts) {
    const double scale_h = static_cast<double>(l.rows * tile_size) / static_cast<double>(image_height);
    const double scale_w = static_cast<double>(l.cols * tile_size) / static_cast<double>(image_width);
    scales.push_back(scale_w > scale_h ? scale_h : scale_w);  // np.where(w > h, h, w)
  }
  bool any_up = false;
  double selected = 0;
  for (double s : scales) {
    if (s >= 1 && (!any_up || s < selected)) selected = s, any_up = true;
  }
  if (!any_up) {
    selected = -1;
    for (double s : scales) selected = std::max(selected, s);
  }
  // Among layouts with exactly that scale, the first of minimal area.
  size_t best = layouts.size();
  for (size_t i = 0; i < layouts.size(); ++i) {
    if (scales[i] != selected) continue;
    if (best == layouts.size() || layouts[i].num_tiles() < layouts[best].num_tiles()) best = i;
  }
  return layouts[best];
}

// get_image_size_fit_to_canvas: (height, width) of the resized image.
inline std::pair<int64_t, int64_t> MllamaFitToCanvas(int64_t image_height, int64_t image_width,
                                                     int64_t canvas_height, int64_t canvas_width,
                                                     int64_t tile_size) {
  const int64_t target_width = std::clamp(image_width, tile_size, canvas_width);
  const int64_t target_height = std::clamp(image_height, tile_size, canvas_height);
  const double scale_h = static_cast<double>(target_height) / static_cast<double>(image_height);
  const double scale_w = static_cast<double>(target_width) / static_cast<double>(image_width);
  if (scale_w < scale_h) {
    // math.floor(...) or 1: never a zero side.
    const auto h = static_cast<int64_t>(std::floor(static_cast<double>(image_height) * scale_w));
    return {std::min(h == 0 ? int64_t{1} : h, target_height), target_width};
  }
  const auto w = static_cast<int64_t>(std::floor(static_cast<double>(image_width) * scale_h));
  return {target_height, std::min(w == 0 ? int64_t{1} : w, target_width)};
}

// Preprocessed images, one per sample (the processor's outputs).
struct MllamaPixelBatch {
  at::Tensor pixel_values;       // float32 [B, images, max_tiles, 3, tile, tile]
  at::Tensor aspect_ratio_ids;   // int64 [B, images]; 0 = no image
  at::Tensor aspect_ratio_mask;  // int64 [B, images, max_tiles]; 1 = a real tile
};

// One image: its tiles and layout.
struct MllamaTiledImage {
  at::Tensor tiles;  // float32 [layout.num_tiles(), 3, tile, tile]
  MllamaTileLayout layout;
  int64_t aspect_ratio_id = 0;  // 1-based index of `layout`
};

class MllamaImageProcessor {
 public:
  static absl::StatusOr<MllamaImageProcessor> Create(const MllamaImageProcessorConfig& config,
                                                     vision::ResizeEngine engine = vision::ResizeEngine::kTorchvision) {
    MllamaImageProcessor p;
    p.config_ = config;
    p.engine_ = engine;
    if (!config.do_resize || !config.do_pad) {
      return absl::InvalidArgumentError(
          "Mllama image processor: do_resize and do_pad must be true (transformers refuses "
          "anything else)");
    }
    if (!config.size.height || !config.size.width || *config.size.height <= 0 ||
        *config.size.height != *config.size.width) {
      return absl::InvalidArgumentError(
          "Mllama image processor: size must give equal, positive height and width (the tile)");
    }
    if (config.max_image_tiles <= 0 || config.max_image_tiles > 64) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Mllama image processor: max_image_tiles ", config.max_image_tiles, " is not in 1..64"));
    }
    if (config.image_mean.size() != 3 || config.image_std.size() != 3) {
      return absl::InvalidArgumentError(
          "Mllama image processor: image_mean and image_std need 3 values");
    }
    for (double s : config.image_std) {
      if (s == 0) return absl::InvalidArgumentError("Mllama image processor: image_std has a zero");
    }
    if (engine == vision::ResizeEngine::kTorchvision) {
      SPATIALID_ASSIGN_OR_RETURN(p.interpolation_,
                                 vision::InterpolationFromPilCode(static_cast<int>(config.resample)));
    } else {
      SPATIALID_ASSIGN_OR_RETURN(p.pillow_filter_,
                                 vision::internal::PillowFilterFromCode(static_cast<int>(config.resample)));
    }
    p.tile_ = *config.size.height;
    p.layouts_ = MllamaSupportedLayouts(config.max_image_tiles);
    return p;
  }

  int64_t tile_size() const { return tile_; }
  int64_t max_image_tiles() const { return config_.max_image_tiles; }
  const MllamaImageProcessorConfig& config() const { return config_; }
  vision::ResizeEngine engine() const { return engine_; }

  // The layout and resized (height, width) for an image of this size.
  MllamaTileLayout LayoutFor(int64_t height, int64_t width) const {
    return MllamaOptimalLayout(height, width, config_.max_image_tiles, tile_);
  }
  std::pair<int64_t, int64_t> ResizedSize(int64_t height, int64_t width) const {
    const MllamaTileLayout l = LayoutFor(height, width);
    return MllamaFitToCanvas(height, width, l.rows * tile_, l.cols * tile_, tile_);
  }
  // 1 + the layout's index among the supported layouts.
  int64_t AspectRatioId(const MllamaTileLayout& layout) const {
    const auto it = std::find(layouts_.begin(), layouts_.end(), layout);
    return it == layouts_.end() ? 0 : static_cast<int64_t>(it - layouts_.begin()) + 1;
  }

  absl::StatusOr<MllamaTiledImage> Preprocess(const io::Image& image) const {
    if (image.empty() || image.width <= 0 || image.height <= 0 || image.channels < 1 ||
        image.channels > 4 ||
        image.pixels.size() != static_cast<size_t>(image.width) * image.height * image.channels) {
      return absl::InvalidArgumentError("Mllama image processor: empty or malformed image");
    }
    const io::Image rgb = io::DropAlpha(image);
    MllamaTiledImage out;
    out.layout = LayoutFor(rgb.height, rgb.width);
    out.aspect_ratio_id = AspectRatioId(out.layout);
    const auto [h, w] = ResizedSize(rgb.height, rgb.width);
    try {
      if (engine_ == vision::ResizeEngine::kPillow) {
        SPATIALID_ASSIGN_OR_RETURN(out.tiles, TilesPillow(rgb, h, w, out.layout));
      } else {
        out.tiles = TilesTorchvision(rgb, h, w, out.layout);
      }
    } catch (const c10::Error& e) {
      return absl::InternalError(absl::StrCat("Mllama image processor: ", e.what_without_backtrace()));
    }
    return out;
  }

  // One image per sample, as the reference's prompts have.
  absl::StatusOr<MllamaPixelBatch> Preprocess(std::span<const io::Image> images) const {
    if (images.empty()) return absl::InvalidArgumentError("Mllama image processor: no images");
    const int64_t n = config_.max_image_tiles, b = static_cast<int64_t>(images.size());
    MllamaPixelBatch batch;
    batch.pixel_values = at::zeros({b, 1, n, 3, tile_, tile_}, at::kFloat);
    batch.aspect_ratio_ids = at::zeros({b, 1}, at::kLong);
    batch.aspect_ratio_mask = at::zeros({b, 1, n}, at::kLong);
    for (int64_t i = 0; i < b; ++i) {
      absl::StatusOr<MllamaTiledImage> t = Preprocess(images[static_cast<size_t>(i)]);
      if (!t.ok()) {
        return absl::Status(t.status().code(), absl::StrCat("image ", i, ": ", t.status().message()));
      }
      const int64_t tiles = t->layout.num_tiles();
      batch.pixel_values[i][0].slice(0, 0, tiles).copy_(t->tiles);
      batch.aspect_ratio_ids[i][0].fill_(t->aspect_ratio_id);
      // build_aspect_ratio_mask: tile 0 always, then the layout's tiles.
      batch.aspect_ratio_mask[i][0].slice(0, 0, std::max<int64_t>(tiles, 1)).fill_(1);
    }
    return batch;
  }

 private:
  // uint8 [1, 3, H, W] -> tiles, as MllamaImageProcessorFast.
  at::Tensor TilesTorchvision(const io::Image& rgb, int64_t h, int64_t w,
                              const MllamaTileLayout& layout) const {
    at::Tensor img = vision::TorchvisionResize(vision::ImageToUint8Tensor(rgb), h, w, interpolation_,
                                       /*antialias=*/true);
    img = at::constant_pad_nd(img, {0, layout.cols * tile_ - w, 0, layout.rows * tile_ - h}, 0);
    return vision::RescaleNormalizeFast(SplitTiles(img.squeeze(0), layout), config_);
  }

  // Pillow resize, numpy pad, slow rescale/normalise, split.
  absl::StatusOr<at::Tensor> TilesPillow(const io::Image& rgb, int64_t h, int64_t w,
                                         const MllamaTileLayout& layout) const {
    SPATIALID_ASSIGN_OR_RETURN(io::Image resized,
                               io::PillowResize(rgb, static_cast<int>(w), static_cast<int>(h),
                                                pillow_filter_));
    io::Image canvas(static_cast<int>(layout.cols * tile_), static_cast<int>(layout.rows * tile_), 3, 0);
    for (int y = 0; y < resized.height; ++y) {
      std::copy(resized.row(y), resized.row(y) + static_cast<size_t>(resized.width) * 3, canvas.row(y));
    }
    return SplitTiles(vision::RescaleNormalizeSlow(canvas, config_), layout).contiguous();
  }

  // [C, rows*t, cols*t] -> [rows*cols, C, t, t], row-major (split_to_tiles).
  at::Tensor SplitTiles(const at::Tensor& img, const MllamaTileLayout& layout) const {
    const int64_t c = img.size(0);
    return img.reshape({c, layout.rows, tile_, layout.cols, tile_})
        .permute({1, 3, 0, 2, 4})
        .contiguous()
        .reshape({layout.num_tiles(), c, tile_, tile_});
  }

  MllamaImageProcessorConfig config_;
  vision::ResizeEngine engine_ = vision::ResizeEngine::kTorchvision;
  int64_t tile_ = 0;
  std::vector<MllamaTileLayout> layouts_;
  vision::Interpolation interpolation_ = vision::Interpolation::kBilinear;
  io::ResampleFilter pillow_filter_ = io::ResampleFilter::kBilinear;
};

}  // namespace spatialid::families
