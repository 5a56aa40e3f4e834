// Text-only embeddings of chosen tokens (docs/reference_pipeline.md section 7): the
// grid experiment's `left` and `right` vectors at every layer, stored as
// `{layer: {token: tensor[D]}}` so Figure 5 can project them onto the axes.
//
// Example:
//   TextEmbeddings text({0, 1, ..., 32});
//   SPATIALID_RETURN_IF_ERROR(text.Add("left", rows_left));    // [L, D]
//   SPATIALID_RETURN_IF_ERROR(text.Add("right", rows_right));
//   SPATIALID_ASSIGN_OR_RETURN(io::PtDict d, text.Result(at::kHalf));
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "spatialid/io/torch_file_dict.h"

namespace spatialid::extract {

class TextEmbeddings {
 public:
  // `layers` names the rows of the [L, D] blocks Add() takes.
  explicit TextEmbeddings(std::vector<int64_t> layers) : layers_(std::move(layers)) {}

  // The vectors of `token` at every kept layer; each token once.
  absl::Status Add(std::string_view token, const at::Tensor& vectors) {
    const std::string name(token);
    if (!vectors.defined() || vectors.dim() != 2 ||
        vectors.size(0) != static_cast<int64_t>(layers_.size()) ||
        !at::isFloatingType(vectors.scalar_type())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "text embedding of '", name, "' must be a floating [", layers_.size(), ", D] tensor"));
    }
    for (const auto& [t, v] : tokens_) {
      if (t == name) {
        return absl::AlreadyExistsError(absl::StrCat("text embedding of '", name, "' added twice"));
      }
      if (v.size(1) != vectors.size(1)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "text embedding of '", name, "' has ", vectors.size(1), " elements, '", t, "' ",
            v.size(1)));
      }
    }
    tokens_.emplace_back(name, vectors.detach().to(at::kCPU, at::kFloat, false, true));
    return absl::OkStatus();
  }

  // {layer: {token: tensor[D]}} in `dtype` on the CPU.
  absl::StatusOr<io::PtDict> Result(at::ScalarType dtype) const {
    if (!at::isFloatingType(dtype)) {
      return absl::InvalidArgumentError("text embeddings are written in a floating dtype");
    }
    io::PtDict out;
    for (size_t l = 0; l < layers_.size(); ++l) {
      io::PtValue& per_token = out[layers_[l]];
      for (const auto& [t, v] : tokens_) per_token[t] = v[static_cast<int64_t>(l)].to(dtype);
    }
    return out;
  }

 private:
  std::vector<int64_t> layers_;
  std::vector<std::pair<std::string, at::Tensor>> tokens_;  // [L, D] float32 each
};

}  // namespace spatialid::extract
