// The paper's two experiments on any extractor and layout source.
//
// Grid experiment (Figure 5; docs/reference_pipeline.md sections 2, 4, 6, 7): the question "Is the
// frog to the left or right of the camel?" with targets frog, left, right
// over the grid images; writes the pair's IDs, its x/y axes and the text-only
// embeddings of the targets:
//   {out}/{model}.pt        {L: {token: {(x, y, s): vector}}}  (one pair)
//   {out}/{a}_{b}/{model}.pt                                   (several pairs)
//   {out}/{model}_x.pt, {out}/{model}_y.pt   {L: {token: vector}} (first pair)
//   {out}/{model}_text.pt   {L: {token: vector}} for the text-only prompt
//
// Batch extraction (docs/reference_pipeline.md sections 2, 4, 5, 6): for pair folder {a}_{b} the
// question "Is {b} to the left or right of {a}?" with target {b}; writes
//   {out}/{a}_{b}/{model}.pt   per pair
//   {out}/{model}.pt           universal IDs {L: {"universal": {...}}}
//   {out}/{model}_x.pt, {out}/{model}_y.pt   axes of the universal IDs
//
// Resume: a pair whose file exists is not extracted again (files are written
// whole under a temporary name and renamed, so an existing file is
// complete); the universal IDs and axes are always recomputed from the pair
// files, so a rerun after a kill ends with the same files as one
// uninterrupted run.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <tuple>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "spatialid/data/layout_source.h"
#include "spatialid/extract/extractor.h"
#include "spatialid/extract/layout_stream.h"
#include "spatialid/extract/sharding.h"
#include "spatialid/extract/spatial_id.h"
#include "spatialid/policies/averaging.h"
#include "spatialid/util/progress.h"
#include "spatialid/util/status.h"

namespace spatialid::extract {

inline constexpr char kGridQuestion[] = "Is the frog to the left or right of the camel?";
inline const std::vector<std::string>& GridTargets() {
  static const std::vector<std::string> targets = {"frog", "left", "right"};
  return targets;
}
inline std::string BatchQuestion(const std::string& a, const std::string& b) {
  return absl::StrCat("Is ", b, " to the left or right of ", a, "?");
}

struct ExperimentOptions {
  std::string model_name;  // file stem: {model}.pt
  std::string out_dir;
  StreamOptions stream;
  AxisOptions axes;
  at::ScalarType out_dtype = at::kFloat;  // the model's dtype
  bool overwrite = false;                 // re-extract pairs whose files exist
  bool quiet = false;                     // no progress lines
  // Grid experiment only: question and targets (defaults: the paper's).
  std::string question = kGridQuestion;
  std::vector<std::string> targets = GridTargets();
  std::vector<std::string> text_targets = {"left", "right"};
  // Batch extraction only: run one shard (sharding.h) instead of the whole
  // set; `shard_config` holds the settings every shard must share.
  std::optional<ShardSpec> shard;
  nlohmann::json shard_config;
};

struct PairLayouts {
  std::string a, b;
  std::vector<size_t> indices;
};

// Layout indices grouped by pair, pairs in order of first appearance.
template <data::LayoutSource S>
std::vector<PairLayouts> GroupByPair(const S& source) {
  std::vector<PairLayouts> out;
  std::map<std::string, size_t> where;
  for (size_t i = 0; i < source.size(); ++i) {
    const data::GridLayout& l = source.layout(i);
    auto [it, fresh] = where.emplace(l.pair(), out.size());
    if (fresh) out.push_back({l.a, l.b, {}});
    out[it->second].indices.push_back(i);
  }
  return out;
}

// "ax_ay" for a nested folder, "flat" for a flat one (one A position).
inline std::string APositionName(const data::GridLayout& l) {
  return l.a_cell ? absl::StrCat(l.a_cell->x, "_", l.a_cell->y) : std::string("flat");
}

// Extracts one pair's IDs with the extractor's averaging.
template <class X, data::LayoutSource S>
absl::StatusOr<io::PtDict> ExtractPairIds(const X& x, const S& source, const PairLayouts& pair,
                                          const std::string& question,
                                          const std::vector<std::string>& words,
                                          const ExperimentOptions& options,
                                          util::Progress* progress) {
  policy::AnyAverager averager = x.StartAverager();
  SPATIALID_RETURN_IF_ERROR(StreamLayouts(
      x, source, pair.indices, question, words, options.stream,
      [&](const data::GridLayout& l, size_t, const std::string& token, const at::Tensor& rows) {
        return averager.Add(APositionName(l), token, CellKey{l.b_cell.x, l.b_cell.y, l.size},
                            rows);
      },
      progress));
  return averager.Result(options.out_dtype);
}

template <class X, data::LayoutSource S>
absl::Status RunGridExperiment(const X& x, const S& source, const ExperimentOptions& options) {
  const std::vector<PairLayouts> pairs = GroupByPair(source);
  if (pairs.empty()) return absl::InvalidArgumentError("the grid image source holds no layouts");
  long total = 0;
  for (const auto& p : pairs) total += static_cast<long>(p.indices.size());
  util::Progress progress("small_id_grid", total);
  std::optional<io::PtDict> first;
  for (const PairLayouts& pair : pairs) {
    SPATIALID_ASSIGN_OR_RETURN(
        io::PtDict ids, ExtractPairIds(x, source, pair, options.question, options.targets,
                                       options, options.quiet ? nullptr : &progress));
    const std::string path = pairs.size() == 1
                                 ? UniversalIdPath(options.out_dir, options.model_name)
                                 : PairIdPath(options.out_dir, pair.a, pair.b, options.model_name);
    SPATIALID_RETURN_IF_ERROR(WriteIdsFile(path, ids));
    if (!first) first = std::move(ids);
  }
  if (!options.quiet) progress.Finish();
  SPATIALID_ASSIGN_OR_RETURN(Axes axes, ComputeAxes(*first, options.axes));
  const std::string prefix = (std::filesystem::path(options.out_dir) / options.model_name).string();
  SPATIALID_RETURN_IF_ERROR(WriteAxes(prefix, axes));

  // Text-only embeddings: the same question with no image.
  SPATIALID_ASSIGN_OR_RETURN(typename X::Prompt text_prompt,
                             x.PrepareTextPrompt(options.question, options.text_targets));
  SPATIALID_ASSIGN_OR_RETURN(std::vector<at::Tensor> rows, x.RunText(text_prompt));
  TextEmbeddings text(x.layers64());
  for (size_t w = 0; w < rows.size(); ++w) {
    SPATIALID_RETURN_IF_ERROR(text.Add(text_prompt.targets[w].token, rows[w].select(1, 0)));
  }
  SPATIALID_ASSIGN_OR_RETURN(io::PtDict text_dict, text.Result(options.out_dtype));
  return WriteIdsFile(prefix + "_text.pt", text_dict);
}

// One shard of a batch extraction: each unit's accumulator state, then the
// manifest (sharding.h). A unit whose state file exists is skipped unless
// `overwrite`, so a killed shard resumes where it stopped.
template <class X, data::LayoutSource S>
absl::Status RunBatchShard(const X& x, const S& source, const std::vector<PairLayouts>& pairs,
                           const ExperimentOptions& options) {
  if (x.StartAverager().partial_sums() == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sharded runs need the streaming averaging (partial sums); ", x.averaging().name(),
        " keeps no state"));
  }
  const ShardSpec& spec = *options.shard;
  std::vector<size_t> sizes;
  std::vector<std::tuple<std::string, std::string, size_t>> listing;
  for (const PairLayouts& p : pairs) {
    sizes.push_back(p.indices.size());
    listing.emplace_back(p.a, p.b, p.indices.size());
  }
  const std::vector<ShardUnit> units = PlanShard(sizes, spec);
  long total = 0;
  for (const ShardUnit& u : units) total += static_cast<long>(u.end - u.begin);
  util::Progress progress(absl::StrCat("batch_extraction shard ", spec.index, "/", spec.count),
                          total);
  for (const ShardUnit& u : units) {
    if (u.begin == u.end) continue;
    const PairLayouts& pair = pairs[u.pair];
    const std::string path = ShardUnitPath(options.out_dir, options.model_name, spec.index,
                                           spec.count, absl::StrCat(pair.a, "_", pair.b),
                                           u.begin, u.end);
    std::error_code ec;
    if (!options.overwrite && std::filesystem::exists(path, ec)) continue;
    PairLayouts part{pair.a, pair.b,
                     std::vector<size_t>(pair.indices.begin() + static_cast<long>(u.begin),
                                         pair.indices.begin() + static_cast<long>(u.end))};
    const std::vector<std::string> words = {pair.b};
    policy::AnyAverager averager = x.StartAverager();
    SPATIALID_RETURN_IF_ERROR(StreamLayouts(
        x, source, part.indices, BatchQuestion(pair.a, pair.b), words, options.stream,
        [&](const data::GridLayout& l, size_t, const std::string& token, const at::Tensor& rows) {
          return averager.Add(APositionName(l), token, CellKey{l.b_cell.x, l.b_cell.y, l.size},
                              rows);
        },
        options.quiet ? nullptr : &progress));
    SPATIALID_RETURN_IF_ERROR(SaveState(path, *averager.partial_sums()));
  }
  if (!options.quiet) progress.Finish();
  nlohmann::json config = options.shard_config;
  config["dtype"] = DtypeName(options.out_dtype);
  config["layers"] = x.layers64();
  config["averaging"] = x.averaging().name();
  return WriteShardManifest(options.out_dir, options.model_name, spec, config, listing, units);
}

template <class X, data::LayoutSource S>
absl::Status RunBatchExtraction(const X& x, const S& source, const ExperimentOptions& options) {
  const std::vector<PairLayouts> pairs = GroupByPair(source);
  if (pairs.empty()) return absl::InvalidArgumentError("the image source holds no layouts");
  if (options.shard) return RunBatchShard(x, source, pairs, options);
  long total = 0, done = 0;
  std::vector<bool> skip(pairs.size(), false);
  for (size_t i = 0; i < pairs.size(); ++i) {
    total += static_cast<long>(pairs[i].indices.size());
    std::error_code ec;
    if (!options.overwrite &&
        std::filesystem::exists(PairIdPath(options.out_dir, pairs[i].a, pairs[i].b, options.model_name), ec)) {
      skip[i] = true;
      done += static_cast<long>(pairs[i].indices.size());
    }
  }
  if (done > 0 && !options.quiet) {
    std::fprintf(stderr, "batch_extraction: resuming; %ld of %ld images already done\n", done, total);
  }
  util::Progress progress("batch_extraction", total, done);
  for (size_t i = 0; i < pairs.size(); ++i) {
    if (skip[i]) continue;
    const PairLayouts& pair = pairs[i];
    SPATIALID_ASSIGN_OR_RETURN(
        io::PtDict ids,
        ExtractPairIds(x, source, pair, BatchQuestion(pair.a, pair.b), {pair.b}, options,
                       options.quiet ? nullptr : &progress));
    SPATIALID_RETURN_IF_ERROR(
        WriteIdsFile(PairIdPath(options.out_dir, pair.a, pair.b, options.model_name), ids));
  }
  if (!options.quiet) progress.Finish();
  UniversalIdAccumulator universal;
  for (const PairLayouts& pair : pairs) {
    SPATIALID_RETURN_IF_ERROR(
        universal.AddPairFile(PairIdPath(options.out_dir, pair.a, pair.b, options.model_name)));
  }
  SPATIALID_ASSIGN_OR_RETURN(io::PtDict ids, universal.Result(options.out_dtype));
  SPATIALID_RETURN_IF_ERROR(WriteIdsFile(UniversalIdPath(options.out_dir, options.model_name), ids));
  SPATIALID_ASSIGN_OR_RETURN(Axes axes, ComputeAxes(ids, options.axes));
  return WriteAxes((std::filesystem::path(options.out_dir) / options.model_name).string(), axes);
}

}  // namespace spatialid::extract
