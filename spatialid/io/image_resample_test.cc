// Edge cases of the Pillow-exact resize and rotate; pixel parity with
// Pillow itself is checked by //tests/data:data_engine_oracle_test.
#include "spatialid/io/image_resample.h"

#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace spatialid::io {
namespace {

constexpr ResampleFilter kConvolutions[] = {ResampleFilter::kBox, ResampleFilter::kBilinear,
                                            ResampleFilter::kHamming, ResampleFilter::kBicubic,
                                            ResampleFilter::kLanczos};

Image RandomImage(int w, int h, int c, uint32_t seed) {
  std::mt19937 rng(seed);
  Image img(w, h, c);
  for (auto& p : img.pixels) p = static_cast<uint8_t>(rng() & 255);
  return img;
}

TEST(PillowResize, SameSizeIsAnExactCopyEvenWithAlpha) {
  // Pillow returns a copy before any premultiplication, so colour under
  // partial alpha survives untouched.
  Image img = RandomImage(7, 5, 4, 1);
  for (ResampleFilter f : kConvolutions) {
    auto out = PillowResize(img, 7, 5, f);
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ(out->pixels, img.pixels);
  }
}

TEST(PillowResize, ConstantImageStaysConstantUpAndDown) {
  // Coefficients are normalised to sum 1 before rounding to fixed point.
  for (int c = 1; c <= 4; ++c) {
    Image img(37, 23, c, 0);
    for (size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = (c == 2 || c == 4) && i % c == c - 1 ? 255 : 173;
    for (ResampleFilter f : kConvolutions) {
      for (auto [w, h] : {std::pair{5, 3}, {100, 61}, {37, 80}, {11, 23}, {1, 1}}) {
        auto out = PillowResize(img, w, h, f);
        ASSERT_TRUE(out.ok()) << out.status();
        ASSERT_EQ(out->width, w);
        ASSERT_EQ(out->height, h);
        ASSERT_EQ(out->channels, c);
        for (size_t i = 0; i < out->pixels.size(); ++i) {
          const uint8_t want = (c == 2 || c == 4) && i % c == c - 1 ? 255 : 173;
          ASSERT_EQ(out->pixels[i], want) << "filter " << int(f) << " size " << w << "x" << h;
        }
      }
    }
  }
}

TEST(PillowResize, BilinearHalvingAveragesWithRoundHalfUp) {
  Image img(2, 1, 1);
  img.pixels = {0, 255};
  auto out = PillowResize(img, 1, 1, ResampleFilter::kBilinear);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->pixels[0], 128);  // (0 + 255) / 2 = 127.5 rounds up
}

TEST(PillowResize, OnePixelUpscalesToItsColour) {
  Image img(1, 1, 3);
  img.pixels = {10, 200, 33};
  for (ResampleFilter f : kConvolutions) {
    auto out = PillowResize(img, 4, 6, f);
    ASSERT_TRUE(out.ok());
    for (int i = 0; i < 24; ++i) ASSERT_EQ(out->pixels[i * 3 + 1], 200);
  }
}

TEST(PillowResize, LanczosOvershootIsClippedTo8Bits) {
  // A hard edge rings under Lanczos and bicubic; the ring must clip, not wrap.
  Image img(8, 1, 1);
  img.pixels = {0, 0, 0, 0, 255, 255, 255, 255};
  auto out = PillowResize(img, 23, 1, ResampleFilter::kLanczos);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->pixels.front(), 0);
  EXPECT_EQ(out->pixels.back(), 255);
  for (size_t i = 1; i < out->pixels.size(); ++i) EXPECT_GE(out->pixels[i] + 40, out->pixels[i - 1]);
}

TEST(PillowResize, NearestPicksPixelCentres) {
  Image img(4, 1, 1);
  img.pixels = {10, 20, 30, 40};
  auto down = PillowResize(img, 2, 1, ResampleFilter::kNearest);
  ASSERT_TRUE(down.ok());
  EXPECT_EQ(down->pixels, (std::vector<uint8_t>{20, 40}));
  auto up = PillowResize(img, 8, 1, ResampleFilter::kNearest);
  ASSERT_TRUE(up.ok());
  EXPECT_EQ(up->pixels, (std::vector<uint8_t>{10, 10, 20, 20, 30, 30, 40, 40}));
}

TEST(PillowResize, SeparablePassesMatchOneAxisResizes) {
  // Changing only the width runs only the horizontal pass, and vice versa.
  Image img = RandomImage(13, 9, 3, 2);
  auto wide = ResampleChannels(img, 31, 9, ResampleFilter::kBicubic);
  auto both = ResampleChannels(img, 31, 4, ResampleFilter::kBicubic);
  auto then = ResampleChannels(*wide, 31, 4, ResampleFilter::kBicubic);
  ASSERT_TRUE(wide.ok() && both.ok() && then.ok());
  EXPECT_EQ(both->pixels, then->pixels);
}

TEST(PillowResize, RejectsBadSizesAndImages) {
  Image img = RandomImage(4, 4, 3, 3);
  EXPECT_FALSE(PillowResize(img, 0, 4, ResampleFilter::kLanczos).ok());
  EXPECT_FALSE(PillowResize(img, 4, -1, ResampleFilter::kNearest).ok());
  EXPECT_FALSE(PillowResize(Image(), 4, 4, ResampleFilter::kBilinear).ok());
  Image five(2, 2, 5);
  EXPECT_FALSE(PillowResize(five, 4, 4, ResampleFilter::kBilinear).ok());
  EXPECT_FALSE(ResampleChannels(img, 2, 2, ResampleFilter::kNearest).ok());
}

TEST(AlphaPremultiplication, FollowsPillowIntegerRounding) {
  Image px(1, 1, 4);
  px.pixels = {200, 1, 255, 128};
  Image pre = PremultiplyAlpha(px);
  EXPECT_EQ(pre.pixels, (std::vector<uint8_t>{100, 1, 128, 128}));
  Image back = UnpremultiplyAlpha(pre);
  EXPECT_EQ(back.pixels, (std::vector<uint8_t>{199, 1, 255, 128}));  // 255 * 100 / 128 = 199
  Image clear(1, 1, 4);
  clear.pixels = {9, 8, 7, 0};
  EXPECT_EQ(UnpremultiplyAlpha(clear).pixels, clear.pixels);  // alpha 0 keeps colour
  Image la(1, 1, 2);
  la.pixels = {255, 51};
  EXPECT_EQ(PremultiplyAlpha(la).pixels, (std::vector<uint8_t>{51, 51}));
}

TEST(PillowRotate, FastPathsAreExactTransposes) {
  Image img = RandomImage(5, 3, 2, 4);
  auto r0 = PillowRotate(img, 360, true);
  ASSERT_TRUE(r0.ok());
  EXPECT_EQ(r0->pixels, img.pixels);
  auto r90 = PillowRotate(img, 90, true);  // counter-clockwise
  ASSERT_TRUE(r90.ok());
  ASSERT_EQ(r90->width, 3);
  ASSERT_EQ(r90->height, 5);
  for (int c = 0; c < 2; ++c) {
    EXPECT_EQ(r90->at(0, 0, c), img.at(4, 0, c));  // top-right goes top-left
    EXPECT_EQ(r90->at(2, 4, c), img.at(0, 2, c));  // bottom-left goes bottom-right
  }
  auto r270 = PillowRotate(img, -90, true);
  auto back = PillowRotate(*r270, 90, true);
  ASSERT_TRUE(r270.ok() && back.ok());
  EXPECT_EQ(back->pixels, img.pixels);
  auto r180 = PillowRotate(img, 540, false);
  ASSERT_TRUE(r180.ok());
  EXPECT_EQ(r180->at(0, 0, 1), img.at(4, 2, 1));
}

TEST(PillowRotate, ExpandGrowsTheCanvasAndFillsTransparent) {
  Image img(20, 20, 4, 255);
  auto r = PillowRotate(img, 15, true);
  ASSERT_TRUE(r.ok());
  // 20 * (cos 15 + sin 15) = 24.5, widened to whole pixels on both sides.
  EXPECT_EQ(r->width, 26);
  EXPECT_EQ(r->height, 26);
  EXPECT_EQ(r->at(0, 0, 3), 0);
  EXPECT_EQ(r->at(13, 13, 3), 255);
  auto same = PillowRotate(img, 15, false);
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->width, 20);
  EXPECT_EQ(same->at(0, 0, 3), 0);  // a corner turns out of the source
}

TEST(PillowRotate, RejectsNonFiniteAngles) {
  Image img(3, 3, 1, 1);
  EXPECT_FALSE(PillowRotate(img, std::numeric_limits<double>::infinity(), true).ok());
  EXPECT_FALSE(PillowRotate(Image(), 10, true).ok());
}

TEST(PythonArithmetic, RoundAndModuloMatchPython) {
  EXPECT_EQ(internal::RoundTo15Decimals(0.1234567890123456789), 0.123456789012346);
  EXPECT_EQ(internal::RoundTo15Decimals(-0.5), -0.5);
  EXPECT_EQ(internal::PythonFloatMod(-10.0, 360.0), 350.0);
  EXPECT_EQ(internal::PythonFloatMod(370.0, 360.0), 10.0);
  EXPECT_EQ(internal::PythonFloatMod(-360.0, 360.0), 0.0);
}

}  // namespace
}  // namespace spatialid::io
