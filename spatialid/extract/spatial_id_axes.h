// The x and y spatial axes of a set of spatial IDs (docs/reference_pipeline.md section 6,
// the reference's compute_axes).
//
// For each (layer, token) of an IDs dict and one object size s:
//   y axis = mean over x in 0..G-1, y1 in 0..G-2, y2 in y1..G-1 of
//            id(x, y2, s) - id(x, y1, s)
//   x axis = the same over rows: mean over y, x1, x2 >= x1 of
//            id(x2, y, s) - id(x1, y, s)
// with G = 4. The reference lets y2 start at y1, so zero differences are
// part of the mean (the axis is 2/3 of the strict one); that is the
// default, and `strict` takes y2 > y1 only. Differences whose two keys are
// not both present are skipped, and a (layer, token) without any
// difference gets no axis, exactly as the reference does. Differences are
// taken and averaged in float32 from the stored vectors, then cast to the
// output dtype (by default the dtype of the IDs).
//
// Example:
//   SPATIALID_ASSIGN_OR_RETURN(Axes axes, ComputeAxes(universal));
//   SPATIALID_RETURN_IF_ERROR(WriteAxes("embeds/universal_id/llava-7b", axes));
//   // axes.x[12]["universal"] is a [D] tensor
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "spatialid/extract/spatial_id_layout.h"
#include "spatialid/io/torch_file_dict.h"

namespace spatialid::extract {

struct AxisOptions {
  // Only keys of this object size are used (the reference: 224).
  int64_t size = 224;
  // false: y2 runs from y1 (the reference, zero differences included);
  // true: y2 > y1 only.
  bool strict = false;
  // Cells per row and column.
  int64_t grid = 4;
  // Output dtype; by default that of the IDs of each (layer, token).
  std::optional<at::ScalarType> dtype;
};

struct Axes {
  io::PtDict x;  // {layer: {token: tensor[D]}}
  io::PtDict y;
};

inline absl::StatusOr<Axes> ComputeAxes(const io::PtDict& ids, const AxisOptions& options = {},
                                        const std::string& source = "spatial IDs") {
  if (options.grid < 2) return absl::InvalidArgumentError("the axes need a grid of at least 2 cells");
  // Validate the whole layout before computing anything.
  absl::Status s = ForEachId(ids, source, [](int64_t, const std::string&, const CellKey&,
                                             const at::Tensor&) { return absl::OkStatus(); });
  if (!s.ok()) return s;
  Axes axes;
  const int64_t g = options.grid;
  const int64_t step = options.strict ? 1 : 0;
  for (const auto& [layer_key, per_token] : ids) {
    io::PtValue& x_layer = axes.x[layer_key];
    io::PtValue& y_layer = axes.y[layer_key];
    for (const auto& [token_key, per_cell] : per_token.dict()) {
      absl::flat_hash_map<CellKey, at::Tensor> cells;
      at::ScalarType dtype = options.dtype.value_or(at::kFloat);
      bool first = true;
      for (const auto& [cell_key, value] : per_cell.dict()) {
        CellKey key = *CellKey::FromPtKey(cell_key);
        if (first && !options.dtype) dtype = value.tensor().scalar_type();
        first = false;
        if (key.size == options.size) cells[key] = value.tensor().to(at::kFloat);
      }
      auto diff_mean = [&](bool along_y) -> at::Tensor {
        at::Tensor sum;
        int64_t n = 0;
        for (int64_t fixed = 0; fixed < g; ++fixed) {
          for (int64_t a = 0; a < g - 1; ++a) {
            for (int64_t b = a + step; b < g; ++b) {
              const CellKey lo = along_y ? CellKey{fixed, a, options.size} : CellKey{a, fixed, options.size};
              const CellKey hi = along_y ? CellKey{fixed, b, options.size} : CellKey{b, fixed, options.size};
              auto l = cells.find(lo);
              auto h = cells.find(hi);
              if (l == cells.end() || h == cells.end()) continue;
              at::Tensor d = h->second - l->second;
              sum = sum.defined() ? sum.add_(d) : d;
              ++n;
            }
          }
        }
        return n == 0 ? at::Tensor() : (sum / static_cast<double>(n)).to(dtype);
      };
      at::Tensor ax = diff_mean(false);
      at::Tensor ay = diff_mean(true);
      if (ax.defined()) x_layer[token_key] = ax;
      if (ay.defined()) y_layer[token_key] = ay;
    }
  }
  return axes;
}

}  // namespace spatialid::extract
