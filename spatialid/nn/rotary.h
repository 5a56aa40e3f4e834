// Rotary position embeddings (RoPE), as transformers computes them.
//
// A `RotaryEmbedding` holds the inverse frequencies of one RoPE variant and
// turns position ids into the `CosSin` pair that attention applies to q and
// k. The variants are those of `transformers.modeling_rope_utils`:
// - default: inv_freq = 1 / theta^(2i/d)
// - linear: default / factor (Gemma 3 global layers)
// - dynamic (NTK): theta grows with the context once it exceeds
//   max_position_embeddings (InternVL3's Qwen2.5 decoders)
// - llama3: per-wavelength smoothing between scaled and unscaled (Mllama)
// Frequencies and the angle products are computed in fp32 and only cos/sin
// are cast to the model dtype, as HF does.
//
// Other position schemes plug in by producing a `CosSin` themselves (e.g.
// Qwen2-VL's multimodal RoPE computes angles for 3 position rows with
// `Angles()` and interleaves sections before `ApplyRotary`).
#pragma once

#include <cmath>
#include <cstdint>
#include <string_view>

#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/full.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/maximum.h>
#include <ATen/ops/pow.h>
#include <ATen/ops/reciprocal.h>
#include <ATen/ops/scalar_tensor.h>
#include <ATen/ops/where.h>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace spatialid::nn {

enum class RopeType { kDefault, kLinear, kDynamic, kLlama3 };

// Maps HF's `rope_type` (or the older `rope_scaling.type`) to a RopeType.
inline absl::StatusOr<RopeType> ParseRopeType(std::string_view name) {
  if (name == "default" || name.empty()) return RopeType::kDefault;
  if (name == "linear") return RopeType::kLinear;
  if (name == "dynamic") return RopeType::kDynamic;
  if (name == "llama3") return RopeType::kLlama3;
  return absl::UnimplementedError(absl::StrCat(
      "rope_type \"", std::string(name), "\" is not supported (default, linear, dynamic, llama3 are)"));
}

// The numbers of one RoPE variant, with the HF keys they come from.
struct RopeParameters {
  RopeType type = RopeType::kDefault;
  double theta = 10000.0;                       // rope_theta
  double factor = 1.0;                          // factor (linear, dynamic, llama3)
  double low_freq_factor = 1.0;                 // low_freq_factor (llama3)
  double high_freq_factor = 4.0;                // high_freq_factor (llama3)
  int64_t original_max_position_embeddings = 0; // (llama3) 0 means max_position_embeddings
};

// cos and sin of the rotation angles, [batch, seq, head_dim], in the model dtype.
struct CosSin {
  at::Tensor cos;
  at::Tensor sin;
};

class RotaryEmbedding {
 public:
  // `head_dim` is the rotated width (the whole head in every supported family).
  static absl::StatusOr<RotaryEmbedding> Create(const RopeParameters& p, int64_t head_dim,
                                                int64_t max_position_embeddings,
                                                at::Device device = at::kCPU) {
    if (head_dim <= 0 || head_dim % 2 != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("rotary head_dim must be a positive even number, got ", head_dim));
    }
    if (p.theta <= 0) {
      return absl::InvalidArgumentError(absl::StrCat("rope_theta must be positive, got ", p.theta));
    }
    if (p.type != RopeType::kDefault && p.factor <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("rope scaling factor must be positive, got ", p.factor));
    }
    if (p.type == RopeType::kLlama3 && p.high_freq_factor == p.low_freq_factor) {
      return absl::InvalidArgumentError("llama3 rope needs high_freq_factor != low_freq_factor");
    }
    RotaryEmbedding r;
    r.params_ = p;
    r.head_dim_ = head_dim;
    r.max_position_embeddings_ = max_position_embeddings;
    r.device_ = device;
    r.inv_freq_ = r.ComputeInvFreq();
    return r;
  }

  // Inverse frequencies [head_dim / 2], fp32, for contexts up to
  // max_position_embeddings.
  const at::Tensor& inv_freq() const { return inv_freq_; }
  const RopeParameters& params() const { return params_; }
  int64_t head_dim() const { return head_dim_; }

  // Inverse frequencies for a context of `context_length` positions. Only
  // dynamic NTK depends on it: beyond max_position_embeddings HF recomputes
  // theta from the length (with fp32 tensor arithmetic, reproduced here).
  at::Tensor InvFreqFor(int64_t context_length) const {
    if (params_.type != RopeType::kDynamic || context_length <= max_position_embeddings_) {
      return inv_freq_;
    }
    const auto f32 = at::TensorOptions().dtype(at::kFloat).device(device_);
    const at::Tensor seq_len = at::maximum(
        at::scalar_tensor(context_length, f32.dtype(at::kLong)),
        at::scalar_tensor(max_position_embeddings_, f32.dtype(at::kLong)));
    const double dim = static_cast<double>(head_dim_);
    const at::Tensor base =
        ((seq_len * params_.factor) / static_cast<double>(max_position_embeddings_) -
         (params_.factor - 1.0))
            .pow(dim / (dim - 2.0)) *
        params_.theta;
    return at::reciprocal(at::pow(base, Exponents())) * 1.0;
  }

  // Rotation angles [batch, seq, head_dim / 2] in fp32 for int64 position ids
  // [batch, seq], computed as `inv_freq @ positions` like HF.
  at::Tensor Angles(const at::Tensor& position_ids, int64_t context_length) const {
    const at::Tensor inv = InvFreqFor(context_length).to(position_ids.device());
    const int64_t batch = position_ids.size(0);
    const at::Tensor inv_expanded = inv.unsqueeze(0).unsqueeze(-1).expand({batch, -1, 1});
    const at::Tensor pos_expanded = position_ids.unsqueeze(1).to(at::kFloat);
    return at::matmul(inv_expanded, pos_expanded).transpose(1, 2);
  }

  // cos/sin [batch, seq, head_dim] in `dtype`. `context_length` is the length
  // of the full (untruncated) input, max(position) + 1 for plain text.
  CosSin operator()(const at::Tensor& position_ids, at::ScalarType dtype,
                    int64_t context_length) const {
    const at::Tensor freqs = Angles(position_ids, context_length);
    const at::Tensor emb = at::cat({freqs, freqs}, -1);
    constexpr double kAttentionScaling = 1.0;  // only yarn/longrope scale cos/sin
    return {(emb.cos() * kAttentionScaling).to(dtype), (emb.sin() * kAttentionScaling).to(dtype)};
  }

 private:
  // arange(0, dim, 2).float() / dim, on the embedding's device.
  at::Tensor Exponents() const {
    return at::arange(0, head_dim_, 2, at::TensorOptions().dtype(at::kLong).device(device_))
               .to(at::kFloat) /
           static_cast<double>(head_dim_);
  }

  at::Tensor ComputeInvFreq() const {
    // 1.0 / tensor is reciprocal() * 1.0 in Python; keep that op order.
    at::Tensor inv = at::reciprocal(at::pow(params_.theta, Exponents())) * 1.0;
    switch (params_.type) {
      case RopeType::kDefault:
      case RopeType::kDynamic:  // at init HF uses seq_len = max_position_embeddings: no change
        return inv;
      case RopeType::kLinear:
        return inv / params_.factor;
      case RopeType::kLlama3: {
        const double old_context = static_cast<double>(
            params_.original_max_position_embeddings > 0 ? params_.original_max_position_embeddings
                                                         : max_position_embeddings_);
        const double low_freq_wavelen = old_context / params_.low_freq_factor;
        const double high_freq_wavelen = old_context / params_.high_freq_factor;
        const at::Tensor wavelen = at::reciprocal(inv) * (2 * M_PI);
        at::Tensor llama = at::where(wavelen > low_freq_wavelen, inv / params_.factor, inv);
        const at::Tensor smooth = (at::reciprocal(wavelen) * old_context - params_.low_freq_factor) /
                                  (params_.high_freq_factor - params_.low_freq_factor);
        const at::Tensor smoothed = (smooth.neg() + 1) * llama / params_.factor + smooth * llama;
        const at::Tensor is_medium =
            (wavelen < high_freq_wavelen).logical_not() * (wavelen > low_freq_wavelen).logical_not();
        return at::where(is_medium, smoothed, llama);
      }
    }
    return inv;
  }

  RopeParameters params_;
  int64_t head_dim_ = 0;
  int64_t max_position_embeddings_ = 0;
  at::Device device_ = at::kCPU;
  at::Tensor inv_freq_;
};

// Rotates x [batch, heads, seq, head_dim] by cos/sin [batch, seq, head_dim]:
// x * cos + rotate_half(x) * sin, in x's dtype (HF apply_rotary_pos_emb).
inline at::Tensor ApplyRotary(const at::Tensor& x, const CosSin& cs) {
  const at::Tensor cos = cs.cos.unsqueeze(1);
  const at::Tensor sin = cs.sin.unsqueeze(1);
  const int64_t half = x.size(-1) / 2;
  const at::Tensor x1 = x.slice(-1, 0, half);
  const at::Tensor x2 = x.slice(-1, half);
  const at::Tensor rotated = at::cat({x2.neg(), x1}, -1);
  return x * cos + rotated * sin;
}

}  // namespace spatialid::nn
