// Splitting a batch extraction over processes, GPUs and nodes, and merging
// the parts back into the files one process would have written.
//
// A run is cut into work units: each pair's layouts, split into
// ceil(N / pairs) contiguous chunks when there are more shards N than pairs,
// dealt round-robin to the shards. Shard K writes, for each of its units,
// the pair accumulator's state (fp32 sums and counts, not means) to
//   {out}/.shards/{model}/shard-K-of-N/{a}_{b}.{begin}-{end}.pt
// and then, last, the manifest {out}/.shards/{model}/shard-K-of-N.json
// (what it covers and the settings that must match across shards). Every
// file is written whole under a temporary name and renamed, so a manifest
// that exists means a complete shard; a killed shard is rerun alone.
// MergeShards checks that all N manifests exist, agree and tile every
// pair's layouts exactly once, then writes the per-pair, universal and axis
// files of a single run (equal to fp32 rounding: only the order of the
// additions differs).
//
// The shard comes from flags or from the launcher's environment: torchrun
// (RANK, WORLD_SIZE, LOCAL_RANK), Slurm srun (SLURM_PROCID, SLURM_NTASKS,
// SLURM_LOCALID) and Slurm job arrays (SLURM_ARRAY_TASK_ID minus
// SLURM_ARRAY_TASK_MIN, SLURM_ARRAY_TASK_COUNT; combined with srun's tasks
// when both are set).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "spatialid/extract/spatial_id.h"
#include "spatialid/extract/spatial_id_files.h"
#include "spatialid/io/atomic_output_file.h"
#include "spatialid/util/status.h"

namespace spatialid::extract {

struct ShardSpec {
  int index = 0;
  int count = 1;
  std::optional<int> local_rank;  // the launcher's per-node rank: picks cuda:N
  std::string from;               // "flags", "torchrun", "slurm", "slurm array"
};

namespace sharding_internal {
inline std::optional<long> EnvInt(const char* name) {
  const char* v = std::getenv(name);
  long out = 0;
  if (v == nullptr || *v == '\0' || !absl::SimpleAtoi(v, &out)) return std::nullopt;
  return out;
}
}  // namespace sharding_internal

// Explicit flags (shard >= 0 or num_shards > 0) win over the environment;
// no flags and no launcher variables: no sharding (nullopt).
inline absl::StatusOr<std::optional<ShardSpec>> ResolveShard(int flag_shard, int flag_num_shards) {
  using sharding_internal::EnvInt;
  ShardSpec s;
  if (flag_shard >= 0 || flag_num_shards > 0) {
    if (flag_num_shards <= 0 || flag_shard < 0 || flag_shard >= flag_num_shards) {
      return absl::InvalidArgumentError(absl::StrCat("--shard=", flag_shard, " --num_shards=",
                                                     flag_num_shards,
                                                     ": expected both, with 0 <= shard < num_shards"));
    }
    s.index = flag_shard;
    s.count = flag_num_shards;
    s.from = "flags";
    if (auto l = EnvInt("LOCAL_RANK")) s.local_rank = static_cast<int>(*l);
    return std::optional<ShardSpec>(s);
  }
  if (auto rank = EnvInt("RANK"), world = EnvInt("WORLD_SIZE"); rank && world) {
    s.index = static_cast<int>(*rank);
    s.count = static_cast<int>(*world);
    s.from = "torchrun";
    if (auto l = EnvInt("LOCAL_RANK")) s.local_rank = static_cast<int>(*l);
  } else if (auto task = EnvInt("SLURM_ARRAY_TASK_ID"), tasks = EnvInt("SLURM_ARRAY_TASK_COUNT");
             task && tasks) {
    const long first = EnvInt("SLURM_ARRAY_TASK_MIN").value_or(0);
    const long procs = std::max(1L, EnvInt("SLURM_NTASKS").value_or(1));
    s.index = static_cast<int>((*task - first) * procs + EnvInt("SLURM_PROCID").value_or(0));
    s.count = static_cast<int>(*tasks * procs);
    s.from = "slurm array";
    if (auto l = EnvInt("SLURM_LOCALID")) s.local_rank = static_cast<int>(*l);
  } else if (auto proc = EnvInt("SLURM_PROCID"), ntasks = EnvInt("SLURM_NTASKS");
             proc && ntasks && *ntasks > 1) {
    s.index = static_cast<int>(*proc);
    s.count = static_cast<int>(*ntasks);
    s.from = "slurm";
    if (auto l = EnvInt("SLURM_LOCALID")) s.local_rank = static_cast<int>(*l);
  } else {
    return std::optional<ShardSpec>();
  }
  if (s.count <= 0 || s.index < 0 || s.index >= s.count) {
    return absl::InvalidArgumentError(absl::StrCat("shard ", s.index, " of ", s.count, " from the ",
                                                   s.from, " environment is out of range"));
  }
  return std::optional<ShardSpec>(s);
}

// A contiguous range [begin, end) of one pair's layouts (indices into its
// list, not into the image source).
struct ShardUnit {
  size_t pair = 0;
  size_t begin = 0, end = 0;
};

// The units of shard `spec` for pairs with these layout counts; the same
// inputs give the same plan in every process.
inline std::vector<ShardUnit> PlanShard(const std::vector<size_t>& pair_sizes,
                                        const ShardSpec& spec) {
  std::vector<ShardUnit> out;
  if (pair_sizes.empty()) return out;
  const size_t n = static_cast<size_t>(spec.count);
  const size_t chunks = std::max<size_t>(1, (n + pair_sizes.size() - 1) / pair_sizes.size());
  for (size_t p = 0; p < pair_sizes.size(); ++p) {
    for (size_t c = 0; c < chunks; ++c) {
      if ((p * chunks + c) % n != static_cast<size_t>(spec.index)) continue;
      out.push_back({p, pair_sizes[p] * c / chunks, pair_sizes[p] * (c + 1) / chunks});
    }
  }
  return out;
}

inline std::string ShardDir(const std::string& out_dir, const std::string& model) {
  return (std::filesystem::path(out_dir) / ".shards" / model).string();
}
inline std::string ShardName(int index, int count) {
  return absl::StrCat("shard-", index, "-of-", count);
}
inline std::string ShardManifestPath(const std::string& out_dir, const std::string& model,
                                     int index, int count) {
  return (std::filesystem::path(ShardDir(out_dir, model)) / (ShardName(index, count) + ".json"))
      .string();
}
inline std::string ShardUnitPath(const std::string& out_dir, const std::string& model, int index,
                                 int count, const std::string& pair, size_t begin, size_t end) {
  return (std::filesystem::path(ShardDir(out_dir, model)) / ShardName(index, count) /
          absl::StrCat(pair, ".", begin, "-", end, ".pt"))
      .string();
}

inline absl::Status WriteTextAtomically(const std::string& path, const std::string& text) {
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  SPATIALID_ASSIGN_OR_RETURN(io::AtomicOutputFile out, io::AtomicOutputFile::Create(path));
  SPATIALID_RETURN_IF_ERROR(out.Write(text.data(), text.size()));
  return out.Commit();
}

inline const char* DtypeName(at::ScalarType t) {
  return t == at::kHalf ? "float16" : t == at::kBFloat16 ? "bfloat16" : "float32";
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
  return WriteTextAtomically(ShardManifestPath(out_dir, model, spec.index, spec.count),
                             m.dump(1) + "\n");
}

// Merges every shard of {out}/.shards/{model} into the files of one run.
inline absl::Status MergeShards(const std::string& out_dir, const std::string& model,
                                const AxisOptions& axes, bool quiet = false) {
  const std::string dir = ShardDir(out_dir, model);
  std::error_code ec;
  std::optional<int> count;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string f = e.path().filename().string();
    int k = 0, n = 0;
    char tail[8] = {0};
    if (std::sscanf(f.c_str(), "shard-%d-of-%d.%5s", &k, &n, tail) == 3 &&
        std::string(tail) == "json") {
      if (count && *count != n) {
        return absl::FailedPreconditionError(absl::StrCat(
            dir, ": shards of different splits (", *count, " and ", n,
            " shards); remove the stale ones and rerun"));
      }
      count = n;
    }
  }
  if (ec) return absl::NotFoundError(absl::StrCat(dir, ": no shard folder (", ec.message(), ")"));
  if (!count) return absl::NotFoundError(absl::StrCat(dir, ": no shard manifest shard-K-of-N.json"));
  std::vector<nlohmann::json> manifests;
  for (int k = 0; k < *count; ++k) {
    const std::string path = ShardManifestPath(out_dir, model, k, *count);
    std::ifstream in(path);
    if (!in) {
      return absl::NotFoundError(absl::StrCat("shard ", k, " of ", *count, " is missing (", path,
                                              " not found): rerun it with --shard=", k,
                                              " --num_shards=", *count));
    }
    nlohmann::json m = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (m.is_discarded() || m.value("format", "") != "spatialid-shard-1") {
      return absl::DataLossError(absl::StrCat(path, ": not a spatialid shard manifest"));
    }
    if (!manifests.empty()) {
      for (const char* field : {"config", "pairs"}) {
        if (m[field] != manifests[0][field]) {
          return absl::FailedPreconditionError(absl::StrCat(
              "shard ", k, " of ", *count, " (", path, ") was run with a different ", field,
              " than shard 0: ", m[field].dump(), " vs ", manifests[0][field].dump()));
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
  UniversalIdAccumulator universal;
  for (const auto& p : manifests[0]["pairs"]) {
    const std::string name = p["pair"].get<std::string>();
    const size_t n = p["layouts"].get<size_t>();
    auto& r = ranges[name];
    std::sort(r.begin(), r.end());
    size_t at = 0;
    std::optional<PairIdAccumulator> acc;
    for (const auto& [range, k] : r) {
      if (range.first != at) {
        return absl::FailedPreconditionError(absl::StrCat(
            "pair ", name, ": layouts ", std::min(at, range.first), "..", range.first,
            " are covered by no shard or twice (shard ", k, " of ", *count, ")"));
      }
      at = range.second;
      if (range.first == range.second) continue;
      const std::string path =
          ShardUnitPath(out_dir, model, k, *count, name, range.first, range.second);
      SPATIALID_ASSIGN_OR_RETURN(PairIdAccumulator part, LoadPairIdState(path));
      if (!acc) {
        acc = std::move(part);
      } else {
        SPATIALID_RETURN_IF_ERROR(acc->Merge(part));
      }
    }
    if (at != n || !acc) {
      return absl::FailedPreconditionError(
          absl::StrCat("pair ", name, ": the shards cover ", at, " of its ", n, " layouts"));
    }
    SPATIALID_ASSIGN_OR_RETURN(io::PtDict ids, acc->Result(dtype));
    const std::string a = p["a"].get<std::string>(), b = p["b"].get<std::string>();
    SPATIALID_RETURN_IF_ERROR(WriteIdsFile(PairIdPath(out_dir, a, b, model), ids));
    SPATIALID_RETURN_IF_ERROR(universal.AddPairIds(ids, PairIdPath(out_dir, a, b, model)));
  }
  SPATIALID_ASSIGN_OR_RETURN(io::PtDict ids, universal.Result(dtype));
  SPATIALID_RETURN_IF_ERROR(WriteIdsFile(UniversalIdPath(out_dir, model), ids));
  SPATIALID_ASSIGN_OR_RETURN(Axes ax, ComputeAxes(ids, axes));
  SPATIALID_RETURN_IF_ERROR(WriteAxes((std::filesystem::path(out_dir) / model).string(), ax));
  if (!quiet) {
    std::fprintf(stderr, "merge_shards: merged %d shards of %s into %s\n", *count, model.c_str(),
                 out_dir.c_str());
  }
  return absl::OkStatus();
}

}  // namespace spatialid::extract
