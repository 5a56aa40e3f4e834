// Attention inside segments of one flat token sequence, and the Qwen-VL
// vision attention built on it.
//
// Vision towers that take every image's patches as one flat sequence
// (Qwen2-VL, Qwen2.5-VL) let a patch attend only within its own image, or
// within its window in Qwen2.5-VL's windowed layers. transformers describes
// the segments by cumulative lengths (`cu_seqlens`) and, outside
// flash-attention, runs SDPA once per segment. `Segments` does the same
// arithmetic with fewer calls: segments of equal length (the windows of an
// image, images of one size) are stacked into one batched SDPA call, which
// computes each segment exactly as a call of its own would.
//
// `PackedQkvSelfAttention` is the Qwen2-VL / Qwen2.5-VL vision attention
// (`VisionAttention`, `Qwen2_5_VLVisionAttention`): one packed, biased qkv
// projection, 2D rotary on q and k in fp32 (nn/vision_rotary.h), attention
// within segments, a biased output projection `proj`.
//
// Example:
//   Segments images = Segments::FromLengths({576, 576}, device);
//   at::Tensor out = attn(x, rotary_cos_sin, images);   // x [1152, dim]
#pragma once

#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/tensor.h>

#include "spatialid/nn/attention.h"
#include "spatialid/nn/linear.h"
#include "spatialid/nn/rotary.h"
#include "spatialid/families/qwen2_vl/vision_rotary.h"
#include "spatialid/nn/weights.h"
#include "spatialid/nn/upload.h"

namespace spatialid::families {

// A flat sequence cut into consecutive segments, planned for batched SDPA.
class Segments {
 public:
  // `lengths`: tokens per segment, in sequence order (zero-length ones are
  // skipped). `device`: where the gather indices live (the activations').
  static Segments FromLengths(const std::vector<int64_t>& lengths, at::Device device) {
    Segments s;
    std::map<int64_t, std::vector<int64_t>> starts_by_length;
    int64_t start = 0;
    for (int64_t len : lengths) {
      if (len > 0) starts_by_length[len].push_back(start);
      start += len;
    }
    s.total_ = start;
    for (const auto& [len, starts] : starts_by_length) {
      Group g;
      g.length = len;
      g.count = static_cast<int64_t>(starts.size());
      g.first = starts.front();
      bool contiguous = true;
      for (size_t i = 1; i < starts.size(); ++i) contiguous &= starts[i] == starts[i - 1] + len;
      if (!contiguous) {
        std::vector<int64_t> rows;
        rows.reserve(static_cast<size_t>(g.count * len));
        for (int64_t st : starts) {
          for (int64_t i = 0; i < len; ++i) rows.push_back(st + i);
        }
        g.rows = nn::UploadAsync(at::tensor(rows, at::kLong), device);
      }
      s.groups_.push_back(std::move(g));
    }
    return s;
  }

  int64_t total_length() const { return total_; }
  // SDPA calls one Attend makes.
  size_t num_groups() const { return groups_.size(); }

  // softmax(q k^T * scale) v within each segment, for q/k/v [S, heads, d]
  // (S = total_length()); returns [S, heads, d].
  at::Tensor Attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                    double scale) const {
    TORCH_CHECK(q.size(0) == total_ && k.size(0) == total_ && v.size(0) == total_,
                "segment attention: the sequence has ", q.size(0), " tokens but the segments cover ",
                total_);
    const int64_t heads = q.size(1);
    if (groups_.size() == 1 && groups_[0].count == 1) {
      return AttendGroup(q, k, v, groups_[0], scale);
    }
    at::Tensor out = at::empty({total_, heads, v.size(2)}, v.options());
    for (const Group& g : groups_) {
      const at::Tensor o = AttendGroup(q, k, v, g, scale).reshape({g.count * g.length, heads, -1});
      if (g.rows.defined()) {
        out.index_copy_(0, g.rows, o);
      } else {
        out.narrow(0, g.first, g.count * g.length).copy_(o);
      }
    }
    return out;
  }

 private:
  struct Group {
    int64_t length = 0;
    int64_t count = 0;
    int64_t first = 0;  // start of the first segment (contiguous groups)
    at::Tensor rows;    // gather rows, undefined when the group is one contiguous run
  };

  // The segments of one group stacked as a batch: [count * length, heads, d].
  static at::Tensor AttendGroup(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                const Group& g, double scale) {
    auto take = [&](const at::Tensor& x) {
      const at::Tensor rows = g.rows.defined() ? x.index_select(0, g.rows)
                                               : x.narrow(0, g.first, g.count * g.length);
      // [count, length, heads, d] -> [count, heads, length, d], as HF's
      // transpose(0, 1).unsqueeze(0) per segment.
      return rows.view({g.count, g.length, x.size(1), x.size(2)}).transpose(1, 2);
    };
    // HF's vision attention has num_key_value_groups = 1 and no mask.
    const at::Tensor o = nn::Attend(take(q), take(k), take(v), nn::AttentionMask::None(), scale,
                                /*hf_kv_groups=*/true);
    return o.transpose(1, 2).reshape({g.count * g.length, q.size(1), -1});
  }

  std::vector<Group> groups_;
  int64_t total_ = 0;
};

struct PackedQkvSelfAttention {
  nn::Linear qkv;   // [3 * dim, dim] + bias: q, k, v stacked
  nn::Linear proj;  // [dim, dim] + bias
  int64_t num_heads = 0;
  int64_t head_dim = 0;

  // Takes "<prefix>.qkv" and "<prefix>.proj" (weights and biases).
  template <nn::WeightLoader L>
  static PackedQkvSelfAttention Load(L& loader, const std::string& prefix, int64_t dim,
                                     int64_t num_heads) {
    PackedQkvSelfAttention a;
    a.qkv = nn::Linear::Load(loader, nn::Join(prefix, "qkv"), dim, 3 * dim, /*with_bias=*/true);
    a.proj = nn::Linear::Load(loader, nn::Join(prefix, "proj"), dim, dim, /*with_bias=*/true);
    a.num_heads = num_heads;
    a.head_dim = dim / num_heads;
    return a;
  }

  // x [S, dim] -> [S, dim]; `rotary`: fp32 cos/sin [S, head_dim].
  at::Tensor operator()(const at::Tensor& x, const nn::CosSin& rotary, const Segments& segments) const {
    const int64_t s = x.size(0);
    // [S, 3, heads, d] -> [3, S, heads, d]
    const at::Tensor packed = qkv(x).reshape({s, 3, num_heads, -1}).permute({1, 0, 2, 3});
    const at::Tensor q = ApplyVisionRotary(packed.select(0, 0), rotary);
    const at::Tensor k = ApplyVisionRotary(packed.select(0, 1), rotary);
    // head_dim**-0.5 as Python computes it (pow), not 1/sqrt.
    const double scale = std::pow(static_cast<double>(head_dim), -0.5);
    const at::Tensor out = segments.Attend(q, k, packed.select(0, 2), scale);
    return proj(out.reshape({s, -1}));
  }
};

}  // namespace spatialid::families
