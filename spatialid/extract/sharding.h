// Splitting a batch extraction over processes, GPUs and nodes, and merging
// the parts back into the files one process would have written.
//
// A run is cut into work units: each pair's layouts, split into
// ceil(N / pairs) contiguous chunks when there are more shards N than pairs,
// dealt round-robin to the shards. Shard K first records its settings in
//   {out}/.shards/{model}/shard-K-of-N/run.json
// (BeginShard: a rerun with other settings is refused, never mixed in),
// writes, for each of its units, the pair accumulator's state (fp32 sums
// and counts, not means) to
//   {out}/.shards/{model}/shard-K-of-N/{a}_{b}.{begin}-{end}.pt
// and then, last, the manifest {out}/.shards/{model}/shard-K-of-N.json
// (what it covers and the settings that must match across shards, with
// fingerprints of the model's weights and of the layout list). Every file is
// written whole under a temporary name and renamed, so a manifest that
// exists means a complete shard; a killed shard is rerun alone and resumes
// from its finished units. MergeShards checks that all N manifests exist,
// agree and tile every pair's layouts exactly once, and that every unit file
// is there and readable with the same layers and vector size, before it
// writes the per-pair, universal and axis files of a single run (equal to
// fp32 rounding: only the order of the additions differs).
//
// The shard comes from flags or from the launcher's environment: torchrun
// (RANK, WORLD_SIZE, LOCAL_RANK), Slurm srun (SLURM_PROCID, SLURM_NTASKS,
// SLURM_LOCALID inside a step) and Slurm job arrays (the task's position in
// SLURM_ARRAY_TASK_MIN..MAX by SLURM_ARRAY_TASK_STEP, of
// SLURM_ARRAY_TASK_COUNT; combined with srun's tasks when it runs in a step).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "spatialid/extract/sharding_plan.h"
#include "spatialid/extract/spatial_id.h"
#include "spatialid/extract/spatial_id_files.h"
#include "spatialid/io/atomic_output_file.h"
#include "spatialid/io/stale_temporaries.h"
#include "spatialid/util/status.h"

namespace spatialid::extract {

inline const char* DtypeName(at::ScalarType t) {
  return t == at::kHalf ? "float16" : t == at::kBFloat16 ? "bfloat16" : "float32";
}

namespace sharding_internal {
// "key a vs b" for each top-level key whose values differ, values cut to
// 60 characters, so a mismatch fits on one line.
inline std::string DescribeDifference(const nlohmann::json& ours, const nlohmann::json& theirs) {
  auto shortened = [](const nlohmann::json& v) {
    std::string s = v.is_null() ? "(unset)" : v.dump();
    return s.size() > 60 ? s.substr(0, 57) + "..." : s;
  };
  std::vector<std::string> parts;
  if (ours.is_object() && theirs.is_object()) {
    std::map<std::string, int> keys;
    for (const auto& [k, v] : ours.items()) keys[k] |= 1;
    for (const auto& [k, v] : theirs.items()) keys[k] |= 2;
    for (const auto& [k, present] : keys) {
      const nlohmann::json a = ours.contains(k) ? ours[k] : nlohmann::json();
      const nlohmann::json b = theirs.contains(k) ? theirs[k] : nlohmann::json();
      if (a != b) parts.push_back(absl::StrCat(k, " ", shortened(a), " vs ", shortened(b)));
    }
  } else if (ours.is_array() && theirs.is_array()) {
    if (ours.size() != theirs.size()) {
      parts.push_back(absl::StrCat(ours.size(), " vs ", theirs.size(), " entries"));
    }
    for (size_t i = 0; i < std::min(ours.size(), theirs.size()); ++i) {
      if (ours[i] != theirs[i]) {
        parts.push_back(absl::StrCat("first difference ", shortened(ours[i]), " vs ",
                                     shortened(theirs[i])));
        break;
      }
    }
  }
  if (parts.empty()) parts.push_back(absl::StrCat(shortened(ours), " vs ", shortened(theirs)));
  std::string out;
  for (const std::string& p : parts) out += (out.empty() ? "" : "; ") + p;
  return out;
}
}  // namespace sharding_internal

// Called before a shard computes anything. Its folder records the settings it
// was started with (run.json): a rerun after a kill resumes from the unit
// files already written only when the settings are the same, since those
// files hold no settings of their own; different settings are refused
// rather than mixed. `overwrite` empties the folder and the manifest first.
// A resumed shard also removes the temporaries its killed run left (every
// file in its own folder is its own; beside the manifests only its own
// manifest's), so the merge never sees them.
inline absl::Status BeginShard(const std::string& out_dir, const std::string& model,
                               const ShardSpec& spec, const nlohmann::json& config,
                               bool overwrite) {
  const std::filesystem::path folder = ShardFolder(out_dir, model, spec.index, spec.count);
  const std::filesystem::path record = folder / "run.json";
  std::error_code ec;
  if (overwrite) {
    std::filesystem::remove(ShardManifestPath(out_dir, model, spec.index, spec.count), ec);
    std::filesystem::remove_all(folder, ec);
    if (ec) {
      return absl::PermissionDeniedError(
          absl::StrCat(folder.string(), ": cannot empty it for --overwrite (", ec.message(), ")"));
    }
  } else if (std::ifstream in(record); in) {
    const nlohmann::json before = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (before != config) {
      return absl::FailedPreconditionError(absl::StrCat(
          folder.string(), ": holds the partial results of a run with other settings (this "
          "run vs the folder's: ",
          before.is_discarded() ? std::string("unreadable run.json")
                                : sharding_internal::DescribeDifference(config, before),
          "); rerun with --overwrite or remove the folder"));
    }
    const std::string manifest =
        std::filesystem::path(ShardManifestPath(out_dir, model, spec.index, spec.count))
            .filename()
            .string();
    SPATIALID_ASSIGN_OR_RETURN(
        int removed, io::RemoveStaleTemporaries(folder.string(), 0, [](std::string_view) { return true; }));
    SPATIALID_ASSIGN_OR_RETURN(
        int removed_manifest,
        io::RemoveStaleTemporaries(ShardDir(out_dir, model), 0,
                                   [&](std::string_view final_name) { return final_name == manifest; }));
    if (removed + removed_manifest > 0) {
      std::fprintf(stderr, "removed %d temporary file%s of the interrupted shard from %s\n",
                   removed + removed_manifest, removed + removed_manifest == 1 ? "" : "s",
                   folder.string().c_str());
    }
    return absl::OkStatus();
  }
  return io::WriteFileAtomically(record.string(), config.dump(1) + "\n");
}

// Writes shard `spec`'s manifest. `config` holds the settings every shard
// must share; `pairs` every pair of the run with its layout count.
inline absl::Status WriteShardManifest(const std::string& out_dir, const std::string& model,
                                       const ShardSpec& spec, const nlohmann::json& config,
                                       const std::vector<std::tuple<std::string, std::string, size_t>>& pairs,
                                       const std::vector<ShardUnit>& units) {
  nlohmann::json m;
  m["format"] = "spatialid-shard-1";
  m["shard"] = spec.index;
  m["num_shards"] = spec.count;
  m["config"] = config;
  nlohmann::json jp = nlohmann::json::array();
  for (const auto& [a, b, n] : pairs) {
    jp.push_back({{"pair", absl::StrCat(a, "_", b)}, {"a", a}, {"b", b}, {"layouts", n}});
  }
  m["pairs"] = jp;
  nlohmann::json ju = nlohmann::json::array();
  for (const ShardUnit& u : units) {
    ju.push_back({{"pair", absl::StrCat(std::get<0>(pairs[u.pair]), "_", std::get<1>(pairs[u.pair]))}, {"begin", u.begin}, {"end", u.end}});
  }
  m["units"] = ju;
  return io::WriteFileAtomically(ShardManifestPath(out_dir, model, spec.index, spec.count),
                             m.dump(1) + "\n");
}

namespace sharding_internal {
inline absl::Status BadUnitFile(const std::string& out_dir, const std::string& model, int k,
                                int count, const absl::Status& why) {
  return absl::DataLossError(absl::StrCat(
      ShardFolder(out_dir, model, k, count), ": shard ", k, " of ", count, " has a bad unit file (",
      why.message(), "); rerun it with --shard=", k, " --num_shards=", count, " --overwrite"));
}
}  // namespace sharding_internal

// Merges every shard of {out}/.shards/{model} into the files of one run.
// Every refusal is one line that starts with the shard's folder or manifest
// and says what is wrong and how to fix it. `axes`: the x/y axis options;
// none: those the shards were run with (their --axis_size, --strict_axes).
inline absl::Status MergeShards(const std::string& out_dir, const std::string& model,
                                const std::optional<AxisOptions>& axes, bool quiet = false) {
  const std::string dir = ShardDir(out_dir, model);
  std::error_code ec;
  std::optional<int> count;
  std::string count_from;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string f = e.path().filename().string();
    int k = 0, n = 0;
    char tail[8] = {0};
    if (std::sscanf(f.c_str(), "shard-%d-of-%d.%5s", &k, &n, tail) == 3 &&
        std::string(tail) == "json") {
      if (count && *count != n) {
        return absl::FailedPreconditionError(absl::StrCat(
            dir, ": holds shards of two different splits (", count_from, " and ", f,
            "); remove the stale split's shard-K-of-N files and folders and rerun"));
      }
      count = n;
      count_from = f;
    }
  }
  if (ec) return absl::NotFoundError(absl::StrCat(dir, ": no shard folder (", ec.message(), ")"));
  if (!count) {
    return absl::NotFoundError(absl::StrCat(
        dir, ": no finished shard (no shard-K-of-N.json manifest); run the shards first"));
  }
  std::vector<nlohmann::json> manifests;
  for (int k = 0; k < *count; ++k) {
    const std::string path = ShardManifestPath(out_dir, model, k, *count);
    const std::string folder = ShardFolder(out_dir, model, k, *count);
    std::ifstream in(path);
    if (!in) {
      int units = 0;
      for (const auto& e : std::filesystem::directory_iterator(folder, ec)) {
        if (e.path().extension() == ".pt") ++units;
      }
      const std::string rerun = absl::StrCat("--shard=", k, " --num_shards=", *count);
      if (std::filesystem::is_directory(folder, ec)) {
        return absl::FailedPreconditionError(absl::StrCat(
            folder, ": shard ", k, " of ", *count, " is incomplete (", units,
            " unit file(s) but no manifest ", ShardName(k, *count),
            ".json: killed, failed or still running); rerun it alone with ", rerun,
            " (it resumes)"));
      }
      return absl::NotFoundError(absl::StrCat(folder, ": shard ", k, " of ", *count,
                                              " is missing (never run here, or run with another "
                                              "--out or --name); run it with ",
                                              rerun));
    }
    nlohmann::json m = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (m.is_discarded() || !m.is_object() || m.value("format", "") != "spatialid-shard-1" ||
        !m.contains("config") || !m["pairs"].is_array() || !m["units"].is_array()) {
      return absl::DataLossError(absl::StrCat(path, ": not a spatialid shard manifest"));
    }
    if (m.value("shard", -1) != k || m.value("num_shards", -1) != *count) {
      return absl::DataLossError(absl::StrCat(path, ": the manifest says shard ",
                                              m.value("shard", -1), " of ",
                                              m.value("num_shards", -1), ", not ", k, " of ",
                                              *count, " (a renamed file?)"));
    }
    if (!manifests.empty()) {
      for (const char* field : {"config", "pairs"}) {
        if (m[field] != manifests[0][field]) {
          return absl::FailedPreconditionError(absl::StrCat(
              path, ": shard ", k, " of ", *count, " comes from a different run than shard 0 (",
              field, " differ, shard ", k, " vs shard 0: ",
              sharding_internal::DescribeDifference(m[field], manifests[0][field]),
              "); rerun the wrong shards with the same flags and --overwrite"));
        }
      }
    }
    manifests.push_back(std::move(m));
  }
  const nlohmann::json& config = manifests[0]["config"];
  at::ScalarType dtype = at::kFloat;
  const std::string dt = config.value("dtype", "float32");
  if (dt == "float16") dtype = at::kHalf;
  if (dt == "bfloat16") dtype = at::kBFloat16;

  // Every pair's layouts covered exactly once.
  std::map<std::string, std::vector<std::pair<std::pair<size_t, size_t>, int>>> ranges;
  for (int k = 0; k < *count; ++k) {
    for (const auto& u : manifests[k]["units"]) {
      ranges[u["pair"].get<std::string>()].push_back(
          {{u["begin"].get<size_t>(), u["end"].get<size_t>()}, k});
    }
  }
  // First every pair's tiling and unit files, so that a refused merge
  // writes nothing; then the sums.
  std::vector<std::vector<std::pair<std::string, int>>> unit_files;
  for (const auto& p : manifests[0]["pairs"]) {
    const std::string name = p["pair"].get<std::string>();
    const size_t n = p["layouts"].get<size_t>();
    auto& r = ranges[name];
    std::sort(r.begin(), r.end());
    size_t at = 0;
    unit_files.emplace_back();
    for (const auto& [range, k] : r) {
      if (range.first != at) {
        return absl::FailedPreconditionError(absl::StrCat(
            dir, ": pair ", name, ": layouts ", std::min(at, range.first), "..",
            std::max(at, range.first), " are covered by no shard or twice (shard ", k, " of ",
            *count, "); the manifests do not tile the run"));
      }
      at = range.second;
      if (range.first == range.second) continue;
      const std::string path =
          ShardUnitPath(out_dir, model, k, *count, name, range.first, range.second);
      if (!std::filesystem::is_regular_file(path, ec)) {
        return absl::DataLossError(absl::StrCat(
            ShardFolder(out_dir, model, k, *count), ": shard ", k, " of ", *count,
            " lacks its unit file ", std::filesystem::path(path).filename().string(),
            " that its manifest lists; rerun it with --shard=", k, " --num_shards=", *count,
            " --overwrite"));
      }
      unit_files.back().emplace_back(path, k);
    }
    if (at != n || unit_files.back().empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat(dir, ": pair ", name, ": the shards cover ", at, " of its ", n, " layouts"));
    }
  }
  // Then every unit file's contents, one at a time (a run's units together
  // can be larger than memory): readable, a pair state, and of the same
  // layers and vector size as the first. A damaged unit found halfway
  // through the sums would leave some pair files of the merge written and
  // the rest not.
  std::optional<std::pair<std::vector<int64_t>, int64_t>> shape;
  for (const auto& pair_units : unit_files) {
    for (const auto& [path, k] : pair_units) {
      absl::StatusOr<PairIdAccumulator> part = LoadPairIdState(path);
      absl::Status bad = part.status();
      if (part.ok() && shape && (part->layers() != shape->first || part->dim() != shape->second)) {
        bad = absl::DataLossError(absl::StrCat(
            path, ": holds layers ", absl::StrJoin(part->layers(), ","), " of size ", part->dim(),
            ", the other units layers ", absl::StrJoin(shape->first, ","), " of size ",
            shape->second));
      }
      if (!bad.ok()) return sharding_internal::BadUnitFile(out_dir, model, k, *count, bad);
      if (!shape) shape.emplace(part->layers(), part->dim());
    }
  }
  UniversalIdAccumulator universal;
  for (size_t i = 0; i < unit_files.size(); ++i) {
    const auto& p = manifests[0]["pairs"][i];
    std::optional<PairIdAccumulator> acc;
    for (const auto& [path, k] : unit_files[i]) {
      absl::StatusOr<PairIdAccumulator> part = LoadPairIdState(path);
      absl::Status merged = part.status();
      if (part.ok() && acc) merged = acc->Merge(*part);
      if (!merged.ok()) return sharding_internal::BadUnitFile(out_dir, model, k, *count, merged);
      if (!acc) acc = std::move(*part);
    }
    SPATIALID_ASSIGN_OR_RETURN(io::PtDict ids, acc->Result(dtype));
    const std::string a = p["a"].get<std::string>(), b = p["b"].get<std::string>();
    SPATIALID_RETURN_IF_ERROR(WriteIdsFile(PairIdPath(out_dir, a, b, model), ids));
    SPATIALID_RETURN_IF_ERROR(universal.AddPairIds(ids, PairIdPath(out_dir, a, b, model)));
  }
  SPATIALID_ASSIGN_OR_RETURN(io::PtDict ids, universal.Result(dtype));
  SPATIALID_RETURN_IF_ERROR(WriteIdsFile(UniversalIdPath(out_dir, model), ids));
  AxisOptions axis_options;
  if (axes) {
    axis_options = *axes;
  } else {
    axis_options.size = config.value("axis_size", axis_options.size);
    axis_options.strict = config.value("strict_axes", axis_options.strict);
  }
  SPATIALID_ASSIGN_OR_RETURN(Axes ax, ComputeAxes(ids, axis_options));
  SPATIALID_RETURN_IF_ERROR(WriteAxes((std::filesystem::path(out_dir) / model).string(), ax));
  if (!quiet) {
    std::fprintf(stderr, "merge_shards: merged %d shards of %s into %s\n", *count, model.c_str(),
                 out_dir.c_str());
  }
  return absl::OkStatus();
}

}  // namespace spatialid::extract
