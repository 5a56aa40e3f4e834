// Pillow-exact resizing and rotation of 8-bit images.
//
// The reference pipeline prepares every image with Pillow, and the slow
// transformers image processors resize with Pillow too, so pixel parity
// needs Pillow's own arithmetic, not a textbook filter:
// - `PillowResize` is `Image.resize(size, filter)`: Pillow's two-pass
//   separable convolution (horizontal pass first, then vertical), filter
//   support stretched by the scale when downscaling, coefficients normalised
//   to sum 1 in double precision and then rounded to 22-bit fixed point, and
//   every pass rounded and clipped to 8 bits. Two- and four-channel images
//   are treated as LA / RGBA: like Pillow they are premultiplied by alpha
//   before filtering and un-premultiplied after (NEAREST excepted). NEAREST
//   is Pillow's scaling affine map, not a convolution.
// - `PillowRotate` is `Image.rotate(angle, expand=...)` with its default
//   NEAREST filter: the same matrix, rounding to 15 decimals, expand
//   arithmetic and 16.16 fixed-point sampling; uncovered pixels are zero
//   (transparent for RGBA).
// - `ResampleChannels` is the raw convolution (Pillow's `ImagingResample`)
//   with no alpha handling, for callers that premultiply themselves.
//
// Every function treats channels independently, so any channel count from
// 1 to 4 works; the alpha conventions above follow Pillow's modes L, LA,
// RGB and RGBA.
//
// Example:
//   SPATIALID_ASSIGN_OR_RETURN(io::Image small,
//                              io::PillowResize(img, 224, 224, io::ResampleFilter::kLanczos));
//   SPATIALID_ASSIGN_OR_RETURN(io::Image turned, io::PillowRotate(small, 12.5, /*expand=*/true));
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "spatialid/io/image.h"

namespace spatialid::io {

// Pillow's `Image.Resampling` filters (BOX and HAMMING are there because they
// come for free with the same machinery).
enum class ResampleFilter { kNearest, kBox, kBilinear, kHamming, kBicubic, kLanczos };

namespace internal {

// Coefficients are stored with 22 fractional bits: 8 bits of pixel plus two
// bits of headroom for filters with negative lobes fit a 32-bit int.
inline constexpr int kResamplePrecisionBits = 32 - 8 - 2;

inline double BoxFilter(double x) { return (x > -0.5 && x <= 0.5) ? 1.0 : 0.0; }

inline double BilinearFilter(double x) {
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

inline double HammingFilter(double x) {
  x = std::fabs(x);
  if (x == 0.0) return 1.0;
  if (x >= 1.0) return 0.0;
  x = x * M_PI;
  // Pillow writes these two constants as floats; their float values matter.
  return std::sin(x) / x * (0.54f + 0.46f * std::cos(x));
}

inline double BicubicFilter(double x) {
  constexpr double a = -0.5;  // Pillow's (and Keys') choice
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

inline double Sinc(double x) {
  if (x == 0.0) return 1.0;
  x = x * M_PI;
  return std::sin(x) / x;
}

inline double LanczosFilter(double x) {  // a = 3
  return (-3.0 <= x && x < 3.0) ? Sinc(x) * Sinc(x / 3) : 0.0;
}

struct FilterKernel {
  double (*fn)(double);
  double support;
};

inline FilterKernel KernelFor(ResampleFilter f) {
  switch (f) {
    case ResampleFilter::kBox: return {BoxFilter, 0.5};
    case ResampleFilter::kBilinear: return {BilinearFilter, 1.0};
    case ResampleFilter::kHamming: return {HammingFilter, 1.0};
    case ResampleFilter::kBicubic: return {BicubicFilter, 2.0};
    case ResampleFilter::kLanczos: return {LanczosFilter, 3.0};
    case ResampleFilter::kNearest: break;
  }
  return {nullptr, 0.0};
}

// The taps of one output line: for output index i, `count[i]` input samples
// starting at `first[i]` weighted by `weights[i * taps ...]`.
struct FixedPointTaps {
  int taps = 0;
  std::vector<int> first, count;
  std::vector<int32_t> weights;
};

// Pillow's precompute_coeffs + normalize_coeffs_8bpc for the whole input
// range [0, in_size). The box edges are floats in Pillow, hence `float`.
inline FixedPointTaps PrecomputeTaps(int in_size, int out_size, FilterKernel kernel) {
  const float in0 = 0.0f, in1 = static_cast<float>(in_size);
  const double scale = static_cast<double>(in1 - in0) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = kernel.support * filterscale;
  FixedPointTaps t;
  t.taps = static_cast<int>(std::ceil(support)) * 2 + 1;
  t.first.resize(out_size);
  t.count.resize(out_size);
  t.weights.assign(static_cast<size_t>(out_size) * t.taps, 0);
  std::vector<double> k(t.taps);
  const double inv_filterscale = 1.0 / filterscale;
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = in0 + (xx + 0.5) * scale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      const double w = kernel.fn((x + xmin - center + 0.5) * inv_filterscale);
      k[x] = w;
      ww += w;
    }
    for (int x = 0; x < xmax; ++x) {
      if (ww != 0.0) k[x] /= ww;
      const double scaled = k[x] * (1 << kResamplePrecisionBits);
      t.weights[static_cast<size_t>(xx) * t.taps + x] =
          k[x] < 0 ? static_cast<int32_t>(-0.5 + scaled) : static_cast<int32_t>(0.5 + scaled);
    }
    t.first[xx] = xmin;
    t.count[xx] = xmax;
  }
  return t;
}

inline uint8_t ClipFixedPoint(int32_t acc) {
  const int32_t v = acc >> kResamplePrecisionBits;
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// Horizontal pass over rows [row0, row0 + rows) of `in`, with the channel
// count fixed at compile time so the tap loop keeps C accumulators in
// registers.
template <int C>
inline void ResampleRowsFixed(const Image& in, int row0, const FixedPointTaps& t, Image& out) {
  for (int y = 0; y < out.height; ++y) {
    const uint8_t* src = in.row(row0 + y);
    uint8_t* dst = out.row(y);
    for (int xx = 0; xx < out.width; ++xx) {
      const int32_t* k = &t.weights[static_cast<size_t>(xx) * t.taps];
      const uint8_t* s = src + static_cast<size_t>(t.first[xx]) * C;
      int32_t acc[C];
      for (int ch = 0; ch < C; ++ch) acc[ch] = 1 << (kResamplePrecisionBits - 1);
      for (int x = 0; x < t.count[xx]; ++x, s += C) {
        for (int ch = 0; ch < C; ++ch) acc[ch] += s[ch] * k[x];
      }
      for (int ch = 0; ch < C; ++ch) dst[xx * C + ch] = ClipFixedPoint(acc[ch]);
    }
  }
}

inline Image ResampleRows(const Image& in, int out_w, int row0, int rows,
                          const FixedPointTaps& t) {
  Image out(out_w, rows, in.channels);
  switch (in.channels) {
    case 1: ResampleRowsFixed<1>(in, row0, t, out); break;
    case 2: ResampleRowsFixed<2>(in, row0, t, out); break;
    case 3: ResampleRowsFixed<3>(in, row0, t, out); break;
    default: ResampleRowsFixed<4>(in, row0, t, out); break;
  }
  return out;
}

// Vertical pass; `t.first` is relative to row `row_offset` of `in`.
inline Image ResampleColumns(const Image& in, int out_h, int row_offset,
                             const FixedPointTaps& t) {
  const int c = in.channels;
  const size_t stride = static_cast<size_t>(in.width) * c;
  Image out(in.width, out_h, c);
  std::vector<int32_t> acc(stride);
  for (int yy = 0; yy < out_h; ++yy) {
    const int32_t* k = &t.weights[static_cast<size_t>(yy) * t.taps];
    std::fill(acc.begin(), acc.end(), 1 << (kResamplePrecisionBits - 1));
    for (int y = 0; y < t.count[yy]; ++y) {
      const uint8_t* src = in.row(t.first[yy] - row_offset + y);
      const int32_t w = k[y];
      for (size_t i = 0; i < stride; ++i) acc[i] += src[i] * w;
    }
    uint8_t* dst = out.row(yy);
    for (size_t i = 0; i < stride; ++i) dst[i] = ClipFixedPoint(acc[i]);
  }
  return out;
}

// Pillow's ImagingScaleAffine: NEAREST resize walks the source in doubles,
// accumulating the step, and truncates (COORD) to pick a pixel.
inline Image NearestScale(const Image& in, int out_w, int out_h) {
  const int c = in.channels;
  const double ax = static_cast<double>(static_cast<float>(in.width)) / out_w;
  const double ay = static_cast<double>(static_cast<float>(in.height)) / out_h;
  auto coord = [](double v) { return v < 0.0 ? -1 : static_cast<int>(v); };
  std::vector<int> xin(out_w, -1);
  double xo = 0.0 + ax * 0.5;
  for (int x = 0; x < out_w; ++x) {
    const int xi = coord(xo);
    if (xi >= 0 && xi < in.width) xin[x] = xi;
    xo += ax;
  }
  Image out(out_w, out_h, c, 0);
  double yo = 0.0 + ay * 0.5;
  for (int y = 0; y < out_h; ++y) {
    const int yi = coord(yo);
    if (yi >= 0 && yi < in.height) {
      const uint8_t* src = in.row(yi);
      uint8_t* dst = out.row(y);
      for (int x = 0; x < out_w; ++x) {
        if (xin[x] < 0) continue;
        std::copy_n(src + static_cast<size_t>(xin[x]) * c, c, dst + static_cast<size_t>(x) * c);
      }
    }
    yo += ay;
  }
  return out;
}

inline absl::Status CheckResizeArgs(const Image& in, int w, int h) {
  if (in.empty() || in.channels < 1 || in.channels > 4 ||
      in.pixels.size() != static_cast<size_t>(in.width) * in.height * in.channels) {
    return absl::InvalidArgumentError(absl::StrCat(
        "resize: expected a non-empty 8-bit image with 1 to 4 channels, got ", in.width, "x",
        in.height, "x", in.channels));
  }
  if (w < 1 || h < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("resize: target size must be positive, got ", w, "x", h));
  }
  return absl::OkStatus();
}

// Python's `round(x, 15)`: correctly rounded to 15 decimals. glibc's printf
// rounds the exact binary value like CPython's dtoa does.
inline double RoundTo15Decimals(double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.15f", x);
  return std::strtod(buf, nullptr);
}

// Python's float `%`: the result takes the sign of the divisor.
inline double PythonFloatMod(double x, double m) {
  double r = std::fmod(x, m);
  if (r != 0.0) {
    if ((m < 0) != (r < 0)) r += m;
  } else {
    r = std::copysign(0.0, m);
  }
  return r;
}

// Pillow's Transpose.ROTATE_90 (quarter_turns = 1, counter-clockwise),
// ROTATE_180 (2) and ROTATE_270 (3).
inline Image QuarterTurns(const Image& in, int quarter_turns) {
  const int c = in.channels, w = in.width, h = in.height;
  const bool swap = quarter_turns % 2 == 1;
  Image out(swap ? h : w, swap ? w : h, c);
  for (int v = 0; v < out.height; ++v) {
    for (int u = 0; u < out.width; ++u) {
      int sx = u, sy = v;
      if (quarter_turns == 1) sx = w - 1 - v, sy = u;
      if (quarter_turns == 2) sx = w - 1 - u, sy = h - 1 - v;
      if (quarter_turns == 3) sx = v, sy = h - 1 - u;
      std::copy_n(&in.pixels[(static_cast<size_t>(sy) * w + sx) * c], c,
                  &out.pixels[(static_cast<size_t>(v) * out.width + u) * c]);
    }
  }
  return out;
}

// Pillow's ImagingTransformAffine with NEAREST and fill: `a` maps output
// pixel corners to input coordinates. Pixels that fall outside stay zero.
inline Image AffineNearest(const Image& in, int out_w, int out_h, const double a[6]) {
  const int c = in.channels;
  Image out(out_w, out_h, c, 0);
  auto put = [&](int x, int y, int xin, int yin) {
    std::copy_n(&in.pixels[(static_cast<size_t>(yin) * in.width + xin) * c], c,
                &out.pixels[(static_cast<size_t>(y) * out_w + x) * c]);
  };
  auto fits_fixed = [&](int x, int y) {
    return std::fabs(x * a[0] + y * a[1] + a[2]) < 32768.0 &&
           std::fabs(x * a[3] + y * a[4] + a[5]) < 32768.0;
  };
  if (fits_fixed(0, 0) && fits_fixed(out_w, out_h) && fits_fixed(0, out_h) &&
      fits_fixed(out_w, 0)) {
    // 16.16 fixed point, as Pillow's affine_fixed.
    auto fix = [](double v) {
      v = v * 65536.0 + 0.5;
      return static_cast<int32_t>(v < 0.0 ? std::floor(v) : v);
    };
    const int32_t a0 = fix(a[0]), a1 = fix(a[1]), a3 = fix(a[3]), a4 = fix(a[4]);
    int32_t a2 = fix(a[2] + a[0] * 0.5 + a[1] * 0.5);
    int32_t a5 = fix(a[5] + a[3] * 0.5 + a[4] * 0.5);
    for (int y = 0; y < out_h; ++y) {
      int32_t xx = a2, yy = a5;
      for (int x = 0; x < out_w; ++x) {
        const int xin = xx >> 16;  // arithmetic shift: floor
        if (xin >= 0 && xin < in.width) {
          const int yin = yy >> 16;
          if (yin >= 0 && yin < in.height) put(x, y, xin, yin);
        }
        xx += a0;
        yy += a3;
      }
      a2 += a1;
      a5 += a4;
    }
    return out;
  }
  auto coord = [](double v) { return v < 0.0 ? -1 : static_cast<int>(v); };
  double xo = a[2] + a[1] * 0.5 + a[0] * 0.5;
  double yo = a[5] + a[4] * 0.5 + a[3] * 0.5;
  for (int y = 0; y < out_h; ++y) {
    double xx = xo, yy = yo;
    for (int x = 0; x < out_w; ++x) {
      const int xin = coord(xx);
      if (xin >= 0 && xin < in.width) {
        const int yin = coord(yy);
        if (yin >= 0 && yin < in.height) put(x, y, xin, yin);
      }
      xx += a[0];
      yy += a[3];
    }
    xo += a[1];
    yo += a[4];
  }
  return out;
}

}  // namespace internal

// Pillow's ImagingResample on every channel independently (no alpha
// premultiplication): horizontal pass, then vertical pass, each rounded to
// 8 bits. NEAREST is not a convolution; use PillowResize for it.
inline absl::StatusOr<Image> ResampleChannels(const Image& in, int w, int h,
                                              ResampleFilter filter) {
  auto ok = internal::CheckResizeArgs(in, w, h);
  if (!ok.ok()) return ok;
  const internal::FilterKernel kernel = internal::KernelFor(filter);
  if (kernel.fn == nullptr) {
    return absl::InvalidArgumentError("ResampleChannels: NEAREST is not a convolution filter");
  }
  const bool need_horizontal = w != in.width;
  const bool need_vertical = h != in.height;
  const internal::FixedPointTaps vert = internal::PrecomputeTaps(in.height, h, kernel);
  // Only the rows the vertical pass reads go through the horizontal pass.
  const int row_first = vert.first[0];
  const int row_last = vert.first[h - 1] + vert.count[h - 1];
  if (need_horizontal) {
    const internal::FixedPointTaps horiz = internal::PrecomputeTaps(in.width, w, kernel);
    Image tmp = internal::ResampleRows(in, w, row_first, row_last - row_first, horiz);
    if (!need_vertical) return tmp;
    return internal::ResampleColumns(tmp, h, row_first, vert);
  }
  if (need_vertical) return internal::ResampleColumns(in, h, 0, vert);
  return in;
}

namespace internal {

// Applies `f(colour, alpha)` to every colour value of an LA / RGBA image.
template <class F>
inline Image MapColoursByAlpha(const Image& in, F f) {
  Image out = in;
  const int c = in.channels;
  const size_t n = static_cast<size_t>(in.width) * in.height;
  for (size_t i = 0; i < n; ++i) {
    uint8_t* p = &out.pixels[i * c];
    for (int ch = 0; ch < c - 1; ++ch) p[ch] = f(p[ch], p[c - 1]);
  }
  return out;
}

}  // namespace internal

// Pillow's RGBA -> RGBa (and LA -> La) conversion: colour channels times
// alpha / 255, rounded as Pillow's MULDIV255. The last channel is alpha.
inline Image PremultiplyAlpha(const Image& in) {
  return internal::MapColoursByAlpha(in, [](unsigned v, unsigned alpha) {
    const unsigned tmp = v * alpha + 128;
    return static_cast<uint8_t>(((tmp >> 8) + tmp) >> 8);
  });
}

// Pillow's RGBa -> RGBA (La -> LA): colour * 255 / alpha with integer
// division, clipped; alpha 0 and 255 leave colours as they are.
inline Image UnpremultiplyAlpha(const Image& in) {
  return internal::MapColoursByAlpha(in, [](unsigned v, unsigned alpha) {
    if (alpha == 0 || alpha == 255) return static_cast<uint8_t>(v);
    return static_cast<uint8_t>(std::min(255u, (255u * v) / alpha));
  });
}

// `Image.resize((w, h), filter)` for an image of mode L (1 channel), LA (2),
// RGB (3) or RGBA (4): same size is a copy; NEAREST picks pixels; the other
// filters convolve, premultiplying alpha first for LA/RGBA as Pillow does.
inline absl::StatusOr<Image> PillowResize(const Image& in, int w, int h, ResampleFilter filter) {
  auto ok = internal::CheckResizeArgs(in, w, h);
  if (!ok.ok()) return ok;
  if (w == in.width && h == in.height) return in;
  if (filter == ResampleFilter::kNearest) return internal::NearestScale(in, w, h);
  const bool has_alpha = in.channels == 2 || in.channels == 4;
  if (!has_alpha) return ResampleChannels(in, w, h, filter);
  auto resized = ResampleChannels(PremultiplyAlpha(in), w, h, filter);
  if (!resized.ok()) return resized.status();
  return UnpremultiplyAlpha(*resized);
}

// `Image.rotate(angle_degrees, expand=expand)` with Pillow's defaults
// (NEAREST, rotation about the centre, no translation, zero fill).
// Angles are counter-clockwise, as in Pillow.
inline absl::StatusOr<Image> PillowRotate(const Image& in, double angle_degrees, bool expand) {
  auto ok = internal::CheckResizeArgs(in, 1, 1);
  if (!ok.ok()) return ok;
  if (!std::isfinite(angle_degrees)) {
    return absl::InvalidArgumentError(absl::StrCat("rotate: angle must be finite, got ",
                                                   angle_degrees));
  }
  double angle = internal::PythonFloatMod(angle_degrees, 360.0);
  if (angle == 0) return in;
  if (angle == 180) return internal::QuarterTurns(in, 2);
  if ((angle == 90 || angle == 270) && (expand || in.width == in.height)) {
    return internal::QuarterTurns(in, angle == 90 ? 1 : 3);
  }
  int w = in.width, h = in.height;
  const double cx = w / 2.0, cy = h / 2.0;
  // math.radians multiplies by the constant pi / 180.
  constexpr double kDegToRad = M_PI / 180.0;
  angle = -(angle * kDegToRad);
  double m[6] = {internal::RoundTo15Decimals(std::cos(angle)),
                 internal::RoundTo15Decimals(std::sin(angle)),
                 0.0,
                 internal::RoundTo15Decimals(-std::sin(angle)),
                 internal::RoundTo15Decimals(std::cos(angle)),
                 0.0};
  auto apply = [&](double x, double y, double* tx, double* ty) {
    *tx = m[0] * x + m[1] * y + m[2];
    *ty = m[3] * x + m[4] * y + m[5];
  };
  double tx, ty;
  apply(-cx - 0, -cy - 0, &tx, &ty);
  m[2] = tx + cx;
  m[5] = ty + cy;
  if (expand) {
    double xs[4], ys[4];
    const double corners[4][2] = {{0, 0}, {double(w), 0}, {double(w), double(h)}, {0, double(h)}};
    for (int i = 0; i < 4; ++i) apply(corners[i][0], corners[i][1], &xs[i], &ys[i]);
    const int nw = static_cast<int>(std::ceil(*std::max_element(xs, xs + 4)) -
                                    std::floor(*std::min_element(xs, xs + 4)));
    const int nh = static_cast<int>(std::ceil(*std::max_element(ys, ys + 4)) -
                                    std::floor(*std::min_element(ys, ys + 4)));
    apply(-(nw - w) / 2.0, -(nh - h) / 2.0, &tx, &ty);
    m[2] = tx;
    m[5] = ty;
    w = nw;
    h = nh;
  }
  if (m[1] == 0 && m[3] == 0) {
    // Pillow's scaling shortcut (a pure translation here).
    Image out(w, h, in.channels, 0);
    auto coord = [](double v) { return v < 0.0 ? -1 : static_cast<int>(v); };
    double yo = m[5] + m[4] * 0.5;
    for (int y = 0; y < h; ++y, yo += m[4]) {
      const int yi = coord(yo);
      if (yi < 0 || yi >= in.height) continue;
      double xo = m[2] + m[0] * 0.5;
      for (int x = 0; x < w; ++x, xo += m[0]) {
        const int xi = coord(xo);
        if (xi < 0 || xi >= in.width) continue;
        std::copy_n(&in.pixels[(static_cast<size_t>(yi) * in.width + xi) * in.channels],
                    in.channels, &out.pixels[(static_cast<size_t>(y) * w + x) * in.channels]);
      }
    }
    return out;
  }
  return internal::AffineNearest(in, w, h, m);
}

}  // namespace spatialid::io
