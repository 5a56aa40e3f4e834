// Multimodal rotary position embeddings (M-RoPE) of Qwen2-VL and Qwen2.5-VL
// text decoders, as transformers 5.3.0 computes them.
//
// Every token gets three position ids (temporal, height, width). Text tokens
// count up by one and have all three equal, so for text M-RoPE is plain
// RoPE. The tokens of one image share the image's start position s in the
// temporal row and take s + row / s + column of their merged patch in the
// other two; the text after the image continues at s + max(rows, columns)
// (`get_rope_index`, `get_vision_position_ids`). The rotary dims are then
// split into sections (config `mrope_section`, e.g. [16, 24, 24] of 64
// frequency pairs; cos/sin of width 128 take the list twice) and section i
// rotates by the angles of axis i % 3 (`apply_multimodal_rotary_pos_emb`).
//
// transformers 5.3.0 scales the temporal id of Qwen2.5-VL image tokens by
// `tokens_per_second` (s * 2 for the released configs) where Qwen's own code,
// transformers 4.x and the later fix (huggingface/transformers#45325) keep s;
// `MropePositionOptions::image_temporal_scale` reproduces either.
//
// Example:
//   SPATIALID_ASSIGN_OR_RETURN(at::Tensor pos,            // [3, B, S]
//       MropePositionIds(ids, image_token_id, grids, {.spatial_merge_size = 2}));
//   SPATIALID_ASSIGN_OR_RETURN(auto mrope, MultimodalRotary::Create(rotary, {16, 24, 24}));
//   nn::CosSin cs = mrope(pos, at::kBFloat16);            // [B, S, head_dim]
#pragma once

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <span>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/from_blob.h>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "spatialid/families/qwen2_vl/patch_grid.h"
#include "spatialid/nn/rotary.h"

namespace spatialid::families {

inline constexpr int64_t kMropeAxes = 3;  // temporal, height, width

struct MropePositionOptions {
  int64_t spatial_merge_size = 2;  // vision_config.spatial_merge_size
  // Temporal id of an image's tokens = start * image_temporal_scale: 1 for
  // Qwen2-VL and for Qwen2.5-VL as trained; tokens_per_second to match
  // transformers 5.3.0's Qwen2.5-VL.
  int64_t image_temporal_scale = 1;
};

// Position ids [3, B, S] (int64, CPU) for ids [B, S]. Each run of
// consecutive `image_token_id` tokens is one image and takes the next grid
// of `grids` (in order over the whole batch, as transformers iterates
// `image_grid_thw`); its length must be that grid's token count.
inline absl::StatusOr<at::Tensor> MropePositionIds(const at::Tensor& input_ids,
                                                   int64_t image_token_id,
                                                   std::span<const GridThw> grids,
                                                   const MropePositionOptions& options) {
  if (!input_ids.defined() || input_ids.dim() != 2) {
    return absl::InvalidArgumentError("M-RoPE positions need input_ids [batch, seq]");
  }
  const int64_t merge = options.spatial_merge_size;
  if (absl::Status s = ValidateGrids(grids, merge); !s.ok()) return s;
  const at::Tensor ids = input_ids.to(at::kCPU, at::kLong).contiguous();
  const int64_t batch = ids.size(0), seq = ids.size(1);
  const int64_t* id = ids.data_ptr<int64_t>();
  std::vector<int64_t> pos(static_cast<size_t>(kMropeAxes * batch * seq));
  auto at_ = [&](int64_t axis, int64_t b, int64_t i) -> int64_t& {
    return pos[static_cast<size_t>((axis * batch + b) * seq + i)];
  };
  size_t next_grid = 0;
  for (int64_t b = 0; b < batch; ++b) {
    int64_t current = 0;
    for (int64_t i = 0; i < seq;) {
      if (id[b * seq + i] != image_token_id) {
        for (int64_t a = 0; a < kMropeAxes; ++a) at_(a, b, i) = current;
        ++current;
        ++i;
        continue;
      }
      int64_t end = i;
      while (end < seq && id[b * seq + end] == image_token_id) ++end;
      if (next_grid >= grids.size()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "sequence ", b, " has image tokens at ", i, " but all ", grids.size(),
            " image grid(s) are used up (one run of image tokens per image)"));
      }
      const GridThw& g = grids[next_grid++];
      const int64_t rows = g.h / merge, cols = g.w / merge;
      if (g.t != 1) {
        return absl::UnimplementedError(absl::StrCat(
            "image grid t = ", g.t, ": only still images (t = 1) are supported, not video"));
      }
      if (end - i != rows * cols) {
        return absl::InvalidArgumentError(absl::StrCat(
            "sequence ", b, ": a run of ", end - i, " image tokens at ", i, " does not match its "
            "image grid [", g.t, ", ", g.h, ", ", g.w, "] (", rows * cols, " tokens)"));
      }
      for (int64_t k = 0; k < end - i; ++k) {
        at_(0, b, i + k) = current * options.image_temporal_scale;
        at_(1, b, i + k) = current + k / cols;
        at_(2, b, i + k) = current + k % cols;
      }
      current += std::max(rows, cols);
      i = end;
    }
  }
  if (next_grid != grids.size()) {
    return absl::InvalidArgumentError(absl::StrCat("the ids hold ", next_grid, " image(s) but ",
                                                   grids.size(), " image grids were given"));
  }
  return at::from_blob(pos.data(), {kMropeAxes, batch, seq}, at::kLong).clone();
}

// Text-only position ids: 0..seq-1 on all three axes, [3, batch, seq].
inline at::Tensor MropeTextPositionIds(int64_t batch, int64_t seq, at::Device device) {
  return at::arange(seq, at::TensorOptions().dtype(at::kLong).device(device))
      .view({1, 1, seq})
      .expand({kMropeAxes, batch, seq});
}

class MultimodalRotary {
 public:
  // `rotary`: the decoder's (default) RoPE; `sections`: mrope_section, which
  // must add up to head_dim / 2.
  static absl::StatusOr<MultimodalRotary> Create(nn::RotaryEmbedding rotary,
                                                 std::vector<int64_t> sections) {
    const int64_t sum = std::accumulate(sections.begin(), sections.end(), int64_t{0});
    if (sections.size() != static_cast<size_t>(kMropeAxes) || sum * 2 != rotary.head_dim()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "mrope_section [", absl::StrJoin(sections, ", "), "] must have 3 entries adding up to "
          "head_dim / 2 = ", rotary.head_dim() / 2));
    }
    for (int64_t s : sections) {
      if (s <= 0) return absl::InvalidArgumentError("mrope_section entries must be positive");
    }
    if (rotary.params().type != nn::RopeType::kDefault) {
      return absl::UnimplementedError("M-RoPE is implemented for the default rope_type only");
    }
    MultimodalRotary m;
    m.rotary_ = std::move(rotary);
    m.sections_ = std::move(sections);
    return m;
  }

  const std::vector<int64_t>& sections() const { return sections_; }

  // cos/sin [B, S, head_dim] in `dtype` for position ids [3, B, S].
  nn::CosSin operator()(const at::Tensor& position_ids, at::ScalarType dtype) const {
    const int64_t batch = position_ids.size(1), seq = position_ids.size(2);
    // Per axis, inv_freq x position in fp32 (the default RoPE never looks at
    // the context length).
    const at::Tensor freqs = rotary_.Angles(position_ids.reshape({kMropeAxes * batch, seq}), seq)
                                 .view({kMropeAxes, batch, seq, -1});
    const at::Tensor emb = at::cat({freqs, freqs}, -1);
    return {Interleave(emb.cos().to(dtype)), Interleave(emb.sin().to(dtype))};
  }

 private:
  // [3, B, S, D] -> [B, S, D]: section i (sections listed twice) from axis i % 3.
  at::Tensor Interleave(const at::Tensor& x) const {
    std::vector<at::Tensor> parts;
    int64_t offset = 0;
    for (int64_t i = 0; i < 2 * kMropeAxes; ++i) {
      const int64_t width = sections_[static_cast<size_t>(i % kMropeAxes)];
      parts.push_back(x.select(0, i % kMropeAxes).narrow(-1, offset, width));
      offset += width;
    }
    return at::cat(parts, -1);
  }

  nn::RotaryEmbedding rotary_;
  std::vector<int64_t> sections_;
};

}  // namespace spatialid::families
