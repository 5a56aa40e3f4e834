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
// is there, before it writes the per-pair, universal and axis files of a
// single run (equal to fp32 rounding: only the order of the additions
// differs).
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
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
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
    // --array=0-15:2 numbers its tasks 0, 2, 4...: the shard is the task's
    // position in the range. Lists such as --array=1,5,7 have no such
    // position and are refused.
    const long first = EnvInt("SLURM_ARRAY_TASK_MIN").value_or(0);
    const long step = std::max(1L, EnvInt("SLURM_ARRAY_TASK_STEP").value_or(1));
    if ((*task - first) % step != 0 || (*task - first) / step >= *tasks) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Slurm array task ", *task, " is not in the range ", first, "-",
          first + (*tasks - 1) * step, ":", step,
          " (sharding needs an evenly stepped --array such as 0-15 or 0-30:2)"));
    }
    // Within an srun step each task of the array task is a shard of its own;
    // the batch script itself (no step: SLURM_STEP_ID unset) is one shard.
    const bool in_step = EnvInt("SLURM_STEP_ID").has_value();
    const long procs = in_step ? std::max(1L, EnvInt("SLURM_NTASKS").value_or(1)) : 1;
    s.index = static_cast<int>((*task - first) / step * procs +
                               (in_step ? EnvInt("SLURM_PROCID").value_or(0) : 0));
    s.count = static_cast<int>(*tasks * procs);
    s.from = "slurm array";
    if (auto l = EnvInt("SLURM_LOCALID")) s.local_rank = static_cast<int>(*l);
  } else if (auto proc = EnvInt("SLURM_PROCID"), ntasks = EnvInt("SLURM_NTASKS");
             proc && ntasks && *ntasks > 1 && EnvInt("SLURM_STEP_ID").has_value()) {
    // Only inside an srun step: the batch script of an -n 4 job also sees
    // SLURM_PROCID=0 and SLURM_NTASKS=4, but it is no shard.
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

// 64-bit FNV-1a: identities of settings that are too long to compare
// whole (a model's weights, a run's layout list), not a defence against
// forgery.
class Fnv1a {
 public:
  void Add(const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) h_ = (h_ ^ p[i]) * 1099511628211ULL;
  }
  void Add(const std::string& s) { Add(s.data(), s.size() + 1); }
  std::string Hex() const {
    char hex[17];
    std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(h_));
    return hex;
  }

 private:
  uint64_t h_ = 1469598103934665603ULL;
};

// A cheap identity of a checkpoint folder, for telling shards of different
// models apart: FNV-1a over config.json and, for each weight file
// (*.safetensors, *.bin, sorted by name), its name, size and 64 KiB from its
// start, middle and end. The start holds the header (every tensor's name,
// shape and offset); the samples tell two seeds of the same architecture
// apart. A full hash would read 15-30 GB per model in every shard. The folder's
// path is not part of it, so nodes may mount the model at different places.
inline std::string ModelFingerprint(const std::string& model_dir) {
  Fnv1a h;
  std::vector<std::filesystem::path> files;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(model_dir, ec)) {
    const std::string f = e.path().filename().string();
    const std::string ext = e.path().extension().string();
    if (f == "config.json" || ext == ".safetensors" || ext == ".bin") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  constexpr size_t kSample = 64 << 10;
  std::vector<char> buf(kSample);
  for (const auto& path : files) {
    const std::string f = path.filename().string();
    h.Add(f.data(), f.size() + 1);
    const uintmax_t size = std::filesystem::file_size(path, ec);
    if (ec) continue;
    h.Add(&size, sizeof(size));
    std::ifstream in(path, std::ios::binary);
    const bool whole = f == "config.json" || size <= 3 * kSample;
    const std::vector<uintmax_t> starts =
        whole ? std::vector<uintmax_t>{0}
              : std::vector<uintmax_t>{0, size / 2 - kSample / 2, size - kSample};
    for (uintmax_t at : starts) {
      in.clear();
      in.seekg(static_cast<std::streamoff>(at));
      if (whole) {
        std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        h.Add(all.data(), all.size());
      } else {
        in.read(buf.data(), static_cast<std::streamsize>(kSample));
        h.Add(buf.data(), static_cast<size_t>(in.gcount()));
      }
    }
  }
  return h.Hex();
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

inline std::string ShardFolder(const std::string& out_dir, const std::string& model, int index,
                               int count) {
  return (std::filesystem::path(ShardDir(out_dir, model)) / ShardName(index, count)).string();
}

// Called before a shard computes anything. Its folder records the settings it
// was started with (run.json): a rerun after a kill resumes from the unit
// files already written only when the settings are the same, since those
// files hold no settings of their own; different settings are refused
// rather than mixed. `overwrite` empties the folder and the manifest first.
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
    return absl::OkStatus();
  }
  return WriteTextAtomically(record.string(), config.dump(1) + "\n");
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
// Every refusal is one line that starts with the shard's folder or manifest
// and says what is wrong and how to fix it.
inline absl::Status MergeShards(const std::string& out_dir, const std::string& model,
                                const AxisOptions& axes, bool quiet = false) {
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
  UniversalIdAccumulator universal;
  for (size_t i = 0; i < unit_files.size(); ++i) {
    const auto& p = manifests[0]["pairs"][i];
    std::optional<PairIdAccumulator> acc;
    for (const auto& [path, k] : unit_files[i]) {
      absl::StatusOr<PairIdAccumulator> part = LoadPairIdState(path);
      absl::Status merged = part.status();
      if (part.ok() && acc) merged = acc->Merge(*part);
      if (!merged.ok()) {
        return absl::DataLossError(absl::StrCat(
            ShardFolder(out_dir, model, k, *count), ": shard ", k, " of ", *count,
            " has a bad unit file (", merged.message(), "); rerun it with --shard=", k,
            " --num_shards=", *count, " --overwrite"));
      }
      if (!acc) acc = std::move(*part);
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
