// Pixels of equally sized images, float32 [N, channels, size, size] on the
// CPU, as LLaVA's and Gemma 3's processors make them (one fixed resolution
// per model), and the checks their towers need before a forward.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include <ATen/core/Tensor.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "spatialid/io/image.h"
#include "spatialid/util/status.h"

namespace spatialid::families {

struct ImagePixels {
  at::Tensor pixel_values;  // float32 [N, channels, size, size]
};

// A family processor around an image processor whose Preprocess gives one
// [N, C, H, W] tensor.
template <class ImageProcessor>
class ImagePixelsProcessor {
 public:
  explicit ImagePixelsProcessor(ImageProcessor image_processor)
      : image_processor_(std::move(image_processor)) {}

  absl::StatusOr<ImagePixels> Preprocess(std::span<const io::Image> images) const {
    SPATIALID_ASSIGN_OR_RETURN(at::Tensor pixels, image_processor_.Preprocess(images));
    return ImagePixels{std::move(pixels)};
  }

  const ImageProcessor& image_processor() const { return image_processor_; }

 private:
  ImageProcessor image_processor_;
};

// OK when `p` is float [N >= 1, channels, size, size]; `what` names the
// rows in the message ("N", "patches").
inline absl::Status CheckSquarePixels(const at::Tensor& p, int64_t channels, int64_t size,
                                      std::string_view family, std::string_view what = "N") {
  if (!p.defined() || p.dim() != 4 || p.size(0) < 1 || p.size(1) != channels ||
      p.size(2) != size || p.size(3) != size || !p.is_floating_point()) {
    return absl::InvalidArgumentError(absl::StrCat(
        std::string(family), " expects float pixels [", std::string(what), ", ", channels, ", ",
        size, ", ", size, "] (the vision tower's image_size); got ",
        p.defined() ? c10::str(p.sizes()) : std::string("none")));
  }
  return absl::OkStatus();
}

}  // namespace spatialid::families
