// Fuzzes image decoding as spatialid::io::LoadImage does it (stb, keeping the
// file's channels or converting to RGB/RGBA), from memory instead of a path,
// then DropAlpha on what decodes. stb's implementation is compiled into this
// target because the fuzzer is one translation unit, PNG only: the pipeline's
// inputs are PNGs, and stb's JPEG decoder (Debian's stb) reads out of bounds
// on fuzz/findings/stb_jpeg_huffman_index_257.jpg (stb_image.h:1990), which
// is why //third_party/stb should be built with STBI_ONLY_PNG too.
#include <cstddef>
#include <cstdint>
#include <string>

#include <cstdlib>

// stb sizes buffers from chunk headers: an 86-byte file asks for 2 GiB
// (findings/stb_png_2gib_alloc_from_86_bytes.png). Refusing allocations over
// 256 MiB, as a failing malloc would, keeps libFuzzer's malloc limit for real
// leaks; stb handles the NULL as a decode error.
namespace {
constexpr size_t kMaxStbAlloc = size_t{256} << 20;
void* BoundedMalloc(size_t n) { return n > kMaxStbAlloc ? nullptr : std::malloc(n); }
void* BoundedRealloc(void* p, size_t n) { return n > kMaxStbAlloc ? nullptr : std::realloc(p, n); }
}  // namespace
#define STBI_MALLOC(n) BoundedMalloc(n)
#define STBI_REALLOC(p, n) BoundedRealloc(p, n)
#define STBI_FREE(p) std::free(p)
#define STBI_ONLY_PNG
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include "spatialid/io/image.h"

namespace {

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

// LoadImage's decode, from bytes; the same stb call and Image construction.
bool DecodeFromMemory(const uint8_t* data, size_t size, int want_channels,
                      spatialid::io::Image* img) {
  int w = 0, h = 0, c = 0;
  unsigned char* pixels =
      stbi_load_from_memory(data, static_cast<int>(size), &w, &h, &c, want_channels);
  if (pixels == nullptr) {
    Check(stbi_failure_reason() != nullptr);
    return false;
  }
  Check(w > 0 && h > 0 && c >= 1 && c <= 4);
  img->width = w;
  img->height = h;
  img->channels = want_channels ? want_channels : c;
  img->pixels.assign(pixels, pixels + static_cast<size_t>(w) * h * img->channels);
  stbi_image_free(pixels);
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Bound decoded size so the fuzzer explores formats, not allocations.
  int w = 0, h = 0, c = 0;
  if (size > (1 << 20)) return 0;
  if (stbi_info_from_memory(data, static_cast<int>(size), &w, &h, &c) &&
      static_cast<int64_t>(w) * h > (1 << 22)) {
    return 0;
  }
  for (int want : {0, 3, 4}) {
    spatialid::io::Image img;
    if (!DecodeFromMemory(data, size, want, &img)) continue;
    spatialid::io::Image rgb = spatialid::io::DropAlpha(img);
    Check(rgb.channels == 3 &&
          rgb.pixels.size() == static_cast<size_t>(rgb.width) * rgb.height * 3);
  }
  return 0;
}
