#include "spatialid/data/layout_folder.h"

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"
#include "spatialid/data/test_support.h"

namespace spatialid::data {
namespace {

using testing::ScratchDir;

// Writes a tiny RGBA PNG for every layout (pixel 0 encodes the B cell).
void WriteLayouts(const std::string& root, const std::vector<GridLayout>& layouts) {
  for (const GridLayout& l : layouts) {
    io::Image img(2, 2, 4, 9);
    img.pixels[0] = static_cast<uint8_t>(l.b_cell.x * 4 + l.b_cell.y);
    ASSERT_TRUE(io::SavePng(root + "/" + LayoutRelativePath(l), img).ok());
  }
}

std::vector<GridLayout> Flat(const std::string& a, const std::string& b, std::vector<int> sizes) {
  std::vector<GridLayout> out;
  for (int size : sizes) {
    for (int x = 0; x < 4; ++x) {
      for (int y = 0; y < 4; ++y) out.push_back({a, b, std::nullopt, GridCell{x, y}, size});
    }
  }
  return out;
}

TEST(LayoutFolder, ReadsANestedDataRoot) {
  const std::string root = ScratchDir("grid");
  WriteLayouts(root, EnumeratePairLayouts("camel", "frog", {224, 74}, false));
  WriteLayouts(root, EnumeratePairLayouts("frog", "camel", {224, 74}, false));
  std::ofstream(root + "/camel_frog/notes.txt") << "not an image";  // ignored
  auto folder = LayoutFolder::Open(root);
  ASSERT_TRUE(folder.ok()) << folder.status();
  EXPECT_EQ(folder->size(), 2u * 480);
  EXPECT_EQ(folder->layout(0).a, "camel");
  EXPECT_EQ(folder->layout(0).b, "frog");
  EXPECT_EQ(folder->layout(folder->size() - 1).a, "frog");
  auto rgb = folder->RgbImage(5);
  ASSERT_TRUE(rgb.ok()) << rgb.status();
  EXPECT_EQ(rgb->channels, 3);
  EXPECT_EQ(rgb->pixels[0], folder->layout(5).b_cell.x * 4 + folder->layout(5).b_cell.y);

  FolderOptions only;
  only.pairs = {"frog_camel"};
  only.sizes = {74};
  auto one = LayoutFolder::Open(root, only);
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->size(), 240u);
  EXPECT_EQ(one->layout(0).size, 74);
  // A single pair folder, with a trailing slash.
  auto direct = LayoutFolder::Open(root + "/camel_frog/");
  ASSERT_TRUE(direct.ok()) << direct.status();
  EXPECT_EQ(direct->size(), 480u);
}

TEST(LayoutFolder, ReadsTheSeedReadmeFlatLayout) {
  const std::string root = ScratchDir("flat");
  WriteLayouts(root, Flat("camel", "frog", {224, 174, 124, 74}));
  auto folder = LayoutFolder::Open(root + "/camel_frog");
  ASSERT_TRUE(folder.ok()) << folder.status();
  ASSERT_EQ(folder->size(), 64u);
  for (size_t i = 0; i < folder->size(); ++i) EXPECT_FALSE(folder->layout(i).a_cell);
  auto rgb = folder->RgbImage(17);
  ASSERT_TRUE(rgb.ok());
  EXPECT_EQ(rgb->pixels[0], folder->layout(17).b_cell.x * 4 + folder->layout(17).b_cell.y);
}

TEST(LayoutFolder, SplitsPairNamesWithKnownObjects) {
  const std::string root = ScratchDir("underscores");
  WriteLayouts(root, Flat("teddy_bear", "frog", {50}));
  FolderOptions opt;
  opt.objects = {"frog", "teddy_bear"};
  auto folder = LayoutFolder::Open(root, opt);
  ASSERT_TRUE(folder.ok()) << folder.status();
  EXPECT_EQ(folder->layout(0).a, "teddy_bear");
  EXPECT_EQ(folder->layout(0).b, "frog");
  opt.objects = {"frog", "bear"};
  EXPECT_FALSE(LayoutFolder::Open(root, opt).ok());
}

TEST(LayoutFolder, InfersTheNoSameRowOrColumnSet) {
  const std::string root = ScratchDir("nosame");
  WriteLayouts(root, EnumeratePairLayouts("a", "b", {30}, true));
  auto folder = LayoutFolder::Open(root);
  ASSERT_TRUE(folder.ok()) << folder.status();
  EXPECT_EQ(folder->size(), 144u);
  FolderOptions full;
  full.no_same_row_or_col = false;
  auto strict = LayoutFolder::Open(root, full);
  EXPECT_EQ(strict.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(strict.status().message().find("96 of 240"), std::string::npos) << strict.status();
}

TEST(LayoutFolder, MissingFolder) {
  auto r = LayoutFolder::Open(ScratchDir("x") + "/does_not_exist");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("does_not_exist"), std::string::npos);
  EXPECT_NE(r.status().message().find("not found"), std::string::npos);
}

TEST(LayoutFolder, EmptyFolders) {
  const std::string root = ScratchDir("empty");
  auto r = LayoutFolder::Open(root);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("no grid images"), std::string::npos) << r.status();
  std::filesystem::create_directories(root + "/camel_frog/0_0");
  auto pair = LayoutFolder::Open(root);
  EXPECT_EQ(pair.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(pair.status().message().find("no grid images"), std::string::npos) << pair.status();
  FolderOptions opt;
  opt.pairs = {"dog_cake"};
  auto absent = LayoutFolder::Open(root, opt);
  EXPECT_NE(absent.status().message().find("dog_cake: pair folder not found"), std::string::npos)
      << absent.status();
}

TEST(LayoutFolder, UnparsableNames) {
  const std::string root = ScratchDir("bad_names");
  WriteLayouts(root, EnumeratePairLayouts("a", "b", {30}, false));
  ASSERT_TRUE(io::SavePng(root + "/a_b/1_1/frog.png", io::Image(1, 1, 3)).ok());
  auto r = LayoutFolder::Open(root);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("a_b/1_1/frog.png: not a grid layout name"),
            std::string::npos)
      << r.status();
  std::filesystem::remove(root + "/a_b/1_1/frog.png");
  ASSERT_TRUE(io::SavePng(root + "/a_b/1_1/1_1_30.png", io::Image(1, 1, 3)).ok());
  EXPECT_NE(LayoutFolder::Open(root).status().message().find("B's cell equals A's cell"),
            std::string::npos);
  std::filesystem::remove(root + "/a_b/1_1/1_1_30.png");
  std::filesystem::create_directories(root + "/a_b/9_9");
  EXPECT_NE(LayoutFolder::Open(root).status().message().find("a_b/9_9: not a grid layout name"),
            std::string::npos);

  const std::string flat = ScratchDir("bad_flat");
  WriteLayouts(flat, Flat("camel", "frog", {74}));
  ASSERT_TRUE(io::SavePng(flat + "/camel_frog/dog_frog_1_1_74.png", io::Image(1, 1, 3)).ok());
  auto f = LayoutFolder::Open(flat);
  EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(f.status().message().find("dog_frog_1_1_74.png"), std::string::npos) << f.status();
}

TEST(LayoutFolder, MixedNestedAndFlat) {
  const std::string root = ScratchDir("mixed");
  WriteLayouts(root, EnumeratePairLayouts("a", "b", {30}, false));
  WriteLayouts(root, Flat("a", "b", {30}));
  auto r = LayoutFolder::Open(root);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("mixes nested"), std::string::npos) << r.status();
}

TEST(LayoutFolder, MissingLayoutsAreListed) {
  const std::string root = ScratchDir("missing");
  WriteLayouts(root, EnumeratePairLayouts("a", "b", {30, 40}, false));
  std::filesystem::remove(root + "/a_b/2_3/0_0_40.png");
  auto r = LayoutFolder::Open(root);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("1 of 480 expected layouts are missing (2_3/0_0_40.png)"),
            std::string::npos)
      << r.status();
  FolderOptions lenient;
  lenient.allow_missing = true;
  auto ok = LayoutFolder::Open(root, lenient);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->size(), 479u);
  FolderOptions more;
  more.sizes = {30, 40, 50};
  EXPECT_NE(LayoutFolder::Open(root, more).status().message().find("241 of 720"),
            std::string::npos);

  const std::string flat = ScratchDir("flat_missing");
  WriteLayouts(flat, Flat("a", "b", {30, 40}));
  std::filesystem::remove(flat + "/a_b/a_b_3_1_40.png");
  auto f = LayoutFolder::Open(flat);
  EXPECT_NE(f.status().message().find("1 of 32 expected layouts are missing (a_b_3_1_40.png)"),
            std::string::npos)
      << f.status();
}

TEST(LayoutFolder, UnreadablePngIsReportedWhenRead) {
  const std::string root = ScratchDir("corrupt");
  WriteLayouts(root, Flat("a", "b", {30}));
  std::ofstream(root + "/a_b/a_b_0_0_30.png", std::ios::trunc) << "not really a png";
  auto folder = LayoutFolder::Open(root);
  ASSERT_TRUE(folder.ok()) << folder.status();
  size_t bad = 0;
  for (size_t i = 0; i < folder->size(); ++i) {
    auto img = folder->RgbImage(i);
    if (img.ok()) continue;
    ++bad;
    EXPECT_EQ(img.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(img.status().message().find("a_b_0_0_30.png: not a readable PNG"), std::string::npos)
        << img.status();
  }
  EXPECT_EQ(bad, 1u);
}

}  // namespace
}  // namespace spatialid::data
