// The layout of spatial-ID files: cell keys and a checked walk over
// `{layer: {token: {(x, y, size): tensor[D]}}}`.
//
// Per-pair IDs, universal IDs and the inputs of the axes all share that
// layout (docs/reference_pipeline.md sections 4 to 6): int layer keys (hidden-state
// indices), str token keys (the tokenizer's string, or "universal"), and
// (x, y, size) tuple keys where x is B's column (0..3, left to right), y its
// row (0..3, top to bottom) and size the object's pixel size. Files come
// from disk, so `ForEachId` checks every level and reports the file and the
// exact place of anything unexpected.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>

#include <ATen/core/Tensor.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "spatialid/io/torch_file_dict.h"

namespace spatialid::extract {

// Where B sits and how large the objects are: the (x, y, size) key.
struct CellKey {
  int64_t x = 0;
  int64_t y = 0;
  int64_t size = 0;

  friend auto operator<=>(const CellKey&, const CellKey&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const CellKey& k) {
    return H::combine(std::move(h), k.x, k.y, k.size);
  }

  io::PtKey ToPtKey() const { return io::PtKey::Tuple(x, y, size); }
  std::string ToString() const { return absl::StrCat("(", x, ", ", y, ", ", size, ")"); }

  // The key of a file: a tuple of three ints.
  static absl::StatusOr<CellKey> FromPtKey(const io::PtKey& k) {
    if (!k.is_tuple() || k.as_tuple().size() != 3) {
      return absl::InvalidArgumentError(
          absl::StrCat("key ", k.ToString(), " is not an (x, y, size) tuple"));
    }
    const auto& t = k.as_tuple();
    return CellKey{t[0], t[1], t[2]};
  }
};

// Calls `fn(layer, token, key, vector)` for every leaf of an IDs dict in
// file order, after checking that the layout is {int: {str: {(x, y, s):
// 1-D floating tensor}}} and that every vector has the same length.
// `source` names the dict in errors (usually its file).
inline absl::Status ForEachId(
    const io::PtDict& ids, const std::string& source,
    const std::function<absl::Status(int64_t, const std::string&, const CellKey&,
                                     const at::Tensor&)>& fn) {
  int64_t dim = -1;
  for (const auto& [layer_key, per_token] : ids) {
    const std::string at_layer = absl::StrCat(source, ": [", layer_key.ToString(), "]");
    if (!layer_key.is_int()) {
      return absl::InvalidArgumentError(absl::StrCat(at_layer, " is not an int layer key"));
    }
    if (!per_token.is_dict()) {
      return absl::InvalidArgumentError(absl::StrCat(at_layer, " is a tensor, expected {token: ...}"));
    }
    for (const auto& [token_key, per_cell] : per_token.dict()) {
      const std::string at_token = absl::StrCat(at_layer, "[", token_key.ToString(), "]");
      if (!token_key.is_string()) {
        return absl::InvalidArgumentError(absl::StrCat(at_token, " is not a str token key"));
      }
      if (!per_cell.is_dict()) {
        return absl::InvalidArgumentError(
            absl::StrCat(at_token, " is a tensor, expected {(x, y, size): vector}"));
      }
      for (const auto& [cell_key, value] : per_cell.dict()) {
        const std::string at_cell = absl::StrCat(at_token, "[", cell_key.ToString(), "]");
        auto cell = CellKey::FromPtKey(cell_key);
        if (!cell.ok()) return absl::InvalidArgumentError(absl::StrCat(at_token, ": ", cell.status().message()));
        if (!value.is_tensor()) {
          return absl::InvalidArgumentError(absl::StrCat(at_cell, " is a dict, expected a vector"));
        }
        const at::Tensor& v = value.tensor();
        if (!v.defined() || v.dim() != 1 || !at::isFloatingType(v.scalar_type())) {
          return absl::InvalidArgumentError(
              absl::StrCat(at_cell, " is not a 1-D floating-point vector"));
        }
        if (dim >= 0 && v.size(0) != dim) {
          return absl::InvalidArgumentError(
              absl::StrCat(at_cell, " has ", v.size(0), " elements, earlier vectors ", dim));
        }
        dim = v.size(0);
        absl::Status s = fn(layer_key.as_int(), token_key.as_string(), *cell, v);
        if (!s.ok()) return s;
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace spatialid::extract
