#include "spatialid/data/png_writer.h"

#include <random>

#include "gtest/gtest.h"
#include "spatialid/data/test_support.h"

namespace spatialid::data {
namespace {

TEST(PngWriter, RoundTripsEveryChannelCountAndFilterMode) {
  const std::string dir = testing::ScratchDir("png");
  std::mt19937 rng(5);
  for (int c = 1; c <= 4; ++c) {
    for (PngRowFilter filter : {PngRowFilter::kNone, PngRowFilter::kAdaptive}) {
      for (auto [w, h] : {std::pair{1, 1}, {37, 13}, {64, 64}}) {
        io::Image img(w, h, c);
        // Half noise, half smooth gradient, so every filter type gets picked.
        for (int y = 0; y < h; ++y) {
          for (int x = 0; x < w * c; ++x) {
            img.row(y)[x] = y % 2 ? static_cast<uint8_t>(rng()) : static_cast<uint8_t>(x + 3 * y);
          }
        }
        const std::string path = dir + "/img.png";
        ASSERT_TRUE(WritePngFile(path, img, {6, filter}).ok());
        auto back = io::LoadImage(path);
        ASSERT_TRUE(back.ok()) << back.status();
        EXPECT_EQ(back->channels, c);
        EXPECT_EQ(back->width, w);
        EXPECT_EQ(back->pixels, img.pixels) << "channels " << c << " size " << w << "x" << h;
      }
    }
  }
}

TEST(PngWriter, RejectsBadInputAndUnwritablePaths) {
  EXPECT_FALSE(EncodePng(io::Image()).ok());
  EXPECT_FALSE(EncodePng(io::Image(2, 2, 4), {11, PngRowFilter::kNone}).ok());
  auto s = WritePngFile("/proc/definitely/not/here.png", io::Image(2, 2, 4));
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("/proc/definitely/not"), std::string::npos) << s;
}

}  // namespace
}  // namespace spatialid::data
