// 8-bit images in memory and as PNG files.
//
// The data engine, the image processors and the tests all pass pixels as an
// `io::Image`: interleaved 8-bit channels (1 = grey, 3 = RGB, 4 = RGBA),
// row-major, no padding. Decoding and encoding go through stb; writes land
// under a temporary name and are renamed into place so a killed run never
// leaves a half-written PNG.
#pragma once

#include <cstdint>
#include <cstdio>
#include <unistd.h>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

// Declarations only; the implementation is compiled once in //third_party/stb.
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>

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

// Decodes a PNG (or any format stb reads) keeping its own channel count.
// `want_channels` = 0 keeps the file's; 3 or 4 converts like stb does.
inline absl::StatusOr<Image> LoadImage(const std::string& path, int want_channels = 0) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return absl::NotFoundError(absl::StrCat(path, ": no such image file"));
  }
  int w = 0, h = 0, c = 0;
  unsigned char* data = stbi_load(path.c_str(), &w, &h, &c, want_channels);
  if (data == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a readable PNG/JPEG image (", stbi_failure_reason(), ")"));
  }
  Image img;
  img.width = w;
  img.height = h;
  img.channels = want_channels ? want_channels : c;
  img.pixels.assign(data, data + static_cast<size_t>(w) * h * img.channels);
  stbi_image_free(data);
  return img;
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

// Writes a PNG atomically: to `path.tmp.<pid>`, then renamed over `path`.
inline absl::Status SavePng(const std::string& path, const Image& img) {
  if (img.empty() || img.channels < 1 || img.channels > 4) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": refusing to write an empty image"));
  }
  std::error_code ec;
  const auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  if (ec) {
    return absl::PermissionDeniedError(
        absl::StrCat(parent.string(), ": cannot create folder (", ec.message(), ")"));
  }
  const std::string tmp = absl::StrCat(path, ".tmp.", static_cast<long>(::getpid()));
  if (!stbi_write_png(tmp.c_str(), img.width, img.height, img.channels, img.pixels.data(),
                      img.width * img.channels)) {
    std::filesystem::remove(tmp, ec);
    return absl::PermissionDeniedError(
        absl::StrCat(path, ": could not write PNG (disk full or folder not writable?)"));
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    return absl::PermissionDeniedError(absl::StrCat(path, ": could not rename into place"));
  }
  return absl::OkStatus();
}

}  // namespace spatialid::io
