// 2D rotary position embeddings for image patches (the Qwen2-VL and
// Qwen2.5-VL vision towers), as transformers computes them.
//
// A head of width d rotates d/2 channel pairs; the first half of the pairs
// turn with the patch's row, the second half with its column, each at the
// inverse frequencies 1 / theta^(2i / (d/2)) of a default RoPE of width d/2
// (`VisionRotaryEmbedding(head_dim // 2)`). Angles, cos/sin and the rotation
// itself are computed in fp32 and the rotated q/k cast back to the model
// dtype (`apply_rotary_pos_emb_vision`), whatever that dtype is.
//
// Example:
//   SPATIALID_ASSIGN_OR_RETURN(VisionRotary rotary, VisionRotary::Create(80));
//   nn::CosSin cs = rotary(PatchRowColInMergeOrder(grids, 2));  // [patches, 80]
//   at::Tensor q_rot = ApplyVisionRotary(q, cs);                 // q [patches, heads, 80]
#pragma once

#include <cstdint>
#include <utility>

#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/cat.h>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "spatialid/nn/rotary.h"
#include "spatialid/nn/upload.h"

namespace spatialid::families {

class VisionRotary {
 public:
  // `head_dim`: the attention head width (a multiple of 4); `theta`: 10000 in
  // every Qwen-VL tower.
  static absl::StatusOr<VisionRotary> Create(int64_t head_dim, double theta = 10000.0,
                                             at::Device device = at::kCPU) {
    if (head_dim <= 0 || head_dim % 4 != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "2D vision rotary needs a head width that is a multiple of 4, got ", head_dim));
    }
    nn::RopeParameters p;
    p.theta = theta;
    // The per-axis frequencies are those of a default RoPE of width head_dim / 2.
    absl::StatusOr<nn::RotaryEmbedding> axis = nn::RotaryEmbedding::Create(p, head_dim / 2, 0, device);
    if (!axis.ok()) return axis.status();
    VisionRotary r;
    r.inv_freq_ = axis->inv_freq();
    r.head_dim_ = head_dim;
    return r;
  }

  int64_t head_dim() const { return head_dim_; }
  const at::Tensor& inv_freq() const { return inv_freq_; }  // fp32 [head_dim / 4]

  // cos/sin, fp32 [N, head_dim], for int64 patch (row, col) positions [N, 2].
  nn::CosSin operator()(const at::Tensor& row_col) const {
    const at::Tensor pos = nn::UploadAsync(row_col, inv_freq_.device()).to(at::kFloat);
    const at::Tensor inv = inv_freq_.unsqueeze(0);
    // rotary_pos_emb_full[pos_ids].flatten(1): row angles, then column angles.
    const at::Tensor angles = at::cat({pos.select(1, 0).unsqueeze(1) * inv,
                                       pos.select(1, 1).unsqueeze(1) * inv}, 1);
    const at::Tensor emb = at::cat({angles, angles}, -1);
    return {emb.cos(), emb.sin()};
  }

 private:
  at::Tensor inv_freq_;
  int64_t head_dim_ = 0;
};

// Rotates q or k [N, heads, head_dim] by fp32 cos/sin [N, head_dim]: computed
// in fp32, returned in x's dtype.
inline at::Tensor ApplyVisionRotary(const at::Tensor& x, const nn::CosSin& cs) {
  // ApplyRotary broadcasts cos/sin over dim 1, here the heads.
  return nn::ApplyRotary(x.to(at::kFloat), cs).to(x.scalar_type());
}

}  // namespace spatialid::families
