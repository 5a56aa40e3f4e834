// The spatial ID of one object pair, accumulated as vectors stream in
// (docs/reference_pipeline.md section 4, the reference's compute_id).
//
// The reference stores every vector e(A, key) of a pair, then per A-position
// folder subtracts the folder's mean over its keys, and finally averages the
// centred vectors of each key over the folders that contain it:
//
//   id(key) = 1/|A_k| * sum_{A in A_k} (e(A, key) - m_A),   m_A = S_A / n_A
//           = (sum_{A in A_k} e(A, key) - sum_{A in A_k} m_A) / |A_k|
//
// where A_k are the folders holding `key`, S_A the sum and n_A the number of
// vectors of folder A. The second line needs only running sums: per key the
// sum of its vectors and the set of folders it came from, per folder its sum
// and count. So no image's vector is kept, the order of arrival does not
// matter, and partial accumulators (shards of a run) merge by adding sums
// and counts. Everything is accumulated in float32 on the device the
// accumulator was created for; the result is cast to the model's dtype.
//
// Hidden states carry large components shared by every image (massive
// activations of hundreds); summing raw vectors would lose their small
// differences to float32 rounding before the subtraction. So each token's
// vectors are summed relative to a pivot, the first vector seen: the pivot
// cancels exactly in the formula above, and the sums stay small. This keeps
// the result as accurate as the reference's centre-first order.
//
// A position folder is named by a string ("2_3" for the nested layout's
// `{ax}_{ay}/` folder); a flat folder of PNGs is one A position, e.g. "".
//
// Example:
//   PairIdAccumulator acc({0, 1, 2, 32});             // hidden-state indices kept
//   for (each image)                                  // vectors: [4, D] at the target
//     SPATIALID_RETURN_IF_ERROR(acc.Add("1_2", "rog", CellKey{3, 0, 224}, vectors));
//   SPATIALID_ASSIGN_OR_RETURN(io::PtDict ids, acc.Result(at::kHalf));
//   // ids[layer]["rog"][(3, 0, 224)] is a [D] float16 tensor
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/scalar_tensor.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "spatialid/extract/spatial_id_layout.h"
#include "spatialid/io/torch_file_dict.h"

namespace spatialid::extract {

class PairIdAccumulator {
 public:
  // `layers` names the rows of the [L, D] blocks Add() takes (hidden-state
  // indices, in output order); sums live on `device`.
  explicit PairIdAccumulator(std::vector<int64_t> layers, at::Device device = at::kCPU)
      : layers_(std::move(layers)), device_(device) {}
  // Move-only: the sums are updated in place, so a copy would share them.
  PairIdAccumulator(PairIdAccumulator&&) = default;
  PairIdAccumulator& operator=(PairIdAccumulator&&) = default;
  PairIdAccumulator(const PairIdAccumulator&) = delete;
  PairIdAccumulator& operator=(const PairIdAccumulator&) = delete;

  const std::vector<int64_t>& layers() const { return layers_; }
  // Vectors added so far (one per image and token), merged ones included.
  int64_t vectors_added() const { return vectors_added_; }
  // Length of the vectors, or -1 before the first.
  int64_t dim() const { return dim_; }

  // Adds the vectors of `token` at every kept layer ([L, D], any floating
  // dtype and device) for B at `key`, in A-position folder `a_position`.
  // Each (a_position, token, key) may be added once.
  absl::Status Add(std::string_view a_position, std::string_view token, const CellKey& key,
                   const at::Tensor& vectors) {
    if (!vectors.defined() || vectors.dim() != 2 ||
        vectors.size(0) != static_cast<int64_t>(layers_.size()) ||
        !at::isFloatingType(vectors.scalar_type())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "spatial-ID vectors for ", key.ToString(), " must be a floating [", layers_.size(),
          ", D] tensor (one row per kept layer), got ",
          vectors.defined() ? absl::StrCat("shape [", absl::StrJoin(vectors.sizes(), ", "), "]")
                            : std::string("an undefined tensor")));
    }
    if (dim_ >= 0 && vectors.size(1) != dim_) {
      return absl::InvalidArgumentError(absl::StrCat("spatial-ID vectors for ", key.ToString(),
                                                     " have ", vectors.size(1),
                                                     " elements, earlier ones ", dim_));
    }
    TokenState& t = TokenFor(token);
    const int32_t folder = FolderFor(t, a_position);
    KeyState& k = t.keys[key];
    auto pos = std::lower_bound(k.folders.begin(), k.folders.end(), folder);
    if (pos != k.folders.end() && *pos == folder) {
      return absl::AlreadyExistsError(absl::StrCat(
          "spatial-ID vector for token '", std::string(token), "' at ", key.ToString(),
          " in A position '", std::string(a_position), "' was already added"));
    }
    at::Tensor v = vectors.to(device_, at::kFloat);
    if (!t.pivot.defined()) t.pivot = v.clone();
    v = v - t.pivot;
    dim_ = v.size(1);
    k.folders.insert(pos, folder);
    Accumulate(k.sum, v);
    Accumulate(t.folders[folder].sum, v);
    t.folders[folder].count += 1;
    ++vectors_added_;
    return absl::OkStatus();
  }

  // Adds another accumulator's sums (a shard of the same pair). The two must
  // keep the same layers and must not both hold the same (A, token, key).
  absl::Status Merge(const PairIdAccumulator& other) {
    if (other.layers_ != layers_) {
      return absl::InvalidArgumentError("cannot merge spatial-ID accumulators of different layers");
    }
    if (dim_ >= 0 && other.dim_ >= 0 && dim_ != other.dim_) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cannot merge spatial-ID accumulators of vector sizes ", dim_, " and ", other.dim_));
    }
    for (const std::string& name : other.token_order_) {
      const TokenState& theirs = other.tokens_.at(name);
      for (const auto& [key, ks] : theirs.keys) {
        for (int32_t f : ks.folders) {
          auto it = tokens_.find(name);
          if (it == tokens_.end()) break;
          auto fi = it->second.folder_index.find(theirs.folder_names[f]);
          if (fi == it->second.folder_index.end()) continue;
          auto ki = it->second.keys.find(key);
          if (ki != it->second.keys.end() &&
              std::binary_search(ki->second.folders.begin(), ki->second.folders.end(), fi->second)) {
            return absl::AlreadyExistsError(absl::StrCat(
                "cannot merge: both accumulators hold token '", name, "' at ", key.ToString(),
                " in A position '", theirs.folder_names[f], "'"));
          }
        }
      }
    }
    for (const std::string& name : other.token_order_) {
      const TokenState& theirs = other.tokens_.at(name);
      TokenState& mine = TokenFor(name);
      if (!theirs.pivot.defined()) continue;
      if (!mine.pivot.defined()) mine.pivot = theirs.pivot.to(device_, at::kFloat, false, true);
      // Their sums are relative to their pivot q: sum(e - p) = sum(e - q) + n (q - p).
      const at::Tensor shift = theirs.pivot.to(device_) - mine.pivot;
      std::vector<int32_t> remap(theirs.folder_names.size());
      for (size_t f = 0; f < theirs.folder_names.size(); ++f) {
        remap[f] = FolderFor(mine, theirs.folder_names[f]);
        const FolderState& tf = theirs.folders[f];
        Accumulate(mine.folders[remap[f]].sum,
                   tf.sum.to(device_) + shift * static_cast<double>(tf.count));
        mine.folders[remap[f]].count += tf.count;
      }
      for (const auto& [key, ks] : theirs.keys) {
        KeyState& k = mine.keys[key];
        Accumulate(k.sum, ks.sum.to(device_) + shift * static_cast<double>(ks.folders.size()));
        for (int32_t f : ks.folders) k.folders.push_back(remap[f]);
        std::sort(k.folders.begin(), k.folders.end());
      }
    }
    if (other.dim_ >= 0) dim_ = other.dim_;
    vectors_added_ += other.vectors_added_;
    return absl::OkStatus();
  }

  // {layer: {token: {(x, y, size): tensor[D]}}} in `dtype` on the CPU:
  // layers in constructor order, tokens in order of first arrival, keys sorted.
  absl::StatusOr<io::PtDict> Result(at::ScalarType dtype) const {
    if (!at::isFloatingType(dtype)) {
      return absl::InvalidArgumentError("spatial IDs are written in a floating dtype");
    }
    io::PtDict out;
    for (int64_t layer : layers_) out[layer];
    for (const std::string& name : token_order_) {
      const TokenState& t = tokens_.at(name);
      std::vector<at::Tensor> means;
      means.reserve(t.folders.size());
      for (const FolderState& f : t.folders) means.push_back(f.sum / static_cast<double>(f.count));
      const at::Tensor folder_means = at::stack(means);  // [A, L, D]
      for (const auto& [key, ks] : t.keys) {
        const at::Tensor index =
            at::tensor(std::vector<int64_t>(ks.folders.begin(), ks.folders.end()), at::kLong)
                .to(device_);
        const at::Tensor centred_sum = ks.sum - folder_means.index_select(0, index).sum(0);
        const at::Tensor id =
            (centred_sum / static_cast<double>(ks.folders.size())).to(at::kCPU, dtype);
        for (size_t l = 0; l < layers_.size(); ++l) {
          out[layers_[l]][name][key.ToPtKey()] = id[static_cast<int64_t>(l)];
        }
      }
    }
    return out;
  }

  // The partial state (float32 sums, int64 counts) as a dict a .pt file can
  // hold, for sharded runs:
  //   {"pair_id_state": {"layers": int64[L],
  //     "tokens": {token: {"pivot": [L, D],
  //                        "folders": {a: {"sum": [L, D], "count": int64[]}},
  //                        "keys": {(x, y, s): {"sum": [L, D], "in": {a: {}, ...}}}}}}}
  // Sums are relative to the token's pivot (see the top of this file).
  io::PtDict State() const {
    io::PtDict s;
    io::PtValue& root = s["pair_id_state"];
    root["layers"] = at::tensor(layers_, at::kLong);
    io::PtValue& tokens = root["tokens"];
    for (const std::string& name : token_order_) {
      const TokenState& t = tokens_.at(name);
      io::PtValue& tv = tokens[name];
      tv["pivot"] = t.pivot.to(at::kCPU);
      io::PtValue& folders = tv["folders"];
      for (size_t f = 0; f < t.folders.size(); ++f) {
        folders[t.folder_names[f]]["sum"] = t.folders[f].sum.to(at::kCPU);
        folders[t.folder_names[f]]["count"] = at::scalar_tensor(t.folders[f].count, at::kLong);
      }
      io::PtValue& keys = tv["keys"];
      keys.dict();  // present even when empty
      for (const auto& [key, ks] : t.keys) {
        io::PtValue& kv = keys[key.ToPtKey()];
        kv["sum"] = ks.sum.to(at::kCPU);
        io::PtValue& in = kv["in"];
        for (int32_t f : ks.folders) in[t.folder_names[f]];
      }
    }
    return s;
  }

  // Rebuilds an accumulator from State(); `source` names it in errors.
  static absl::StatusOr<PairIdAccumulator> FromState(const io::PtDict& state,
                                                     const std::string& source,
                                                     at::Device device = at::kCPU) {
    auto bad = [&](const std::string& what) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": not a spatial-ID pair state (", what, ")"));
    };
    const io::PtValue* root = state.find("pair_id_state");
    if (root == nullptr || !root->is_dict()) return bad("no 'pair_id_state' dict");
    const io::PtValue* layers = root->find("layers");
    if (layers == nullptr || !layers->is_tensor() || layers->tensor().scalar_type() != at::kLong ||
        layers->tensor().dim() != 1) {
      return bad("'layers' is not an int64 vector");
    }
    const at::Tensor lt = layers->tensor().contiguous();
    PairIdAccumulator acc(std::vector<int64_t>(lt.data_ptr<int64_t>(),
                                               lt.data_ptr<int64_t>() + lt.numel()),
                          device);
    const int64_t num_layers = lt.numel();
    const io::PtValue* tokens = root->find("tokens");
    if (tokens == nullptr || !tokens->is_dict()) return bad("no 'tokens' dict");
    auto check_sum = [&](const io::PtValue* v) -> bool {
      if (v == nullptr || !v->is_tensor()) return false;
      const at::Tensor& t = v->tensor();
      if (t.scalar_type() != at::kFloat || t.dim() != 2 || t.size(0) != num_layers) return false;
      if (acc.dim_ >= 0 && t.size(1) != acc.dim_) return false;
      acc.dim_ = t.size(1);
      return true;
    };
    for (const auto& [token_key, tv] : tokens->dict()) {
      if (!token_key.is_string() || !tv.is_dict()) return bad("a token entry is malformed");
      TokenState& t = acc.TokenFor(token_key.as_string());
      const io::PtValue* pivot = tv.find("pivot");
      if (!check_sum(pivot)) {
        return bad(absl::StrCat("token '", token_key.as_string(), "' has no [L, D] float pivot"));
      }
      t.pivot = pivot->tensor().to(device, at::kFloat, false, true);
      const io::PtValue* folders = tv.find("folders");
      const io::PtValue* keys = tv.find("keys");
      if (folders == nullptr || !folders->is_dict() || keys == nullptr || !keys->is_dict()) {
        return bad(absl::StrCat("token '", token_key.as_string(), "' lacks folders or keys"));
      }
      for (const auto& [fk, fv] : folders->dict()) {
        if (!fk.is_string() || !fv.is_dict()) return bad("a folder entry is malformed");
        const io::PtValue* sum = fv.find("sum");
        const io::PtValue* count = fv.find("count");
        if (!check_sum(sum) || count == nullptr || !count->is_tensor() ||
            count->tensor().scalar_type() != at::kLong || count->tensor().numel() != 1 ||
            count->tensor().item<int64_t>() <= 0) {
          return bad(absl::StrCat("folder '", fk.as_string(), "' has a bad sum or count"));
        }
        const int32_t f = acc.FolderFor(t, fk.as_string());
        t.folders[f].sum = sum->tensor().to(device, at::kFloat, false, true);
        t.folders[f].count = count->tensor().item<int64_t>();
        acc.vectors_added_ += t.folders[f].count;
      }
      for (const auto& [kk, kv] : keys->dict()) {
        auto cell = CellKey::FromPtKey(kk);
        if (!cell.ok() || !kv.is_dict()) return bad("a key entry is malformed");
        const io::PtValue* sum = kv.find("sum");
        const io::PtValue* in = kv.find("in");
        if (!check_sum(sum) || in == nullptr || !in->is_dict() || in->dict().empty()) {
          return bad(absl::StrCat("key ", cell->ToString(), " has a bad sum or folder set"));
        }
        KeyState& k = t.keys[*cell];
        k.sum = sum->tensor().to(device, at::kFloat, false, true);
        for (const auto& [ak, av] : in->dict()) {
          if (!ak.is_string()) return bad("a folder name is not a str");
          auto fi = t.folder_index.find(ak.as_string());
          if (fi == t.folder_index.end()) {
            return bad(absl::StrCat("key ", cell->ToString(), " names unknown folder '",
                                    ak.as_string(), "'"));
          }
          k.folders.push_back(fi->second);
        }
        std::sort(k.folders.begin(), k.folders.end());
      }
    }
    return acc;
  }

 private:
  struct FolderState {
    at::Tensor sum;  // [L, D] float32
    int64_t count = 0;
  };
  struct KeyState {
    at::Tensor sum;                // [L, D] float32
    std::vector<int32_t> folders;  // sorted indices into TokenState::folders
  };
  struct TokenState {
    at::Tensor pivot;  // [L, D] float32: the first vector; sums are relative to it
    std::vector<std::string> folder_names;
    absl::flat_hash_map<std::string, int32_t> folder_index;
    std::vector<FolderState> folders;
    std::map<CellKey, KeyState> keys;
  };

  static void Accumulate(at::Tensor& sum, const at::Tensor& v) {
    if (sum.defined()) {
      sum.add_(v);
    } else {
      sum = v.clone();
    }
  }

  TokenState& TokenFor(std::string_view token) {
    auto [it, fresh] = tokens_.try_emplace(std::string(token));
    if (fresh) token_order_.push_back(std::string(token));
    return it->second;
  }

  static int32_t FolderFor(TokenState& t, std::string_view a_position) {
    auto [it, fresh] =
        t.folder_index.try_emplace(std::string(a_position), static_cast<int32_t>(t.folders.size()));
    if (fresh) {
      t.folder_names.push_back(std::string(a_position));
      t.folders.emplace_back();
    }
    return it->second;
  }

  std::vector<int64_t> layers_;
  at::Device device_;
  int64_t dim_ = -1;
  int64_t vectors_added_ = 0;
  std::vector<std::string> token_order_;
  absl::flat_hash_map<std::string, TokenState> tokens_;
};

}  // namespace spatialid::extract
