// Universal spatial IDs: the mean of the per-pair IDs over all pairs
// (docs/reference_pipeline.md section 5, the reference's average_id).
//
// For every pair file, the vectors of every token go into one bucket
// ("universal"), so universal(layer, key) is the mean over all (pair,
// token) vectors at that layer and key. The accumulator keeps a float32
// sum and a count per (layer, key), adds pair dicts as they are produced
// or read from disk (in whatever dtype the pair files hold, as the
// reference averages what it loads), and merges with other accumulators by
// adding sums and counts.
//
// Example:
//   UniversalIdAccumulator acc;
//   for (const std::string& pair : pairs)
//     SPATIALID_RETURN_IF_ERROR(acc.AddPairFile(PairIdPath(out, a, b, model)));
//   SPATIALID_ASSIGN_OR_RETURN(io::PtDict universal, acc.Result(at::kBFloat16));
//   // universal[layer]["universal"][(3, 0, 224)]
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/scalar_tensor.h>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "spatialid/extract/spatial_id_layout.h"
#include "spatialid/io/torch_file_dict.h"
#include "spatialid/io/torch_file_reader.h"

namespace spatialid::extract {

class UniversalIdAccumulator {
 public:
  explicit UniversalIdAccumulator(at::Device device = at::kCPU) : device_(device) {}
  // Move-only: the sums are updated in place, so a copy would share them.
  UniversalIdAccumulator(UniversalIdAccumulator&&) = default;
  UniversalIdAccumulator& operator=(UniversalIdAccumulator&&) = default;
  UniversalIdAccumulator(const UniversalIdAccumulator&) = delete;
  UniversalIdAccumulator& operator=(const UniversalIdAccumulator&) = delete;

  // Pair dicts added so far (merged ones included).
  int64_t pairs_added() const { return pairs_added_; }

  // Adds one pair's IDs, {layer: {token: {(x, y, size): tensor[D]}}};
  // `source` names them in errors. Nothing is added if the dict is malformed.
  absl::Status AddPairIds(const io::PtDict& pair_ids, const std::string& source) {
    int64_t dim = dim_;
    absl::Status s = ForEachId(pair_ids, source,
                               [&](int64_t, const std::string&, const CellKey&, const at::Tensor& v) {
                                 if (dim >= 0 && v.size(0) != dim) {
                                   return absl::InvalidArgumentError(absl::StrCat(
                                       source, ": vectors have ", v.size(0),
                                       " elements, earlier pairs' ", dim));
                                 }
                                 dim = v.size(0);
                                 return absl::OkStatus();
                               });
    if (!s.ok()) return s;
    s = ForEachId(pair_ids, source,
                  [&](int64_t layer, const std::string&, const CellKey& key, const at::Tensor& v) {
                    Cell& c = LayerFor(layer)[key];
                    const at::Tensor f = v.to(device_, at::kFloat);
                    if (c.sum.defined()) {
                      c.sum.add_(f);
                    } else {
                      c.sum = f.clone();
                    }
                    c.count += 1;
                    return absl::OkStatus();
                  });
    if (!s.ok()) return s;
    dim_ = dim;
    ++pairs_added_;
    return absl::OkStatus();
  }

  // Reads a per-pair .pt file and adds it.
  absl::Status AddPairFile(const std::string& path) {
    auto ids = io::ReadTorchDict(path);
    if (!ids.ok()) return ids.status();
    return AddPairIds(*ids, path);
  }

  absl::Status Merge(const UniversalIdAccumulator& other) {
    if (dim_ >= 0 && other.dim_ >= 0 && dim_ != other.dim_) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cannot merge universal-ID accumulators of vector sizes ", dim_, " and ", other.dim_));
    }
    for (int64_t layer : other.layer_order_) {
      std::map<CellKey, Cell>& mine = LayerFor(layer);
      for (const auto& [key, cell] : other.layers_.at(layer)) {
        Cell& c = mine[key];
        if (c.sum.defined()) {
          c.sum.add_(cell.sum.to(device_));
        } else {
          c.sum = cell.sum.to(device_, at::kFloat, false, true);
        }
        c.count += cell.count;
      }
    }
    if (other.dim_ >= 0) dim_ = other.dim_;
    pairs_added_ += other.pairs_added_;
    return absl::OkStatus();
  }

  // {layer: {bucket: {(x, y, size): mean}}} in `dtype` on the CPU; layers in
  // order of first arrival, keys sorted.
  absl::StatusOr<io::PtDict> Result(at::ScalarType dtype,
                                    const std::string& bucket = "universal") const {
    if (!at::isFloatingType(dtype)) {
      return absl::InvalidArgumentError("universal IDs are written in a floating dtype");
    }
    io::PtDict out;
    for (int64_t layer : layer_order_) {
      io::PtValue& per_key = out[layer][bucket];
      for (const auto& [key, cell] : layers_.at(layer)) {
        per_key[key.ToPtKey()] = (cell.sum / static_cast<double>(cell.count)).to(at::kCPU, dtype);
      }
    }
    return out;
  }

  // {"universal_id_state": {"pairs": int64[], "layers": {layer: {(x, y, s):
  //   {"sum": float32[D], "count": int64[]}}}}}, for sharded runs.
  io::PtDict State() const {
    io::PtDict s;
    io::PtValue& root = s["universal_id_state"];
    root["pairs"] = at::scalar_tensor(pairs_added_, at::kLong);
    io::PtValue& layers = root["layers"];
    for (int64_t layer : layer_order_) {
      io::PtValue& lv = layers[layer];
      for (const auto& [key, cell] : layers_.at(layer)) {
        io::PtValue& cv = lv[key.ToPtKey()];
        cv["sum"] = cell.sum.to(at::kCPU);
        cv["count"] = at::scalar_tensor(cell.count, at::kLong);
      }
    }
    return s;
  }

  static absl::StatusOr<UniversalIdAccumulator> FromState(const io::PtDict& state,
                                                          const std::string& source,
                                                          at::Device device = at::kCPU) {
    auto bad = [&](const std::string& what) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": not a universal-ID state (", what, ")"));
    };
    auto is_count = [](const io::PtValue* v) {
      return v != nullptr && v->is_tensor() && v->tensor().scalar_type() == at::kLong &&
             v->tensor().numel() == 1 && v->tensor().item<int64_t>() >= 0;
    };
    const io::PtValue* root = state.find("universal_id_state");
    if (root == nullptr || !root->is_dict()) return bad("no 'universal_id_state' dict");
    const io::PtValue* pairs = root->find("pairs");
    const io::PtValue* layers = root->find("layers");
    if (!is_count(pairs) || layers == nullptr || !layers->is_dict()) {
      return bad("no 'pairs' count or 'layers' dict");
    }
    UniversalIdAccumulator acc(device);
    acc.pairs_added_ = pairs->tensor().item<int64_t>();
    for (const auto& [lk, lv] : layers->dict()) {
      if (!lk.is_int() || !lv.is_dict()) return bad("a layer entry is malformed");
      std::map<CellKey, Cell>& cells = acc.LayerFor(lk.as_int());
      for (const auto& [ck, cv] : lv.dict()) {
        auto key = CellKey::FromPtKey(ck);
        const io::PtValue* sum = cv.is_dict() ? cv.find("sum") : nullptr;
        const io::PtValue* count = cv.is_dict() ? cv.find("count") : nullptr;
        if (!key.ok() || sum == nullptr || !sum->is_tensor() ||
            sum->tensor().scalar_type() != at::kFloat || sum->tensor().dim() != 1 ||
            !is_count(count) || count->tensor().item<int64_t>() == 0) {
          return bad(absl::StrCat("the entry of layer ", lk.as_int(), ", key ", ck.ToString(),
                                  " is malformed"));
        }
        if (acc.dim_ >= 0 && sum->tensor().size(0) != acc.dim_) return bad("vector sizes differ");
        acc.dim_ = sum->tensor().size(0);
        Cell& c = cells[*key];
        c.sum = sum->tensor().to(device, at::kFloat, false, true);
        c.count = count->tensor().item<int64_t>();
      }
    }
    return acc;
  }

 private:
  struct Cell {
    at::Tensor sum;  // [D] float32
    int64_t count = 0;
  };

  std::map<CellKey, Cell>& LayerFor(int64_t layer) {
    auto [it, fresh] = layers_.try_emplace(layer);
    if (fresh) layer_order_.push_back(layer);
    return it->second;
  }

  at::Device device_;
  int64_t dim_ = -1;
  int64_t pairs_added_ = 0;
  std::vector<int64_t> layer_order_;
  absl::flat_hash_map<int64_t, std::map<CellKey, Cell>> layers_;
};

}  // namespace spatialid::extract
