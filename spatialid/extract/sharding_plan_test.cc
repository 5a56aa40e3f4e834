// The shard plan tiles every run exactly once, and launchers' environments
// map to the shards they should (torchrun, srun inside and outside a step,
// stepped job arrays); the model fingerprint tells weights apart.
#include "spatialid/extract/sharding_plan.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace spatialid::extract {
namespace {

TEST(PlanShard, EveryLayoutOnceForManySplits) {
  const std::vector<std::vector<size_t>> runs = {
      {144}, {144, 144}, {144, 144, 144}, {240, 5, 1, 77}, {3, 3}, {1}, {960, 960, 960, 960, 960}};
  for (const auto& sizes : runs) {
    for (int n = 1; n <= 23; ++n) {
      std::vector<std::vector<int>> seen(sizes.size());
      for (size_t p = 0; p < sizes.size(); ++p) seen[p].assign(sizes[p], 0);
      size_t busiest = 0, total = 0;
      for (int k = 0; k < n; ++k) {
        size_t mine = 0;
        for (const ShardUnit& u : PlanShard(sizes, ShardSpec{k, n})) {
          ASSERT_LE(u.begin, u.end);
          ASSERT_LE(u.end, sizes[u.pair]);
          for (size_t i = u.begin; i < u.end; ++i) ++seen[u.pair][i];
          mine += u.end - u.begin;
        }
        busiest = std::max(busiest, mine);
        total += mine;
      }
      for (size_t p = 0; p < sizes.size(); ++p) {
        for (size_t i = 0; i < sizes[p]; ++i) {
          ASSERT_EQ(seen[p][i], 1) << "pair " << p << " layout " << i << " with " << n << " shards";
        }
      }
      // Balanced up to a unit: no shard holds more than twice the mean plus
      // the largest unit (pairs of equal size balance exactly when N divides
      // their chunks).
      size_t largest = 0;
      for (size_t s : sizes) largest = std::max(largest, s);
      EXPECT_LE(busiest, 2 * total / static_cast<size_t>(n) + largest) << n;
    }
  }
}

TEST(PlanShard, MoreShardsThanPairsSplitsPairsByLayout) {
  // 7 shards over 3 pairs: each pair in 3 ranges of 48.
  const std::vector<size_t> sizes = {144, 144, 144};
  std::set<std::pair<size_t, size_t>> ranges;
  for (int k = 0; k < 7; ++k) {
    for (const ShardUnit& u : PlanShard(sizes, ShardSpec{k, 7})) ranges.insert({u.begin, u.end});
  }
  EXPECT_EQ(ranges, (std::set<std::pair<size_t, size_t>>{{0, 48}, {48, 96}, {96, 144}}));
  EXPECT_EQ(PlanShard(sizes, ShardSpec{0, 7}).size(), 2u);  // 9 units over 7 shards
  EXPECT_EQ(PlanShard(sizes, ShardSpec{6, 7}).size(), 1u);
}

// Sets the given variables (and clears every other launcher variable) for
// the test's lifetime.
class ScopedEnv {
 public:
  explicit ScopedEnv(std::initializer_list<std::pair<const char*, const char*>> vars) {
    for (const char* name :
         {"RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID",
          "SLURM_STEP_ID", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT",
          "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_STEP"}) {
      unsetenv(name);
    }
    for (const auto& [k, v] : vars) setenv(k, v, 1);
  }
};

TEST(ResolveShard, FlagsWinAndAreChecked) {
  ScopedEnv env({{"RANK", "3"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"}});
  auto s = ResolveShard(2, 5);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_TRUE(s->has_value());
  EXPECT_EQ((*s)->index, 2);
  EXPECT_EQ((*s)->count, 5);
  EXPECT_EQ((*s)->from, "flags");
  EXPECT_EQ((*s)->local_rank, 1);
  EXPECT_FALSE(ResolveShard(5, 5).ok());
  EXPECT_FALSE(ResolveShard(0, 0).ok());
  EXPECT_FALSE(ResolveShard(-1, 3).ok());
}

TEST(ResolveShard, NothingSetMeansNoSharding) {
  ScopedEnv env({});
  auto s = ResolveShard(-1, 0);
  ASSERT_TRUE(s.ok());
  EXPECT_FALSE(s->has_value());
}

TEST(ResolveShard, Torchrun) {
  ScopedEnv env({{"RANK", "5"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"},
                 {"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}, {"SLURM_STEP_ID", "0"}});
  auto s = ResolveShard(-1, 0);
  ASSERT_TRUE(s.ok() && s->has_value());
  EXPECT_EQ((*s)->index, 5);
  EXPECT_EQ((*s)->count, 8);
  EXPECT_EQ((*s)->from, "torchrun");  // torchrun launched by srun: torchrun's ranks
  EXPECT_EQ((*s)->local_rank, 1);
}

TEST(ResolveShard, SrunOnlyInsideAStep) {
  {
    ScopedEnv env({{"SLURM_PROCID", "2"}, {"SLURM_NTASKS", "3"}, {"SLURM_LOCALID", "2"},
                   {"SLURM_STEP_ID", "0"}});
    auto s = ResolveShard(-1, 0);
    ASSERT_TRUE(s.ok() && s->has_value());
    EXPECT_EQ((*s)->index, 2);
    EXPECT_EQ((*s)->count, 3);
    EXPECT_EQ((*s)->from, "slurm");
    EXPECT_EQ((*s)->local_rank, 2);
  }
  {
    // The batch script of an -n 3 job: no step, no shard.
    ScopedEnv env({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "3"}});
    auto s = ResolveShard(-1, 0);
    ASSERT_TRUE(s.ok());
    EXPECT_FALSE(s->has_value());
  }
}

TEST(ResolveShard, JobArrays) {
  {
    // --array=4-8:2 run directly by the batch script: task 6 is shard 1 of 3.
    ScopedEnv env({{"SLURM_ARRAY_TASK_ID", "6"}, {"SLURM_ARRAY_TASK_MIN", "4"},
                   {"SLURM_ARRAY_TASK_STEP", "2"}, {"SLURM_ARRAY_TASK_COUNT", "3"},
                   {"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}});
    auto s = ResolveShard(-1, 0);
    ASSERT_TRUE(s.ok() && s->has_value()) << s.status();
    EXPECT_EQ((*s)->index, 1);
    EXPECT_EQ((*s)->count, 3);
    EXPECT_EQ((*s)->from, "slurm array");
  }
  {
    // --array=0-3 with srun -n 2 in each task: 8 shards.
    ScopedEnv env({{"SLURM_ARRAY_TASK_ID", "3"}, {"SLURM_ARRAY_TASK_MIN", "0"},
                   {"SLURM_ARRAY_TASK_COUNT", "4"}, {"SLURM_PROCID", "1"}, {"SLURM_NTASKS", "2"},
                   {"SLURM_STEP_ID", "0"}});
    auto s = ResolveShard(-1, 0);
    ASSERT_TRUE(s.ok() && s->has_value());
    EXPECT_EQ((*s)->index, 7);
    EXPECT_EQ((*s)->count, 8);
  }
  {
    ScopedEnv env({{"SLURM_ARRAY_TASK_ID", "5"}, {"SLURM_ARRAY_TASK_MIN", "4"},
                   {"SLURM_ARRAY_TASK_STEP", "2"}, {"SLURM_ARRAY_TASK_COUNT", "3"}});
    auto s = ResolveShard(-1, 0);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(std::string(s.status().message()).find("4-8:2"), std::string::npos)
        << s.status();
  }
}

TEST(LocalCudaIndex, AllVisibleOrBoundPerTask) {
  unsetenv("CUDA_VISIBLE_DEVICES");
  EXPECT_EQ(LocalCudaIndex(3), 3);
  setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3", 1);
  EXPECT_EQ(LocalCudaIndex(3), 3);
  setenv("CUDA_VISIBLE_DEVICES", "2", 1);  // srun --gpus-per-task=1
  EXPECT_EQ(LocalCudaIndex(3), 0);
  setenv("CUDA_VISIBLE_DEVICES", "4,5", 1);
  EXPECT_EQ(LocalCudaIndex(3), 1);
  unsetenv("CUDA_VISIBLE_DEVICES");
}

TEST(ModelFingerprint, WeightsConfigAndNotThePath) {
  const std::filesystem::path root = std::filesystem::path(::testing::TempDir()) / "fingerprint";
  std::filesystem::remove_all(root);
  auto make = [&](const std::string& name, char fill, size_t size, const std::string& config) {
    const std::filesystem::path dir = root / name;
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "config.json") << config;
    std::ofstream(dir / "model.safetensors", std::ios::binary) << std::string(size, fill);
    std::ofstream(dir / "notes.txt") << name;  // not part of the identity
    return dir.string();
  };
  const size_t big = 1 << 20;
  const std::string a = ModelFingerprint(make("a", 'x', big, "{\"n\": 1}"));
  EXPECT_EQ(a.size(), 16u);
  EXPECT_EQ(a, ModelFingerprint(make("a_copy", 'x', big, "{\"n\": 1}")));
  EXPECT_NE(a, ModelFingerprint(make("other_weights", 'y', big, "{\"n\": 1}")));
  EXPECT_NE(a, ModelFingerprint(make("other_config", 'x', big, "{\"n\": 2}")));
  EXPECT_NE(a, ModelFingerprint(make("other_size", 'x', big + 1, "{\"n\": 1}")));
  // A change in the middle of a large file is seen; one between the samples
  // is not (the documented cost of not reading 15-30 GB).
  const std::string mid = make("mid", 'x', big, "{\"n\": 1}");
  {
    std::fstream f(std::filesystem::path(mid) / "model.safetensors",
                   std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(big / 2);
    f.put('z');
  }
  EXPECT_NE(a, ModelFingerprint(mid));
  const std::string between = make("between", 'x', big, "{\"n\": 1}");
  {
    std::fstream f(std::filesystem::path(between) / "model.safetensors",
                   std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(200000);
    f.put('z');
  }
  EXPECT_EQ(a, ModelFingerprint(between));
}

TEST(Fnv1a, KnownValue) {
  Fnv1a h;
  h.Add("a", 1);  // FNV-1a 64 of "a"
  EXPECT_EQ(h.Hex(), "af63dc4c8601ec8c");
}

}  // namespace
}  // namespace spatialid::extract
