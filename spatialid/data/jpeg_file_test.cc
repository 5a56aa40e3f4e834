#include "spatialid/data/jpeg_file.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "spatialid/data/grid_composer.h"
#include "spatialid/data/test_support.h"

namespace spatialid::data {
namespace {

// A smooth colour gradient written as JPEG by stb's encoder.
std::string WriteGradientJpeg(const std::string& dir, int channels) {
  io::Image img(40, 24, channels);
  for (int y = 0; y < 24; ++y) {
    for (int x = 0; x < 40; ++x) {
      for (int c = 0; c < channels; ++c) img.at(x, y, c) = static_cast<uint8_t>(x * 5 + y * 3 + c * 40);
    }
  }
  const std::string path = dir + "/g" + std::to_string(channels) + ".jpeg";
  EXPECT_TRUE(stbi_write_jpg(path.c_str(), 40, 24, channels, img.pixels.data(), 95));
  return path;
}

TEST(JpegFile, DecodesColourAndGreyToRgb) {
  const std::string dir = testing::ScratchDir("jpeg");
  for (int channels : {3, 1}) {
    const std::string path = WriteGradientJpeg(dir, channels);
    ASSERT_TRUE(LooksLikeJpeg(path));
    auto img = LoadJpegRgb(path);
    ASSERT_TRUE(img.ok()) << img.status();
    EXPECT_EQ(img->width, 40);
    EXPECT_EQ(img->height, 24);
    EXPECT_EQ(img->channels, 3);
    for (int c = 0; c < 3; ++c) {
      const int want = 20 * 5 + 12 * 3 + (channels == 3 ? c * 40 : 0);
      EXPECT_NEAR(img->at(20, 12, c), want, 6) << "channel " << c;
    }
  }
}

TEST(JpegFile, BackgroundsDispatchOnContentNotExtension) {
  const std::string dir = testing::ScratchDir("dispatch");
  const std::string jpeg = WriteGradientJpeg(dir, 3);
  std::filesystem::rename(jpeg, dir + "/photo.png");  // a JPEG under a .png name
  auto rgba = LoadBackgroundRgba(dir + "/photo.png");
  ASSERT_TRUE(rgba.ok()) << rgba.status();
  EXPECT_EQ(rgba->channels, 4);
  EXPECT_EQ(rgba->at(3, 3, 3), 255);
  EXPECT_EQ(rgba->at(3, 3, 0), LoadJpegRgb(dir + "/photo.png")->at(3, 3, 0));
  ASSERT_TRUE(io::SavePng(dir + "/flat.png", io::Image(3, 3, 3, 9)).ok());
  EXPECT_FALSE(LooksLikeJpeg(dir + "/flat.png"));
  EXPECT_EQ(LoadBackgroundRgba(dir + "/flat.png")->at(1, 1, 3), 255);
}

TEST(JpegFile, TruncatedAndCorruptFilesAreErrors) {
  const std::string dir = testing::ScratchDir("bad");
  const std::string path = WriteGradientJpeg(dir, 3);
  const auto size = std::filesystem::file_size(path);
  std::filesystem::resize_file(path, size / 2);
  auto truncated = LoadJpegRgb(path);
  EXPECT_EQ(truncated.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(truncated.status().message().find(path), std::string::npos) << truncated.status();
  std::ofstream(dir + "/junk.jpg", std::ios::binary) << std::string("\xFF\xD8\xFF\x00junk", 8);
  EXPECT_FALSE(LoadJpegRgb(dir + "/junk.jpg").ok());
  EXPECT_EQ(LoadJpegRgb(dir + "/absent.jpg").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace spatialid::data
