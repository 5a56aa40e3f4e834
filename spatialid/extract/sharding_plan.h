// Which part of a batch extraction a process runs, and where its files go:
// the shard from flags or from the launcher's environment (torchrun, Slurm
// srun, Slurm job arrays), the deterministic plan of work units it covers,
// the shard folder's paths, and cheap fingerprints (FNV-1a) of the settings
// shards must share. No libtorch: sharding.h writes and merges the states.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

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

// The CUDA device index of a launcher's local rank. torchrun and a plain
// srun leave every GPU of the node visible: cuda:LOCAL_RANK. Launchers that
// bind GPUs to tasks (Slurm's --gpus-per-task or --gpu-bind) leave each
// process a shorter CUDA_VISIBLE_DEVICES list, often of one: the rank wraps
// around the devices it can see (cuda:0 there).
inline int LocalCudaIndex(int local_rank) {
  const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
  if (visible == nullptr || *visible == '\0') return local_rank;
  int devices = 1;
  for (const char* c = visible; *c != '\0'; ++c) devices += *c == ',';
  return local_rank % devices;
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

// 64-bit FNV-1a: identities of settings that are too long to compare
// whole (a model's weights, a run's layout list), not a defence against
// forgery.
class Fnv1a {
 public:
  void Add(const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) h_ = (h_ ^ p[i]) * 0x100000001b3ULL;  // FNV 64 prime
  }
  void Add(const std::string& s) { Add(s.data(), s.size() + 1); }
  std::string Hex() const {
    char hex[17];
    std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(h_));
    return hex;
  }

 private:
  uint64_t h_ = 0xcbf29ce484222325ULL;  // FNV-1a 64 offset basis
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
    for (uintmax_t offset : starts) {
      in.clear();
      in.seekg(static_cast<std::streamoff>(offset));
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

inline std::string ShardFolder(const std::string& out_dir, const std::string& model, int index,
                               int count) {
  return (std::filesystem::path(ShardDir(out_dir, model)) / ShardName(index, count)).string();
}

}  // namespace spatialid::extract
