// Layer selection policies: which hidden states an extractor keeps.
//
// Hidden-state index i follows transformers' `output_hidden_states`: 0 is the
// embedding output as fed to the first decoder layer, i the output of
// decoder layer i, and the last index the final norm's output (see
// spatialid/families/family.h). A selector turns the model's number of hidden
// states into the sorted list of indices to keep; the extractor stops each
// forward after the largest one.
//
//   layers::All{}                 every hidden state (the default)
//   layers::Reference{.last = 32} 0..last, the reference's per-model ranges
//                                 (each family's kPresets: families/registry.h)
//   layers::Explicit{{8, 12, 16}} a given list
//   layers::Spec                  one of the above chosen at run time from a
//                                 string ("all", "reference", "0,8,16", "8-16")
//
// An extractor takes its selector as a run-time value (`AnyLayerSelector`,
// built from any type satisfying `LayerSelector`): it is asked once, when
// the model loads, so nothing is gained by compiling it in.
#pragma once

#include <algorithm>
#include <concepts>
#include <functional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace spatialid::policy {

// A LayerSelector maps the model's number of hidden states (num_layers + 1)
// to the ascending indices to keep, or an error naming what does not fit.
template <class T>
concept LayerSelector = requires(const T& selector, int num_hidden_states) {
  { selector.Select(num_hidden_states) } -> std::same_as<absl::StatusOr<std::vector<int>>>;
};

namespace layers {

struct All {
  absl::StatusOr<std::vector<int>> Select(int num_hidden_states) const {
    std::vector<int> out(num_hidden_states);
    for (int i = 0; i < num_hidden_states; ++i) out[i] = i;
    return out;
  }
};

// 0..last inclusive. The reference truncates some models (llama-11b keeps 33
// of 41 states, gemma-4b 30 of 35); last < 0 means every state.
struct Reference {
  int last = -1;
  absl::StatusOr<std::vector<int>> Select(int num_hidden_states) const {
    if (last >= num_hidden_states) {
      return absl::InvalidArgumentError(absl::StrCat(
          "layer preset keeps hidden states 0..", last, " but the model has only ",
          num_hidden_states, " (0..", num_hidden_states - 1, "); is this the right checkpoint?"));
    }
    const int n = last < 0 ? num_hidden_states : last + 1;
    std::vector<int> out(n);
    for (int i = 0; i < n; ++i) out[i] = i;
    return out;
  }
};

struct Explicit {
  std::vector<int> indices;
  absl::StatusOr<std::vector<int>> Select(int num_hidden_states) const {
    if (indices.empty()) return absl::InvalidArgumentError("explicit layer list is empty");
    std::vector<int> out;
    for (int i : indices) {
      // Negative indices count from the end, as Python's hidden_states[-1].
      const int idx = i < 0 ? num_hidden_states + i : i;
      if (idx < 0 || idx >= num_hidden_states) {
        return absl::InvalidArgumentError(absl::StrCat("layer ", i, " is outside 0..",
                                                       num_hidden_states - 1));
      }
      out.push_back(idx);
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
  }
};

// A selection chosen at run time (command-line flags): "all", "reference"
// (the preset's last index), a list "0,8,16" or a range "8-16".
struct Spec {
  enum class Kind { kAll, kReference, kExplicit } kind = Kind::kAll;
  Reference reference;
  Explicit explicit_list;

  std::string text;  // as parsed, to name the selection in Select's errors

  static absl::StatusOr<Spec> Parse(const std::string& text, int reference_last = -1) {
    Spec s;
    s.text = text;
    if (text.empty() || text == "all") return s;
    if (text == "reference") {
      s.kind = Kind::kReference;
      s.reference.last = reference_last;
      return s;
    }
    s.kind = Kind::kExplicit;
    size_t start = 0;
    while (start <= text.size()) {
      const size_t comma = std::min(text.find(',', start), text.size());
      const std::string item = text.substr(start, comma - start);
      const size_t dash = item.find('-', 1);  // a leading '-' is a negative index
      int lo = 0, hi = 0;
      if (!ParseInt(item.substr(0, dash), &lo) ||
          (dash != std::string::npos && !ParseInt(item.substr(dash + 1), &hi))) {
        return absl::InvalidArgumentError(absl::StrCat(
            "layers '", text, "': expected all, reference, a list like 0,8,16 or a range like 8-16"));
      }
      if (dash == std::string::npos) hi = lo;
      for (int i = lo; i <= hi; ++i) s.explicit_list.indices.push_back(i);
      start = comma + 1;
    }
    return s;
  }

  absl::StatusOr<std::vector<int>> Select(int num_hidden_states) const {
    absl::StatusOr<std::vector<int>> out = absl::InternalError("unknown layer selection");
    switch (kind) {
      case Kind::kAll: out = All{}.Select(num_hidden_states); break;
      case Kind::kReference: out = reference.Select(num_hidden_states); break;
      case Kind::kExplicit: out = explicit_list.Select(num_hidden_states); break;
    }
    if (out.ok() || text.empty()) return out;
    return absl::Status(out.status().code(),
                        absl::StrCat("layers '", text, "': ", out.status().message()));
  }

 private:
  static bool ParseInt(const std::string& s, int* out) {
    if (s.empty()) return false;
    size_t used = 0;
    try {
      *out = std::stoi(s, &used);
    } catch (...) {
      return false;
    }
    return used == s.size();
  }
};

}  // namespace layers

// Any LayerSelector, chosen at run time (default: every hidden state).
class AnyLayerSelector {
 public:
  AnyLayerSelector() : AnyLayerSelector(layers::All{}) {}
  // Implicit, so options read `.layers = layers::Reference{.last = 32}`.
  template <class S>
    requires(!std::same_as<std::decay_t<S>, AnyLayerSelector>)
  AnyLayerSelector(S selector) {  // NOLINT(google-explicit-constructor)
    static_assert(LayerSelector<S>,
                  "a layer selector needs `absl::StatusOr<std::vector<int>> Select(int "
                  "num_hidden_states) const` (see policies/layers.h)");
    select_ = [s = std::move(selector)](int n) { return s.Select(n); };
  }

  absl::StatusOr<std::vector<int>> Select(int num_hidden_states) const {
    return select_(num_hidden_states);
  }

 private:
  std::function<absl::StatusOr<std::vector<int>>(int)> select_;
};

static_assert(LayerSelector<layers::All>);
static_assert(LayerSelector<layers::Reference>);
static_assert(LayerSelector<layers::Explicit>);
static_assert(LayerSelector<layers::Spec>);
static_assert(LayerSelector<AnyLayerSelector>);

}  // namespace spatialid::policy
