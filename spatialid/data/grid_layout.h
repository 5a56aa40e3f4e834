// What one grid image shows, and where it lives on disk.
//
// A layout is two objects on a 4 x 4 grid: object A in one cell, object B
// in another, both resized to `size` pixels. x is the column (0..3, left to
// right), y the row (0..3, top to bottom). The reference writes each layout
// to `{out}/{a}_{b}/{ax}_{ay}/{bx}_{by}_{size}.png` (nested); the seed README
// instead shows one folder per pair holding `{a}_{b}_{i}_{j}_{size}.png`
// with a single A position (flat: i is B's column, j its row), so a flat
// layout has no A cell.
//
// Example:
//   for (const GridLayout& l : EnumeratePairLayouts("camel", "frog", {224}, false))
//     std::cout << NestedLayoutPath(l) << "\n";   // camel_frog/0_0/0_1_224.png ...
#pragma once

#include <compare>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace spatialid::data {

inline constexpr int kGridSide = 4;  // the reference's 4 x 4 grid

struct GridCell {
  int x = 0;  // column, 0..3
  int y = 0;  // row, 0..3
  auto operator<=>(const GridCell&) const = default;
};

struct GridLayout {
  std::string a;                  // object A's name (the reference object)
  std::string b;                  // object B's name (the target word)
  std::optional<GridCell> a_cell;  // empty for a flat folder (one A position)
  GridCell b_cell;
  int size = 0;  // object_wh: side of each object in pixels before variation

  std::string pair() const { return absl::StrCat(a, "_", b); }
  auto operator<=>(const GridLayout&) const = default;
};

// Every layout of one pair and size list, in the reference's order: for each
// size, A's cell then B's cell, each walking columns (x) in the outer loop
// and rows (y) in the inner one. B never shares A's cell; with
// `no_same_row_or_col` it shares neither its row nor its column
// (16 * 15 = 240 layouts per size, or 16 * 9 = 144).
inline std::vector<GridLayout> EnumeratePairLayouts(const std::string& a, const std::string& b,
                                                    const std::vector<int>& sizes,
                                                    bool no_same_row_or_col) {
  std::vector<GridLayout> out;
  for (int size : sizes) {
    for (int ax = 0; ax < kGridSide; ++ax) {
      for (int ay = 0; ay < kGridSide; ++ay) {
        for (int bx = 0; bx < kGridSide; ++bx) {
          for (int by = 0; by < kGridSide; ++by) {
            if (no_same_row_or_col && (ax == bx || ay == by)) continue;
            if (ax == bx && ay == by) continue;
            out.push_back({a, b, GridCell{ax, ay}, GridCell{bx, by}, size});
          }
        }
      }
    }
  }
  return out;
}

// `{a}_{b}/{ax}_{ay}/{bx}_{by}_{size}.png`, relative to the output folder
// (flat layouts: `{a}_{b}/{a}_{b}_{bx}_{by}_{size}.png`).
inline std::string LayoutRelativePath(const GridLayout& l) {
  if (!l.a_cell) {
    return absl::StrCat(l.pair(), "/", l.pair(), "_", l.b_cell.x, "_", l.b_cell.y, "_", l.size,
                        ".png");
  }
  return absl::StrCat(l.pair(), "/", l.a_cell->x, "_", l.a_cell->y, "/", l.b_cell.x, "_",
                      l.b_cell.y, "_", l.size, ".png");
}

// Parses a grid coordinate 0..3.
inline bool ParseGridIndex(absl::string_view s, int* v) {
  return !s.empty() && s.size() <= 2 &&
         s.find_first_not_of("0123456789") == absl::string_view::npos && absl::SimpleAtoi(s, v) &&
         *v < kGridSide;
}

// `{x}_{y}`, as the reference names A folders.
inline std::optional<GridCell> ParseCellName(absl::string_view name) {
  std::vector<absl::string_view> parts = absl::StrSplit(name, '_');
  GridCell c;
  if (parts.size() != 2 || !ParseGridIndex(parts[0], &c.x) || !ParseGridIndex(parts[1], &c.y)) {
    return std::nullopt;
  }
  return c;
}

// The three trailing integer fields of `{prefix}_{x}_{y}_{size}.png`, read
// from the right so the prefix (a pair name) may itself hold underscores.
struct TrailingFields {
  std::string prefix;  // empty for the nested `{x}_{y}_{size}.png`
  GridCell cell;
  int size = 0;
};

inline std::optional<TrailingFields> ParseLayoutFileName(absl::string_view name) {
  if (!absl::ConsumeSuffix(&name, ".png")) return std::nullopt;
  TrailingFields f;
  int fields[3];
  for (int i = 2; i >= 0; --i) {
    const size_t cut = name.rfind('_');
    const absl::string_view field = cut == absl::string_view::npos ? name : name.substr(cut + 1);
    if (field.empty() || field.find_first_not_of("0123456789") != absl::string_view::npos ||
        field.size() > 6 || !absl::SimpleAtoi(field, &fields[i])) {
      return std::nullopt;
    }
    if (cut == absl::string_view::npos) {
      if (i != 0) return std::nullopt;
      name = absl::string_view();
    } else {
      name = name.substr(0, cut);
      if (i == 0 && name.empty()) return std::nullopt;  // "_1_2_224.png"
    }
  }
  if (fields[0] >= kGridSide || fields[1] >= kGridSide || fields[2] <= 0) return std::nullopt;
  f.cell = GridCell{fields[0], fields[1]};
  f.prefix = std::string(name);
  f.size = fields[2];
  return f;
}

}  // namespace spatialid::data
