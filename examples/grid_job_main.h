// The shared body of the two data binaries (grid_data, extraction_data).
//
// Each binary defines --out, --pairs, --objects and --sizes with its own
// defaults and help, and the other flags with SPATIALID_GRID_JOB_FLAGS();
// this header turns them all into one data::GridJobOptions, so both binaries
// behave identically apart from their defaults.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <thread>
#include <unistd.h>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "examples/cli_flags.h"
#include "spatialid/data/grid_job.h"
#include "spatialid/io/stale_temporaries.h"

ABSL_DECLARE_FLAG(std::string, objects_dir);
ABSL_DECLARE_FLAG(std::string, out);
ABSL_DECLARE_FLAG(std::string, pairs);
ABSL_DECLARE_FLAG(std::string, objects);
ABSL_DECLARE_FLAG(std::string, sizes);
ABSL_DECLARE_FLAG(int, cell);
ABSL_DECLARE_FLAG(bool, no_same_row_or_col);
ABSL_DECLARE_FLAG(std::string, bg_dir);
ABSL_DECLARE_FLAG(bool, local_variation);
ABSL_DECLARE_FLAG(uint64_t, seed);
ABSL_DECLARE_FLAG(int, threads);
ABSL_DECLARE_FLAG(bool, overwrite);
ABSL_DECLARE_FLAG(std::string, manifest);

// The flags both binaries share, defined once (use at namespace scope in
// the binary's main file only).
#define SPATIALID_GRID_JOB_FLAGS()                                                              \
  ABSL_FLAG(std::string, objects_dir, "data/objects",                                           \
            "Folder of object images {name}.png (RGBA with transparency).");                   \
  ABSL_FLAG(int, cell, 224, "Grid cell side in pixels; the canvas is 4*cell square.");          \
  ABSL_FLAG(bool, no_same_row_or_col, false,                                                    \
            "Skip layouts where A and B share a row or a column (144 instead of 240 per "      \
            "size).");                                                                          \
  ABSL_FLAG(std::string, bg_dir, "",                                                            \
            "Folder of background images (.png/.jpg/.jpeg); one, chosen with --seed, is "      \
            "resized to the canvas per pair and size. Empty: transparent canvas (black once "  \
            "RGB).");                                                                           \
  ABSL_FLAG(bool, local_variation, false,                                                       \
            "Scale each object by a random factor (A 0.95-1.05, B 0.9-1.1) and rotate it by a " \
            "random angle in [-15, 15] degrees (canvas expanded), per image.");                \
  ABSL_FLAG(uint64_t, seed, 0, "Seed of the variation draws and the background choice.");      \
  ABSL_FLAG(int, threads, ::spatialid::examples::DefaultThreads(),                              \
            "Images drawn and encoded in parallel (default: all cores).");                     \
  ABSL_FLAG(bool, overwrite, false, "Redraw images that already exist instead of skipping them."); \
  ABSL_FLAG(std::string, manifest, "",                                                          \
            "Optional JSON-lines file recording each image's variation draws and background.")

namespace spatialid::examples {

inline int DefaultThreads() {
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

// Which of --pairs and --objects names the pairs when both are non-empty.
enum class PairFlagPriority { kObjectsWin, kPairsWin };

inline int GridJobMain(const char* label, const char* usage, PairFlagPriority priority,
                       int argc, char** argv) {
  ParseFlags(argc, argv, usage);
  // Under `bazel run` relative paths mean the user's folder, not runfiles.
  if (const char* wd = std::getenv("BUILD_WORKING_DIRECTORY"); wd != nullptr && ::chdir(wd) != 0) {
    std::fprintf(stderr, "%s: cannot enter %s\n", label, wd);
    return 1;
  }
  data::GridJobOptions job;
  job.label = label;
  job.objects_dir = absl::GetFlag(FLAGS_objects_dir);
  job.out = absl::GetFlag(FLAGS_out);
  job.grid.cell = absl::GetFlag(FLAGS_cell);
  job.grid.bg_dir = absl::GetFlag(FLAGS_bg_dir);
  job.grid.local_variation = absl::GetFlag(FLAGS_local_variation);
  job.grid.seed = absl::GetFlag(FLAGS_seed);
  job.no_same_row_or_col = absl::GetFlag(FLAGS_no_same_row_or_col);
  job.threads = absl::GetFlag(FLAGS_threads);
  job.overwrite = absl::GetFlag(FLAGS_overwrite);
  job.manifest = absl::GetFlag(FLAGS_manifest);
  const std::string pairs_flag = absl::GetFlag(FLAGS_pairs);
  const std::string objects_flag = absl::GetFlag(FLAGS_objects);
  const bool use_objects = priority == PairFlagPriority::kObjectsWin ? !objects_flag.empty()
                                                                     : pairs_flag.empty();
  auto pairs = use_objects ? data::AllOrderedPairs(objects_flag)
                           : data::ParsePairList(pairs_flag, job.objects_dir);
  auto sizes = data::ParseSizeList(absl::GetFlag(FLAGS_sizes), job.grid.cell);
  absl::Status status = !pairs.ok() ? pairs.status() : sizes.status();
  if (status.ok()) {
    // PNGs a killed run was writing ({out}/{a}_{b}/{ax}_{ay}/*.png.tmp.PID.N@HOST.BOOT).
    auto removed = io::RemoveStaleTemporaries(
        job.out, 2, [](std::string_view final_name) { return final_name.ends_with(".png"); });
    status = removed.status();
    if (removed.ok() && *removed > 0) {
      std::fprintf(stderr, "%s: removed %d temporary file%s of an interrupted run from %s\n",
                   label, *removed, *removed == 1 ? "" : "s", job.out.c_str());
    }
  }
  if (status.ok()) {
    job.pairs = *pairs;
    job.sizes = *sizes;
    status = data::RunGridJob(job).status();
  }
  if (!status.ok()) {
    std::fprintf(stderr, "%s: %s\n", label, std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}

}  // namespace spatialid::examples
