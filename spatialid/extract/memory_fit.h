// Whether a checkpoint's weights fit in memory in the chosen dtype, checked
// from the safetensors headers before a byte of weights is read.
//
// A 7B model in float32 takes 26+ GiB; on a 24 GiB machine the default
// `--dtype=auto` (float32 on the CPU) would load for minutes and then be
// killed by the kernel's out-of-memory killer, with no message at all. So
// the binaries add up the weights' elements from the headers (the files are
// mapped, only their header pages are read), price them in the dtype the run
// will load them in, and compare with what the device can give:
//   CPU   MemAvailable from /proc/meminfo, lowered to what a cgroup memory
//         limit leaves (v2 memory.max, v1 memory.limit_in_bytes, up the
//         hierarchy; reclaimable inactive page cache counts as free);
//   CUDA  the device's free memory from the CUDA runtime, looked up with
//         dlsym (no CUDA header or library needed); unknown means no check.
// The run must leave headroom for activations and the runtime itself
// (`kHeadroomFraction` of the weights, at least `kMinHeadroomBytes`). If the
// weights do not fit, one line says what they need, what is available and
// which `--dtype` would fit, e.g.
//   llava-7b weights need 25.1 GiB in float32 (+2.5 GiB headroom) but 22.9 GiB
//   are available (MemAvailable); --dtype=bfloat16 needs 12.6 GiB (+1.3 GiB)
// Names under an `lm_head.` are not counted: no family loads the LM head.
//
// No libtorch: dtypes are named as the flags spell them.
//
// Example:
//   SPATIALID_RETURN_IF_ERROR(CheckWeightsFitMemory(model_dir, "llava-7b", "float32",
//                                                   /*cuda_index=*/std::nullopt));
#pragma once

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "spatialid/io/json_file.h"
#include "spatialid/io/safetensors_header.h"

namespace spatialid::extract {

inline constexpr double kHeadroomFraction = 0.10;
inline constexpr uint64_t kMinHeadroomBytes = 1ull << 30;

// Bytes per element of a --dtype name; nullopt for names the flags refuse.
inline std::optional<uint64_t> DtypeBytes(std::string_view dtype) {
  if (dtype == "float32") return 4;
  if (dtype == "float16" || dtype == "bfloat16") return 2;
  return std::nullopt;
}

inline uint64_t Headroom(uint64_t weight_bytes) {
  return std::max<uint64_t>(kMinHeadroomBytes,
                            static_cast<uint64_t>(static_cast<double>(weight_bytes) * kHeadroomFraction));
}

inline std::string Gib(uint64_t bytes) {
  return absl::StrFormat("%.1f GiB", static_cast<double>(bytes) / static_cast<double>(1ull << 30));
}

// What a device can give, and where the figure comes from (for the message).
struct AvailableMemory {
  uint64_t bytes = 0;
  std::string source;
};

namespace memory_fit_internal {

// A read-only mapping of a whole file; the header parser checks offsets
// against the file's size, and only the pages it reads are touched.
class Mapping {
 public:
  static absl::StatusOr<Mapping> Open(const std::string& path) {
    Mapping m;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      ::close(fd);
      return absl::InternalError(absl::StrCat(path, ": cannot stat"));
    }
    m.size_ = static_cast<size_t>(st.st_size);
    if (m.size_ > 0) {
      void* p = ::mmap(nullptr, m.size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        ::close(fd);
        return absl::InternalError(absl::StrCat(path, ": cannot map"));
      }
      m.data_ = static_cast<const char*>(p);
    }
    ::close(fd);
    return m;
  }
  Mapping(Mapping&& o) noexcept : data_(o.data_), size_(o.size_) { o.data_ = nullptr; }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  Mapping& operator=(Mapping&&) = delete;
  ~Mapping() {
    if (data_ != nullptr) ::munmap(const_cast<char*>(data_), size_);
  }
  std::string_view view() const { return {data_ == nullptr ? "" : data_, size_}; }

 private:
  Mapping() = default;
  const char* data_ = nullptr;
  size_t size_ = 0;
};

inline bool IsLmHead(std::string_view name) {
  return name.rfind("lm_head.", 0) == 0 || name.find(".lm_head.") != std::string_view::npos;
}

inline std::optional<uint64_t> ReadU64File(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::string s;
  if (!(in >> s)) return std::nullopt;
  uint64_t v = 0;
  if (!absl::SimpleAtoi(s, &v)) return std::nullopt;  // "max" (v2, unlimited) too
  return v;
}

inline std::optional<uint64_t> StatField(const std::filesystem::path& stat_file,
                                         std::string_view key) {
  std::ifstream in(stat_file);
  std::string k;
  uint64_t v = 0;
  while (in >> k >> v) {
    if (k == key) return v;
  }
  return std::nullopt;
}

// Bytes left under the tightest memory limit of the cgroup `rel` (a path
// from /proc/self/cgroup) and its ancestors, below `root`.
inline std::optional<uint64_t> CgroupRoom(const std::filesystem::path& root, std::string rel,
                                          bool v2) {
  std::optional<uint64_t> room;
  // Unlimited v1 groups report a limit near 2^63.
  constexpr uint64_t kUnlimited = 1ull << 60;
  while (true) {
    const std::filesystem::path dir = rel.empty() || rel == "/" ? root : root / rel.substr(1);
    const auto limit = ReadU64File(dir / (v2 ? "memory.max" : "memory.limit_in_bytes"));
    const auto usage = ReadU64File(dir / (v2 ? "memory.current" : "memory.usage_in_bytes"));
    if (limit && usage && *limit < kUnlimited) {
      const uint64_t inactive =
          StatField(dir / "memory.stat", v2 ? "inactive_file" : "total_inactive_file").value_or(0);
      const uint64_t used = *usage > inactive ? *usage - inactive : 0;
      const uint64_t left = *limit > used ? *limit - used : 0;
      room = room ? std::min(*room, left) : left;
    }
    if (rel.empty() || rel == "/") break;
    const size_t slash = rel.rfind('/');
    rel = slash == 0 || slash == std::string::npos ? "/" : rel.substr(0, slash);
  }
  return room;
}

}  // namespace memory_fit_internal

// Elements of every weight in `model_dir`'s safetensors files except the LM
// head's, found as the loader finds them (index, model.safetensors, or every
// *.safetensors).
inline absl::StatusOr<uint64_t> CheckpointWeightElements(const std::string& model_dir) {
  namespace fs = std::filesystem;
  const fs::path dir(model_dir);
  std::error_code ec;
  std::vector<std::string> files;
  const fs::path index = dir / "model.safetensors.index.json";
  if (fs::is_regular_file(index, ec)) {
    absl::StatusOr<nlohmann::json> j = io::ReadJsonFile(index.string());
    if (!j.ok()) return j.status();
    if (!j->is_object() || !j->contains("weight_map") || !(*j)["weight_map"].is_object()) {
      return absl::InvalidArgumentError(
          absl::StrCat(index.string(), ": expected an object with a \"weight_map\" object"));
    }
    std::set<std::string> names;
    for (const auto& [tensor, file] : (*j)["weight_map"].items()) {
      if (!file.is_string()) {
        return absl::InvalidArgumentError(
            absl::StrCat(index.string(), ": weight_map.", tensor, ": expected a file name"));
      }
      const fs::path rel(file.get<std::string>());
      if (rel.empty() || rel.has_parent_path() || rel.is_absolute()) {
        return absl::InvalidArgumentError(absl::StrCat(index.string(), ": weight_map.", tensor,
                                                       ": \"", rel.string(), "\" is not a file name"));
      }
      names.insert(rel.string());
    }
    for (const std::string& n : names) files.push_back((dir / n).string());
  } else if (fs::is_regular_file(dir / "model.safetensors", ec)) {
    files.push_back((dir / "model.safetensors").string());
  } else {
    for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
      if (e.path().extension() == ".safetensors") files.push_back(e.path().string());
    }
    std::sort(files.begin(), files.end());
  }
  if (files.empty()) {
    return absl::NotFoundError(absl::StrCat(
        model_dir, ": no model.safetensors.index.json, model.safetensors or *.safetensors file"));
  }
  uint64_t elements = 0;
  for (const std::string& f : files) {
    absl::StatusOr<memory_fit_internal::Mapping> m = memory_fit_internal::Mapping::Open(f);
    if (!m.ok()) return m.status();
    absl::StatusOr<io::SafetensorsHeader> h = io::ParseSafetensorsHeader(m->view(), f);
    if (!h.ok()) return h.status();
    for (const auto& [name, info] : h->tensors) {
      if (memory_fit_internal::IsLmHead(name)) continue;
      uint64_t n = 1;
      for (int64_t d : info.shape) n *= static_cast<uint64_t>(d);
      elements += n;
    }
  }
  return elements;
}

// Host memory a new allocation can get: MemAvailable under `proc_root`,
// lowered to what cgroup limits under `cgroup_root` leave. Roots are
// parameters so tests can fake them.
inline std::optional<AvailableMemory> HostAvailableMemory(
    const std::filesystem::path& proc_root = "/proc",
    const std::filesystem::path& cgroup_root = "/sys/fs/cgroup") {
  std::optional<AvailableMemory> out;
  {
    std::ifstream in(proc_root / "meminfo");
    std::string key, unit;
    uint64_t kib = 0;
    while (in >> key >> kib) {
      std::getline(in, unit);
      if (key == "MemAvailable:") {
        out = AvailableMemory{kib * 1024, "MemAvailable"};
        break;
      }
    }
  }
  std::ifstream groups(proc_root / "self" / "cgroup");
  std::string line;
  while (std::getline(groups, line)) {
    // "0::/path" (v2) or "4:memory:/path" (v1).
    const size_t a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1);
    const std::string rel = line.substr(b + 1);
    std::optional<uint64_t> room;
    if (controllers.empty()) {
      // cgroup v2: mounted at the root, or under unified/ beside v1's controllers.
      const bool at_root = std::filesystem::exists(cgroup_root / "cgroup.controllers");
      room = memory_fit_internal::CgroupRoom(at_root ? cgroup_root : cgroup_root / "unified", rel,
                                             /*v2=*/true);
    } else if (("," + controllers + ",").find(",memory,") != std::string::npos) {
      room = memory_fit_internal::CgroupRoom(cgroup_root / "memory", rel, /*v2=*/false);
    }
    if (room && (!out || *room < out->bytes)) out = AvailableMemory{*room, "cgroup memory limit"};
  }
  return out;
}

// Free memory of CUDA device `index` from the CUDA runtime, if one is loaded.
inline std::optional<AvailableMemory> CudaAvailableMemory(int index) {
  using GetDevice = int (*)(int*);
  using SetDevice = int (*)(int);
  using MemGetInfo = int (*)(size_t*, size_t*);
  auto get = reinterpret_cast<GetDevice>(dlsym(RTLD_DEFAULT, "cudaGetDevice"));
  auto set = reinterpret_cast<SetDevice>(dlsym(RTLD_DEFAULT, "cudaSetDevice"));
  auto info = reinterpret_cast<MemGetInfo>(dlsym(RTLD_DEFAULT, "cudaMemGetInfo"));
  if (get == nullptr || set == nullptr || info == nullptr) return std::nullopt;
  int previous = 0;
  if (get(&previous) != 0 || set(index) != 0) return std::nullopt;
  size_t free = 0, total = 0;
  const int err = info(&free, &total);
  set(previous);
  if (err != 0) return std::nullopt;
  return AvailableMemory{free, absl::StrCat("free on cuda:", index)};
}

// The decision: `elements` weights in `dtype` against `available`.
inline absl::Status CheckWeightsFit(std::string_view model_name, uint64_t elements,
                                    std::string_view dtype, const AvailableMemory& available) {
  const std::optional<uint64_t> size = DtypeBytes(dtype);
  if (!size) return absl::InvalidArgumentError(absl::StrCat("--dtype=", std::string(dtype), ": unknown"));
  const uint64_t need = elements * *size;
  if (need + Headroom(need) <= available.bytes) return absl::OkStatus();
  std::string advice;
  if (*size > 2) {
    const uint64_t half = elements * 2;
    advice = half + Headroom(half) <= available.bytes
                 ? absl::StrCat("; --dtype=bfloat16 needs ", Gib(half), " (+", Gib(Headroom(half)), ")")
                 : absl::StrCat("; even --dtype=bfloat16 needs ", Gib(half), " (+",
                                Gib(Headroom(half)), "): use a machine with more memory");
  } else {
    advice = "; no smaller --dtype exists: use a machine with more memory";
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      std::string(model_name), " weights need ", Gib(need), " in ", std::string(dtype), " (+",
      Gib(Headroom(need)), " headroom) but ", Gib(available.bytes), " are available (",
      available.source, ")", advice));
}

// The whole check as the binaries run it. `cuda_index`: the device, or
// nullopt for the CPU. Where available memory cannot be read, it passes.
inline absl::Status CheckWeightsFitMemory(const std::string& model_dir, std::string_view model_name,
                                          std::string_view dtype, std::optional<int> cuda_index) {
  absl::StatusOr<uint64_t> elements = CheckpointWeightElements(model_dir);
  if (!elements.ok()) return elements.status();
  const std::optional<AvailableMemory> available =
      cuda_index ? CudaAvailableMemory(*cuda_index) : HostAvailableMemory();
  if (!available) return absl::OkStatus();
  return CheckWeightsFit(model_name, *elements, dtype, *available);
}

}  // namespace spatialid::extract
