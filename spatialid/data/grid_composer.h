// The grid tiling engine: draws one layout exactly as the reference does.
//
// For a layout (pair a, b; A's cell; B's cell; size) the reference
// (`paste_two_objects_on_grid`) starts from a fully transparent RGBA canvas
// of 4*cell x 4*cell pixels, or from a background image converted to RGBA
// and resized to the canvas with Pillow's default BICUBIC; resizes A and B
// to size x size with LANCZOS; centres each in its cell at
// `int(cell_x + (cell - w) / 2)` (truncation toward zero); and pastes A,
// then B, each with its own alpha as the mask (see pillow_paste.h).
// With local variation each object first gets its own random size factor
// (A in [0.95, 1.05], B in [0.9, 1.1]; side = int(size * factor)) and
// rotation in [-15, 15] degrees (Pillow's rotate, NEAREST, expand=True),
// drawn in the order A factor, A angle, B factor, B angle.
//
// Randomness is our own and reproducible: every layout's draws come from a
// SplitMix64 stream keyed by the seed and the layout's relative path, so
// images do not depend on generation order or thread count, and
// `RecipeFor` returns the exact numbers so Pillow can replay them. As in the
// reference, one background is chosen per (pair, size), not per image.
// Backgrounds decode like Pillow too: PNGs losslessly, JPEGs with
// libjpeg-turbo (jpeg_file.h), then Pillow's BICUBIC resize to the canvas.
//
// Example:
//   SPATIALID_ASSIGN_OR_RETURN(auto composer, GridComposer::Create("data/objects", {}));
//   SPATIALID_ASSIGN_OR_RETURN(io::Image rgba, composer->Compose(layout));
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "spatialid/data/grid_layout.h"
#include "spatialid/data/jpeg_file.h"
#include "spatialid/data/pillow_paste.h"
#include "spatialid/io/image.h"
#include "spatialid/io/image_resample.h"
#include "spatialid/util/status.h"

namespace spatialid::data {

struct GridOptions {
  int cell = 224;               // cell side in pixels; the canvas is 4 * cell square
  bool local_variation = false;  // random size factor and rotation per object
  uint64_t seed = 0;            // keys variation draws and background choice
  std::string bg_dir;           // backgrounds (*.png, *.jpg, *.jpeg); empty: transparent
};

// One layout's random draws under local variation.
struct PlacementVariation {
  double a_factor = 1.0;  // in [0.95, 1.05)
  double a_angle = 0.0;   // degrees, counter-clockwise, in [-15, 15)
  double b_factor = 1.0;  // in [0.9, 1.1)
  double b_angle = 0.0;
};

// Everything needed to redraw one layout, in Pillow or here.
struct LayoutRecipe {
  GridLayout layout;
  std::optional<PlacementVariation> variation;
  std::string background;  // file name inside bg_dir; empty: transparent canvas
};

// A reproducible stream of uniform doubles keyed by a seed and a string.
class KeyedRandom {
 public:
  KeyedRandom(uint64_t seed, absl::string_view key) : state_(seed ^ 0x6a09e667f3bcc909ULL) {
    // FNV-1a over the key, then mixed into the seed.
    uint64_t h = 0xcbf29ce484222325ULL;
    for (unsigned char ch : key) h = (h ^ ch) * 0x100000001b3ULL;
    state_ ^= h;
    Next();
  }
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Python's random.uniform(lo, hi) formula on a 53-bit uniform in [0, 1).
  double Uniform(double lo, double hi) {
    const double u = static_cast<double>(Next() >> 11) * 0x1.0p-53;
    return lo + (hi - lo) * u;
  }

 private:
  uint64_t state_;
};

inline PlacementVariation SampleVariation(uint64_t seed, const GridLayout& layout) {
  KeyedRandom rng(seed, absl::StrCat("variation:", LayoutRelativePath(layout)));
  PlacementVariation v;
  v.a_factor = rng.Uniform(0.95, 1.05);
  v.a_angle = rng.Uniform(-15, 15);
  v.b_factor = rng.Uniform(0.9, 1.1);
  v.b_angle = rng.Uniform(-15, 15);
  return v;
}

// `{objects_dir}/{name}.png` as RGBA (grey, grey+alpha and RGB files are
// converted; files without alpha count as opaque).
inline absl::StatusOr<io::Image> LoadObjectImage(const std::string& objects_dir,
                                                 const std::string& name) {
  const std::string path = (std::filesystem::path(objects_dir) / (name + ".png")).string();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return absl::NotFoundError(absl::StrCat(
        path, ": object image not found (expected an RGBA PNG named {object}.png in ",
        objects_dir, ")"));
  }
  return io::LoadImage(path, 4);
}

// Background candidates of `bg_dir`, sorted by name (the reference lists the
// folder with os.listdir and keeps .png, .jpg and .jpeg, any case).
inline absl::StatusOr<std::vector<std::string>> ListBackgroundFiles(const std::string& bg_dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(bg_dir, ec)) {
    return absl::NotFoundError(absl::StrCat(bg_dir, ": background folder not found"));
  }
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(bg_dir, ec)) {
    const std::string name = entry.path().filename().string();
    const std::string lower = absl::AsciiStrToLower(name);
    if (absl::EndsWith(lower, ".png") || absl::EndsWith(lower, ".jpg") ||
        absl::EndsWith(lower, ".jpeg")) {
      names.push_back(name);
    }
  }
  if (ec) return absl::PermissionDeniedError(absl::StrCat(bg_dir, ": cannot list folder"));
  if (names.empty()) {
    return absl::NotFoundError(
        absl::StrCat(bg_dir, ": background folder holds no .png, .jpg or .jpeg file"));
  }
  std::sort(names.begin(), names.end());
  return names;
}

// A background file as `Image.open(path).convert("RGBA")`: JPEGs through
// libjpeg-turbo like Pillow (see jpeg_file.h), anything else through stb;
// files without alpha become opaque.
inline absl::StatusOr<io::Image> LoadBackgroundRgba(const std::string& path) {
  if (!LooksLikeJpeg(path)) return io::LoadImage(path, 4);
  SPATIALID_ASSIGN_OR_RETURN(io::Image rgb, LoadJpegRgb(path));
  io::Image rgba(rgb.width, rgb.height, 4, 255);
  const size_t n = static_cast<size_t>(rgb.width) * rgb.height;
  for (size_t i = 0; i < n; ++i) std::copy_n(&rgb.pixels[i * 3], 3, &rgba.pixels[i * 4]);
  return rgba;
}

namespace internal {

// Values computed once per key, safely from many threads.
template <class V>
class OnceCache {
 public:
  template <class Make>
  const absl::StatusOr<V>& Get(const std::string& key, Make make) const {
    std::shared_ptr<Slot> slot;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto& s = slots_[key];
      if (!s) s = std::make_shared<Slot>();
      slot = s;
    }
    std::call_once(slot->once, [&] { slot->value = make(); });
    return slot->value;
  }

 private:
  struct Slot {
    std::once_flag once;
    absl::StatusOr<V> value = absl::UnknownError("not computed");
  };
  mutable std::mutex mu_;
  mutable std::map<std::string, std::shared_ptr<Slot>> slots_;
};

}  // namespace internal

class GridComposer {
 public:
  static absl::StatusOr<std::unique_ptr<GridComposer>> Create(std::string objects_dir,
                                                              GridOptions options) {
    if (options.cell < 1 || options.cell > 8192) {
      return absl::InvalidArgumentError(
          absl::StrCat("cell size must be in 1..8192 pixels, got ", options.cell));
    }
    std::error_code ec;
    if (!std::filesystem::is_directory(objects_dir, ec)) {
      return absl::NotFoundError(absl::StrCat(objects_dir, ": objects folder not found"));
    }
    std::unique_ptr<GridComposer> c(new GridComposer(std::move(objects_dir), std::move(options)));
    if (!c->options_.bg_dir.empty()) {
      SPATIALID_ASSIGN_OR_RETURN(c->backgrounds_, ListBackgroundFiles(c->options_.bg_dir));
    }
    return c;
  }

  const GridOptions& options() const { return options_; }
  const std::string& objects_dir() const { return objects_dir_; }
  int canvas_side() const { return kGridSide * options_.cell; }

  // The random draws and background of a layout, without drawing it.
  LayoutRecipe RecipeFor(const GridLayout& layout) const {
    LayoutRecipe r{layout, std::nullopt, ""};
    if (options_.local_variation) r.variation = SampleVariation(options_.seed, layout);
    if (!backgrounds_.empty()) {
      KeyedRandom rng(options_.seed, absl::StrCat("background:", layout.pair(), ":", layout.size));
      r.background = backgrounds_[rng.Next() % backgrounds_.size()];
    }
    return r;
  }

  // Loads (and, without variation, resizes) everything these objects and
  // sizes need, so missing or broken files show up before a long run.
  absl::Status Preload(const std::vector<std::string>& objects, const std::vector<int>& sizes) const {
    for (const std::string& name : objects) {
      SPATIALID_RETURN_IF_ERROR(Object(name).status());
      if (options_.local_variation) continue;
      for (int size : sizes) SPATIALID_RETURN_IF_ERROR(ResizedObject(name, size).status());
    }
    // Backgrounds load lazily: a run may use only a few of many files.
    return absl::OkStatus();
  }

  // The RGBA canvas of one layout, exactly as the reference saves it.
  absl::StatusOr<io::Image> Compose(const GridLayout& layout) const {
    return Compose(RecipeFor(layout));
  }

  absl::StatusOr<io::Image> Compose(const LayoutRecipe& recipe) const {
    const GridLayout& l = recipe.layout;
    if (!l.a_cell) {
      return absl::InvalidArgumentError(
          absl::StrCat(l.pair(), ": a layout without A's cell (flat folder) cannot be drawn"));
    }
    if (l.size < 1 || l.size > options_.cell) {
      return absl::InvalidArgumentError(absl::StrCat(
          "object size ", l.size, " must be in 1..", options_.cell, " (the cell size)"));
    }
    io::Image canvas;
    if (!recipe.background.empty()) {
      SPATIALID_ASSIGN_OR_RETURN(const io::Image* bg, Background(recipe.background));
      canvas = *bg;
    } else {
      canvas = io::Image(canvas_side(), canvas_side(), 4, 0);
    }
    const std::optional<PlacementVariation>& v = recipe.variation;
    PreparedObject a, b;
    SPATIALID_RETURN_IF_ERROR(Prepare(l.a, l.size, v ? std::optional(v->a_factor) : std::nullopt,
                                      v ? v->a_angle : 0.0, &a));
    SPATIALID_RETURN_IF_ERROR(Prepare(l.b, l.size, v ? std::optional(v->b_factor) : std::nullopt,
                                      v ? v->b_angle : 0.0, &b));
    SPATIALID_RETURN_IF_ERROR(PasteWithOwnAlpha(canvas, *a.image,
                                                CentredOffset(l.a_cell->x, a.image->width),
                                                CentredOffset(l.a_cell->y, a.image->height)));
    SPATIALID_RETURN_IF_ERROR(PasteWithOwnAlpha(canvas, *b.image,
                                                CentredOffset(l.b_cell.x, b.image->width),
                                                CentredOffset(l.b_cell.y, b.image->height)));
    return canvas;
  }

  // `int(cell_index * cell + (cell - extent) / 2)`: Python's int() truncates
  // toward zero, which matters when a grown, rotated object is wider than
  // its cell.
  int CentredOffset(int cell_index, int extent) const {
    return static_cast<int>(cell_index * options_.cell + (options_.cell - extent) / 2.0);
  }

 private:
  GridComposer(std::string objects_dir, GridOptions options)
      : objects_dir_(std::move(objects_dir)), options_(std::move(options)) {}

  absl::StatusOr<const io::Image*> Object(const std::string& name) const {
    const auto& r = objects_.Get(name, [&] { return LoadObjectImage(objects_dir_, name); });
    if (!r.ok()) return r.status();
    return &*r;
  }

  absl::StatusOr<const io::Image*> ResizedObject(const std::string& name, int size) const {
    const auto& r = resized_.Get(absl::StrCat(name, "@", size), [&]() -> absl::StatusOr<io::Image> {
      SPATIALID_ASSIGN_OR_RETURN(const io::Image* obj, Object(name));
      return io::PillowResize(*obj, size, size, io::ResampleFilter::kLanczos);
    });
    if (!r.ok()) return r.status();
    return &*r;
  }

  absl::StatusOr<const io::Image*> Background(const std::string& file) const {
    const auto& r = backgrounds_cache_.Get(file, [&]() -> absl::StatusOr<io::Image> {
      const std::string path = (std::filesystem::path(options_.bg_dir) / file).string();
      SPATIALID_ASSIGN_OR_RETURN(io::Image img, LoadBackgroundRgba(path));
      // Image.resize's default filter is BICUBIC.
      return io::PillowResize(img, canvas_side(), canvas_side(), io::ResampleFilter::kBicubic);
    });
    if (!r.ok()) return r.status();
    return &*r;
  }

  // An object ready to paste: the cached resize, or a fresh varied copy.
  struct PreparedObject {
    io::Image owned;
    const io::Image* image = nullptr;
  };

  // One object as pasted: resized (and, with variation, scaled and rotated).
  absl::Status Prepare(const std::string& name, int size, std::optional<double> factor,
                       double angle, PreparedObject* out) const {
    if (!factor) {
      SPATIALID_ASSIGN_OR_RETURN(out->image, ResizedObject(name, size));
      return absl::OkStatus();
    }
    const int side = static_cast<int>(size * *factor);
    if (side < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("object size ", size, " times factor ", *factor, " rounds to 0 pixels"));
    }
    SPATIALID_ASSIGN_OR_RETURN(const io::Image* obj, Object(name));
    SPATIALID_ASSIGN_OR_RETURN(io::Image scaled,
                               io::PillowResize(*obj, side, side, io::ResampleFilter::kLanczos));
    SPATIALID_ASSIGN_OR_RETURN(out->owned, io::PillowRotate(scaled, angle, /*expand=*/true));
    out->image = &out->owned;
    return absl::OkStatus();
  }

  std::string objects_dir_;
  GridOptions options_;
  std::vector<std::string> backgrounds_;  // sorted file names in bg_dir
  internal::OnceCache<io::Image> objects_;
  internal::OnceCache<io::Image> resized_;
  internal::OnceCache<io::Image> backgrounds_cache_;
};

}  // namespace spatialid::data
