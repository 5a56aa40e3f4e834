// Where the images a model sees come from.
//
// Extraction walks a list of layouts and needs, for each, the RGB image the
// reference feeds the model (`Image.open(path).convert("RGB")`: alpha
// dropped without compositing, so a transparent canvas turns black). A
// `LayoutSource` is anything that answers three questions: how many
// layouts, which layout is number i, and what is its RGB image. Sources are
// random access and const, so a loader may decode images for a batch on
// several threads at once. Two implementations:
// - `SynthesizedLayouts` (here) draws every image in memory with the grid
//   engine: no PNGs are written, the 86,400 extraction images exist only
//   while a batch is in flight;
// - `LayoutFolder` (layout_folder.h) reads a folder written by the engine
//   or by the reference (nested or flat layout).
//
// Example:
//   template <LayoutSource S> void ForEachImage(const S& source) {
//     for (size_t i = 0; i < source.size(); ++i) {
//       absl::StatusOr<io::Image> rgb = source.RgbImage(i);
//       ...
//     }
//   }
#pragma once

#include <concepts>
#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "spatialid/data/grid_composer.h"
#include "spatialid/data/grid_layout.h"
#include "spatialid/io/image.h"

namespace spatialid::data {

template <class S>
concept LayoutSource = requires(const S& source, size_t i) {
  { source.size() } -> std::convertible_to<size_t>;
  { source.layout(i) } -> std::convertible_to<const GridLayout&>;
  { source.RgbImage(i) } -> std::same_as<absl::StatusOr<io::Image>>;
};

// Layouts drawn on demand by a GridComposer; thread-safe.
class SynthesizedLayouts {
 public:
  SynthesizedLayouts(std::shared_ptr<const GridComposer> composer, std::vector<GridLayout> layouts)
      : composer_(std::move(composer)), layouts_(std::move(layouts)) {}

  size_t size() const { return layouts_.size(); }
  const GridLayout& layout(size_t i) const { return layouts_.at(i); }
  const std::vector<GridLayout>& layouts() const { return layouts_; }
  const GridComposer& composer() const { return *composer_; }

  absl::StatusOr<io::Image> RgbImage(size_t i) const {
    absl::StatusOr<io::Image> rgba = composer_->Compose(layouts_.at(i));
    if (!rgba.ok()) return rgba.status();
    return io::DropAlpha(*rgba);
  }

 private:
  std::shared_ptr<const GridComposer> composer_;
  std::vector<GridLayout> layouts_;
};

static_assert(LayoutSource<SynthesizedLayouts>);

}  // namespace spatialid::data
