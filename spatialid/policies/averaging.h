// Averaging policies: how per-image target vectors of one object pair become
// its spatial IDs (docs/reference_pipeline.md section 4: centre within each A-position
// folder, then average the centred vectors over the folders holding a key).
//
//   averaging::StreamingMean  float32 running sums and counts; keeps no
//                             image's vector, merges across shards (default)
//   averaging::ReferenceMean  keeps every vector in the model's dtype and
//                             computes the recipe literally, stack by stack,
//                             in that dtype, as the Python scripts do
//
// Both give {layer: {token: {(x, y, size): tensor[D]}}}. They agree to the
// rounding of the model dtype; StreamingMean is what large runs should use.
// A user policy needs the same members (see `Averager`).
//
// An extractor's options name the averaging as a run-time value
// (`Averaging::Use<A>()`), and each pair's accumulator is an `AnyAverager`:
// one compiled pipeline per family serves every averaging, and a virtual
// call per image and token is nothing next to a forward pass.
#pragma once

#include <concepts>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/stack.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "spatialid/extract/spatial_id_layout.h"
#include "spatialid/extract/spatial_id_pair.h"
#include "spatialid/io/torch_file_dict.h"

namespace spatialid::policy {

// An Averager is built from the kept hidden-state indices, takes each
// image's [layers, D] block for a token, and returns the pair's IDs.
template <class T>
concept Averager = std::constructible_from<T, std::vector<int64_t>> &&
                   requires(T& a, const T& ca, std::string_view s, const extract::CellKey& key,
                            const at::Tensor& vectors, at::ScalarType dtype) {
                     { a.Add(s, s, key, vectors) } -> std::same_as<absl::Status>;
                     { ca.Result(dtype) } -> std::same_as<absl::StatusOr<io::PtDict>>;
                     { T::kName } -> std::convertible_to<const char*>;
                   };

namespace averaging {

struct StreamingMean : extract::PairIdAccumulator {
  static constexpr const char* kName = "streaming_mean";
  using extract::PairIdAccumulator::PairIdAccumulator;
};

class ReferenceMean {
 public:
  static constexpr const char* kName = "reference_mean";
  explicit ReferenceMean(std::vector<int64_t> layers) : layers_(std::move(layers)) {}

  absl::Status Add(std::string_view a_position, std::string_view token,
                   const extract::CellKey& key, const at::Tensor& vectors) {
    if (!vectors.defined() || vectors.dim() != 2 ||
        vectors.size(0) != static_cast<int64_t>(layers_.size())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "spatial-ID vectors for ", key.ToString(), " must be [", layers_.size(), ", D]"));
    }
    auto& per_key = tokens_[std::string(token)][std::string(a_position)];
    if (!per_key.emplace(key, vectors.detach().to(at::kCPU)).second) {
      // Debian's abseil has its own string_view type, hence the copies.
      return absl::AlreadyExistsError(absl::StrCat(
          "spatial-ID vector for token '", std::string(token), "' at ", key.ToString(),
          " in A position '", std::string(a_position), "' was already added"));
    }
    if (std::find(order_.begin(), order_.end(), token) == order_.end()) {
      order_.emplace_back(token);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<io::PtDict> Result(at::ScalarType dtype) const {
    io::PtDict out;
    for (int64_t layer : layers_) out[layer];
    for (const std::string& token : order_) {
      const auto& folders = tokens_.at(token);
      std::map<extract::CellKey, std::vector<at::Tensor>> centred;
      for (const auto& [a, per_key] : folders) {
        std::vector<at::Tensor> rows;
        for (const auto& [key, v] : per_key) rows.push_back(v);
        const at::Tensor stack = at::stack(rows);  // [K, L, D] in the model dtype
        const at::Tensor mean = stack.mean(0, /*keepdim=*/true);
        const at::Tensor c = stack - mean;
        size_t i = 0;
        for (const auto& [key, v] : per_key) centred[key].push_back(c[static_cast<int64_t>(i++)]);
      }
      for (const auto& [key, vs] : centred) {
        const at::Tensor id = at::stack(vs).mean(0).to(dtype);  // [L, D]
        for (size_t l = 0; l < layers_.size(); ++l) {
          out[layers_[l]][token][key.ToPtKey()] = id[static_cast<int64_t>(l)];
        }
      }
    }
    return out;
  }

 private:
  std::vector<int64_t> layers_;
  std::vector<std::string> order_;
  std::map<std::string, std::map<std::string, std::map<extract::CellKey, at::Tensor>>> tokens_;
};

}  // namespace averaging

static_assert(Averager<averaging::StreamingMean>);
static_assert(Averager<averaging::ReferenceMean>);

// One pair's accumulator of any Averager type.
class AnyAverager {
 public:
  absl::Status Add(std::string_view a_position, std::string_view token, const extract::CellKey& key,
                   const at::Tensor& vectors) {
    return impl_->Add(a_position, token, key, vectors);
  }
  absl::StatusOr<io::PtDict> Result(at::ScalarType dtype) const { return impl_->Result(dtype); }
  // The running sums a shard saves (sharding.h), or null for an averager
  // that keeps none (ReferenceMean).
  const extract::PairIdAccumulator* partial_sums() const { return impl_->partial_sums(); }

 private:
  friend class Averaging;
  struct Interface {
    virtual ~Interface() = default;
    virtual absl::Status Add(std::string_view, std::string_view, const extract::CellKey&,
                             const at::Tensor&) = 0;
    virtual absl::StatusOr<io::PtDict> Result(at::ScalarType) const = 0;
    virtual const extract::PairIdAccumulator* partial_sums() const = 0;
  };
  template <class A>
  struct Model final : Interface {
    explicit Model(std::vector<int64_t> layers) : averager(std::move(layers)) {}
    absl::Status Add(std::string_view a, std::string_view t, const extract::CellKey& k,
                     const at::Tensor& v) override {
      return averager.Add(a, t, k, v);
    }
    absl::StatusOr<io::PtDict> Result(at::ScalarType dtype) const override {
      return averager.Result(dtype);
    }
    const extract::PairIdAccumulator* partial_sums() const override {
      if constexpr (std::derived_from<A, extract::PairIdAccumulator>) {
        return &averager;
      } else {
        return nullptr;
      }
    }
    A averager;
  };
  explicit AnyAverager(std::unique_ptr<Interface> impl) : impl_(std::move(impl)) {}
  std::unique_ptr<Interface> impl_;
};

// Which Averager a run uses, chosen at run time (default: StreamingMean).
class Averaging {
 public:
  Averaging() : Averaging(Use<averaging::StreamingMean>()) {}

  template <class A>
  static Averaging Use() {
    static_assert(Averager<A>,
                  "an averager needs a constructor from the kept layers (std::vector<int64_t>), "
                  "`absl::Status Add(std::string_view a_position, std::string_view token, const "
                  "extract::CellKey&, const at::Tensor& vectors)`, `absl::StatusOr<io::PtDict> "
                  "Result(at::ScalarType) const` and a `kName` (see policies/averaging.h)");
    Averaging a(0);
    a.name_ = A::kName;
    a.start_ = [](std::vector<int64_t> layers) {
      return AnyAverager(std::make_unique<AnyAverager::Model<A>>(std::move(layers)));
    };
    return a;
  }

  // A fresh accumulator for one pair, over the kept hidden-state indices.
  AnyAverager Start(std::vector<int64_t> layers) const { return start_(std::move(layers)); }
  // Recorded in shard manifests, so shards of different averagings never merge.
  const std::string& name() const { return name_; }

 private:
  explicit Averaging(int /*empty, for Use()*/) {}
  std::string name_;
  std::function<AnyAverager(std::vector<int64_t>)> start_;
};

}  // namespace spatialid::policy
