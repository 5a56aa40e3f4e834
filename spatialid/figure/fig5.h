// Figure 5 of the paper: the grid IDs of one object projected on the plane
// of the x and y axes (docs/reference_pipeline.md section 8).
//
// For a layer: the 16 IDs of the target at object size 224 (one per grid
// cell) are projected on u = x_axis / |x_axis| and v = the y axis made
// orthogonal to u and normalised; the text-only embeddings (left, right)
// are projected on the same plane. The panel title gives the explained
// variance ratio: the variance of the 16 IDs along u and v over their total
// variance. This header computes those numbers; figure/svg_plot.h draws them.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/dot.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/stack.h>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "spatialid/io/torch_file_dict.h"

namespace spatialid::figure {

struct ProjectedPoint {
  std::string label;  // "(x, y)" for IDs, the word for text embeddings
  int64_t cell_x = -1, cell_y = -1;  // grid cell, -1 for text embeddings
  double u = 0, v = 0;               // coordinates on the axis plane
};

struct Fig5Panel {
  int64_t layer = 0;
  std::vector<ProjectedPoint> ids;   // 16 points, one per cell
  std::vector<ProjectedPoint> text;  // L and R
  double explained_variance = 0;     // in [0, 1]
};

struct Fig5Inputs {
  const io::PtDict* ids = nullptr;     // {L: {token: {(x, y, s): vec}}}
  const io::PtDict* x_axes = nullptr;  // {L: {token: vec}}
  const io::PtDict* y_axes = nullptr;
  const io::PtDict* text = nullptr;    // {L: {token: vec}}, may be null
  std::string token;                   // the ID/axis token (the reference: frog's)
  std::vector<std::pair<std::string, std::string>> text_tokens;  // (label, token), e.g. {"L", "▁left"}
  int64_t size = 224;
  int64_t grid = 4;
  // How errors name the files (fig5 gives their paths).
  std::string ids_name = "IDs file", x_name = "x-axis file", y_name = "y-axis file",
              text_name = "text-embedding file";
};

inline absl::StatusOr<const at::Tensor*> Leaf(const io::PtDict& d, int64_t layer,
                                              const std::string& token, const std::string& what) {
  const io::PtValue* per_layer = d.find(io::PtKey(layer));
  if (per_layer == nullptr || per_layer->is_tensor()) {
    return absl::NotFoundError(absl::StrCat(what, " has no layer ", layer));
  }
  const io::PtValue* v = per_layer->find(io::PtKey(token));
  if (v == nullptr) return absl::NotFoundError(absl::StrCat(what, " has no token '", token, "' at layer ", layer));
  if (!v->is_tensor()) return absl::InvalidArgumentError(absl::StrCat(what, ": '", token, "' is not a vector"));
  return &v->tensor();
}

inline absl::StatusOr<Fig5Panel> ComputeFig5Panel(const Fig5Inputs& in, int64_t layer) {
  auto x_axis = Leaf(*in.x_axes, layer, in.token, in.x_name);
  if (!x_axis.ok()) return x_axis.status();
  auto y_axis = Leaf(*in.y_axes, layer, in.token, in.y_name);
  if (!y_axis.ok()) return y_axis.status();
  const io::PtValue* per_layer = in.ids->find(io::PtKey(layer));
  if (per_layer == nullptr || per_layer->is_tensor()) {
    return absl::NotFoundError(absl::StrCat(in.ids_name, " has no layer ", layer));
  }
  const io::PtValue* per_key = per_layer->find(io::PtKey(in.token));
  if (per_key == nullptr || per_key->is_tensor()) {
    return absl::NotFoundError(absl::StrCat(in.ids_name, " has no token '", in.token, "' at layer ", layer));
  }
  // Double precision: the plane and the variance ratio are small differences
  // of large sums in high dimensions.
  const at::Tensor xa = x_axis.value()->to(at::kDouble);
  const at::Tensor ya = y_axis.value()->to(at::kDouble);
  const double xn = std::sqrt(at::dot(xa, xa).item<double>());
  if (!(xn > 0)) return absl::FailedPreconditionError(absl::StrCat("x axis of layer ", layer, " is zero"));
  const at::Tensor u = xa / xn;
  const at::Tensor y_perp = ya - at::dot(ya, u) * u;
  const double yn = std::sqrt(at::dot(y_perp, y_perp).item<double>());
  if (!(yn > 0)) {
    return absl::FailedPreconditionError(absl::StrCat("y axis of layer ", layer, " is parallel to the x axis"));
  }
  const at::Tensor v = y_perp / yn;

  Fig5Panel panel;
  panel.layer = layer;
  std::vector<at::Tensor> vecs;
  for (int64_t x = 0; x < in.grid; ++x) {
    for (int64_t y = 0; y < in.grid; ++y) {
      const io::PtValue* e = per_key->find(io::PtKey::Tuple(x, y, in.size));
      if (e == nullptr || !e->is_tensor()) {
        return absl::NotFoundError(absl::StrCat(in.ids_name, " has no cell (", x, ", ", y, ", ", in.size,
                                                ") for '", in.token, "' at layer ", layer));
      }
      const at::Tensor d = e->tensor().to(at::kDouble);
      vecs.push_back(d);
      panel.ids.push_back({absl::StrCat("(", x, ", ", y, ")"), x, y, at::dot(d, u).item<double>(),
                           at::dot(d, v).item<double>()});
    }
  }
  const at::Tensor stack = at::stack(vecs);  // [16, D]
  const at::Tensor centred = stack - stack.mean(0, /*keepdim=*/true);
  const double total = (centred * centred).sum().item<double>();
  const at::Tensor pu = at::matmul(centred, u), pv = at::matmul(centred, v);
  const double along = (pu * pu).sum().item<double>() + (pv * pv).sum().item<double>();
  panel.explained_variance = total > 0 ? along / total : 0.0;

  if (in.text != nullptr) {
    for (const auto& [label, token] : in.text_tokens) {
      auto t = Leaf(*in.text, layer, token, in.text_name);
      if (!t.ok()) return t.status();
      const at::Tensor d = t.value()->to(at::kDouble);
      panel.text.push_back({label, -1, -1, at::dot(d, u).item<double>(), at::dot(d, v).item<double>()});
    }
  }
  return panel;
}

}  // namespace spatialid::figure
