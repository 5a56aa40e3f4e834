// GOT-OCR2 image preprocessing with dynamic tiling (InternVL3), matching
// transformers' GotOcr2ImageProcessorFast and GotOcr2ImageProcessor.
//
// With `crop_to_patches` (InternVLProcessor always turns it on):
//  1. pick the tile grid (columns x rows) whose aspect ratio is closest to the
//     image's, among grids of min_patches..max_patches tiles
//     (`OptimalTiledCanvas`, transformers' get_optimal_tiled_canvas: grids in
//     order of tile count; a tie goes to the larger grid while the image's
//     area exceeds half the grid's);
//  2. resize the image to (rows * size.height) x (columns * size.width) and
//     cut it into tiles, row by row;
//  3. when there is more than one tile, append a thumbnail: the whole image
//     resized to one tile;
//  4. resize every tile to `size` (a no-op), rescale and normalise.
// Without it each image is resized to `size` (one patch). Output: float32
// [total patches, 3, size.height, size.width] plus the patch count of each
// image, which sets its prompt length (256 tokens per patch in InternVL3).
// An 896x896 image gives a 2x2 grid + thumbnail = 5 patches.
//
// Engines (resize_engine.h), as for CLIP:
// - `kTorchvision` (default): the fast processor transformers 5 loads; uint8
//   tensors through torchvision's antialiased resize with the configured
//   `resample`, fused rescale/normalise. Bit-exact with transformers 5.3.0.
// - `kPillow`: the slow processor (transformers 4.x's default, the paper's
//   pixels); Pillow-exact resizes. Its tiles and thumbnail are always resized
//   BICUBIC (the slow class's `resize` default; it does not pass `resample`
//   there), and it tiles only when max_patches > 1.
// Images with alpha or grey are converted like Pillow's `.convert("RGB")`.
//
// Example:
//   SPATIALID_ASSIGN_OR_RETURN(auto cfg,
//       LoadImageProcessorConfig<GotOcr2ImageProcessorConfig>(dir));
//   cfg.crop_to_patches = true;  // what InternVLProcessor passes
//   SPATIALID_ASSIGN_OR_RETURN(auto proc, GotOcr2ImageProcessor::Create(cfg));
//   SPATIALID_ASSIGN_OR_RETURN(TiledPixels px, proc.Preprocess(images));
//   // px.pixel_values [5, 3, 448, 448], px.num_patches {5} for one 896x896 image
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/stack.h>

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

// A tile grid: `columns` tiles across, `rows` down.
struct TileGrid {
  int64_t columns = 1;
  int64_t rows = 1;
  int64_t tiles() const { return columns * rows; }
};

// transformers' get_optimal_tiled_canvas(original (h, w), tile (h, w), min, max).
inline TileGrid OptimalTiledCanvas(int64_t height, int64_t width, int64_t tile_height,
                                   int64_t tile_width, int64_t min_tiles, int64_t max_tiles) {
  // get_all_supported_aspect_ratios: (w, h) pairs, width-major, then a stable
  // sort by tile count.
  std::vector<TileGrid> grids;
  for (int64_t w = 1; w <= max_tiles; ++w) {
    for (int64_t h = 1; h <= max_tiles; ++h) {
      if (w * h <= max_tiles && w * h >= min_tiles) grids.push_back({w, h});
    }
  }
  std::stable_sort(grids.begin(), grids.end(),
                   [](const TileGrid& a, const TileGrid& b) { return a.tiles() < b.tiles(); });
  const double aspect = static_cast<double>(width) / static_cast<double>(height);
  const auto area = static_cast<double>(width * height);
  double best_diff = std::numeric_limits<double>::infinity();
  TileGrid best;
  for (const TileGrid& g : grids) {
    const double diff =
        std::abs(aspect - static_cast<double>(g.columns) / static_cast<double>(g.rows));
    if (diff < best_diff) {
      best_diff = diff;
      best = g;
    } else if (diff == best_diff) {
      // Python: area > 0.5 * th * tw * g[0] * g[1], evaluated left to right in floats.
      if (area > 0.5 * static_cast<double>(tile_height) * static_cast<double>(tile_width) *
                     static_cast<double>(g.columns) * static_cast<double>(g.rows)) {
        best = g;
      }
    }
  }
  return best;
}

// Preprocessed images: every image's patches (its tiles, then its thumbnail)
// in image order.
struct TiledPixels {
  at::Tensor pixel_values;           // float32 [sum(num_patches), 3, H, W], CPU
  std::vector<int64_t> num_patches;  // per image
};

class GotOcr2ImageProcessor {
 public:
  static absl::StatusOr<GotOcr2ImageProcessor> Create(
      const GotOcr2ImageProcessorConfig& config,
      vision::ResizeEngine engine = vision::ResizeEngine::kTorchvision) {
    GotOcr2ImageProcessor p;
    p.config_ = config;
    p.engine_ = engine;
    if (config.image_mean.size() != 3 || config.image_std.size() != 3) {
      return absl::InvalidArgumentError(
          "GOT-OCR2 image processor: image_mean and image_std need 3 values");
    }
    for (double s : config.image_std) {
      if (s == 0) return absl::InvalidArgumentError("GOT-OCR2 image processor: image_std has a zero");
    }
    if (!config.size.height || !config.size.width || *config.size.height <= 0 ||
        *config.size.width <= 0) {
      return absl::InvalidArgumentError(
          "GOT-OCR2 image processor: size must be {height, width} with positive values");
    }
    p.tile_height_ = *config.size.height;
    p.tile_width_ = *config.size.width;
    if (config.crop_to_patches && (config.min_patches < 1 || config.max_patches < 1 ||
                                   config.min_patches > config.max_patches ||
                                   config.max_patches > kMaxPatchesLimit)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "GOT-OCR2 image processor: need 1 <= min_patches <= max_patches <= ", kMaxPatchesLimit,
          ", got ", config.min_patches, " and ", config.max_patches));
    }
    if (engine == vision::ResizeEngine::kTorchvision) {
      SPATIALID_ASSIGN_OR_RETURN(p.interpolation_,
                                 vision::InterpolationFromPilCode(static_cast<int>(config.resample)));
    } else {
      SPATIALID_ASSIGN_OR_RETURN(p.pillow_filter_,
                                 vision::internal::PillowFilterFromCode(static_cast<int>(config.resample)));
    }
    return p;
  }

  // The tile grid an image of this size gets (1x1 when not tiling).
  TileGrid GridFor(int64_t height, int64_t width) const {
    if (!Tiles()) return {};
    return OptimalTiledCanvas(height, width, tile_height_, tile_width_, config_.min_patches,
                              config_.max_patches);
  }

  // Patches for an image of this size: the tiles, plus a thumbnail when
  // there is more than one (transformers' get_number_of_image_patches).
  int64_t NumPatches(int64_t height, int64_t width) const {
    const int64_t tiles = GridFor(height, width).tiles();
    return tiles > 1 ? tiles + 1 : 1;
  }

  // One image -> float32 [NumPatches(h, w), 3, tile_height, tile_width].
  absl::StatusOr<at::Tensor> Preprocess(const io::Image& image) const {
    if (image.empty() || image.width <= 0 || image.height <= 0 || image.channels < 1 ||
        image.channels > 4 ||
        image.pixels.size() !=
            static_cast<size_t>(image.width) * image.height * image.channels) {
      return absl::InvalidArgumentError("GOT-OCR2 image processor: empty or malformed image");
    }
    const io::Image rgb = io::DropAlpha(image);
    try {
      if (engine_ == vision::ResizeEngine::kPillow) return PreprocessPillow(rgb);
      return PreprocessTorchvision(rgb);
    } catch (const c10::Error& e) {
      return absl::InternalError(
          absl::StrCat("GOT-OCR2 image processor: ", e.what_without_backtrace()));
    }
  }

  // A batch: all patches concatenated, with each image's count.
  absl::StatusOr<TiledPixels> Preprocess(std::span<const io::Image> images) const {
    if (images.empty()) return absl::InvalidArgumentError("GOT-OCR2 image processor: no images");
    std::vector<at::Tensor> parts;
    TiledPixels out;
    for (size_t i = 0; i < images.size(); ++i) {
      absl::StatusOr<at::Tensor> t = Preprocess(images[i]);
      if (!t.ok()) {
        return absl::Status(t.status().code(), absl::StrCat("image ", i, ": ", t.status().message()));
      }
      if (!parts.empty() && !t->sizes().slice(1).equals(parts.front().sizes().slice(1))) {
        return absl::InvalidArgumentError(absl::StrCat(
            "GOT-OCR2 image processor: image ", i, " gives ", t->size(2), "x", t->size(3),
            " patches but image 0 gives ", parts.front().size(2), "x", parts.front().size(3),
            " (turn do_resize or crop_to_patches on to batch images of different sizes)"));
      }
      out.num_patches.push_back(t->size(0));
      parts.push_back(*std::move(t));
    }
    out.pixel_values = parts.size() == 1 ? parts[0] : at::cat(parts, 0);
    return out;
  }

  const GotOcr2ImageProcessorConfig& config() const { return config_; }
  vision::ResizeEngine engine() const { return engine_; }

  // get_all_supported_aspect_ratios enumerates max^2 grids; far more tiles
  // than any checkpoint uses would only make that slow.
  static constexpr int64_t kMaxPatchesLimit = 1024;

 private:
  // The slow processor skips tiling when max_patches is 1; the fast one
  // tiles, gets a 1x1 grid and the same single patch.
  bool Tiles() const { return config_.crop_to_patches; }

  at::Tensor PreprocessTorchvision(const io::Image& rgb) const {
    const at::Tensor img = vision::ImageToUint8Tensor(rgb);
    std::vector<at::Tensor> patches;
    if (Tiles()) {
      const TileGrid grid = GridFor(rgb.height, rgb.width);
      const at::Tensor canvas = vision::TorchvisionResize(img, tile_height_ * grid.rows,
                                                  tile_width_ * grid.columns, interpolation_);
      for (int64_t i = 0; i < grid.tiles(); ++i) {
        const int64_t column = i % grid.columns, row = i / grid.columns;
        patches.push_back(canvas.slice(2, row * tile_height_, (row + 1) * tile_height_)
                              .slice(3, column * tile_width_, (column + 1) * tile_width_));
      }
      if (patches.size() != 1) {
        patches.push_back(vision::TorchvisionResize(img, tile_height_, tile_width_, interpolation_));
      }
    } else {
      patches.push_back(img);
    }
    at::Tensor stacked = at::cat(patches, 0);
    // The final resize to `size` leaves tiles as they are (same size).
    if (config_.do_resize) {
      stacked = vision::TorchvisionResize(stacked, tile_height_, tile_width_, interpolation_);
    }
    return vision::RescaleNormalizeFast(stacked, config_).contiguous();
  }

  absl::StatusOr<at::Tensor> PreprocessPillow(const io::Image& rgb) const {
    // image_transforms.resize goes through PIL, whose resize returns a copy
    // when the size does not change.
    auto resize = [](const io::Image& in, int64_t h, int64_t w,
                     io::ResampleFilter filter) -> absl::StatusOr<io::Image> {
      if (in.height == h && in.width == w) return in;
      return io::PillowResize(in, static_cast<int>(w), static_cast<int>(h), filter);
    };
    std::vector<io::Image> patches;
    if (Tiles() && config_.max_patches > 1) {
      const TileGrid grid = GridFor(rgb.height, rgb.width);
      SPATIALID_ASSIGN_OR_RETURN(io::Image canvas,
                                 resize(rgb, tile_height_ * grid.rows, tile_width_ * grid.columns,
                                        io::ResampleFilter::kBicubic));
      for (int64_t i = 0; i < grid.tiles(); ++i) {
        const int64_t column = i % grid.columns, row = i / grid.columns;
        io::Image tile(static_cast<int>(tile_width_), static_cast<int>(tile_height_), 3);
        for (int64_t y = 0; y < tile_height_; ++y) {
          const uint8_t* src = canvas.row(static_cast<int>(row * tile_height_ + y)) +
                               column * tile_width_ * 3;
          std::copy(src, src + tile_width_ * 3, tile.row(static_cast<int>(y)));
        }
        patches.push_back(std::move(tile));
      }
      if (patches.size() != 1) {
        SPATIALID_ASSIGN_OR_RETURN(io::Image thumb, resize(rgb, tile_height_, tile_width_,
                                                           io::ResampleFilter::kBicubic));
        patches.push_back(std::move(thumb));
      }
    } else {
      patches.push_back(rgb);
    }
    std::vector<at::Tensor> out;
    for (io::Image& p : patches) {
      if (config_.do_resize) {
        SPATIALID_ASSIGN_OR_RETURN(p, resize(p, tile_height_, tile_width_, pillow_filter_));
      }
      out.push_back(vision::RescaleNormalizeSlow(p, config_));
    }
    return at::stack(out);
  }

  GotOcr2ImageProcessorConfig config_;
  vision::ResizeEngine engine_ = vision::ResizeEngine::kTorchvision;
  int64_t tile_height_ = 0, tile_width_ = 0;
  vision::Interpolation interpolation_ = vision::Interpolation::kBicubic;
  io::ResampleFilter pillow_filter_ = io::ResampleFilter::kBicubic;
};

}  // namespace spatialid::families
