// CRC-32 as the zip format defines it (reflected polynomial 0xEDB88320).
//
// The .pt writer checksums every record it stores and the reader verifies
// them, so tensors of tens of megabytes pass through here: slicing-by-8
// tables built at compile time keep it at memory speed without a zlib
// dependency.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace spatialid::io {
namespace zip_crc32_internal {

using Tables = std::array<std::array<uint32_t, 256>, 8>;

constexpr Tables MakeTables() {
  Tables t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (0xEDB88320u ^ (c >> 1)) : (c >> 1);
    t[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; ++i) {
    for (int s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xFF];
  }
  return t;
}

inline constexpr Tables kTables = MakeTables();

}  // namespace zip_crc32_internal

// Continues `crc` (0 for a fresh checksum) over `n` bytes.
inline uint32_t Crc32(const void* data, size_t n, uint32_t crc = 0) {
  const auto& t = zip_crc32_internal::kTables;
  const auto* p = static_cast<const uint8_t*>(data);
  uint32_t c = ~crc;
  while (n >= 8) {
    uint32_t lo, hi;
    std::memcpy(&lo, p, 4);  // little-endian hosts only (static_assert in the writers)
    std::memcpy(&hi, p + 4, 4);
    lo ^= c;
    c = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^ t[4][lo >> 24] ^
        t[3][hi & 0xFF] ^ t[2][(hi >> 8) & 0xFF] ^ t[1][(hi >> 16) & 0xFF] ^ t[0][hi >> 24];
    p += 8;
    n -= 8;
  }
  while (n-- > 0) c = t[0][(c ^ *p++) & 0xFF] ^ (c >> 8);
  return ~c;
}

}  // namespace spatialid::io
