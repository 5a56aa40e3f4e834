// Runs spatialid's streaming spatial-ID math on synthetic vectors, for the
// Python oracle (spatial_id_oracle_test.py).
//
//   spatial_id_tool --inputs=in.pt --out=DIR --model=NAME --dtype=float16 [--shards=3]
//
// in.pt (written by the oracle with torch.save):
//   {"layers": int64[L],
//    "pairs": {"a_b": {a_position: {token: {(x, y, s): float[L, D]}}}},
//    "text": {token: float[L, D]}}
// Every vector is streamed into a PairIdAccumulator as an extractor would
// (with --shards=N they are dealt round-robin to N accumulators whose states
// are saved to files, reloaded and merged). Outputs, as the reference lays
// them out:
//   DIR/{a}_{b}/NAME.pt, DIR/{a}_{b}/NAME_x.pt, _y.pt (axes of that pair)
//   DIR/NAME.pt (universal, from the pair files), DIR/NAME_x.pt, _y.pt,
//   DIR/NAME_strict_x.pt, _y.pt (strict y2 > y1), DIR/NAME_text.pt
#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "spatialid/extract/spatial_id.h"
#include "spatialid/io/torch_file_reader.h"

ABSL_FLAG(std::string, inputs, "", "synthetic vectors (.pt, see the file comment)");
ABSL_FLAG(std::string, out, "", "output folder");
ABSL_FLAG(std::string, model, "model", "model name used in output file names");
ABSL_FLAG(std::string, dtype, "float32", "output dtype: float32, float16 or bfloat16");
ABSL_FLAG(int, shards, 1, "split the vectors over this many accumulators, merged via state files");

namespace {

using spatialid::extract::Axes;
using spatialid::extract::AxisOptions;
using spatialid::extract::CellKey;
using spatialid::extract::PairIdAccumulator;
using spatialid::extract::UniversalIdAccumulator;
using spatialid::io::PtDict;

absl::StatusOr<at::ScalarType> ParseDtype(const std::string& s) {
  if (s == "float32") return at::kFloat;
  if (s == "float16") return at::kHalf;
  if (s == "bfloat16") return at::kBFloat16;
  return absl::InvalidArgumentError(absl::StrCat("--dtype=", s, ": expected float32, float16 or bfloat16"));
}

absl::Status WriteAxesOf(const PtDict& ids, const std::string& prefix, bool strict) {
  AxisOptions options;
  options.strict = strict;
  auto axes = spatialid::extract::ComputeAxes(ids, options, prefix);
  if (!axes.ok()) return axes.status();
  return spatialid::extract::WriteAxes(prefix, *axes);
}

absl::Status Run() {
  const std::string out = absl::GetFlag(FLAGS_out);
  const std::string model = absl::GetFlag(FLAGS_model);
  const int shards = absl::GetFlag(FLAGS_shards);
  if (out.empty()) return absl::InvalidArgumentError("--out is required");
  if (shards < 1) return absl::InvalidArgumentError("--shards must be >= 1");
  auto dtype = ParseDtype(absl::GetFlag(FLAGS_dtype));
  if (!dtype.ok()) return dtype.status();
  auto in = spatialid::io::ReadTorchDict(absl::GetFlag(FLAGS_inputs));
  if (!in.ok()) return in.status();
  const at::Tensor lt = in->at("layers").tensor().contiguous();
  const std::vector<int64_t> layers(lt.data_ptr<int64_t>(), lt.data_ptr<int64_t>() + lt.numel());

  std::vector<std::string> pair_names;
  for (const auto& [pair_key, per_a] : in->at("pairs").dict()) {
    const std::string& pair = pair_key.as_string();
    pair_names.push_back(pair);
    std::vector<PairIdAccumulator> parts;
    for (int i = 0; i < shards; ++i) parts.emplace_back(layers);
    int64_t n = 0;
    for (const auto& [a_key, per_token] : per_a.dict()) {
      for (const auto& [token_key, per_cell] : per_token.dict()) {
        for (const auto& [cell_key, vectors] : per_cell.dict()) {
          auto key = CellKey::FromPtKey(cell_key);
          if (!key.ok()) return key.status();
          absl::Status s = parts[n++ % shards].Add(a_key.as_string(), token_key.as_string(), *key,
                                                   vectors.tensor());
          if (!s.ok()) return s;
        }
      }
    }
    PairIdAccumulator acc(layers);
    for (int i = 0; i < shards; ++i) {
      if (shards == 1) {
        acc = std::move(parts[i]);
        break;
      }
      const std::string state = absl::StrCat(out, "/state/", pair, ".", i, ".pt");
      absl::Status s = spatialid::extract::SaveState(state, parts[i]);
      if (!s.ok()) return s;
      auto loaded = spatialid::extract::LoadPairIdState(state);
      if (!loaded.ok()) return loaded.status();
      s = acc.Merge(*loaded);
      if (!s.ok()) return s;
    }
    const size_t cut = pair.find('_');
    const std::string a = pair.substr(0, cut), b = pair.substr(cut + 1);
    absl::Status s = spatialid::extract::WritePairIds(out, a, b, model, acc, *dtype);
    if (!s.ok()) return s;
    auto written = spatialid::io::ReadTorchDict(spatialid::extract::PairIdPath(out, a, b, model));
    if (!written.ok()) return written.status();
    s = WriteAxesOf(*written, absl::StrCat(out, "/", pair, "/", model), false);
    if (!s.ok()) return s;
  }

  // Universal IDs from the pair files, as the reference averages what it loads.
  std::vector<UniversalIdAccumulator> parts(shards);
  for (size_t i = 0; i < pair_names.size(); ++i) {
    const size_t cut = pair_names[i].find('_');
    absl::Status s = parts[i % shards].AddPairFile(spatialid::extract::PairIdPath(
        out, pair_names[i].substr(0, cut), pair_names[i].substr(cut + 1), model));
    if (!s.ok()) return s;
  }
  UniversalIdAccumulator universal;
  for (int i = 0; i < shards; ++i) {
    const std::string state = absl::StrCat(out, "/state/universal.", i, ".pt");
    absl::Status s = spatialid::extract::SaveState(state, parts[i]);
    if (!s.ok()) return s;
    auto loaded = spatialid::extract::LoadUniversalIdState(state);
    if (!loaded.ok()) return loaded.status();
    s = universal.Merge(*loaded);
    if (!s.ok()) return s;
  }
  absl::Status s = spatialid::extract::WriteUniversalIds(out, model, universal, *dtype);
  if (!s.ok()) return s;
  auto ids = spatialid::io::ReadTorchDict(spatialid::extract::UniversalIdPath(out, model));
  if (!ids.ok()) return ids.status();
  s = WriteAxesOf(*ids, absl::StrCat(out, "/", model), false);
  if (!s.ok()) return s;
  s = WriteAxesOf(*ids, absl::StrCat(out, "/", model, "_strict"), true);
  if (!s.ok()) return s;

  spatialid::extract::TextEmbeddings text(layers);
  for (const auto& [token_key, vectors] : in->at("text").dict()) {
    s = text.Add(token_key.as_string(), vectors.tensor());
    if (!s.ok()) return s;
  }
  auto text_ids = text.Result(*dtype);
  if (!text_ids.ok()) return text_ids.status();
  return spatialid::extract::WriteIdsFile(absl::StrCat(out, "/", model, "_text.pt"), *text_ids);
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Streams synthetic vectors through spatialid's spatial-ID math and writes the reference's "
      "files (see the file comment for the input layout).");
  absl::ParseCommandLine(argc, argv);
  try {
    absl::Status s = Run();
    if (!s.ok()) {
      std::cerr << s.message() << "\n";
      return 1;
    }
  } catch (const std::exception& e) {  // at() on a malformed input file
    std::cerr << "malformed --inputs: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
