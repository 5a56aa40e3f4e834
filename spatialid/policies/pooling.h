// Pooling policies: which prompt positions stand for a target word, and how
// their hidden-state rows become one vector.
//
// The reference tokenizes " " + word, keeps the LAST sub-token, and uses the
// FIRST position in the whole prompt holding that token (docs/reference_pipeline.md section 2):
// `pooling::LastSubtoken`, the default. `pooling::MeanOfSubtokens` averages
// the rows of the word's full sub-token sequence at its first occurrence.
//
// An extractor takes its pooler as a run-time value (`AnyPooler`, built
// from any type satisfying `Pooler`), so one compiled extractor per family
// serves every pooling: the pooler runs once per prompt (positions) and
// once per batch (a row reduction), where a virtual call costs nothing.
//
// Example:
//   ExtractorOptions o{.model_dir = dir, .pooling = pooling::MeanOfSubtokens{}};
#pragma once

#include <concepts>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <ATen/ops/mean.h>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace spatialid::policy {

// A Pooler picks positions for a word given the prompt's ids and the word's
// sub-token ids (of " " + word, no special tokens), and reduces rows shaped
// [..., positions, hidden] to [..., hidden].
template <class T>
concept Pooler = requires(const T& pooler, std::span<const int32_t> prompt_ids,
                          std::span<const int32_t> word_ids, const at::Tensor& rows) {
  { pooler.Positions(prompt_ids, word_ids) } -> std::same_as<absl::StatusOr<std::vector<int64_t>>>;
  { pooler.Pool(rows) } -> std::same_as<at::Tensor>;
};

namespace pooling {

inline absl::Status WordNotInPrompt(std::span<const int32_t> word_ids) {
  return absl::InvalidArgumentError(
      absl::StrCat("token ids ", absl::StrJoin(word_ids, " "), " do not occur in the prompt"));
}

struct LastSubtoken {
  absl::StatusOr<std::vector<int64_t>> Positions(std::span<const int32_t> prompt_ids,
                                                 std::span<const int32_t> word_ids) const {
    if (word_ids.empty()) return absl::InvalidArgumentError("target word has no tokens");
    for (size_t i = 0; i < prompt_ids.size(); ++i) {
      if (prompt_ids[i] == word_ids.back()) return std::vector<int64_t>{static_cast<int64_t>(i)};
    }
    return WordNotInPrompt(word_ids);
  }
  at::Tensor Pool(const at::Tensor& rows) const { return rows.select(-2, 0); }
};

struct MeanOfSubtokens {
  absl::StatusOr<std::vector<int64_t>> Positions(std::span<const int32_t> prompt_ids,
                                                 std::span<const int32_t> word_ids) const {
    if (word_ids.empty()) return absl::InvalidArgumentError("target word has no tokens");
    for (size_t i = 0; i + word_ids.size() <= prompt_ids.size(); ++i) {
      bool match = true;
      for (size_t j = 0; j < word_ids.size() && match; ++j) match = prompt_ids[i + j] == word_ids[j];
      if (match) {
        std::vector<int64_t> out(word_ids.size());
        for (size_t j = 0; j < word_ids.size(); ++j) out[j] = static_cast<int64_t>(i + j);
        return out;
      }
    }
    return WordNotInPrompt(word_ids);
  }
  // Averages in fp32 so fp16/bf16 models lose nothing to the reduction.
  at::Tensor Pool(const at::Tensor& rows) const {
    return rows.to(at::kFloat).mean({-2}).to(rows.scalar_type());
  }
};

}  // namespace pooling

// Any Pooler, chosen at run time (default: the reference's LastSubtoken).
class AnyPooler {
 public:
  AnyPooler() : AnyPooler(pooling::LastSubtoken{}) {}
  // Implicit, so options read `.pooling = pooling::MeanOfSubtokens{}`.
  template <class P>
    requires(!std::same_as<std::decay_t<P>, AnyPooler>)
  AnyPooler(P pooler) {  // NOLINT(google-explicit-constructor)
    static_assert(Pooler<P>,
                  "a pooler needs `absl::StatusOr<std::vector<int64_t>> Positions(std::span<const "
                  "int32_t> prompt_ids, std::span<const int32_t> word_ids) const` and "
                  "`at::Tensor Pool(const at::Tensor& rows) const` (see policies/pooling.h)");
    impl_ = std::make_shared<const Model<P>>(std::move(pooler));
  }

  absl::StatusOr<std::vector<int64_t>> Positions(std::span<const int32_t> prompt_ids,
                                                 std::span<const int32_t> word_ids) const {
    return impl_->Positions(prompt_ids, word_ids);
  }
  at::Tensor Pool(const at::Tensor& rows) const { return impl_->Pool(rows); }

 private:
  struct Interface {
    virtual ~Interface() = default;
    virtual absl::StatusOr<std::vector<int64_t>> Positions(std::span<const int32_t>,
                                                           std::span<const int32_t>) const = 0;
    virtual at::Tensor Pool(const at::Tensor&) const = 0;
  };
  template <class P>
  struct Model final : Interface {
    explicit Model(P p) : pooler(std::move(p)) {}
    absl::StatusOr<std::vector<int64_t>> Positions(std::span<const int32_t> prompt,
                                                   std::span<const int32_t> word) const override {
      return pooler.Positions(prompt, word);
    }
    at::Tensor Pool(const at::Tensor& rows) const override { return pooler.Pool(rows); }
    P pooler;
  };
  std::shared_ptr<const Interface> impl_;
};

static_assert(Pooler<pooling::LastSubtoken>);
static_assert(Pooler<pooling::MeanOfSubtokens>);
static_assert(Pooler<AnyPooler>);

}  // namespace spatialid::policy
