// Where each image patch sits, for vision towers that take a flat list of
// patches in merge-block order (Qwen2-VL, Qwen2.5-VL).
//
// The Qwen2-VL image processor cuts an image into patch x patch squares and
// lists them not row by row but merge block by merge block: the
// merge x merge neighbours (2 x 2) that the patch merger later folds into one
// LLM token come one after another. Everything in the tower that depends on
// a patch's place - the 2D rotary angles (nn/vision_rotary.h) and Qwen2.5-VL's
// attention windows - follows that order; this header computes it, as
// transformers' `rot_pos_emb` and `get_window_index` do.
//
// Example:
//   const std::vector<GridThw> grids = {{1, 16, 24}};     // image_grid_thw
//   at::Tensor rc = PatchRowColInMergeOrder(grids, 2);     // [384, 2]
//   WindowPartition w = PartitionIntoWindows(grids, 2, 4);
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include <ATen/core/Tensor.h>
#include <ATen/ops/tensor.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace spatialid::families {

// One image's (or video's) grid in patches: t temporal x h rows x w columns,
// a row of transformers' `image_grid_thw`.
struct GridThw {
  int64_t t = 1;
  int64_t h = 0;
  int64_t w = 0;

  int64_t patches() const { return t * h * w; }
  // LLM tokens after merging merge x merge blocks.
  int64_t tokens(int64_t merge) const { return t * (h / merge) * (w / merge); }
};

// OK when every grid is positive and its rows and columns are whole merge blocks.
inline absl::Status ValidateGrids(std::span<const GridThw> grids, int64_t merge) {
  if (merge <= 0) return absl::InvalidArgumentError("spatial merge size must be positive");
  for (size_t i = 0; i < grids.size(); ++i) {
    const GridThw& g = grids[i];
    if (g.t <= 0 || g.h <= 0 || g.w <= 0 || g.h % merge != 0 || g.w % merge != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "image_grid_thw row ", i, " is [", g.t, ", ", g.h, ", ", g.w,
          "]; expected positive sizes with h and w multiples of the merge size ", merge));
    }
  }
  return absl::OkStatus();
}

// Row and column of every patch of `grids`, in processor order: int64
// [sum of patches, 2]. Frames of a grid repeat the same positions.
inline at::Tensor PatchRowColInMergeOrder(std::span<const GridThw> grids, int64_t merge) {
  std::vector<int64_t> rc;
  for (const GridThw& g : grids) {
    for (int64_t t = 0; t < g.t; ++t) {
      for (int64_t bh = 0; bh < g.h / merge; ++bh) {
        for (int64_t bw = 0; bw < g.w / merge; ++bw) {
          for (int64_t i = 0; i < merge; ++i) {
            for (int64_t j = 0; j < merge; ++j) {
              rc.push_back(bh * merge + i);
              rc.push_back(bw * merge + j);
            }
          }
        }
      }
    }
  }
  const auto n = static_cast<int64_t>(rc.size() / 2);
  return at::tensor(rc, at::kLong).view({n, 2});
}

// Qwen2.5-VL's windowed attention: merge blocks regrouped so that each
// window of `window_blocks` x `window_blocks` blocks is contiguous
// (`get_window_index`). Windows tile each frame from the top left; those at
// the bottom and right edges are cut short by the grid.
struct WindowPartition {
  // New order of merge blocks: position k of the windowed sequence holds
  // block block_index[k] of the processor's order (int64 [sum of blocks]).
  at::Tensor block_index;
  // Patches in each window, in the windowed order; empty windows (HF pads a
  // whole window row when the grid divides evenly) are left out, as
  // `unique_consecutive` drops them from transformers' cu_window_seqlens.
  std::vector<int64_t> window_patches;
};

inline WindowPartition PartitionIntoWindows(std::span<const GridThw> grids, int64_t merge,
                                            int64_t window_blocks) {
  WindowPartition p;
  std::vector<int64_t> index;
  int64_t offset = 0;
  for (const GridThw& g : grids) {
    const int64_t bh = g.h / merge, bw = g.w / merge;
    const int64_t windows_h = bh / window_blocks + 1;  // HF pads by a full window when divisible
    const int64_t windows_w = bw / window_blocks + 1;
    for (int64_t t = 0; t < g.t; ++t) {
      for (int64_t wh = 0; wh < windows_h; ++wh) {
        for (int64_t ww = 0; ww < windows_w; ++ww) {
          int64_t blocks = 0;
          for (int64_t r = 0; r < window_blocks; ++r) {
            const int64_t row = wh * window_blocks + r;
            if (row >= bh) break;
            for (int64_t c = 0; c < window_blocks; ++c) {
              const int64_t col = ww * window_blocks + c;
              if (col >= bw) break;
              index.push_back(offset + (t * bh + row) * bw + col);
              ++blocks;
            }
          }
          if (blocks > 0) p.window_patches.push_back(blocks * merge * merge);
        }
      }
    }
    offset += g.t * bh * bw;
  }
  p.block_index = at::tensor(index, at::kLong);
  return p;
}

}  // namespace spatialid::families
