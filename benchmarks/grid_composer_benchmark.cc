// Layout synthesis: the grid composer drawing one 896x896 layout in memory.
//
// Background: with `--objects_dir`, batch_extraction draws every layout in
// memory on its loader threads instead of reading PNGs; the loaders must
// stay ahead of the model, so drawing a layout (plus dropping alpha, what
// the model's RGB loader sees) must cost far less than its forward.
//
// Details: the objects are real RGBA object images (data/objects, or
// --objects_dir=DIR), cached resized after the first draw as in a run.
//   BM_ComposeLayout/0   camel and frog at size 224, transparent canvas
//   BM_ComposeLayout/1   the same with local variation (random scale and
//                        rotation per image: a resize and a rotate per object)
//   BM_SynthesizedRgb    SynthesizedLayouts::RgbImage (compose + drop alpha),
//                        cycling over all 240 layouts of one pair at size 224
//
// Example:
//   bazel run //benchmarks:grid_composer_benchmark -- --objects_dir=$PWD/data/objects
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "spatialid/data/grid_composer.h"
#include "spatialid/data/grid_layout.h"
#include "spatialid/data/layout_source.h"

namespace {

using namespace spatialid;

std::string& ObjectsDir() {
  static std::string dir;
  return dir;
}

std::shared_ptr<const data::GridComposer> Composer(bool variation) {
  data::GridOptions options;
  options.local_variation = variation;
  auto c = data::GridComposer::Create(ObjectsDir(), options);
  if (!c.ok()) {
    std::cerr << "grid_composer_benchmark: " << c.status().message() << "\n";
    std::exit(1);
  }
  return std::shared_ptr<const data::GridComposer>(std::move(*c));
}

void BM_ComposeLayout(benchmark::State& state) {
  const auto composer = Composer(state.range(0) == 1);
  const data::GridLayout layout{"camel", "frog", data::GridCell{0, 1}, data::GridCell{2, 3}, 224};
  for (auto _ : state) {
    absl::StatusOr<io::Image> img = composer->Compose(layout);
    if (!img.ok()) {
      state.SkipWithError(std::string(img.status().message()).c_str());
      return;
    }
    benchmark::DoNotOptimize(img->pixels.data());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(state.range(0) == 1 ? "local variation" : "plain");
}
BENCHMARK(BM_ComposeLayout)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

void BM_SynthesizedRgb(benchmark::State& state) {
  const data::SynthesizedLayouts source(Composer(false),
                                        data::EnumeratePairLayouts("camel", "frog", {224}, false));
  size_t i = 0;
  for (auto _ : state) {
    absl::StatusOr<io::Image> rgb = source.RgbImage(i);
    if (!rgb.ok()) {
      state.SkipWithError(std::string(rgb.status().message()).c_str());
      return;
    }
    benchmark::DoNotOptimize(rgb->pixels.data());
    i = (i + 1) % source.size();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SynthesizedRgb)->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  // --objects_dir=DIR (ours) before Google Benchmark's own flags.
  const char* workspace = std::getenv("BUILD_WORKSPACE_DIRECTORY");
  ObjectsDir() = std::string(workspace ? workspace : ".") + "/data/objects";
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "--objects_dir=", 14) == 0) {
      ObjectsDir() = argv[i] + 14;
    } else {
      rest.push_back(argv[i]);
    }
  }
  int n = static_cast<int>(rest.size());
  benchmark::Initialize(&n, rest.data());
  if (benchmark::ReportUnrecognizedArguments(n, rest.data())) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
