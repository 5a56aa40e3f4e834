// Which transformers image processor a family's pixels must reproduce.
//
// transformers 4.x loaded the Pillow-based ("slow") processors by default,
// and the paper's pixels came from them; transformers 5 loads the
// torch/torchvision-based ("fast") ones whenever torchvision is installed.
// They differ by about one grey level after resizing. spatialid defaults to
// the transformers 5 behaviour and offers the Pillow one for the paper's
// numbers (docs/reference_pipeline.md section 10).
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace spatialid::vision {

enum class ResizeEngine {
  kTorchvision,  // transformers 5 default (e.g. CLIPImageProcessorFast)
  kPillow,       // transformers 4.x default (e.g. CLIPImageProcessor)
};

inline absl::StatusOr<ResizeEngine> ParseResizeEngine(std::string_view name) {
  if (name == "torchvision") return ResizeEngine::kTorchvision;
  if (name == "pillow") return ResizeEngine::kPillow;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown resize engine \"", std::string(name), "\" (torchvision or pillow)"));
}

}  // namespace spatialid::vision
