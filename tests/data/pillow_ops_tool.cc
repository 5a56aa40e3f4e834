// Applies spatialid's Pillow-compatible image operations to PNG files, for
// the Pillow oracle test. Reads one operation per line from stdin:
//   resize IN OUT WIDTH HEIGHT FILTER   (nearest|box|bilinear|hamming|bicubic|lanczos)
//   rotate IN OUT ANGLE EXPAND          (EXPAND 0 or 1; Pillow's NEAREST default)
//   paste  DST SRC OUT X Y              (dst.paste(src, (x, y), mask=src))
// and prints one line per operation: "ok" or the error.
#include <cstdio>
#include <iostream>
#include <map>
#include <sstream>
#include <string>

#include "absl/status/statusor.h"
#include "spatialid/data/pillow_paste.h"
#include "spatialid/io/image.h"
#include "spatialid/io/image_resample.h"
#include "spatialid/util/status.h"

namespace {

using spatialid::io::Image;
using spatialid::io::ResampleFilter;

absl::Status RunOne(const std::string& line) {
  std::istringstream in(line);
  std::string op, src, out;
  in >> op >> src;
  SPATIALID_ASSIGN_OR_RETURN(Image img, spatialid::io::LoadImage(src));
  if (op == "resize") {
    int w = 0, h = 0;
    std::string filter;
    in >> out >> w >> h >> filter;
    static const std::map<std::string, ResampleFilter> kFilters = {
        {"nearest", ResampleFilter::kNearest}, {"box", ResampleFilter::kBox},
        {"bilinear", ResampleFilter::kBilinear}, {"hamming", ResampleFilter::kHamming},
        {"bicubic", ResampleFilter::kBicubic}, {"lanczos", ResampleFilter::kLanczos}};
    auto f = kFilters.find(filter);
    if (f == kFilters.end()) return absl::InvalidArgumentError("unknown filter " + filter);
    SPATIALID_ASSIGN_OR_RETURN(Image r, spatialid::io::PillowResize(img, w, h, f->second));
    return spatialid::io::SavePng(out, r);
  }
  if (op == "rotate") {
    double angle = 0;
    int expand = 0;
    in >> out >> angle >> expand;
    SPATIALID_ASSIGN_OR_RETURN(Image r, spatialid::io::PillowRotate(img, angle, expand != 0));
    return spatialid::io::SavePng(out, r);
  }
  if (op == "paste") {
    std::string obj_path;
    int x = 0, y = 0;
    in >> obj_path >> out >> x >> y;
    SPATIALID_ASSIGN_OR_RETURN(Image obj, spatialid::io::LoadImage(obj_path));
    SPATIALID_RETURN_IF_ERROR(spatialid::data::PasteWithOwnAlpha(img, obj, x, y));
    return spatialid::io::SavePng(out, img);
  }
  return absl::InvalidArgumentError("unknown operation " + op);
}

}  // namespace

int main() {
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line.empty()) continue;
    absl::Status s = RunOne(line);
    std::cout << (s.ok() ? std::string("ok") : std::string(s.message())) << std::endl;
  }
  return 0;
}
