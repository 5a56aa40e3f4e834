// JPEG decoding that matches Pillow's pixels, for background images.
//
// JPEG decoders are not bit-exact with each other: stb_image's IDCT and
// chroma upsampling differ from libjpeg-turbo's (measured on a 4:2:2 photo:
// 85% of values equal, up to 99 grey levels off at colour edges). Pillow
// decodes with libjpeg-turbo (islow IDCT, fancy upsampling, its defaults),
// and Debian's libjpeg-turbo 2.1 gives the same bytes as the 3.x Pillow
// bundles, so backgrounds read here match the reference's `Image.open(p)`
// exactly. Grey JPEGs are expanded to RGB as Pillow's convert does; CMYK
// JPEGs are refused; a truncated file is an error, as it is in Pillow.
//
// Example:
//   if (LooksLikeJpeg(path)) { SPATIALID_ASSIGN_OR_RETURN(io::Image rgb, LoadJpegRgb(path)); }
#pragma once

#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <utility>

#include <jpeglib.h>
#include <jerror.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "spatialid/io/image.h"

namespace spatialid::data {

// True when the file starts with the JPEG SOI marker (FF D8 FF), which is
// how Pillow recognises a JPEG whatever its extension.
inline bool LooksLikeJpeg(const std::string& path) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), std::fclose);
  unsigned char head[3] = {0, 0, 0};
  return f && std::fread(head, 1, 3, f.get()) == 3 && head[0] == 0xFF && head[1] == 0xD8 &&
         head[2] == 0xFF;
}

namespace internal {

struct JpegErrorTrap {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

inline void JpegFail(j_common_ptr cinfo) {
  auto* trap = reinterpret_cast<JpegErrorTrap*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, trap->message);
  std::longjmp(trap->jump, 1);
}

// Warnings are ignored like Pillow does, except a premature end of data.
inline void JpegWarn(j_common_ptr cinfo, int level) {
  if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) JpegFail(cinfo);
}

}  // namespace internal

// Decodes a JPEG to 3-channel RGB exactly as Pillow's
// `Image.open(path).convert("RGB")` does.
inline absl::StatusOr<io::Image> LoadJpegRgb(const std::string& path) {
  // Everything with a destructor lives before setjmp, so the error jump
  // skips none of them.
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"),
                                                       std::fclose);
  if (!file) return absl::NotFoundError(absl::StrCat(path, ": cannot open JPEG file"));
  auto img = std::make_unique<io::Image>();
  jpeg_decompress_struct cinfo;
  internal::JpegErrorTrap trap;
  cinfo.err = jpeg_std_error(&trap.mgr);
  trap.mgr.error_exit = internal::JpegFail;
  trap.mgr.emit_message = internal::JpegWarn;
  trap.message[0] = '\0';
  if (setjmp(trap.jump)) {
    jpeg_destroy_decompress(&cinfo);
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a readable JPEG image (", trap.message, ")"));
  }
  jpeg_create_decompress(&cinfo);
  jpeg_stdio_src(&cinfo, file.get());
  jpeg_read_header(&cinfo, TRUE);
  if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
    std::strcpy(trap.message, "CMYK JPEGs are not supported");
    std::longjmp(trap.jump, 1);
  }
  cinfo.out_color_space = JCS_RGB;
  jpeg_start_decompress(&cinfo);
  img->width = static_cast<int>(cinfo.output_width);
  img->height = static_cast<int>(cinfo.output_height);
  img->channels = 3;
  img->pixels.resize(static_cast<size_t>(img->width) * img->height * 3);
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = img->row(static_cast<int>(cinfo.output_scanline));
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return std::move(*img);
}

}  // namespace spatialid::data
