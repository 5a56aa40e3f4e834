// Grid images on disk as a LayoutSource.
//
// Reads either a data root holding one folder per pair (`data/grid_data`) or
// a single pair folder (`data/grid_data/camel_frog`). A pair folder is in
// one of two layouts:
// - nested, as the reference writes it: `{ax}_{ay}/{bx}_{by}_{size}.png`;
// - flat, as the seed README shows it: `{a}_{b}_{i}_{j}_{size}.png` with one
//   A position (i = B's column, j = B's row). The three trailing integer
//   fields are read from the right, so the pair name may hold underscores;
//   it must equal the folder's name.
// A pair name `{a}_{b}` is split at its first underscore unless
// `FolderOptions::objects` lists the object names.
//
// The folder is checked against the set of layouts it should hold and
// every problem is a clear status naming the path: missing folder, no
// images, a name that is not a layout, a nested folder mixed with flat
// files, and missing layouts (expected set vs found; nested: all 16 A cells
// x 15 B cells, or 9 without shared rows and columns, x every size; flat:
// every size must show the same B cells). Images are decoded only when
// asked for; an unreadable PNG is reported then, with its path.
//
// Example:
//   SPATIALID_ASSIGN_OR_RETURN(LayoutFolder folder, LayoutFolder::Open("data/extraction_data"));
//   SPATIALID_ASSIGN_OR_RETURN(io::Image rgb, folder.RgbImage(0));
#pragma once

#include <algorithm>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <system_error>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "spatialid/data/grid_layout.h"
#include "spatialid/data/layout_source.h"
#include "spatialid/io/image.h"
#include "spatialid/util/status.h"

namespace spatialid::data {

struct FolderOptions {
  std::vector<std::string> pairs;    // pair folders to read; empty: all under the root
  std::vector<std::string> objects;  // known object names, to split pair names
  std::vector<int> sizes;            // sizes to read; empty: every size found
  // Whether layouts sharing a row or column belong to the expected set;
  // empty: inferred (true when no image on disk shares one).
  std::optional<bool> no_same_row_or_col;
  bool allow_missing = false;  // read an incomplete folder instead of failing
};

class LayoutFolder {
 public:
  static absl::StatusOr<LayoutFolder> Open(const std::string& dir,
                                           const FolderOptions& options = {}) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) {
      return absl::NotFoundError(absl::StrCat(dir, ": grid image folder not found"));
    }
    LayoutFolder folder;
    folder.root_ = dir;
    if (LooksLikePairFolder(dir)) {
      fs::path normal = fs::absolute(fs::path(dir), ec).lexically_normal();
      if (normal.filename().empty()) normal = normal.parent_path();  // trailing slash
      const std::string pair = normal.filename().string();
      if (!options.pairs.empty() &&
          std::find(options.pairs.begin(), options.pairs.end(), pair) == options.pairs.end()) {
        return absl::NotFoundError(absl::StrCat(dir, ": is the folder of pair ", pair, ", not of ",
                                                absl::StrJoin(options.pairs, ", ")));
      }
      SPATIALID_RETURN_IF_ERROR(folder.ReadPair(dir, pair, options));
      return folder;
    }
    std::vector<std::string> pairs = options.pairs;
    if (pairs.empty()) {
      for (const auto& entry : fs::directory_iterator(dir, ec)) {
        const std::string name = entry.path().filename().string();
        if (entry.is_directory(ec) && !name.empty() && name[0] != '.') pairs.push_back(name);
      }
      std::sort(pairs.begin(), pairs.end());
    }
    if (pairs.empty()) {
      return absl::NotFoundError(absl::StrCat(
          dir, ": no grid images (expected pair folders {a}_{b}/ holding "
               "{ax}_{ay}/{bx}_{by}_{size}.png or {a}_{b}_{i}_{j}_{size}.png)"));
    }
    for (const std::string& pair : pairs) {
      const std::string pair_dir = (fs::path(dir) / pair).string();
      if (!fs::is_directory(pair_dir, ec)) {
        return absl::NotFoundError(absl::StrCat(pair_dir, ": pair folder not found"));
      }
      SPATIALID_RETURN_IF_ERROR(folder.ReadPair(pair_dir, pair, options));
    }
    return folder;
  }

  size_t size() const { return layouts_.size(); }
  const GridLayout& layout(size_t i) const { return layouts_.at(i); }
  const std::vector<GridLayout>& layouts() const { return layouts_; }
  const std::string& path(size_t i) const { return paths_.at(i); }
  const std::string& root() const { return root_; }

  // `Image.open(path).convert("RGB")`: alpha dropped, grey replicated.
  absl::StatusOr<io::Image> RgbImage(size_t i) const { return io::LoadImage(paths_.at(i), 3); }

 private:
  static bool IsPng(const std::filesystem::directory_entry& e) {
    std::error_code ec;
    return e.is_regular_file(ec) && e.path().extension() == ".png";
  }

  static bool LooksLikePairFolder(const std::string& dir) {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
      if (IsPng(entry)) return true;
      if (entry.is_directory(ec) && ParseCellName(entry.path().filename().string())) return true;
    }
    return false;
  }

  static absl::Status SplitPair(const std::string& pair, const FolderOptions& options,
                                std::string* a, std::string* b) {
    std::vector<size_t> cuts;
    for (size_t i = pair.find('_'); i != std::string::npos; i = pair.find('_', i + 1)) {
      cuts.push_back(i);
    }
    if (cuts.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(pair, ": a pair folder must be named {a}_{b}"));
    }
    if (options.objects.empty()) {
      *a = pair.substr(0, cuts[0]);
      *b = pair.substr(cuts[0] + 1);
      return absl::OkStatus();
    }
    auto known = [&](const std::string& s) {
      return std::find(options.objects.begin(), options.objects.end(), s) != options.objects.end();
    };
    for (size_t cut : cuts) {
      if (known(pair.substr(0, cut)) && known(pair.substr(cut + 1))) {
        *a = pair.substr(0, cut);
        *b = pair.substr(cut + 1);
        return absl::OkStatus();
      }
    }
    return absl::InvalidArgumentError(absl::StrCat(
        pair, ": no split into two known objects (", absl::StrJoin(options.objects, ", "), ")"));
  }

  static absl::Status BadName(const std::filesystem::path& p, absl::string_view expected) {
    return absl::InvalidArgumentError(absl::StrCat(
        p.string(), ": not a grid layout name (expected ", expected, " with x, y in 0..3)"));
  }

  static std::string Examples(const std::vector<std::string>& names) {
    std::vector<std::string> head(names.begin(), names.begin() + std::min<size_t>(names.size(), 5));
    return absl::StrCat(absl::StrJoin(head, ", "), names.size() > 5 ? ", ..." : "");
  }

  absl::Status ReadPair(const std::string& dir, const std::string& pair,
                        const FolderOptions& options) {
    namespace fs = std::filesystem;
    std::string a, b;
    SPATIALID_RETURN_IF_ERROR(SplitPair(pair, options, &a, &b));
    std::error_code ec;
    std::vector<fs::path> cell_dirs, flat_files;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const std::string name = entry.path().filename().string();
      if (name.empty() || name[0] == '.') continue;
      if (entry.is_directory(ec)) {
        if (!ParseCellName(name)) return BadName(entry.path(), "an A-cell folder {ax}_{ay}");
        cell_dirs.push_back(entry.path());
      } else if (IsPng(entry)) {
        flat_files.push_back(entry.path());
      }
    }
    if (ec) return absl::PermissionDeniedError(absl::StrCat(dir, ": cannot list folder"));
    if (!cell_dirs.empty() && !flat_files.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          dir, ": mixes nested A-cell folders with flat PNGs (e.g. ",
          flat_files[0].filename().string(), "); expected one layout or the other"));
    }
    // Found layouts and their files.
    std::vector<std::pair<GridLayout, std::string>> found;
    if (!flat_files.empty()) {
      for (const fs::path& p : flat_files) {
        auto f = ParseLayoutFileName(p.filename().string());
        if (!f || f->prefix != pair) return BadName(p, absl::StrCat(pair, "_{i}_{j}_{size}.png"));
        found.push_back({GridLayout{a, b, std::nullopt, f->cell, f->size}, p.string()});
      }
    } else {
      for (const fs::path& cell_dir : cell_dirs) {
        const GridCell a_cell = *ParseCellName(cell_dir.filename().string());
        for (const auto& entry : fs::directory_iterator(cell_dir, ec)) {
          if (!IsPng(entry)) continue;
          auto f = ParseLayoutFileName(entry.path().filename().string());
          if (!f || !f->prefix.empty()) return BadName(entry.path(), "{bx}_{by}_{size}.png");
          if (f->cell == a_cell) {
            return absl::InvalidArgumentError(
                absl::StrCat(entry.path().string(), ": B's cell equals A's cell"));
          }
          found.push_back({GridLayout{a, b, a_cell, f->cell, f->size}, entry.path().string()});
        }
      }
    }
    if (found.empty()) {
      return absl::NotFoundError(absl::StrCat(
          dir, ": no grid images (expected {ax}_{ay}/{bx}_{by}_{size}.png or ", pair,
          "_{i}_{j}_{size}.png)"));
    }
    // The expected set.
    std::vector<int> sizes = options.sizes;
    if (sizes.empty()) {
      std::set<int> s;
      for (const auto& [l, p] : found) s.insert(l.size);
      sizes.assign(s.begin(), s.end());
    }
    std::vector<GridLayout> expected;
    if (flat_files.empty()) {
      bool no_same = options.no_same_row_or_col.value_or(true);
      if (!options.no_same_row_or_col) {
        for (const auto& [l, p] : found) {
          if (l.a_cell->x == l.b_cell.x || l.a_cell->y == l.b_cell.y) no_same = false;
        }
      }
      expected = EnumeratePairLayouts(a, b, sizes, no_same);
    } else {
      std::set<GridCell> cells;
      for (const auto& [l, p] : found) cells.insert(l.b_cell);
      for (int size : sizes) {
        for (const GridCell& c : cells) expected.push_back({a, b, std::nullopt, c, size});
      }
    }
    std::sort(found.begin(), found.end());
    std::vector<std::string> missing;
    for (const GridLayout& l : expected) {
      auto it = std::lower_bound(found.begin(), found.end(), l,
                                 [](const auto& f, const GridLayout& x) { return f.first < x; });
      if (it != found.end() && it->first == l) {
        layouts_.push_back(l);
        paths_.push_back(it->second);
      } else {
        const std::string rel = LayoutRelativePath(l);
        missing.push_back(rel.substr(rel.find('/') + 1));
      }
    }
    if (!missing.empty() && !options.allow_missing) {
      return absl::NotFoundError(absl::StrCat(
          dir, ": ", missing.size(), " of ", expected.size(),
          " expected layouts are missing (", Examples(missing), ")"));
    }
    return absl::OkStatus();
  }

  std::string root_;
  std::vector<GridLayout> layouts_;
  std::vector<std::string> paths_;
};

static_assert(LayoutSource<LayoutFolder>);

}  // namespace spatialid::data
