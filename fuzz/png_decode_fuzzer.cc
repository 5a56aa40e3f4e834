// Fuzzes image decoding exactly as the shipped binaries do it: stb compiled
// from //third_party/stb's own implementation file (PNG only, the per-decode
// allocation budget of stb_limits.h), decoded by io::DecodeImage, the body of
// io::LoadImage, keeping the file's channels or converting to RGB/RGBA;
// then DropAlpha on what decodes. The fuzzer is one translation unit, so it
// includes stb_impl.cc rather than linking it.
//
// fuzz/findings/png_decode_fuzzer/ holds what earlier campaigns found; the
// runner replays those files before fuzzing, and tests/io:image_findings_test
// checks that LoadImage refuses each one with a clear message.
#include <cstddef>
#include <cstdint>
#include <string>

#include "third_party/stb/stb_impl.cc"
#include "spatialid/io/image.h"

namespace {

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Harness only, not a decode setting: inputs over 1 MiB or images over
  // 4 Mpx are skipped so the budget goes to formats, not to decoding large
  // valid images (DecodeImage's own limits are tested in tests/io).
  int w = 0, h = 0, c = 0;
  if (size > (1 << 20)) return 0;
  if (stbi_info_from_memory(data, static_cast<int>(size), &w, &h, &c) &&
      static_cast<int64_t>(w) * h > (1 << 22)) {
    return 0;
  }
  for (int want : {0, 3, 4}) {
    absl::StatusOr<spatialid::io::Image> img =
        spatialid::io::DecodeImage(data, size, want, "fuzz input");
    if (!img.ok()) {
      Check(img.status().message().rfind("fuzz input: not a readable PNG image (", 0) == 0);
      continue;
    }
    Check(img->width > 0 && img->height > 0 && img->channels >= 1 && img->channels <= 4);
    Check(img->pixels.size() ==
          static_cast<size_t>(img->width) * img->height * img->channels);
    spatialid::io::Image rgb = spatialid::io::DropAlpha(*img);
    Check(rgb.channels == 3 &&
          rgb.pixels.size() == static_cast<size_t>(rgb.width) * rgb.height * 3);
  }
  return 0;
}
