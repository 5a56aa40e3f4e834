// The shipped image decoders given what the fuzzers found
// (fuzz/findings/png_decode_fuzzer/): io::LoadImage (stb, as every binary
// builds it) and the background loader (libjpeg-turbo for JPEGs) must refuse
// each file with a message naming it and saying why, never crash, and never
// let a tiny file make stb allocate gigabytes. Also the limits themselves:
// a header over the pixel limit is refused before decoding, and real images
// (8- and 16-bit, large) still decode under the per-decode budget.
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <zlib.h>

#include "gtest/gtest.h"
#include "spatialid/data/grid_composer.h"
#include "spatialid/data/png_writer.h"
#include "spatialid/io/image.h"
#include "third_party/stb/stb_limits.h"

namespace spatialid::io {
namespace {

namespace fs = std::filesystem;

std::string FindingsDir() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  return (fs::path(srcdir ? srcdir : ".") / (workspace ? workspace : "spatialid") / "fuzz" /
          "findings" / "png_decode_fuzzer")
      .string();
}

std::vector<std::string> Findings() {
  std::vector<std::string> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(FindingsDir(), ec)) files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  return files;
}

std::string TempPath(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  return (fs::path(tmp ? tmp : "/tmp") / name).string();
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// A PNG of `w` x `h` pixels at `depth` bits per channel, colour type
// `colour` (6 = RGBA, 2 = RGB), every sample `value`.
std::string MakePng(uint32_t w, uint32_t h, int depth, int colour, uint8_t value) {
  const int channels = colour == 6 ? 4 : 3;
  const size_t stride = static_cast<size_t>(w) * channels * depth / 8;
  std::string raw;
  for (uint32_t y = 0; y < h; ++y) {
    raw.push_back(0);  // filter: none
    raw.append(stride, static_cast<char>(value));
  }
  uLongf zlen = compressBound(raw.size());
  std::string z(zlen, '\0');
  compress(reinterpret_cast<Bytef*>(z.data()), &zlen, reinterpret_cast<const Bytef*>(raw.data()),
           raw.size());
  z.resize(zlen);
  std::string ihdr;
  data::internal::AppendBigEndian32(ihdr, w);
  data::internal::AppendBigEndian32(ihdr, h);
  ihdr += std::string{static_cast<char>(depth), static_cast<char>(colour), 0, 0, 0};
  std::string png("\x89PNG\r\n\x1a\n", 8);
  data::internal::AppendChunk(png, "IHDR", ihdr);
  data::internal::AppendChunk(png, "IDAT", z);
  data::internal::AppendChunk(png, "IEND", "");
  return png;
}

TEST(ImageFindingsTest, FindingsAreThere) {
  // An empty glob must not make the tests below pass without checking anything.
  EXPECT_GE(Findings().size(), 3u) << FindingsDir();
}

TEST(ImageFindingsTest, LoadImageRefusesEveryFindingClearly) {
  for (const std::string& path : Findings()) {
    for (int want : {0, 3, 4}) {
      absl::StatusOr<Image> img = LoadImage(path, want);
      ASSERT_FALSE(img.ok()) << path << " decoded";
      const std::string msg(img.status().message());
      EXPECT_EQ(img.status().code(), absl::StatusCode::kInvalidArgument) << msg;
      EXPECT_EQ(msg.rfind(path + ": not a readable PNG image (", 0), 0u) << msg;
      EXPECT_EQ(msg.find("()"), std::string::npos) << "no reason given: " << msg;
      EXPECT_EQ(stb::stb_allocation_limit, stb::kMaxAllocationBytes) << "budget not restored";
    }
  }
}

TEST(ImageFindingsTest, EachFindingGetsItsOwnReason) {
  const std::string dir = FindingsDir();
  auto message = [&](const std::string& file) {
    return std::string(LoadImage(dir + "/" + file).status().message());
  };
  // stb used to realloc 2 GiB for this 86-byte file, then fail on "outofdata".
  EXPECT_NE(message("stb_png_2gib_alloc_from_86_bytes.png")
                .find("its data asks for more memory than a 5 x 3 image needs: corrupt or hostile"),
            std::string::npos)
      << message("stb_png_2gib_alloc_from_86_bytes.png");
  // stb fails without a reason here; the message used to end in "()".
  EXPECT_NE(message("stb_png_memcpy_null_zero_length.png").find("(corrupt image data)"),
            std::string::npos)
      << message("stb_png_memcpy_null_zero_length.png");
  // stb is built PNG only: its JPEG decoder never sees this file.
  EXPECT_NE(message("stb_jpeg_huffman_index_257.jpg").find("(not a PNG file)"),
            std::string::npos)
      << message("stb_jpeg_huffman_index_257.jpg");
}

TEST(ImageFindingsTest, BackgroundLoaderRefusesEveryFinding) {
  // Backgrounds: JPEGs through libjpeg-turbo, the rest through LoadImage.
  for (const std::string& path : Findings()) {
    absl::StatusOr<Image> img = data::LoadBackgroundRgba(path);
    ASSERT_FALSE(img.ok()) << path << " decoded";
    const std::string msg(img.status().message());
    EXPECT_EQ(msg.rfind(path + ": ", 0), 0u) << msg;
    EXPECT_GT(msg.size(), path.size() + 10) << msg;
  }
}

// The 1 x 1 RGBA image's bytes with its header claiming `w` x `h` pixels of
// `colour` type.
std::string WithHeader(uint32_t w, uint32_t h, int colour) {
  const std::string png = MakePng(1, 1, 8, 6, 7);
  std::string ihdr;
  data::internal::AppendBigEndian32(ihdr, w);
  data::internal::AppendBigEndian32(ihdr, h);
  ihdr += std::string{8, static_cast<char>(colour), 0, 0, 0};
  std::string out("\x89PNG\r\n\x1a\n", 8);
  data::internal::AppendChunk(out, "IHDR", ihdr);
  return out + png.substr(8 + 25);  // the 1 x 1 image's IDAT and IEND
}

TEST(ImageFindingsTest, HeaderOverThePixelLimitIsRefusedBeforeDecoding) {
  // 16384 x 16384 grey: 256 MiB, under stb's own 1 GiB header check.
  const std::string path = TempPath("huge_header.png");
  WriteFile(path, WithHeader(16384, 16384, 0));
  absl::StatusOr<Image> img = LoadImage(path);
  ASSERT_FALSE(img.ok());
  EXPECT_EQ(std::string(img.status().message()),
            path + ": not a readable PNG image (its header says 16384 x 16384 pixels, more than "
                   "the 67108864-pixel (8192 x 8192) limit)");
  // Over stb's own checks too (40 GB).
  WriteFile(path, WithHeader(100000, 100000, 6));
  img = LoadImage(path);
  ASSERT_FALSE(img.ok());
  EXPECT_EQ(std::string(img.status().message()),
            path + ": not a readable PNG image (its header says 100000 x 100000 pixels, more "
                   "than the 67108864-pixel (8192 x 8192) limit)");
  // A header stb refuses for another reason (colour type 5 does not exist).
  WriteFile(path, WithHeader(4, 4, 5));
  img = LoadImage(path);
  ASSERT_FALSE(img.ok());
  EXPECT_EQ(std::string(img.status().message()),
            path + ": not a readable PNG image (corrupt PNG header)");
}

TEST(ImageFindingsTest, RealImagesDecodeUnderTheBudget) {
  struct Case {
    uint32_t w, h;
    int depth, colour;
  };
  for (const Case& c : {Case{1, 1, 8, 6}, Case{3000, 2000, 8, 2}, Case{1200, 900, 16, 6},
                        Case{1, 4000, 16, 2}}) {
    const std::string path = TempPath("real.png");
    WriteFile(path, MakePng(c.w, c.h, c.depth, c.colour, 200));
    for (int want : {0, 3, 4}) {
      absl::StatusOr<Image> img = LoadImage(path, want);
      ASSERT_TRUE(img.ok()) << c.w << "x" << c.h << " depth " << c.depth << ": " << img.status();
      EXPECT_EQ(img->width, static_cast<int>(c.w));
      EXPECT_EQ(img->height, static_cast<int>(c.h));
      EXPECT_EQ(img->channels, want ? want : (c.colour == 6 ? 4 : 3));
      EXPECT_EQ(img->pixels[0], 200);
    }
  }
}

}  // namespace
}  // namespace spatialid::io
