// Writing a whole grid data set to disk, in parallel and resumable.
//
// The two data binaries (`//examples:grid_data`, `//examples:extraction_data`)
// are this job with different defaults. Images land at
// `{out}/{a}_{b}/{ax}_{ay}/{bx}_{by}_{size}.png`, each written under a
// temporary name and renamed, so an interrupted run leaves only whole files
// and a rerun skips them (unless `overwrite`). Every image depends only on
// the seed and its own layout, so the thread count never changes a pixel.
// An optional manifest records each layout's recipe (variation draws,
// background file) as JSON lines, so the images can be replayed in Pillow.
//
// Example:
//   GridJobOptions job;
//   job.out = "data/grid_data";
//   job.pairs = {{"camel", "frog"}};
//   job.sizes = {224};
//   SPATIALID_ASSIGN_OR_RETURN(GridJobStats stats, RunGridJob(job));  // progress on stderr
#pragma once

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "spatialid/data/grid_composer.h"
#include "spatialid/data/grid_layout.h"
#include "spatialid/data/png_writer.h"
#include "spatialid/io/atomic_output_file.h"
#include "spatialid/io/image.h"
#include "spatialid/util/progress.h"
#include "spatialid/util/status.h"

namespace spatialid::data {

struct ObjectPair {
  std::string a;
  std::string b;
};

// "224,174,124,74" -> sizes, each in 1..cell (the reference asserts
// object_wh <= cell_wh).
inline absl::StatusOr<std::vector<int>> ParseSizeList(absl::string_view csv, int cell) {
  std::vector<int> sizes;
  for (absl::string_view field : absl::StrSplit(csv, ',', absl::SkipWhitespace())) {
    int v = 0;
    if (!absl::SimpleAtoi(field, &v) || v < 1 || v > cell) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--sizes: '", field, "' is not an object size in 1..", cell, " (the cell size)"));
    }
    sizes.push_back(v);
  }
  if (sizes.empty()) return absl::InvalidArgumentError("--sizes: no size given");
  return sizes;
}

// "camel_frog,frog_camel" -> pairs. A name is split at the underscore that
// leaves two existing object files in `objects_dir`, so object names may
// hold underscores as long as the split is unambiguous.
inline absl::StatusOr<std::vector<ObjectPair>> ParsePairList(absl::string_view csv,
                                                             const std::string& objects_dir) {
  std::error_code dir_ec;
  if (!std::filesystem::is_directory(objects_dir, dir_ec)) {
    return absl::NotFoundError(absl::StrCat(objects_dir, ": objects folder not found"));
  }
  std::vector<ObjectPair> pairs;
  for (absl::string_view field : absl::StrSplit(csv, ',', absl::SkipWhitespace())) {
    const std::string pair(absl::StripAsciiWhitespace(field));
    std::vector<ObjectPair> splits;
    for (size_t i = pair.find('_'); i != std::string::npos; i = pair.find('_', i + 1)) {
      ObjectPair p{pair.substr(0, i), pair.substr(i + 1)};
      std::error_code ec;
      auto exists = [&](const std::string& name) {
        return std::filesystem::is_regular_file(
            std::filesystem::path(objects_dir) / (name + ".png"), ec);
      };
      if (!p.a.empty() && !p.b.empty() && exists(p.a) && exists(p.b)) splits.push_back(p);
    }
    if (splits.size() != 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--pairs: '", pair, "' ",
          splits.empty() ? "does not name two object images {a}.png and {b}.png in "
                         : "splits into object names in more than one way in ",
          objects_dir));
    }
    pairs.push_back(splits[0]);
  }
  if (pairs.empty()) return absl::InvalidArgumentError("--pairs: no pair given");
  return pairs;
}

// Every ordered pair (a, b) with a != b of a comma-separated object list,
// in list order (10 objects give 90 pairs).
inline absl::StatusOr<std::vector<ObjectPair>> AllOrderedPairs(absl::string_view csv) {
  std::vector<std::string> names;
  for (absl::string_view f : absl::StrSplit(csv, ',', absl::SkipWhitespace())) {
    names.emplace_back(absl::StripAsciiWhitespace(f));
    if (std::count(names.begin(), names.end(), names.back()) > 1) {
      return absl::InvalidArgumentError(absl::StrCat("--objects: '", names.back(), "' twice"));
    }
  }
  if (names.size() < 2) return absl::InvalidArgumentError("--objects: need at least two objects");
  std::vector<ObjectPair> pairs;
  for (const auto& a : names) {
    for (const auto& b : names) {
      if (a != b) pairs.push_back({a, b});
    }
  }
  return pairs;
}

struct GridJobOptions {
  std::string objects_dir = "data/objects";
  std::string out;
  std::vector<ObjectPair> pairs;
  std::vector<int> sizes;
  GridOptions grid;
  bool no_same_row_or_col = false;
  int threads = 1;
  bool overwrite = false;       // redraw images that already exist
  std::string manifest;         // JSON-lines recipe file; empty: none
  std::string label = "grid";   // prefix of progress lines
  bool show_progress = true;    // progress lines on stderr
  double progress_every_s = 5;  // seconds between progress lines in a log
};

struct GridJobStats {
  size_t total = 0;
  size_t written = 0;
  size_t skipped = 0;  // already on disk
  double seconds = 0;
};

// Every layout of the job, pair by pair, size by size.
inline std::vector<GridLayout> JobLayouts(const GridJobOptions& job) {
  std::vector<GridLayout> layouts;
  for (const ObjectPair& p : job.pairs) {
    auto l = EnumeratePairLayouts(p.a, p.b, job.sizes, job.no_same_row_or_col);
    layouts.insert(layouts.end(), l.begin(), l.end());
  }
  return layouts;
}

// One JSON object per layout: path, cells, size, variation, background.
inline nlohmann::json RecipeJson(const LayoutRecipe& r) {
  const GridLayout& l = r.layout;
  nlohmann::json j = {{"path", LayoutRelativePath(l)},
                      {"a", l.a},
                      {"b", l.b},
                      {"b_cell", {l.b_cell.x, l.b_cell.y}},
                      {"size", l.size},
                      {"background", r.background}};
  if (l.a_cell) j["a_cell"] = {l.a_cell->x, l.a_cell->y};
  if (r.variation) {
    j["variation"] = {{"a_factor", r.variation->a_factor},
                      {"a_angle", r.variation->a_angle},
                      {"b_factor", r.variation->b_factor},
                      {"b_angle", r.variation->b_angle}};
  }
  return j;
}

inline absl::Status WriteManifest(const std::string& path, const GridComposer& composer,
                                  const std::vector<GridLayout>& layouts) {
  std::string text;
  for (const GridLayout& l : layouts) text += RecipeJson(composer.RecipeFor(l)).dump() + "\n";
  return io::WriteFileAtomically(path, text);
}

inline absl::StatusOr<GridJobStats> RunGridJob(const GridJobOptions& job) {
  if (job.out.empty()) return absl::InvalidArgumentError("--out: no output folder given");
  if (job.threads < 1) {
    return absl::InvalidArgumentError(absl::StrCat("--threads must be >= 1, got ", job.threads));
  }
  SPATIALID_ASSIGN_OR_RETURN(std::unique_ptr<GridComposer> composer,
                             GridComposer::Create(job.objects_dir, job.grid));
  std::vector<std::string> objects;
  for (const ObjectPair& p : job.pairs) {
    for (const std::string* n : {&p.a, &p.b}) {
      if (std::find(objects.begin(), objects.end(), *n) == objects.end()) objects.push_back(*n);
    }
  }
  SPATIALID_RETURN_IF_ERROR(composer->Preload(objects, job.sizes));
  std::error_code ec;
  std::filesystem::create_directories(job.out, ec);
  if (ec) {
    return absl::PermissionDeniedError(
        absl::StrCat(job.out, ": cannot create output folder (", ec.message(), ")"));
  }
  const std::vector<GridLayout> layouts = JobLayouts(job);
  if (!job.manifest.empty()) SPATIALID_RETURN_IF_ERROR(WriteManifest(job.manifest, *composer, layouts));

  // Resume: images already on disk are left alone (they were renamed into
  // place whole), unless asked to overwrite.
  std::vector<std::string> paths(layouts.size());
  std::vector<size_t> todo;
  for (size_t i = 0; i < layouts.size(); ++i) {
    paths[i] = (std::filesystem::path(job.out) / LayoutRelativePath(layouts[i])).string();
    if (job.overwrite || !std::filesystem::is_regular_file(paths[i], ec)) todo.push_back(i);
  }
  GridJobStats stats;
  stats.total = layouts.size();
  stats.skipped = layouts.size() - todo.size();
  if (job.show_progress && stats.skipped > 0) {
    std::fprintf(stderr, "%s: %zu of %zu images already exist in %s; drawing the other %zu\n",
                 job.label.c_str(), stats.skipped, stats.total, job.out.c_str(), todo.size());
  }
  std::optional<util::Progress> progress;
  if (job.show_progress) {
    progress.emplace(job.label, static_cast<long>(stats.total), static_cast<long>(stats.skipped),
                     job.progress_every_s);
  }

  // Unfiltered rows at zlib level 6 suit the flat transparent canvas
  // (about 12 ms and 33 KB per 896 x 896 image); photographic backgrounds
  // want row filters, and level 1 keeps them fast (level 6 is 5x slower for
  // 10% smaller files).
  const PngWriteOptions png = job.grid.bg_dir.empty()
                                  ? PngWriteOptions{6, PngRowFilter::kNone}
                                  : PngWriteOptions{1, PngRowFilter::kAdaptive};
  std::atomic<size_t> next{0}, written{0};
  std::atomic<bool> failed{false};
  absl::Status first_error;
  std::mutex error_mu;
  const auto start = std::chrono::steady_clock::now();
  auto worker = [&] {
    for (size_t k; !failed && (k = next++) < todo.size();) {
      const size_t i = todo[k];
      absl::StatusOr<io::Image> img = composer->Compose(layouts[i]);
      absl::Status s = img.ok() ? WritePngFile(paths[i], *img, png) : img.status();
      if (!s.ok()) {
        std::lock_guard<std::mutex> lock(error_mu);
        if (!failed.exchange(true)) first_error = s;
        return;
      }
      ++written;
      if (progress) progress->Add(1);
    }
  };
  std::vector<std::thread> threads;
  for (int t = 1; t < job.threads; ++t) threads.emplace_back(worker);
  worker();
  for (auto& t : threads) t.join();
  if (failed) return first_error;
  if (progress) progress->Finish();
  stats.written = written;
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return stats;
}

}  // namespace spatialid::data
