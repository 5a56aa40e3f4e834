// extraction_data: the grid images of the universal spatial-ID extraction.
//
// Background: the reference's extraction experiment tiles every ordered
// pair of ten objects (90 pairs) on the 4 x 4 grid at four object sizes:
// 16 * 15 * 4 = 960 images per pair, 86,400 in all. Later stages can draw
// the same images in memory instead (data::SynthesizedLayouts), so writing
// them is only needed to inspect them or to feed other tools.
//
// Details: same engine and flags as grid_data (Pillow-exact images at
// `{out}/{a}_{b}/{ax}_{ay}/{bx}_{by}_{size}.png`, resumable, parallel).
//
// Example usage:
//   bazel run //examples:extraction_data -- --objects_dir=$PWD/data/objects
//   --out=$PWD/data/extraction_data --threads=2
#include <string>

#include "absl/flags/flag.h"
#include "examples/grid_job_main.h"

ABSL_FLAG(std::string, out, "data/extraction_data",
          "Output folder; images go to {out}/{a}_{b}/{ax}_{ay}/{bx}_{by}_{size}.png.");
ABSL_FLAG(std::string, objects, "backpack,fan,camel,frog,dog,cake,log,robot,person,teapot",
          "Comma-separated object names; every ordered pair a != b is drawn (10 names: 90 pairs).");
ABSL_FLAG(std::string, pairs, "",
          "Comma-separated ordered pairs {a}_{b}; when set, replaces --objects.");
ABSL_FLAG(std::string, sizes, "74,124,174,224",
          "Comma-separated object sizes in pixels, each at most --cell.");
SPATIALID_GRID_JOB_FLAGS();

int main(int argc, char** argv) {
  return spatialid::examples::GridJobMain(
      "extraction_data",
      "Draws the extraction data set: every ordered pair of the objects, 4x4 grid, 4 sizes.\n"
      "Example: extraction_data --objects_dir=data/objects --out=data/extraction_data",
      spatialid::examples::PairFlagPriority::kPairsWin, argc, argv);
}
