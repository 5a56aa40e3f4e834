#include "spatialid/data/grid_job.h"

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"
#include "spatialid/data/layout_folder.h"
#include "spatialid/data/layout_source.h"
#include "spatialid/data/test_support.h"

namespace spatialid::data {
namespace {

using testing::ScratchDir;
using testing::SoftDisc;

std::string ObjectsDir() {
  return testing::WriteObjects({{"camel", SoftDisc(48, 200, 150, 40)},
                                {"frog", SoftDisc(37, 30, 200, 60)},
                                {"teddy_bear", SoftDisc(20, 90, 60, 30)},
                                {"teddy", SoftDisc(20, 90, 60, 30)},
                                {"bear_frog", SoftDisc(20, 90, 60, 30)}});
}

size_t CountPngs(const std::string& dir) {
  size_t n = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    n += e.path().extension() == ".png";
  }
  return n;
}

TEST(ParseSizeList, ValidatesAgainstTheCell) {
  auto s = ParseSizeList("224, 174,124,74", 224);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s, (std::vector<int>{224, 174, 124, 74}));
  EXPECT_FALSE(ParseSizeList("225", 224).ok());
  EXPECT_FALSE(ParseSizeList("0", 224).ok());
  EXPECT_FALSE(ParseSizeList("12x", 224).ok());
  EXPECT_FALSE(ParseSizeList("", 224).ok());
}

TEST(ParsePairList, SplitsWhereBothObjectsExist) {
  const std::string objects = ObjectsDir();
  auto p = ParsePairList("camel_frog,frog_camel,teddy_bear_camel", objects);
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ(p->size(), 3u);
  EXPECT_EQ((*p)[2].a, "teddy_bear");
  EXPECT_EQ((*p)[2].b, "camel");
  auto unknown = ParsePairList("camel_unicorn", objects);
  EXPECT_NE(unknown.status().message().find("does not name two object images"), std::string::npos);
  // teddy + bear_frog and teddy_bear + frog both exist.
  auto ambiguous = ParsePairList("teddy_bear_frog", objects);
  EXPECT_NE(ambiguous.status().message().find("more than one way"), std::string::npos);
}

TEST(AllOrderedPairs, TenObjectsGiveNinetyPairs) {
  auto p = AllOrderedPairs("backpack,fan,camel,frog,dog,cake,log,robot,person,teapot");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->size(), 90u);
  EXPECT_EQ((*p)[0].a, "backpack");
  EXPECT_EQ((*p)[0].b, "fan");
  EXPECT_FALSE(AllOrderedPairs("camel,frog,camel").ok());
  EXPECT_FALSE(AllOrderedPairs("camel").ok());
}

GridJobOptions SmallJob(const std::string& objects, const std::string& out) {
  GridJobOptions job;
  job.show_progress = false;
  job.objects_dir = objects;
  job.out = out;
  job.pairs = {{"camel", "frog"}, {"frog", "camel"}};
  job.sizes = {16, 12};
  job.grid.cell = 16;
  job.threads = 2;
  return job;
}

TEST(RunGridJob, WritesEveryLayoutAndResumes) {
  const std::string objects = ObjectsDir();
  const std::string out = ScratchDir("out");
  GridJobOptions job = SmallJob(objects, out);
  job.manifest = out + "/../manifest.jsonl";
  auto stats = RunGridJob(job);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->total, 960u);
  EXPECT_EQ(stats->written, 960u);
  EXPECT_EQ(CountPngs(out), 960u);
  EXPECT_TRUE(std::filesystem::exists(out + "/camel_frog/3_2/0_0_12.png"));
  std::ifstream manifest(job.manifest);
  size_t lines = 0;
  for (std::string line; std::getline(manifest, line);) ++lines;
  EXPECT_EQ(lines, 960u);

  // A rerun skips everything; a deleted image is redrawn identically.
  const std::string victim = out + "/frog_camel/1_1/2_2_16.png";
  auto before = io::LoadImage(victim);
  std::filesystem::remove(victim);
  auto again = RunGridJob(job);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->written, 1u);
  EXPECT_EQ(again->skipped, 959u);
  EXPECT_EQ(io::LoadImage(victim)->pixels, before->pixels);
  job.overwrite = true;
  EXPECT_EQ(RunGridJob(job)->written, 960u);

  // The folder reads back complete, and equals what memory synthesises.
  auto folder = LayoutFolder::Open(out);
  ASSERT_TRUE(folder.ok()) << folder.status();
  ASSERT_EQ(folder->size(), 960u);
  std::shared_ptr<const GridComposer> composer = *GridComposer::Create(objects, job.grid);
  SynthesizedLayouts memory(composer, folder->layouts());
  for (size_t i = 0; i < folder->size(); i += 97) {
    EXPECT_EQ(folder->RgbImage(i)->pixels, memory.RgbImage(i)->pixels) << folder->path(i);
  }
}

TEST(RunGridJob, ThreadCountNeverChangesAPixel) {
  const std::string objects = ObjectsDir();
  GridJobOptions job = SmallJob(objects, ScratchDir("one"));
  job.grid.local_variation = true;
  job.grid.seed = 3;
  job.no_same_row_or_col = true;
  job.threads = 1;
  ASSERT_TRUE(RunGridJob(job).ok());
  GridJobOptions two = job;
  two.out = ScratchDir("two");
  two.threads = 3;
  auto stats = RunGridJob(two);
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->total, 2u * 2 * 144);
  for (const GridLayout& l : JobLayouts(job)) {
    const std::string rel = "/" + LayoutRelativePath(l);
    ASSERT_EQ(io::LoadImage(job.out + rel)->pixels, io::LoadImage(two.out + rel)->pixels) << rel;
  }
}

TEST(RunGridJob, ReportsErrors) {
  const std::string objects = ObjectsDir();
  GridJobOptions job = SmallJob(objects, ScratchDir("errors"));
  job.show_progress = false;
  job.sizes = {16};
  job.pairs = {{"camel", "unicorn"}};
  auto missing = RunGridJob(job);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  job.pairs = {{"camel", "frog"}};
  job.threads = 0;
  EXPECT_FALSE(RunGridJob(job).ok());
  job.threads = 1;
  job.out = "/proc/no_such_place/out";
  EXPECT_FALSE(RunGridJob(job).ok());
}

}  // namespace
}  // namespace spatialid::data
