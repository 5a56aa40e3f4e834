#include "spatialid/data/grid_composer.h"

#include <filesystem>
#include <set>

#include "gtest/gtest.h"
#include "spatialid/data/layout_source.h"
#include "spatialid/data/test_support.h"

namespace spatialid::data {
namespace {

using testing::ScratchDir;
using testing::SoftDisc;

// Two soft discs, a uniformly half-transparent square and an opaque one.
std::string ObjectsDir() {
  io::Image half(10, 10, 4, 0), white(10, 10, 4, 255);
  for (size_t i = 0; i < half.pixels.size(); i += 4) {
    half.pixels[i] = 200, half.pixels[i + 1] = 100, half.pixels[i + 2] = 50, half.pixels[i + 3] = 128;
  }
  return testing::WriteObjects({{"disc", SoftDisc(40, 250, 30, 10)},
                                {"blob", SoftDisc(33, 20, 90, 240)},
                                {"half", half},
                                {"white", white}});
}

TEST(GridComposer, CentringTruncatesTowardZeroLikePythonInt) {
  auto c = GridComposer::Create(ObjectsDir(), {});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ((*c)->CentredOffset(0, 224), 0);
  EXPECT_EQ((*c)->CentredOffset(1, 74), 224 + 75);
  EXPECT_EQ((*c)->CentredOffset(2, 175), 448 + 24);  // 24.5 -> 24
  EXPECT_EQ((*c)->CentredOffset(0, 303), -39);        // -39.5 -> -39, not floor's -40
  EXPECT_EQ((*c)->CentredOffset(3, 303), 632);        // 632.5 -> 632
}

TEST(GridComposer, PasteWithMaskBlendsEveryBandIncludingAlpha) {
  GridOptions opt;
  opt.cell = 16;
  auto c = GridComposer::Create(ObjectsDir(), opt);
  ASSERT_TRUE(c.ok());
  // half.png is (200, 100, 50) at alpha 128 everywhere; size 10 = its own
  // size, so no resampling: the pixel values are the blend alone.
  auto img = (*c)->Compose(GridLayout{"half", "white", GridCell{0, 0}, GridCell{3, 3}, 10});
  ASSERT_TRUE(img.ok()) << img.status();
  ASSERT_EQ(img->width, 64);
  ASSERT_EQ(img->channels, 4);
  // A occupies [3, 13) in cell (0, 0): 3 = int((16 - 10) / 2).
  EXPECT_EQ(img->at(3, 3, 0), 100);  // 200 * 128 / 255 rounded
  EXPECT_EQ(img->at(3, 3, 1), 50);
  EXPECT_EQ(img->at(3, 3, 2), 25);
  EXPECT_EQ(img->at(3, 3, 3), 64);   // 128 * 128 / 255: not "over"'s 128
  EXPECT_EQ(img->at(2, 3, 3), 0);    // left of A: untouched canvas
  EXPECT_EQ(img->at(12, 12, 3), 64);
  EXPECT_EQ(img->at(13, 12, 3), 0);
  // B is opaque white in cell (3, 3) at [51, 61).
  EXPECT_EQ(img->at(51, 51, 0), 255);
  EXPECT_EQ(img->at(60, 60, 3), 255);
  EXPECT_EQ(img->at(50, 51, 3), 0);
}

TEST(GridComposer, VariationIsReproducibleAndInRange) {
  GridOptions opt;
  opt.cell = 64;
  opt.local_variation = true;
  opt.seed = 7;
  auto c = GridComposer::Create(ObjectsDir(), opt);
  ASSERT_TRUE(c.ok());
  std::set<double> angles;
  for (const GridLayout& l : EnumeratePairLayouts("disc", "blob", {40, 64}, false)) {
    LayoutRecipe r = (*c)->RecipeFor(l);
    ASSERT_TRUE(r.variation);
    EXPECT_GE(r.variation->a_factor, 0.95);
    EXPECT_LT(r.variation->a_factor, 1.05);
    EXPECT_GE(r.variation->b_factor, 0.9);
    EXPECT_LT(r.variation->b_factor, 1.1);
    EXPECT_GE(r.variation->a_angle, -15);
    EXPECT_LT(r.variation->b_angle, 15);
    angles.insert(r.variation->a_angle);
    const PlacementVariation again = SampleVariation(7, l);
    EXPECT_EQ(again.b_angle, r.variation->b_angle);
  }
  EXPECT_EQ(angles.size(), 480u);  // every layout draws its own numbers
  GridLayout l{"disc", "blob", GridCell{1, 1}, GridCell{2, 3}, 40};
  EXPECT_NE(SampleVariation(7, l).a_angle, SampleVariation(8, l).a_angle);
  auto a = (*c)->Compose(l);
  auto b = (*c)->Compose(l);
  ASSERT_TRUE(a.ok() && b.ok()) << a.status();
  EXPECT_EQ(a->pixels, b->pixels);
  opt.local_variation = false;
  auto plain = GridComposer::Create(ObjectsDir(), opt);
  auto p = (*plain)->Compose(l);
  ASSERT_TRUE(p.ok());
  EXPECT_NE(p->pixels, a->pixels);
}

TEST(GridComposer, GrownRotatedObjectsMayLeaveTheCanvas) {
  // B at 1.1 x cell and rotated is wider than its cell; corner cells clip.
  GridOptions opt;
  opt.cell = 40;
  opt.local_variation = true;
  auto c = GridComposer::Create(ObjectsDir(), opt);
  ASSERT_TRUE(c.ok());
  for (const GridLayout& l : EnumeratePairLayouts("disc", "disc", {40}, false)) {
    auto img = (*c)->Compose(l);
    ASSERT_TRUE(img.ok()) << img.status();
    EXPECT_EQ(img->width, 160);
  }
}

TEST(GridComposer, BackgroundIsChosenPerPairAndSize) {
  const std::string bg = ScratchDir("bg");
  io::Image green(30, 20, 3, 0);
  for (size_t i = 1; i < green.pixels.size(); i += 3) green.pixels[i] = 180;
  ASSERT_TRUE(io::SavePng(bg + "/green.png", green).ok());
  io::Image grey(5, 5, 1, 77);
  ASSERT_TRUE(io::SavePng(bg + "/grey.PNG", grey).ok());
  ASSERT_TRUE(io::SavePng(bg + "/ignored.bmp.txt", grey).ok());
  GridOptions opt;
  opt.cell = 16;
  opt.bg_dir = bg;
  auto c = GridComposer::Create(ObjectsDir(), opt);
  ASSERT_TRUE(c.ok()) << c.status();
  std::set<std::string> chosen;
  for (const GridLayout& l : EnumeratePairLayouts("disc", "blob", {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, false)) {
    const LayoutRecipe r = (*c)->RecipeFor(l);
    chosen.insert(r.background);
    GridLayout other = l;
    other.b_cell = other.b_cell == GridCell{0, 0} ? GridCell{1, 1} : GridCell{0, 0};
    if (other.b_cell != *other.a_cell) {
      EXPECT_EQ((*c)->RecipeFor(other).background, r.background);
    }
  }
  EXPECT_EQ(chosen.size(), 2u);  // both files get used across sizes
  auto img = (*c)->Compose(GridLayout{"half", "white", GridCell{0, 0}, GridCell{3, 3}, 10});
  ASSERT_TRUE(img.ok()) << img.status();
  EXPECT_EQ(img->at(0, 0, 3), 255);  // an opaque background, not transparency
}

TEST(GridComposer, ClearErrors) {
  const std::string objects = ObjectsDir();
  EXPECT_EQ(GridComposer::Create(objects + "/nope", {}).status().code(),
            absl::StatusCode::kNotFound);
  GridOptions opt;
  opt.bg_dir = ScratchDir("empty_bg");
  auto no_bg = GridComposer::Create(objects, opt);
  EXPECT_EQ(no_bg.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(no_bg.status().message().find("no .png"), std::string::npos);
  auto c = GridComposer::Create(objects, {});
  ASSERT_TRUE(c.ok());
  auto missing = (*c)->Compose(GridLayout{"disc", "unicorn", GridCell{0, 0}, GridCell{1, 0}, 50});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("unicorn.png"), std::string::npos);
  EXPECT_FALSE((*c)->Preload({"disc", "unicorn"}, {50}).ok());
  EXPECT_FALSE((*c)->Compose(GridLayout{"disc", "blob", GridCell{0, 0}, GridCell{1, 0}, 225}).ok());
  EXPECT_FALSE((*c)->Compose(GridLayout{"disc", "blob", std::nullopt, GridCell{1, 0}, 50}).ok());
}

TEST(SynthesizedLayouts, YieldsTheRgbImageTheModelSees) {
  GridOptions opt;
  opt.cell = 16;
  std::shared_ptr<const GridComposer> c = *GridComposer::Create(ObjectsDir(), opt);
  SynthesizedLayouts source(c, EnumeratePairLayouts("half", "white", {10}, false));
  ASSERT_EQ(source.size(), 240u);
  auto rgb = source.RgbImage(0);
  ASSERT_TRUE(rgb.ok()) << rgb.status();
  EXPECT_EQ(rgb->channels, 3);
  auto rgba = c->Compose(source.layout(0));
  EXPECT_EQ(rgb->pixels, io::DropAlpha(*rgba).pixels);
  EXPECT_EQ(rgb->at(3, 3, 0), 100);  // colour scaled by alpha, not composited
  EXPECT_EQ(rgb->at(0, 0, 0), 0);    // transparent canvas turns black
}

}  // namespace
}  // namespace spatialid::data
