// The weights' fit in memory: element counts from real safetensors headers
// (single file, sharded with an index, LM head left out), the decision and
// its one-line message against made-up available memory, and the reading of
// MemAvailable and cgroup v1/v2 limits from fake /proc and /sys trees.
#include "spatialid/extract/memory_fit.h"

#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace spatialid::extract {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "memory_fit_test.XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void Write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
}

// A valid safetensors file of zero-filled F16 tensors {name: shape}.
void WriteSafetensors(const fs::path& p,
                      const std::vector<std::pair<std::string, std::vector<int64_t>>>& tensors) {
  nlohmann::json header = nlohmann::json::object();
  uint64_t offset = 0;
  for (const auto& [name, shape] : tensors) {
    uint64_t n = 2;
    for (int64_t d : shape) n *= static_cast<uint64_t>(d);
    header[name] = {{"dtype", "F16"}, {"shape", shape}, {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  std::string json = header.dump();
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((json.size() >> (8 * i)) & 0xff);
  Write(p, bytes + json + std::string(offset, '\0'));
}

TEST(CheckpointWeightElements, SingleFileWithoutLmHead) {
  TempDir d;
  WriteSafetensors(d.path() / "model.safetensors",
                   {{"a.weight", {4, 8}}, {"b.bias", {8}}, {"lm_head.weight", {100, 8}},
                    {"language_model.lm_head.weight", {100, 8}}});
  absl::StatusOr<uint64_t> n = CheckpointWeightElements(d.path().string());
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 40u);
}

TEST(CheckpointWeightElements, ShardedByIndexAndLooseFiles) {
  TempDir d;
  WriteSafetensors(d.path() / "model-00001-of-00002.safetensors", {{"x", {3, 5}}});
  WriteSafetensors(d.path() / "model-00002-of-00002.safetensors", {{"y", {7}}, {"z", {2, 2, 2}}});
  // A stray file the index does not name is not the checkpoint's.
  WriteSafetensors(d.path() / "stray.safetensors", {{"w", {1000}}});
  Write(d.path() / "model.safetensors.index.json",
        R"({"metadata": {}, "weight_map": {"x": "model-00001-of-00002.safetensors",
            "y": "model-00002-of-00002.safetensors", "z": "model-00002-of-00002.safetensors"}})");
  absl::StatusOr<uint64_t> n = CheckpointWeightElements(d.path().string());
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 15u + 7u + 8u);

  fs::remove(d.path() / "model.safetensors.index.json");
  n = CheckpointWeightElements(d.path().string());  // every *.safetensors, as the loader does
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 15u + 7u + 8u + 1000u);
}

TEST(CheckpointWeightElements, BadFoldersAreErrorsNamingTheFile) {
  TempDir d;
  absl::StatusOr<uint64_t> n = CheckpointWeightElements(d.path().string());
  ASSERT_FALSE(n.ok());
  EXPECT_NE(n.status().message().find("no model.safetensors.index.json"), std::string::npos);
  Write(d.path() / "model.safetensors", "garbage");
  n = CheckpointWeightElements(d.path().string());
  ASSERT_FALSE(n.ok());
  EXPECT_NE(n.status().message().find("model.safetensors"), std::string::npos) << n.status();
  Write(d.path() / "model.safetensors.index.json", R"({"weight_map": {"x": "../elsewhere"}})");
  n = CheckpointWeightElements(d.path().string());
  ASSERT_FALSE(n.ok());
  EXPECT_NE(n.status().message().find("is not a file name"), std::string::npos) << n.status();
}

constexpr uint64_t kGiB = 1ull << 30;
// llava-1.5-7b without its LM head: 7.06e9 parameters, ~26.3 GiB in float32.
constexpr uint64_t kLlava7b = 7063427072ull - 32064ull * 4096ull;

TEST(CheckWeightsFit, Llava7bOnA24GibMachine) {
  const AvailableMemory host{static_cast<uint64_t>(22.9 * kGiB), "MemAvailable"};
  absl::Status s = CheckWeightsFit("llava-7b", kLlava7b, "float32", host);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(s.message(),
            "llava-7b weights need 25.8 GiB in float32 (+2.6 GiB headroom) but 22.9 GiB are "
            "available (MemAvailable); --dtype=bfloat16 needs 12.9 GiB (+1.3 GiB)");
  EXPECT_TRUE(CheckWeightsFit("llava-7b", kLlava7b, "bfloat16", host).ok());
  EXPECT_TRUE(CheckWeightsFit("llava-7b", kLlava7b, "float16", host).ok());
}

TEST(CheckWeightsFit, NothingFitsAndHeadroomCounts) {
  const AvailableMemory small{10 * kGiB, "free on cuda:0"};
  absl::Status s = CheckWeightsFit("llava-7b", kLlava7b, "float32", small);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("even --dtype=bfloat16 needs 12.9 GiB (+1.3 GiB): use a machine with "
                             "more memory"),
            std::string::npos)
      << s;
  s = CheckWeightsFit("llava-7b", kLlava7b, "bfloat16", small);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("no smaller --dtype exists"), std::string::npos) << s;
  // Weights that fit alone but not with their headroom are refused.
  const uint64_t elements = 4 * kGiB / 4;  // 4 GiB in float32, headroom 1 GiB
  EXPECT_FALSE(CheckWeightsFit("m", elements, "float32", {static_cast<uint64_t>(4.5 * kGiB), "x"}).ok());
  EXPECT_TRUE(CheckWeightsFit("m", elements, "float32", {5 * kGiB, "x"}).ok());
  EXPECT_FALSE(CheckWeightsFit("m", elements, "int8", {5 * kGiB, "x"}).ok());
}

TEST(HostAvailableMemory, MemAvailableAndCgroupLimits) {
  TempDir d;
  const fs::path proc = d.path() / "proc", sys = d.path() / "cgroup";
  Write(proc / "meminfo", "MemTotal:       24000000 kB\nMemFree:  1000 kB\nMemAvailable:   20000000 kB\n");
  Write(proc / "self" / "cgroup", "0::/\n");
  std::optional<AvailableMemory> m = HostAvailableMemory(proc, sys);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->bytes, 20000000ull * 1024);
  EXPECT_EQ(m->source, "MemAvailable");

  // cgroup v1 (as on this project's CI machine): a limit on the parent group
  // binds; reclaimable page cache does not count as used.
  Write(proc / "self" / "cgroup", "5:devices:/\n4:memory:/jobs/job1\n0::/\n");
  Write(sys / "memory" / "jobs" / "job1" / "memory.limit_in_bytes", "9223372036854771712\n");
  Write(sys / "memory" / "jobs" / "job1" / "memory.usage_in_bytes", "3000000000\n");
  Write(sys / "memory" / "jobs" / "job1" / "memory.stat", "cache 5\ntotal_inactive_file 1000000000\n");
  Write(sys / "memory" / "jobs" / "memory.limit_in_bytes", "8000000000\n");
  Write(sys / "memory" / "jobs" / "memory.usage_in_bytes", "3000000000\n");
  Write(sys / "memory" / "jobs" / "memory.stat", "total_inactive_file 1000000000\n");
  m = HostAvailableMemory(proc, sys);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->bytes, 6000000000ull);
  EXPECT_EQ(m->source, "cgroup memory limit");

  // cgroup v2 mounted at the root, "max" meaning unlimited.
  TempDir d2;
  const fs::path proc2 = d2.path() / "proc", sys2 = d2.path() / "cgroup";
  Write(proc2 / "meminfo", "MemAvailable:   20000000 kB\n");
  Write(proc2 / "self" / "cgroup", "0::/user.slice/job\n");
  Write(sys2 / "cgroup.controllers", "memory\n");
  Write(sys2 / "user.slice" / "memory.max", "max\n");
  Write(sys2 / "user.slice" / "memory.current", "1\n");
  Write(sys2 / "user.slice" / "job" / "memory.max", "4000000000\n");
  Write(sys2 / "user.slice" / "job" / "memory.current", "1500000000\n");
  Write(sys2 / "user.slice" / "job" / "memory.stat", "anon 1\ninactive_file 500000000\n");
  m = HostAvailableMemory(proc2, sys2);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->bytes, 3000000000ull);

  // Nothing readable: no figure, and the check then passes.
  EXPECT_FALSE(HostAvailableMemory(d.path() / "none", d.path() / "none").has_value());
}

TEST(HostAvailableMemory, ThisMachineHasAFigure) {
  std::optional<AvailableMemory> m = HostAvailableMemory();
  ASSERT_TRUE(m.has_value());
  EXPECT_GT(m->bytes, 0u);
}

TEST(CudaAvailableMemory, NoCudaRuntimeInThisBinaryMeansNoFigure) {
  // This test links no libtorch, so no CUDA runtime is loaded: no check.
  EXPECT_FALSE(CudaAvailableMemory(0).has_value());
}

}  // namespace
}  // namespace spatialid::extract
