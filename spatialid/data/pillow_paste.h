// Pillow's `canvas.paste(obj, box, mask=obj)`, which the reference uses to
// put each object on the grid canvas.
//
// It is not "over" compositing: every band, alpha included, becomes
// `dst * (255 - m) + src * m` divided by 255 with Pillow's rounding
// (DIV255: add 128, then (t + (t >> 8)) >> 8), where m is the object's own
// alpha. On a transparent canvas an edge pixel's colour is therefore scaled
// by m/255 and the canvas alpha becomes about m*m/255. Parts of the object
// that fall outside the canvas are clipped, as Pillow clips negative or
// overflowing boxes.
#pragma once

#include <algorithm>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "spatialid/io/image.h"

namespace spatialid::data {

// Pillow's BLEND macro for one 8-bit band.
inline uint8_t PillowBlend(uint8_t mask, uint8_t dst, uint8_t src) {
  const unsigned tmp = dst * (255u - mask) + src * static_cast<unsigned>(mask) + 128u;
  return static_cast<uint8_t>(((tmp >> 8) + tmp) >> 8);
}

// Pastes `src` with its upper-left corner at (x, y) of `dst`, using src's
// last channel (alpha) as the mask. Both images must have the same channel
// count, 2 (LA) or 4 (RGBA).
inline absl::Status PasteWithOwnAlpha(io::Image& dst, const io::Image& src, int x, int y) {
  if (src.channels != dst.channels || (src.channels != 2 && src.channels != 4)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "paste: expected two LA or two RGBA images, got ", src.channels, " channels onto ",
        dst.channels));
  }
  const int c = src.channels;
  // Clip the box to the canvas, as Pillow's ImagingPaste does.
  const int sx0 = std::max(0, -x), sy0 = std::max(0, -y);
  const int dx0 = std::max(0, x), dy0 = std::max(0, y);
  const int w = std::min(src.width - sx0, dst.width - dx0);
  const int h = std::min(src.height - sy0, dst.height - dy0);
  for (int row = 0; row < h; ++row) {
    const uint8_t* in = src.row(sy0 + row) + static_cast<size_t>(sx0) * c;
    uint8_t* out = dst.row(dy0 + row) + static_cast<size_t>(dx0) * c;
    for (int col = 0; col < w; ++col, in += c, out += c) {
      const uint8_t m = in[c - 1];
      if (m == 0) continue;  // BLEND(0, d, s) == d
      for (int ch = 0; ch < c; ++ch) out[ch] = PillowBlend(m, out[ch], in[ch]);
    }
  }
  return absl::OkStatus();
}

}  // namespace spatialid::data
