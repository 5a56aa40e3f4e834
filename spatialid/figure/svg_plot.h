// Draws Figure 5 panels as SVG: a scatter of the projected grid IDs coloured
// by a bivariate colour map of their cell, the text embeddings as L and R,
// the y axis inverted (row 0 at the top, as in the image), the explained
// variance ratio in the title. SVG keeps the drawing code a plain string
// builder; librsvg's rsvg-convert (a setup dependency already) turns it
// into a PNG.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "spatialid/figure/fig5.h"

namespace spatialid::figure {

// The Stevens bivariate palette at the four corners of the grid, mixed
// bilinearly: x runs grey -> red, y runs grey -> blue.
inline std::string CellColour(int64_t x, int64_t y, int64_t grid = 4) {
  const double fx = grid > 1 ? static_cast<double>(x) / (grid - 1) : 0;
  const double fy = grid > 1 ? static_cast<double>(y) / (grid - 1) : 0;
  const std::array<double, 3> c00 = {232, 232, 232}, c10 = {200, 90, 90}, c01 = {100, 172, 190},
                              c11 = {87, 66, 73};
  std::array<int, 3> rgb;
  for (int i = 0; i < 3; ++i) {
    const double top = c00[i] * (1 - fx) + c10[i] * fx;
    const double bottom = c01[i] * (1 - fx) + c11[i] * fx;
    rgb[i] = static_cast<int>(std::lround(top * (1 - fy) + bottom * fy));
  }
  return absl::StrFormat("#%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
}

inline std::string EscapeXml(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

// One panel as an SVG group of size w x h at (ox, oy).
inline std::string PanelSvg(const Fig5Panel& p, double ox, double oy, double w, double h,
                            const std::string& model, int64_t grid = 4) {
  double umin = 1e300, umax = -1e300, vmin = 1e300, vmax = -1e300;
  auto extend = [&](const ProjectedPoint& q) {
    umin = std::min(umin, q.u); umax = std::max(umax, q.u);
    vmin = std::min(vmin, q.v); vmax = std::max(vmax, q.v);
  };
  for (const auto& q : p.ids) extend(q);
  for (const auto& q : p.text) extend(q);
  const double du = std::max(umax - umin, 1e-12), dv = std::max(vmax - vmin, 1e-12);
  umin -= 0.08 * du; umax += 0.08 * du; vmin -= 0.08 * dv; vmax += 0.08 * dv;
  const double left = ox + 56, right = ox + w - 16, top = oy + 44, bottom = oy + h - 40;
  auto sx = [&](double u) { return left + (u - umin) / (umax - umin) * (right - left); };
  // Inverted y axis: larger v is lower on the page.
  auto sy = [&](double v) { return top + (v - vmin) / (vmax - vmin) * (bottom - top); };

  std::string s;
  absl::StrAppendFormat(&s, "<g font-family=\"DejaVu Sans, sans-serif\">\n");
  absl::StrAppendFormat(&s, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"white\"/>\n", ox, oy, w, h);
  absl::StrAppendFormat(&s,
                        "<text x=\"%.1f\" y=\"%.1f\" font-size=\"15\" text-anchor=\"middle\">%s layer %d: "
                        "explained variance %.1f%%</text>\n",
                        ox + w / 2, oy + 24, EscapeXml(model), p.layer, 100.0 * p.explained_variance);
  absl::StrAppendFormat(&s,
                        "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
                        "stroke=\"#444\"/>\n",
                        left, top, right - left, bottom - top);
  absl::StrAppendFormat(&s, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" text-anchor=\"middle\">x axis</text>\n",
                        (left + right) / 2, bottom + 28);
  absl::StrAppendFormat(&s,
                        "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" text-anchor=\"middle\" "
                        "transform=\"rotate(-90 %.1f %.1f)\">y axis (inverted)</text>\n",
                        left - 30, (top + bottom) / 2, left - 30, (top + bottom) / 2);
  for (const auto& q : p.ids) {
    absl::StrAppendFormat(&s,
                          "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"9\" fill=\"%s\" stroke=\"#222\" "
                          "stroke-width=\"0.8\"><title>%s</title></circle>\n",
                          sx(q.u), sy(q.v), CellColour(q.cell_x, q.cell_y, grid), EscapeXml(q.label));
  }
  for (const auto& q : p.text) {
    absl::StrAppendFormat(&s,
                          "<text x=\"%.2f\" y=\"%.2f\" font-size=\"20\" font-weight=\"bold\" "
                          "text-anchor=\"middle\" dominant-baseline=\"central\" fill=\"#111\">%s</text>\n",
                          sx(q.u), sy(q.v), EscapeXml(q.label));
  }
  s += "</g>\n";
  return s;
}

// A legend of the colour map: the grid as the image shows it.
inline std::string LegendSvg(double ox, double oy, double cell, int64_t grid = 4) {
  std::string s = absl::StrFormat(
      "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" font-family=\"DejaVu Sans, sans-serif\">cell colours</text>\n",
      ox, oy - 6);
  for (int64_t y = 0; y < grid; ++y) {
    for (int64_t x = 0; x < grid; ++x) {
      absl::StrAppendFormat(&s,
                            "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\" "
                            "stroke=\"#222\" stroke-width=\"0.5\"/>\n",
                            ox + x * cell, oy + y * cell, cell, cell, CellColour(x, y, grid));
    }
  }
  return s;
}

// Panels laid out in a grid of `columns`, with a legend on the right.
inline std::string FigureSvg(const std::vector<Fig5Panel>& panels, const std::string& model,
                             int columns, int64_t grid = 4) {
  const double w = 420, h = 400, legend = 110;
  const int cols = std::max(1, std::min<int>(columns, static_cast<int>(panels.size())));
  const int rows = (static_cast<int>(panels.size()) + cols - 1) / cols;
  const double width = cols * w + legend, height = std::max(rows * h, 160.0);
  std::string s = absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
      "viewBox=\"0 0 %.0f %.0f\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
      width, height, width, height);
  for (size_t i = 0; i < panels.size(); ++i) {
    s += PanelSvg(panels[i], (i % cols) * w, (i / cols) * h, w, h, model, grid);
  }
  s += LegendSvg(cols * w + 15, 60, 20, grid);
  s += "</svg>\n";
  return s;
}

}  // namespace spatialid::figure
