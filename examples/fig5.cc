// fig5: draws Figure 5 from the grid experiment's files (docs/reference_pipeline.md section 8).
//
// Reads {dir}/{model}.pt (grid IDs), {model}_x.pt, {model}_y.pt and
// {model}_text.pt as small_id_grid writes them, projects the 16 IDs of the
// target at size 224 on the plane of the x and y axes, adds the text-only
// `left`/`right` embeddings as L and R, and writes for one layer and for a
// sheet of layers (8..16 by default) an SVG and a PNG (rendered with
// librsvg's rsvg-convert), plus the numbers as JSON with --json.
//
//   bazel run //examples:fig5 -- --dir=embeds/grid_id --model=llava-7b --layer=12 \
//       --out=embeds/grid_id/fig5
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "examples/cli_flags.h"
#include "spatialid/figure/fig5.h"
#include "spatialid/figure/svg_plot.h"
#include "spatialid/io/atomic_output_file.h"
#include "spatialid/io/temporary_name.h"
#include "spatialid/io/torch_file_reader.h"
#include "spatialid/policies/layers.h"
#include "spatialid/util/status.h"

extern char** environ;

ABSL_FLAG(std::string, dir, "embeds/grid_id", "Folder holding small_id_grid's files.");
ABSL_FLAG(std::string, model, "llava-7b", "File stem of those files ({model}.pt, {model}_x.pt ...).");
ABSL_FLAG(int, layer, 12, "Layer of the single-panel figure ({out}.svg/.png).");
ABSL_FLAG(std::string, sheet_layers, "8-16",
          "Layers of the sheet ({out}_sheet.svg/.png): a range 8-16 or a list 8,12,16; layers "
          "the files lack are left out.");
ABSL_FLAG(std::string, token, "",
          "Token key of the IDs and axes to draw. Default: the first target in the IDs file "
          "(frog, the grid experiment's first target).");
ABSL_FLAG(int, size, 224, "Object size whose IDs are drawn.");
ABSL_FLAG(std::string, out, "", "Output path without extension (default: {dir}/{model}_fig5).");
ABSL_FLAG(bool, json, false, "Also write the projected coordinates and ratios as {out}.json.");
ABSL_FLAG(bool, no_png, false, "Write SVG only (no rsvg-convert).");

namespace spatialid::examples {
namespace {

absl::Status WriteText(const std::string& path, const std::string& text) {
  return io::WriteFileAtomically(path, text);
}

// rsvg-convert writes a temporary beside `png` that is renamed into place
// only when it succeeded, and removed when it failed (a full disk, say). Its
// stderr is collected, so a failure is still one line naming the file.
absl::Status SvgToPng(const std::string& svg, const std::string& png) {
  const std::string tmp = io::TemporaryPathFor(png);
  std::vector<std::string> args = {"rsvg-convert", "-f", "png", "-o", tmp, svg};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int err_pipe[2];
  if (::pipe(err_pipe) != 0) return absl::InternalError("fig5: pipe() failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
  posix_spawn_file_actions_addclose(&actions, err_pipe[0]);
  pid_t pid;
  const int spawned = posix_spawnp(&pid, "rsvg-convert", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(err_pipe[1]);
  std::string err;
  char buf[4096];
  for (ssize_t n; (n = ::read(err_pipe[0], buf, sizeof(buf))) > 0;) err.append(buf, n);
  ::close(err_pipe[0]);
  if (spawned != 0) {
    return absl::FailedPreconditionError(
        "rsvg-convert not found (Debian package librsvg2-bin; tools/setup.sh installs it); the SVG was written");
  }
  int status = 0;
  waitpid(pid, &status, 0);
  std::error_code ec;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::filesystem::remove(tmp, ec);
    std::replace(err.begin(), err.end(), '\n', ' ');
    return absl::InternalError(absl::StrCat("cannot write ", png, ": rsvg-convert failed on ", svg,
                                            " (", absl::StripAsciiWhitespace(err), ")"));
  }
  std::filesystem::rename(tmp, png, ec);
  if (ec) {
    std::error_code rm_ec;
    std::filesystem::remove(tmp, rm_ec);
    return absl::PermissionDeniedError(
        absl::StrCat("cannot write ", png, ": could not rename into place (", ec.message(), ")"));
  }
  return absl::OkStatus();
}

// Reads one of small_id_grid's files and checks its layout before anything
// indexes it: `levels` of dicts under the layer keys (the IDs {layer: {token:
// {(x, y, s): vector}}} have 2, the axes and text embeddings {layer: {token:
// vector}} 1), vectors at the bottom.
absl::StatusOr<io::PtDict> Read(const std::string& path, int levels, const char* layout) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return absl::NotFoundError(absl::StrCat(path, ": missing; run small_id_grid first"));
  }
  SPATIALID_ASSIGN_OR_RETURN(io::PtDict d, io::ReadTorchDict(path));
  std::function<bool(const io::PtValue&, int)> fits = [&](const io::PtValue& v, int below) {
    if (below == 0) return v.is_tensor() && v.tensor().dim() == 1;
    if (!v.is_dict()) return false;
    for (const auto& [k, child] : v.dict()) {
      if (!fits(child, below - 1)) return false;
    }
    return true;
  };
  bool ok = !d.empty();
  for (const auto& [layer, v] : d) ok = ok && layer.is_int() && fits(v, levels);
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": expected ", layout, " as small_id_grid writes it"));
  }
  return d;
}

nlohmann::json PanelJson(const figure::Fig5Panel& p) {
  nlohmann::json j;
  j["layer"] = p.layer;
  j["explained_variance"] = p.explained_variance;
  for (const auto& q : p.ids) j["ids"].push_back({{"x", q.cell_x}, {"y", q.cell_y}, {"u", q.u}, {"v", q.v}});
  for (const auto& q : p.text) j["text"].push_back({{"label", q.label}, {"u", q.u}, {"v", q.v}});
  return j;
}

absl::Status Run() {
  const std::string dir = absl::GetFlag(FLAGS_dir), model = absl::GetFlag(FLAGS_model);
  const std::string base = (std::filesystem::path(dir) / model).string();
  constexpr char kIds[] = "{layer: {token: {(x, y, s): vector}}}";
  constexpr char kVectors[] = "{layer: {token: vector}}";
  SPATIALID_ASSIGN_OR_RETURN(io::PtDict ids, Read(base + ".pt", 2, kIds));
  SPATIALID_ASSIGN_OR_RETURN(io::PtDict xs, Read(base + "_x.pt", 1, kVectors));
  SPATIALID_ASSIGN_OR_RETURN(io::PtDict ys, Read(base + "_y.pt", 1, kVectors));
  SPATIALID_ASSIGN_OR_RETURN(io::PtDict text, Read(base + "_text.pt", 1, kVectors));
  if (ids.begin()->second.dict().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(base, ".pt: holds no token; expected ", kIds));
  }
  figure::Fig5Inputs in;
  in.ids = &ids;
  in.x_axes = &xs;
  in.y_axes = &ys;
  in.text = &text;
  in.ids_name = base + ".pt";
  in.x_name = base + "_x.pt";
  in.y_name = base + "_y.pt";
  in.text_name = base + "_text.pt";
  in.size = absl::GetFlag(FLAGS_size);
  in.token = absl::GetFlag(FLAGS_token);
  if (in.token.empty()) in.token = ids.begin()->second.dict().begin()->first.as_string();
  // The text file holds left then right (small_id_grid's --text_targets).
  const char* labels[] = {"L", "R"};
  size_t n = 0;
  if (!text.empty() && text.begin()->second.is_dict()) {
    for (const auto& [key, v] : text.begin()->second.dict()) {
      if (n < 2) in.text_tokens.push_back({labels[n++], key.as_string()});
    }
  }

  std::vector<int64_t> available;
  for (const auto& [key, v] : ids) available.push_back(key.as_int());
  const std::string out = absl::GetFlag(FLAGS_out).empty() ? base + "_fig5" : absl::GetFlag(FLAGS_out);

  const int64_t layer = absl::GetFlag(FLAGS_layer);
  absl::StatusOr<figure::Fig5Panel> single = figure::ComputeFig5Panel(in, layer);
  if (!single.ok() && std::find(available.begin(), available.end(), layer) == available.end()) {
    return absl::NotFoundError(absl::StrCat(single.status().message(), " (layers in ", base,
                                            ".pt: 0..", available.back(), "; pick one with --layer)"));
  }
  if (!single.ok()) {
    const io::PtValue* axes = xs.find(io::PtKey(layer));
    if (axes != nullptr && axes->dict().empty()) {
      // small_id_grid writes empty axes when no IDs had --axis_size.
      return absl::NotFoundError(absl::StrCat(
          single.status().message(), " (", in.x_name, " holds no axis at layer ", layer,
          ": small_id_grid had no IDs of its --axis_size; rerun it with --axis_size set to a "
          "drawn size)"));
    }
    return single.status();
  }
  SPATIALID_ASSIGN_OR_RETURN(policy::layers::Spec sheet_spec,
                             policy::layers::Spec::Parse(absl::GetFlag(FLAGS_sheet_layers)));
  // Layers the files lack are left out of the sheet rather than failing it.
  std::vector<figure::Fig5Panel> sheet;
  for (int64_t l : available) {
    const std::vector<int>& wanted = sheet_spec.explicit_list.indices;
    if (sheet_spec.kind == policy::layers::Spec::Kind::kExplicit &&
        std::find(wanted.begin(), wanted.end(), static_cast<int>(l)) == wanted.end()) {
      continue;
    }
    absl::StatusOr<figure::Fig5Panel> p = figure::ComputeFig5Panel(in, l);
    if (absl::IsFailedPrecondition(p.status())) {
      // Layer 0 (embeddings) cannot see the image: its IDs and axes are zero.
      std::fprintf(stderr, "fig5: layer %ld left out of the sheet: %s\n", static_cast<long>(l),
                   std::string(p.status().message()).c_str());
      continue;
    }
    if (!p.ok()) return p.status();
    sheet.push_back(std::move(*p));
  }

  SPATIALID_RETURN_IF_ERROR(WriteText(out + ".svg", figure::FigureSvg({*single}, model, 1)));
  if (!sheet.empty()) {
    SPATIALID_RETURN_IF_ERROR(WriteText(out + "_sheet.svg", figure::FigureSvg(sheet, model, 3)));
  } else {
    std::fprintf(stderr, "fig5: no layer of --sheet_layers=%s in %s.pt; no sheet written\n",
                 absl::GetFlag(FLAGS_sheet_layers).c_str(), base.c_str());
  }
  if (!absl::GetFlag(FLAGS_no_png)) {
    SPATIALID_RETURN_IF_ERROR(SvgToPng(out + ".svg", out + ".png"));
    if (!sheet.empty()) SPATIALID_RETURN_IF_ERROR(SvgToPng(out + "_sheet.svg", out + "_sheet.png"));
  }
  if (absl::GetFlag(FLAGS_json)) {
    nlohmann::json j;
    j["token"] = in.token;
    j["single"] = PanelJson(*single);
    for (const auto& p : sheet) j["sheet"].push_back(PanelJson(p));
    SPATIALID_RETURN_IF_ERROR(WriteText(out + ".json", j.dump(2)));
  }
  std::fprintf(stderr, "fig5: wrote %s.svg%s (layer %ld, explained variance %.1f%%)%s\n", out.c_str(),
               absl::GetFlag(FLAGS_no_png) ? "" : " and .png", static_cast<long>(layer),
               100.0 * single->explained_variance,
               sheet.empty() ? "" : absl::StrCat("; sheet of ", sheet.size(), " layers in ", out, "_sheet").c_str());
  return absl::OkStatus();
}

}  // namespace
}  // namespace spatialid::examples

int main(int argc, char** argv) {
  std::vector<char*> rest = spatialid::examples::ParseFlags(
      argc, argv,
      "Figure 5 from small_id_grid's files: grid IDs projected on the x/y-axis plane.\n"
      "Example: fig5 --dir=embeds/grid_id --model=llava-7b --layer=12");
  if (rest.size() > 1) {
    std::fprintf(stderr, "fig5: unexpected argument '%s' (see --help)\n", rest[1]);
    return 2;
  }
  absl::Status s;
  try {
    s = spatialid::examples::Run();
  } catch (const std::exception& e) {
    s = absl::InternalError(e.what());
  }
  if (!s.ok()) {
    std::fprintf(stderr, "fig5: error: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  return 0;
}
