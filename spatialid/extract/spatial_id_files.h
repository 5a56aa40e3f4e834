// Where spatial-ID outputs go and how they are written (docs/reference_pipeline.md
// sections 4 to 7 and 9): the same paths and structures as the reference,
// as .pt files that `torch.load(path, weights_only=True)` reads.
//
//   {out}/{a}_{b}/{model}.pt   per-pair IDs  {layer: {token: {(x, y, s): [D]}}}
//   {out}/{model}.pt           universal IDs {layer: {"universal": {(x, y, s): [D]}}}
//   {prefix}_x.pt, _y.pt       axes          {layer: {token: [D]}}
//
// Partial accumulator states (for runs split into shards) are .pt files
// too; loading two shards' states and merging them gives the same IDs as
// one run. Every write is atomic and creates the folders it needs.
//
// Example:
//   SPATIALID_RETURN_IF_ERROR(WritePairIds(out, "camel", "frog", "llava-7b", acc, at::kHalf));
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <utility>

#include <ATen/core/Tensor.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "spatialid/extract/spatial_id_axes.h"
#include "spatialid/extract/spatial_id_pair.h"
#include "spatialid/extract/spatial_id_universal.h"
#include "spatialid/io/torch_file_dict.h"
#include "spatialid/io/torch_file_reader.h"
#include "spatialid/io/torch_file_writer.h"

namespace spatialid::extract {

inline std::string PairIdPath(const std::string& out_dir, std::string_view a, std::string_view b,
                              std::string_view model) {
  return (std::filesystem::path(out_dir) / absl::StrCat(std::string(a), "_", std::string(b)) /
          absl::StrCat(std::string(model), ".pt"))
      .string();
}

inline std::string UniversalIdPath(const std::string& out_dir, std::string_view model) {
  return (std::filesystem::path(out_dir) / absl::StrCat(std::string(model), ".pt")).string();
}

// {prefix}_x.pt and {prefix}_y.pt.
inline std::pair<std::string, std::string> AxisPaths(const std::string& prefix) {
  return {prefix + "_x.pt", prefix + "_y.pt"};
}

// Writes `dict` to `path`, creating the parent folders first.
inline absl::Status WriteIdsFile(const std::string& path, const io::PtDict& dict) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    if (ec) {
      return absl::PermissionDeniedError(
          absl::StrCat("cannot create folder ", parent.string(), " for ", path, ": ", ec.message()));
    }
  }
  return io::WriteTorchFile(path, dict);
}

inline absl::Status WritePairIds(const std::string& out_dir, std::string_view a,
                                 std::string_view b, std::string_view model,
                                 const PairIdAccumulator& acc, at::ScalarType dtype) {
  auto ids = acc.Result(dtype);
  if (!ids.ok()) return ids.status();
  return WriteIdsFile(PairIdPath(out_dir, a, b, model), *ids);
}

inline absl::Status WriteUniversalIds(const std::string& out_dir, std::string_view model,
                                      const UniversalIdAccumulator& acc, at::ScalarType dtype) {
  auto ids = acc.Result(dtype);
  if (!ids.ok()) return ids.status();
  return WriteIdsFile(UniversalIdPath(out_dir, model), *ids);
}

inline absl::Status WriteAxes(const std::string& prefix, const Axes& axes) {
  const auto [x_path, y_path] = AxisPaths(prefix);
  absl::Status s = WriteIdsFile(x_path, axes.x);
  if (!s.ok()) return s;
  return WriteIdsFile(y_path, axes.y);
}

// ---- partial states of sharded runs ----

inline absl::Status SaveState(const std::string& path, const PairIdAccumulator& acc) {
  return WriteIdsFile(path, acc.State());
}
inline absl::Status SaveState(const std::string& path, const UniversalIdAccumulator& acc) {
  return WriteIdsFile(path, acc.State());
}

inline absl::StatusOr<PairIdAccumulator> LoadPairIdState(const std::string& path,
                                                         at::Device device = at::kCPU) {
  auto d = io::ReadTorchDict(path);
  if (!d.ok()) return d.status();
  return PairIdAccumulator::FromState(*d, path, device);
}

inline absl::StatusOr<UniversalIdAccumulator> LoadUniversalIdState(const std::string& path,
                                                                   at::Device device = at::kCPU) {
  auto d = io::ReadTorchDict(path);
  if (!d.ok()) return d.status();
  return UniversalIdAccumulator::FromState(*d, path, device);
}

}  // namespace spatialid::extract
