#include "spatialid/data/grid_layout.h"

#include <set>

#include "gtest/gtest.h"

namespace spatialid::data {
namespace {

TEST(EnumeratePairLayouts, SixteenTimesFifteenPerSize) {
  auto layouts = EnumeratePairLayouts("camel", "frog", {224}, false);
  EXPECT_EQ(layouts.size(), 240u);
  std::set<std::string> paths;
  for (const auto& l : layouts) {
    EXPECT_NE(*l.a_cell, l.b_cell);
    paths.insert(LayoutRelativePath(l));
  }
  EXPECT_EQ(paths.size(), 240u);
  EXPECT_EQ(EnumeratePairLayouts("a", "b", {74, 124, 174, 224}, false).size(), 960u);
}

TEST(EnumeratePairLayouts, NoSameRowOrColumnLeavesNinePerACell) {
  auto layouts = EnumeratePairLayouts("camel", "frog", {224, 74}, true);
  EXPECT_EQ(layouts.size(), 2u * 16 * 9);
  for (const auto& l : layouts) {
    EXPECT_NE(l.a_cell->x, l.b_cell.x);
    EXPECT_NE(l.a_cell->y, l.b_cell.y);
  }
}

TEST(EnumeratePairLayouts, FollowsTheReferenceLoopOrder) {
  // grid_coords = [(x, y) for x in range(4) for y in range(4)]: x outer.
  auto layouts = EnumeratePairLayouts("a", "b", {10}, false);
  EXPECT_EQ(LayoutRelativePath(layouts[0]), "a_b/0_0/0_1_10.png");
  EXPECT_EQ(LayoutRelativePath(layouts[3]), "a_b/0_0/1_0_10.png");
  EXPECT_EQ(LayoutRelativePath(layouts[15]), "a_b/0_1/0_0_10.png");
  EXPECT_EQ(LayoutRelativePath(layouts.back()), "a_b/3_3/3_2_10.png");
}

TEST(LayoutRelativePath, NestedAndFlat) {
  GridLayout l{"camel", "frog", GridCell{2, 1}, GridCell{3, 0}, 124};
  EXPECT_EQ(l.pair(), "camel_frog");
  EXPECT_EQ(LayoutRelativePath(l), "camel_frog/2_1/3_0_124.png");
  l.a_cell.reset();
  EXPECT_EQ(LayoutRelativePath(l), "camel_frog/camel_frog_3_0_124.png");
}

TEST(ParseLayoutFileName, ReadsTrailingFieldsFromTheRight) {
  auto nested = ParseLayoutFileName("1_2_224.png");
  ASSERT_TRUE(nested);
  EXPECT_EQ(nested->prefix, "");
  EXPECT_EQ(nested->cell, (GridCell{1, 2}));
  EXPECT_EQ(nested->size, 224);
  auto flat = ParseLayoutFileName("teddy_bear_frog_3_0_74.png");
  ASSERT_TRUE(flat);
  EXPECT_EQ(flat->prefix, "teddy_bear_frog");
  EXPECT_EQ(flat->cell, (GridCell{3, 0}));
  EXPECT_EQ(flat->size, 74);
}

TEST(ParseLayoutFileName, RejectsWhatIsNotALayout) {
  for (const char* bad : {"1_2.png", "4_0_224.png", "0_4_224.png", "1_2_0.png", "1_2_224.jpg",
                          "1_2_x.png", "1_-2_224.png", "_1_2_224.png", "1__2_224.png", ".png",
                          "1_2_224", "1_2_9999999.png", "a_b_1_2_.png"}) {
    EXPECT_FALSE(ParseLayoutFileName(bad)) << bad;
  }
}

TEST(ParseCellName, AcceptsOnlyGridCells) {
  EXPECT_EQ(ParseCellName("3_1"), (GridCell{3, 1}));
  for (const char* bad : {"4_1", "1", "1_2_3", "a_b", "", "_1", "1_"}) {
    EXPECT_FALSE(ParseCellName(bad)) << bad;
  }
}

}  // namespace
}  // namespace spatialid::data
