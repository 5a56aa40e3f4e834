// 8-bit images in memory and as PNG files.
//
// The data engine, the image processors and the tests all pass pixels as an
// `io::Image`: interleaved 8-bit channels (1 = grey, 3 = RGB, 4 = RGBA),
// row-major, no padding. Decoding (PNG, under a per-image memory budget)
// and encoding go through stb; writes land under a temporary name and are
// renamed into place so a killed run never leaves a half-written PNG.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

// Declarations only; the implementation is compiled once in //third_party/stb.
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>

#include "spatialid/io/atomic_output_file.h"
#include "third_party/stb/stb_limits.h"

namespace spatialid::io {

struct Image {
  int width = 0;
  int height = 0;
  int channels = 0;
  std::vector<uint8_t> pixels;  // height * width * channels bytes

  Image() = default;
  Image(int w, int h, int c, uint8_t fill = 0)
      : width(w), height(h), channels(c), pixels(static_cast<size_t>(w) * h * c, fill) {}

  uint8_t* row(int y) { return pixels.data() + static_cast<size_t>(y) * width * channels; }
  const uint8_t* row(int y) const {
    return pixels.data() + static_cast<size_t>(y) * width * channels;
  }
  uint8_t& at(int x, int y, int c) { return row(y)[x * channels + c]; }
  uint8_t at(int x, int y, int c) const { return row(y)[x * channels + c]; }
  bool empty() const { return pixels.empty(); }
};

// Decodes PNG bytes held in memory; `name` (the file's path) starts every
// error message. `want_channels` = 0 keeps the file's channel count; 3 or 4
// converts like stb does. The decode runs under the allocation budget of
// third_party/stb/stb_limits.h: images larger than 8192 x 8192 pixels, and
// files whose data asks for more memory than their header's size needs (a
// corrupt or hostile file), are refused with a message instead of making
// stb allocate gigabytes.
inline absl::StatusOr<Image> DecodeImage(const uint8_t* bytes, size_t size, int want_channels,
                                         absl::string_view name) {
  auto refused = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": not a readable PNG image (", why, ")"));
  };
  if (size > static_cast<size_t>(std::numeric_limits<int>::max())) {
    return refused(absl::StrCat(size, " bytes: larger than any image this toolkit reads"));
  }
  const int len = static_cast<int>(size);
  // The size from IHDR (signature, chunk length, "IHDR", width, height)
  // ourselves: stb's header check only says "unknown image type".
  const bool png = size >= 8 && std::memcmp(bytes, "\x89PNG\r\n\x1a\n", 8) == 0;
  if (png && size >= 24 && std::memcmp(bytes + 12, "IHDR", 4) == 0) {
    auto be32 = [&](size_t at) {
      return (uint32_t{bytes[at]} << 24) | (uint32_t{bytes[at + 1]} << 16) |
             (uint32_t{bytes[at + 2]} << 8) | uint32_t{bytes[at + 3]};
    };
    const uint32_t hw = be32(16), hh = be32(20);
    if (static_cast<uint64_t>(hw) * hh > static_cast<uint64_t>(stb::kMaxImagePixels)) {
      return refused(absl::StrCat("its header says ", hw, " x ", hh, " pixels, more than the ",
                                  stb::kMaxImagePixels, "-pixel (8192 x 8192) limit"));
    }
  }
  int w = 0, h = 0, c = 0;
  if (!stbi_info_from_memory(bytes, len, &w, &h, &c)) {
    return refused(png ? "corrupt PNG header" : "not a PNG file");
  }
  unsigned char* data = nullptr;
  {
    stb::ScopedStbAllocationLimit budget(stb::DecodeAllocationBudget(w, h, size));
    data = stbi_load_from_memory(bytes, len, &w, &h, &c, want_channels);
  }
  if (data == nullptr) {
    const std::string why = stbi_failure_reason() ? stbi_failure_reason() : "";
    if (why == "outofmem") {
      return refused(absl::StrCat("its data asks for more memory than a ", w, " x ", h,
                                  " image needs: corrupt or hostile"));
    }
    return refused(why.empty() ? std::string("corrupt image data") : why);
  }
  Image img;
  img.width = w;
  img.height = h;
  img.channels = want_channels ? want_channels : c;
  img.pixels.assign(data, data + static_cast<size_t>(w) * h * img.channels);
  stbi_image_free(data);
  return img;
}

// Reads and decodes a PNG file (see DecodeImage).
inline absl::StatusOr<Image> LoadImage(const std::string& path, int want_channels = 0) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return absl::NotFoundError(absl::StrCat(path, ": no such image file"));
  }
  std::ifstream in(path, std::ios::binary);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return absl::PermissionDeniedError(absl::StrCat(path, ": cannot read the image file"));
  return DecodeImage(bytes.data(), bytes.size(), want_channels, path);
}

// Drops alpha without compositing, as Pillow's `.convert("RGB")` does: a
// transparent background becomes whatever colour its pixels hold (black for
// the data engine's canvas).
inline Image DropAlpha(const Image& img) {
  if (img.channels == 3) return img;
  Image out(img.width, img.height, 3);
  const size_t n = static_cast<size_t>(img.width) * img.height;
  for (size_t i = 0; i < n; ++i) {
    if (img.channels >= 3) {
      for (int c = 0; c < 3; ++c) out.pixels[i * 3 + c] = img.pixels[i * img.channels + c];
    } else {  // grey (+alpha)
      for (int c = 0; c < 3; ++c) out.pixels[i * 3 + c] = img.pixels[i * img.channels];
    }
  }
  return out;
}

// Writes a PNG with stb's encoder, whole or not at all (AtomicOutputFile,
// without fsync: see there), creating the parent folders.
inline absl::Status SavePng(const std::string& path, const Image& img) {
  if (img.empty() || img.channels < 1 || img.channels > 4) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": refusing to write an empty image"));
  }
  std::string bytes;
  auto append = [](void* out, void* data, int n) {
    static_cast<std::string*>(out)->append(static_cast<const char*>(data), static_cast<size_t>(n));
  };
  if (!stbi_write_png_to_func(append, &bytes, img.width, img.height, img.channels,
                              img.pixels.data(), img.width * img.channels)) {
    return absl::InternalError(absl::StrCat(path, ": stb could not encode the PNG"));
  }
  return WriteFileAtomically(path, bytes, AtomicOutputFile::Sync::kNoFsync);
}

}  // namespace spatialid::io
