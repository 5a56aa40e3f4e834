// The one translation unit that compiles stb's image decoder and encoder,
// for the shipped binaries and (included as is) for the PNG fuzzer, so both
// decode with the same settings.
// PNG only: the data engine decodes JPEG backgrounds with libjpeg-turbo
// (Pillow's pixels), and stb's JPEG decoder reads out of bounds on hostile
// input (fuzz/findings/png_decode_fuzzer/stb_jpeg_huffman_index_257.jpg).
// Every allocation goes through the per-decode budget of stb_limits.h.
#include "third_party/stb/stb_limits.h"

#define STBI_MALLOC(n) ::spatialid::stb::BoundedMalloc(n)
#define STBI_REALLOC(p, n) ::spatialid::stb::BoundedRealloc(p, n)
#define STBI_FREE(p) std::free(p)
#define STBI_ONLY_PNG
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>
// Later includes (the fuzzer's translation unit) get declarations only.
#undef STB_IMAGE_IMPLEMENTATION
#undef STB_IMAGE_WRITE_IMPLEMENTATION
