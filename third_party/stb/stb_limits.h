// The memory limits every stb image decode runs under, shipped binaries and
// fuzzer alike (fuzz/png_decode_fuzzer.cc compiles stb_impl.cc itself).
//
// stb sizes its buffers from what a file claims: an 86-byte PNG (a 5 x 3
// image whose zlib stream asks for a huge stored block,
// fuzz/findings/png_decode_fuzzer/stb_png_2gib_alloc_from_86_bytes.png) makes
// stb realloc 2 GiB. So each decode gets an allocation budget derived from
// the image's own header (io::DecodeImage sets it with
// ScopedStbAllocationLimit): twice the largest buffer an image of that size
// can need (16-bit RGBA rows plus filter bytes), plus twice the file's size
// for the compressed data. stb's allocator refuses anything above it, which
// stb reports as "outofmem" and DecodeImage as a corrupt file. Images over
// kMaxImagePixels are refused from their header before any decoding.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>

namespace spatialid::stb {

// 8192 x 8192: well above the pipeline's images (896 x 896 grid canvases,
// background photos), small enough that a decode's buffers stay under 1 GiB.
inline constexpr int64_t kMaxImagePixels = int64_t{1} << 26;
// The largest single allocation of a decode whose budget was not set.
inline constexpr size_t kMaxAllocationBytes = size_t{1} << 30;

// The calling thread's per-allocation limit for stb.
inline thread_local size_t stb_allocation_limit = kMaxAllocationBytes;

inline void* BoundedMalloc(size_t n) {
  return n > stb_allocation_limit ? nullptr : std::malloc(n);
}
inline void* BoundedRealloc(void* p, size_t n) {
  return n > stb_allocation_limit ? nullptr : std::realloc(p, n);
}

// The budget of decoding a `width` x `height` image from `file_bytes` bytes.
inline size_t DecodeAllocationBudget(int64_t width, int64_t height, size_t file_bytes) {
  const uint64_t rows = (static_cast<uint64_t>(width) * 8 + 1) * static_cast<uint64_t>(height);
  const uint64_t budget = 2 * rows + 2 * static_cast<uint64_t>(file_bytes) + (uint64_t{1} << 20);
  return budget > kMaxAllocationBytes ? kMaxAllocationBytes : static_cast<size_t>(budget);
}

// Sets the calling thread's limit for one decode, restoring the previous one.
class ScopedStbAllocationLimit {
 public:
  explicit ScopedStbAllocationLimit(size_t limit) : previous_(stb_allocation_limit) {
    stb_allocation_limit = limit;
  }
  ~ScopedStbAllocationLimit() { stb_allocation_limit = previous_; }
  ScopedStbAllocationLimit(const ScopedStbAllocationLimit&) = delete;
  ScopedStbAllocationLimit& operator=(const ScopedStbAllocationLimit&) = delete;

 private:
  size_t previous_;
};

}  // namespace spatialid::stb
