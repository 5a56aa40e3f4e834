// What "hidden state i" means, for every family, and the loop that collects
// the requested ones.
//
// THE DEFINITION (transformers' `output_hidden_states=True`, checked for
// LlamaModel, Qwen2Model, Qwen2(.5)-VL text, MllamaTextModel and
// Gemma3TextModel in transformers 4.50 .. 5.3; see docs/model_facts.md section 4):
// a language model with N decoder layers has N + 1 hidden states,
//   index 0      the input of the first decoder layer: token embeddings with
//                the image features already merged in (and, for Gemma 3,
//                already scaled by sqrt(hidden_size));
//   index i      the output of decoder layer i, 1 <= i < N;
//   index N      the final norm applied to the output of the last layer
//                (the LM head's input); the un-normed output of layer N is
//                not a hidden state.
// Every decoder layer counts, including Mllama's cross-attention layers
// (with an image; for text-only Mllama prompts transformers >= 4.55 skips
// them and returns 33 states, older versions 41: docs/reference_pipeline.md section 10).
// Rows are token positions of the model's input sequence, image tokens
// already expanded, BOS included.
//
// Because attention is causal, the hidden state of position p depends only
// on positions 0..p; a forward therefore drops every position after the
// last requested one before the first layer, and stops after the deepest
// requested layer. Both cuts leave the requested rows unchanged.
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/tensor.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace spatialid::families {

// The hidden states a forward returns: rows `positions` (shared by every
// sequence of the batch, which has one token layout) of hidden states
// `layers`, both in the order given (duplicates allowed).
struct HiddenStateRequest {
  std::vector<int> layers;          // hidden-state indices, 0..num_layers
  std::vector<int64_t> positions;   // token positions, 0..seq_len-1

  // One past the last position needed: the forward's truncated length.
  int64_t needed_length() const {
    return positions.empty() ? 0 : *std::max_element(positions.begin(), positions.end()) + 1;
  }
  int deepest_layer() const {
    return layers.empty() ? -1 : *std::max_element(layers.begin(), layers.end());
  }
};

// OK when every index is in range for a model with `num_layers` decoder
// layers and a sequence of `seq_len` tokens.
inline absl::Status ValidateRequest(const HiddenStateRequest& request, int64_t num_layers,
                                    int64_t seq_len) {
  if (request.layers.empty()) return absl::InvalidArgumentError("no hidden-state layers requested");
  if (request.positions.empty()) return absl::InvalidArgumentError("no token positions requested");
  for (int layer : request.layers) {
    if (layer < 0 || layer > num_layers) {
      return absl::OutOfRangeError(absl::StrCat("hidden-state index ", layer,
                                                " is outside 0..", num_layers,
                                                " (the model has ", num_layers, " layers)"));
    }
  }
  for (int64_t p : request.positions) {
    if (p < 0 || p >= seq_len) {
      return absl::OutOfRangeError(
          absl::StrCat("token position ", p, " is outside the sequence 0..", seq_len - 1));
    }
  }
  return absl::OkStatus();
}

// Runs a decoder from its hidden state 0 and returns
// [layers.size(), batch, positions.size(), hidden] in the definition above.
//   embeds      hidden state 0, [batch, L, hidden], L >= needed_length()
//   rows        int64 request.positions on embeds' device (made once per
//               prompt, so a batch loop uploads nothing)
//   run_layer   (int64_t i, const at::Tensor& x) -> output of layer i (0-based)
//   final_norm  (const at::Tensor& x) -> the final norm
// Only layers 0..deepest_layer()-1 run; only the requested rows are kept.
template <class RunLayer, class FinalNorm>
at::Tensor CollectHiddenStates(at::Tensor embeds, int64_t num_layers,
                               const HiddenStateRequest& request, const at::Tensor& rows,
                               RunLayer&& run_layer, FinalNorm&& final_norm) {
  std::vector<at::Tensor> picked(request.layers.size());
  auto keep = [&](int index, const at::Tensor& x) {
    for (size_t k = 0; k < request.layers.size(); ++k) {
      if (request.layers[k] == index) picked[k] = x.index_select(1, rows);
    }
  };
  const int deepest = request.deepest_layer();
  at::Tensor x = std::move(embeds);
  keep(0, x);
  for (int i = 1; i <= deepest; ++i) {
    x = run_layer(static_cast<int64_t>(i - 1), x);
    keep(i, i == num_layers ? final_norm(x) : x);
  }
  return at::stack(picked);
}

// The same with the rows made here (one small upload per call).
template <class RunLayer, class FinalNorm>
at::Tensor CollectHiddenStates(at::Tensor embeds, int64_t num_layers,
                               const HiddenStateRequest& request, RunLayer&& run_layer,
                               FinalNorm&& final_norm) {
  const at::Tensor rows =
      at::tensor(request.positions, at::TensorOptions().dtype(at::kLong)).to(embeds.device());
  return CollectHiddenStates(std::move(embeds), num_layers, request, rows,
                             std::forward<RunLayer>(run_layer), std::forward<FinalNorm>(final_norm));
}

}  // namespace spatialid::families
