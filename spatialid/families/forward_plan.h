// The extraction engine's forward: what a family's planned forward skips
// compared with the plain one (hidden_states.h), and the loop that runs it.
//
// Three savings, each exact up to matmul rounding (the plain forward stays
// the op-for-op transformers computation that the family oracles check bit
// for bit):
//  - Shared prefix. Every position before the first image token (LLaVA's
//    "<s> USER: ") holds the same tokens for every image, and causal
//    attention makes its hidden states independent of what follows; its
//    keys and values at each decoder layer are computed once per prompt
//    (`PrefixCache`) and every batch runs only the positions after it.
//  - The deepest requested layer runs only at the requested rows: its other
//    rows feed nothing. Its keys and values still come from every row.
//  - Packed q/k/v and gate/up weights: one matmul each instead of three and
//    two (nn/attention.h, nn/mlp.h).
//
// Every family gets these savings from the shared forward
// (families/multimodal_forward.h), whose layers take an nn::ExtendedCall.
// The shared prefix is exact only while the prefix rows do not depend on
// the image: causal attention (or masks that keep the text before the
// image from seeing it) up to the deepest layer run. Mllama's
// cross-attention layers give even the text before the image an average of
// the image, so its prefix cache stops at its first cross-attention layer
// (`PrefixDepth`), and a request deeper than that runs without one.
//
// Example:
//   SPATIALID_ASSIGN_OR_RETURN(PrefixCache prefix, model.ComputePrefix(ids.slice(0, 0, 1), req));
//   ForwardPlan plan{.prefix = &prefix};
//   SPATIALID_ASSIGN_OR_RETURN(at::Tensor rows, model.Forward(ids, pixels, req, plan));
#pragma once

#include <algorithm>
#include <concepts>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/tensor.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "spatialid/families/hidden_states.h"
#include "spatialid/nn/attention.h"
#include "spatialid/nn/upload.h"

namespace spatialid::families {

// Keys and values of a prompt's shared prefix at each decoder layer run.
struct PrefixCache {
  std::vector<int64_t> ids;        // the prefix's tokens, positions 0..length()-1
  std::vector<nn::PastKv> layers;  // [1, kv_heads, length, head_dim] per layer 0..deepest-1

  int64_t length() const { return static_cast<int64_t>(ids.size()); }
  int deepest() const { return static_cast<int>(layers.size()); }
};

struct ForwardPlan {
  const PrefixCache* prefix = nullptr;  // ComputePrefix of this prompt; nullptr: none
  bool rows_only = true;                // the deepest layer only at the requested rows
  bool packed = true;                   // packed q/k/v and gate/up matmuls
};

// The positions a prefix cache may hold: those before the first image token
// and before the first requested position (their rows are returned, so they
// must be computed per batch).
inline int64_t SharedPrefixLength(std::span<const int64_t> ids, int64_t image_token_id,
                                  const HiddenStateRequest& request) {
  int64_t n = static_cast<int64_t>(ids.size());
  for (int64_t i = 0; i < n; ++i) {
    if (ids[i] == image_token_id) {
      n = i;
      break;
    }
  }
  for (int64_t p : request.positions) n = std::min(n, p);
  return std::max<int64_t>(n, 0);
}

// OK when `prefix` was computed for these ids (its tokens lead every
// sequence) and for at least the layers this request runs.
inline absl::Status CheckPrefix(const PrefixCache& prefix, const at::Tensor& input_ids,
                                const HiddenStateRequest& request) {
  const int64_t n = prefix.length();
  if (n > input_ids.size(1)) {
    return absl::InvalidArgumentError(absl::StrCat("prefix cache of ", n,
                                                   " tokens is longer than the input (",
                                                   input_ids.size(1), ")"));
  }
  if (prefix.deepest() < request.deepest_layer()) {
    return absl::InvalidArgumentError(absl::StrCat("prefix cache holds ", prefix.deepest(),
                                                   " layers; the request runs ",
                                                   request.deepest_layer()));
  }
  for (int64_t p : request.positions) {
    if (p < n) {
      return absl::InvalidArgumentError(absl::StrCat(
          "requested position ", p, " lies inside the ", n, "-token prefix cache"));
    }
  }
  if (n == 0) return absl::OkStatus();
  const at::Tensor expect =
      at::tensor(prefix.ids, at::TensorOptions().dtype(at::kLong)).to(input_ids.device());
  const at::Tensor lead = input_ids.slice(1, 0, n).to(at::kLong);
  if (!lead.eq(expect.unsqueeze(0)).all().item<bool>()) {
    return absl::InvalidArgumentError(
        "the input ids do not start with the prefix cache's tokens (a cache from another prompt)");
  }
  return absl::OkStatus();
}

// Runs decoder layers 0..deepest-1 over a prefix's embeddings [1, P, hidden]
// and keeps each layer's keys/values.
//   run_layer  (int64_t i, const at::Tensor& x, nn::PastKv* present) -> output of layer i
template <class RunLayer>
PrefixCache ComputePrefixCache(std::vector<int64_t> ids, at::Tensor embeds, int deepest,
                               RunLayer&& run_layer) {
  PrefixCache cache;
  cache.ids = std::move(ids);
  cache.layers.resize(static_cast<size_t>(std::max(deepest, 0)));
  at::Tensor x = std::move(embeds);
  for (int i = 0; i < deepest && cache.length() > 0; ++i) {
    x = run_layer(static_cast<int64_t>(i), x, &cache.layers[static_cast<size_t>(i)]);
  }
  return cache;
}

// Index tensors of the requested rows relative to a forward that starts
// at position `past`, on the device, made once per prompt.
struct RequestRows {
  at::Tensor rows;            // request.positions - past
  at::Tensor unique_rows;     // the distinct ones, ascending
  at::Tensor rows_in_unique;  // where each requested row sits in unique_rows

  static RequestRows For(const HiddenStateRequest& request, int64_t past, at::Device device) {
    std::vector<int64_t> rel;
    for (int64_t p : request.positions) {
      TORCH_CHECK(p >= past, "requested position ", p, " lies inside the ", past, "-token prefix");
      rel.push_back(p - past);
    }
    std::vector<int64_t> unique = rel;
    std::sort(unique.begin(), unique.end());
    unique.erase(std::unique(unique.begin(), unique.end()), unique.end());
    std::vector<int64_t> in_unique;
    for (int64_t r : rel) {
      in_unique.push_back(std::lower_bound(unique.begin(), unique.end(), r) - unique.begin());
    }
    const auto options = at::TensorOptions().dtype(at::kLong);
    RequestRows out;
    out.rows = nn::UploadAsync(at::tensor(rel, options), device);
    out.unique_rows = nn::UploadAsync(at::tensor(unique, options), device);
    out.rows_in_unique = nn::UploadAsync(at::tensor(in_unique, options), device);
    return out;
  }
};

// CollectHiddenStates for positions past..past+L-1 (`embeds` [batch, L,
// hidden] is hidden state 0 there; `rows` made for that `past`): the same
// [layers.size(), batch, positions.size(), hidden] result.
//   run_layer   (int64_t i, const at::Tensor& x, const at::Tensor& query_rows)
//               -> output of layer i at `query_rows` of x (every row when undefined)
//   final_norm  (const at::Tensor& x) -> the final norm (row-wise)
template <class RunLayer, class FinalNorm>
at::Tensor CollectPlannedHiddenStates(at::Tensor embeds, int64_t num_layers,
                                      const HiddenStateRequest& request, const RequestRows& rows,
                                      bool rows_only, RunLayer&& run_layer, FinalNorm&& final_norm) {
  std::vector<at::Tensor> picked(request.layers.size());
  auto keep = [&](int index, const at::Tensor& x, const at::Tensor& which) {
    at::Tensor selected;
    for (size_t k = 0; k < request.layers.size(); ++k) {
      if (request.layers[k] != index) continue;
      if (!selected.defined()) {
        selected = x.index_select(1, which);
        if (index == num_layers && index > 0) selected = final_norm(selected);
      }
      picked[k] = selected;
    }
  };
  const int deepest = request.deepest_layer();
  at::Tensor x = std::move(embeds);
  keep(0, x, rows.rows);
  for (int i = 1; i <= deepest; ++i) {
    const bool last = rows_only && i == deepest;
    x = run_layer(static_cast<int64_t>(i - 1), x, last ? rows.unique_rows : at::Tensor());
    keep(i, x, last ? rows.rows_in_unique : rows.rows);
  }
  return at::stack(picked);
}

// The same with the rows made here.
template <class RunLayer, class FinalNorm>
at::Tensor CollectPlannedHiddenStates(at::Tensor embeds, int64_t past, int64_t num_layers,
                                      const HiddenStateRequest& request, bool rows_only,
                                      RunLayer&& run_layer, FinalNorm&& final_norm) {
  const RequestRows rows = RequestRows::For(request, past, embeds.device());
  return CollectPlannedHiddenStates(std::move(embeds), num_layers, request, rows, rows_only,
                                    std::forward<RunLayer>(run_layer),
                                    std::forward<FinalNorm>(final_norm));
}

}  // namespace spatialid::families
