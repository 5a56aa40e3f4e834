// The command-line front end shared by //examples:small_id_grid and
// //examples:batch_extraction: flags, model alias dispatch, policy choice.
//
// It is the one translation unit that instantiates the pipeline, once per
// family (pooling and averaging are run-time values of the extractor's
// options), so the two binaries (tiny mains) link it instead of compiling
// it twice.
#include "examples/experiment_main.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "examples/cli_flags.h"
#include "spatialid/data/grid_job.h"
#include "spatialid/data/layout_folder.h"
#include "spatialid/data/layout_source.h"
#include "spatialid/extract/experiments.h"
#include "spatialid/extract/extractor.h"
#include "spatialid/extract/sharding.h"
#include "spatialid/families/registry.h"
#include "spatialid/io/json_file.h"
#include "spatialid/io/stale_temporaries.h"
#include "spatialid/io/temporary_name.h"
#include "spatialid/policies/averaging.h"
#include "spatialid/policies/layers.h"
#include "spatialid/policies/pooling.h"
#include "spatialid/util/status.h"

ABSL_FLAG(std::string, model, "llava-7b", spatialid::families::ModelFlagHelp());
ABSL_FLAG(std::string, model_dir, "",
          "Hugging Face checkpoint folder of that model (config.json, *.safetensors, "
          "tokenizer.json, chat template, preprocessor_config.json). Default: "
          "$SPATIALID_DEFAULT_MODEL, the built-in random-weight LLaVA made by tools/setup.sh.");
ABSL_FLAG(std::string, images, "",
          "Image folder: one {a}_{b} folder per pair, nested {ax}_{ay}/{bx}_{by}_{size}.png or "
          "flat {a}_{b}_{i}_{j}_{size}.png. Default: data/grid_data (grid) or "
          "data/extraction_data (batch).");
ABSL_FLAG(std::string, pairs, "",
          "Comma-separated pair folders to use (default: all found; with --objects_dir, "
          "camel_frog for the grid, every ordered pair of the folder's objects for batch).");
ABSL_FLAG(std::string, objects_dir, "",
          "Draw the layouts in memory from this folder of object images {name}.png instead of "
          "reading --images (no PNG is written or read; pixels equal grid_data's defaults).");
ABSL_FLAG(std::string, sizes, "",
          "With --objects_dir: comma-separated object sizes (default: 224 for the grid, "
          "74,124,174,224 for batch).");
ABSL_FLAG(bool, no_same_row_or_col, false,
          "With --objects_dir: skip layouts where A and B share a row or a column.");
ABSL_FLAG(std::string, out, "",
          "Output folder. Default: embeds/grid_id (grid) or embeds/universal_id (batch).");
ABSL_FLAG(std::string, name, "",
          "File stem of the outputs ({name}.pt, {name}_x.pt ...). Default: the --model alias.");
ABSL_FLAG(std::string, layers, "all",
          "Hidden states to keep: all (every one, the default), reference (the reference's "
          "range for --model, e.g. 0..32 of llama-11b's 0..40), a list 0,8,16 or a range 8-16.");
ABSL_FLAG(std::string, pooling, "last_subtoken",
          "Target-word rows: last_subtoken (the reference: first occurrence of the last "
          "sub-token of ' '+word) or mean_of_subtokens (mean over the word's sub-tokens).");
ABSL_FLAG(std::string, averaging, "streaming",
          "streaming (fp32 running sums, no per-image storage) or reference (keeps every "
          "vector and averages in the model dtype like the Python scripts).");
ABSL_FLAG(std::string, dtype, "auto",
          "float32, float16, bfloat16, or auto: the reference's dtype for --model on CUDA, "
          "float32 on the CPU (half-precision matmuls are slow there).");
ABSL_FLAG(std::string, device, "cpu", "cpu, cuda or cuda:N.");
ABSL_FLAG(int, batch_size, 0,
          "Images per forward pass; 0: auto (8 on the CPU, sized from free memory on a GPU).");
ABSL_FLAG(int, prefetch, 2, "Batches loaded and preprocessed ahead of the model.");
ABSL_FLAG(int, loader_threads, 1, "Threads loading (or drawing) and preprocessing images.");
ABSL_FLAG(int, threads, 0, "CPU threads for the model (0: all cores).");
ABSL_FLAG(std::string, resize, "torchvision",
          "Image resizing: torchvision (transformers 5's fast processors, the default) or "
          "pillow (transformers 4's slow Pillow processors, the paper's pixels).");
ABSL_FLAG(int, axis_size, 224, "Object size whose IDs define the x/y axes.");
ABSL_FLAG(bool, strict_axes, false,
          "Axes from differences with y2 > y1 only (the reference also counts y2 == y1, "
          "which scales the axes by 2/3).");
ABSL_FLAG(bool, overwrite, false, "Re-extract pairs whose output files already exist.");
ABSL_FLAG(std::string, question, spatialid::extract::kGridQuestion,
          "Grid experiment only: the question asked over every image.");
ABSL_FLAG(std::string, targets, "frog,left,right",
          "Grid experiment only: comma-separated target words of the question.");
ABSL_FLAG(std::string, text_targets, "left,right",
          "Grid experiment only: words whose text-only embeddings are written to {name}_text.pt.");
ABSL_FLAG(bool, quiet, false, "No progress lines.");
ABSL_FLAG(std::string, bos, "processor",
          "processor: tokenize the rendered prompt as the reference's processor(text=...) call "
          "does, special tokens always added (Gemma 3 and Llama 3.2 Vision prompts then start "
          "with two BOS tokens, as in the reference); chat_template: transformers' "
          "apply_chat_template(tokenize=True) rule, no BOS added when the template wrote one.");
ABSL_FLAG(std::string, engine, "planned",
          "planned: image batches share the prompt's text prefix (computed once), the last "
          "layer runs at the target rows only and q/k/v and gate/up are packed matmuls (every "
          "family; a saving a family cannot use is named once at the start); equal to plain up "
          "to matmul rounding. plain: the straightforward forward, exactly as transformers "
          "computes it.");
ABSL_FLAG(int, shard, -1,
          "Batch extraction only: run shard K of --num_shards (pairs, and layouts within a pair "
          "when there are more shards than pairs, dealt deterministically); writes partial sums "
          "to {out}/.shards/{name}/ for --merge. Default: from torchrun (RANK, WORLD_SIZE) or "
          "Slurm (SLURM_PROCID/SLURM_NTASKS, SLURM_ARRAY_TASK_ID/COUNT) when set; else no "
          "sharding. With LOCAL_RANK or SLURM_LOCALID, --device=cuda becomes the local rank's GPU (cuda:LOCAL_RANK modulo the devices "
          "CUDA_VISIBLE_DEVICES leaves the process: cuda:0 under --gpus-per-task=1).");
ABSL_FLAG(int, num_shards, 0, "Batch extraction only: the number of shards (see --shard).");
ABSL_FLAG(bool, merge, false,
          "Batch extraction only: merge the shards in {out}/.shards/{name}/ into the files of "
          "one run (as //examples:merge_shards) and load no model.");

namespace spatialid::examples {
namespace {

absl::StatusOr<at::ScalarType> ParseDtype(const std::string& s, const families::ModelPreset& preset,
                                          const at::Device& device) {
  std::string name = s;
  if (s == "auto") name = device.is_cuda() ? std::string(preset.dtype) : "float32";
  if (name == "float32" || name == "fp32") return at::kFloat;
  if (name == "float16" || name == "fp16") return at::kHalf;
  if (name == "bfloat16" || name == "bf16") return at::kBFloat16;
  return absl::InvalidArgumentError(
      absl::StrCat("--dtype=", s, ": expected auto, float32, float16 or bfloat16"));
}

absl::StatusOr<at::Device> ParseDevice(const std::string& s) {
  if (s == "cpu") return at::Device(at::kCPU);
  if (s.rfind("cuda", 0) == 0) {
    if (!at::hasCUDA()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "--device=", s, ": this build of spatialid has no CUDA (build with tools/build_gpu.sh)"));
    }
    try {
      return at::Device(s);
    } catch (const std::exception&) {
    }
  }
  return absl::InvalidArgumentError(absl::StrCat("--device=", s, ": expected cpu, cuda or cuda:N"));
}

std::vector<std::string> SplitList(const std::string& s) {
  std::vector<std::string> out;
  for (absl::string_view part : absl::StrSplit(s, ',', absl::SkipEmpty())) out.emplace_back(part);
  return out;
}

// A folder of PNGs or layouts drawn in memory, behind one type so every
// family and policy is compiled once.
class ImageSource {
 public:
  using Variant = std::variant<data::LayoutFolder, data::SynthesizedLayouts>;
  explicit ImageSource(Variant source) : source_(std::move(source)) {}
  size_t size() const {
    return std::visit([](const auto& s) -> size_t { return s.size(); }, source_);
  }
  const data::GridLayout& layout(size_t i) const {
    return std::visit([i](const auto& s) -> const data::GridLayout& { return s.layout(i); },
                      source_);
  }
  absl::StatusOr<io::Image> RgbImage(size_t i) const {
    return std::visit([i](const auto& s) { return s.RgbImage(i); }, source_);
  }

 private:
  Variant source_;
};

absl::StatusOr<ImageSource> OpenImages(bool grid) {
  const std::string objects_dir = absl::GetFlag(FLAGS_objects_dir);
  if (objects_dir.empty()) {
    std::string images = absl::GetFlag(FLAGS_images);
    if (images.empty()) images = grid ? "data/grid_data" : "data/extraction_data";
    data::FolderOptions fopts;
    fopts.pairs = SplitList(absl::GetFlag(FLAGS_pairs));
    SPATIALID_ASSIGN_OR_RETURN(data::LayoutFolder folder, data::LayoutFolder::Open(images, fopts));
    return ImageSource(std::move(folder));
  }
  std::error_code dir_ec;
  if (!std::filesystem::is_directory(objects_dir, dir_ec)) {
    return absl::NotFoundError(absl::StrCat(objects_dir, ": --objects_dir folder not found"));
  }
  std::string pairs_csv = absl::GetFlag(FLAGS_pairs);
  absl::StatusOr<std::vector<data::ObjectPair>> pairs;
  if (pairs_csv.empty() && !grid) {
    std::vector<std::string> names;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(objects_dir, ec)) {
      if (e.path().extension() == ".png") names.push_back(e.path().stem().string());
    }
    std::sort(names.begin(), names.end());
    pairs = data::AllOrderedPairs(absl::StrJoin(names, ","));
  } else {
    pairs = data::ParsePairList(pairs_csv.empty() ? "camel_frog" : pairs_csv, objects_dir);
  }
  if (!pairs.ok()) return pairs.status();
  data::GridOptions grid_options;
  std::string sizes_csv = absl::GetFlag(FLAGS_sizes);
  if (sizes_csv.empty()) sizes_csv = grid ? "224" : "74,124,174,224";
  SPATIALID_ASSIGN_OR_RETURN(std::vector<int> sizes, data::ParseSizeList(sizes_csv, grid_options.cell));
  SPATIALID_ASSIGN_OR_RETURN(std::unique_ptr<data::GridComposer> composer,
                             data::GridComposer::Create(objects_dir, grid_options));
  std::vector<data::GridLayout> layouts;
  for (const data::ObjectPair& p : *pairs) {
    std::vector<data::GridLayout> l =
        data::EnumeratePairLayouts(p.a, p.b, sizes, absl::GetFlag(FLAGS_no_same_row_or_col));
    layouts.insert(layouts.end(), l.begin(), l.end());
  }
  return ImageSource(data::SynthesizedLayouts(std::move(composer), std::move(layouts)));
}

// A checkpoint of another family fails later with a message about some
// processor field; say what is wrong before anything loads.
absl::Status CheckCheckpointFamily(const std::string& model_dir,
                                   const families::PresetOfFamily& preset) {
  std::error_code ec;
  if (!std::filesystem::is_directory(model_dir, ec)) {
    return absl::NotFoundError(absl::StrCat(model_dir, ": --model_dir folder not found"));
  }
  const std::string path = (std::filesystem::path(model_dir) / "config.json").string();
  if (!std::filesystem::exists(path, ec)) {
    return absl::NotFoundError(
        absl::StrCat(path, ": not found (expected the checkpoint's Hugging Face config.json)"));
  }
  SPATIALID_ASSIGN_OR_RETURN(nlohmann::json config, io::ReadJsonFile(path));
  const std::string expected(preset.model_type);
  const nlohmann::json* type = config.is_object() && config.contains("model_type")
                                   ? &config["model_type"]
                                   : nullptr;
  if (type == nullptr || !type->is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": no \"model_type\" string (expected \"", expected, "\" for --model=",
        std::string(preset.preset.alias), ")"));
  }
  const std::string got = type->get<std::string>();
  if (got == expected) return absl::OkStatus();
  const std::vector<std::string> fitting = families::AliasesOfModelType(got);
  return absl::InvalidArgumentError(absl::StrCat(
      path, ": model_type \"", got, "\" is not a checkpoint for --model=",
      std::string(preset.preset.alias),
      " (expected model_type \"", expected, "\")",
      fitting.empty() ? std::string("; no --model alias reads this family")
                      : absl::StrCat("; for this checkpoint use --model=", absl::StrJoin(fitting, " or "))));
}

// Fails now rather than after hours of extraction when --out cannot hold files.
constexpr char kWriteProbe[] = ".write_probe";
absl::Status CheckOutputFolder(const std::string& out_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec || !fs::is_directory(out_dir, ec)) {
    return absl::PermissionDeniedError(absl::StrCat(
        out_dir, ": cannot create the --out folder (", ec ? ec.message() : "not a folder", ")"));
  }
  // Named like every writer's temporary, so a run killed between the two
  // calls below leaves one that the next run on this host removes.
  const fs::path probe = io::TemporaryPathFor((fs::path(out_dir) / kWriteProbe).string());
  std::FILE* f = std::fopen(probe.c_str(), "wb");
  if (f == nullptr) {
    return absl::PermissionDeniedError(absl::StrCat(
        out_dir, ": the --out folder is not writable (", std::strerror(errno), ")"));
  }
  std::fclose(f);
  fs::remove(probe, ec);
  return absl::OkStatus();
}

// Temporaries of this run's file names ({name}.pt, {name}_x.pt ... at the
// top and in the pair folders, and the write probe) that a killed run left.
absl::Status RemoveStaleOutputs(const std::string& out_dir, const std::string& name) {
  SPATIALID_ASSIGN_OR_RETURN(
      int removed, io::RemoveStaleTemporaries(out_dir, 1, [&](std::string_view final_name) {
        if (final_name == kWriteProbe) return true;
        for (const char* suffix : {"", "_x", "_y", "_text"}) {
          if (final_name == absl::StrCat(name, suffix, ".pt")) return true;
        }
        return false;
      }));
  if (removed > 0) {
    std::fprintf(stderr, "removed %d temporary file%s of an interrupted run from %s\n", removed,
                 removed == 1 ? "" : "s", out_dir.c_str());
  }
  return absl::OkStatus();
}

// One line for the terminal or log: libtorch's exception texts append a
// stack trace after the first line.
std::string OneLine(absl::string_view message, bool first_line_only) {
  std::string out;
  for (absl::string_view line : absl::StrSplit(message, '\n', absl::SkipWhitespace())) {
    if (!out.empty()) {
      if (first_line_only) break;
      out += "; ";
    }
    out.append(line.data(), line.size());
  }
  return out;
}

void PrintStreamStats(ExperimentKind kind, const extract::StreamStats& s) {
  if (s.images == 0) return;
  std::fprintf(stderr,
               "%s: %ld images in %.2f s (%.2f images/s, batch %d): forward %.2f s, "
               "accumulate %.2f s, model waiting for images %.2f s; loaders: load %.2f s, "
               "preprocess %.2f s\n",
               kind == ExperimentKind::kGrid ? "small_id_grid" : "batch_extraction", s.images,
               s.total_seconds, static_cast<double>(s.images) / std::max(s.total_seconds, 1e-9),
               s.batch_size, s.forward_seconds, s.sink_seconds, s.wait_seconds, s.load_seconds,
               s.preprocess_seconds);
}

template <class F>
absl::Status RunWith(ExperimentKind kind, const extract::ExtractorOptions& xopts,
                     const extract::ExperimentOptions& eopts, const ImageSource& source) {
  using X = extract::Extractor<F>;
  if (!eopts.quiet) {
    std::fprintf(stderr, "loading %s from %s\n", std::string(F::kName).c_str(),
                 xopts.model_dir.c_str());
  }
  SPATIALID_ASSIGN_OR_RETURN(X x, X::Create(xopts));
  extract::ExperimentOptions o = eopts;
  o.out_dtype = x.model().dtype();
  extract::StreamStats stats;
  o.stream.stats = &stats;
  if (!o.quiet) {
    // Once per run, not per prompt: every pair's prompt has the same shape.
    auto said = std::make_shared<bool>(false);
    o.stream.note = [said](const std::string& note) {
      if (*said) return;
      *said = true;
      std::fprintf(stderr, "engine: %s\n", note.c_str());
    };
  }
  const absl::Status s = kind == ExperimentKind::kGrid ? extract::RunGridExperiment(x, source, o)
                                                       : extract::RunBatchExtraction(x, source, o);
  if (s.ok() && !o.quiet) PrintStreamStats(kind, stats);
  return s;
}

absl::Status Run(ExperimentKind kind) {
  SPATIALID_ASSIGN_OR_RETURN(families::PresetOfFamily model,
                             families::FindPreset(absl::GetFlag(FLAGS_model)));
  const families::ModelPreset& preset = model.preset;
  const bool batch = kind == ExperimentKind::kBatch;
  if (batch && absl::GetFlag(FLAGS_merge)) {
    // The merge reads only the shards: no model folder, device or image set.
    if (absl::GetFlag(FLAGS_shard) >= 0 || absl::GetFlag(FLAGS_num_shards) > 0) {
      return absl::InvalidArgumentError("--merge merges every shard; drop --shard/--num_shards");
    }
    // Axis flags left at their defaults: the options the shards were run with.
    std::optional<extract::AxisOptions> axes;
    if (absl::GetFlagReflectionHandle(FLAGS_axis_size).CurrentValue() !=
            absl::GetFlagReflectionHandle(FLAGS_axis_size).DefaultValue() ||
        absl::GetFlag(FLAGS_strict_axes)) {
      axes.emplace();
      axes->size = absl::GetFlag(FLAGS_axis_size);
      axes->strict = absl::GetFlag(FLAGS_strict_axes);
    }
    const std::string out =
        absl::GetFlag(FLAGS_out).empty() ? "embeds/universal_id" : absl::GetFlag(FLAGS_out);
    const std::string name =
        absl::GetFlag(FLAGS_name).empty() ? std::string(preset.alias) : absl::GetFlag(FLAGS_name);
    return extract::MergeShards(out, name, axes, absl::GetFlag(FLAGS_quiet));
  }
  extract::ExtractorOptions xopts;
  xopts.model_dir = absl::GetFlag(FLAGS_model_dir);
  if (xopts.model_dir.empty()) {
    const char* def = std::getenv("SPATIALID_DEFAULT_MODEL");
    if (def == nullptr || *def == '\0') {
      return absl::InvalidArgumentError(
          "--model_dir is required (or run tools/setup.sh and source ~/.cache/spatialid/env.sh "
          "for the built-in default model)");
    }
    xopts.model_dir = def;
  }
  std::optional<extract::ShardSpec> shard;
  if (batch) {
    SPATIALID_ASSIGN_OR_RETURN(shard, extract::ResolveShard(absl::GetFlag(FLAGS_shard),
                                                            absl::GetFlag(FLAGS_num_shards)));
  } else if (absl::GetFlag(FLAGS_shard) >= 0 || absl::GetFlag(FLAGS_num_shards) > 0 ||
             absl::GetFlag(FLAGS_merge)) {
    return absl::InvalidArgumentError("--shard, --num_shards and --merge are for batch_extraction");
  }
  std::string device = absl::GetFlag(FLAGS_device);
  if (shard && shard->local_rank && device == "cuda") {
    device = absl::StrCat("cuda:", extract::LocalCudaIndex(*shard->local_rank));
  }
  SPATIALID_ASSIGN_OR_RETURN(xopts.device, ParseDevice(device));
  SPATIALID_ASSIGN_OR_RETURN(at::ScalarType dtype,
                             ParseDtype(absl::GetFlag(FLAGS_dtype), preset, xopts.device));
  xopts.dtype = dtype;
  const std::string bos = absl::GetFlag(FLAGS_bos);
  if (bos == "processor") {
    xopts.bos = extract::BosRule::kProcessorCall;
  } else if (bos == "chat_template") {
    xopts.bos = extract::BosRule::kChatTemplate;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--bos=", bos, ": expected processor or chat_template"));
  }
  const std::string engine = absl::GetFlag(FLAGS_engine);
  if (engine == "plain") {
    xopts.plan = std::nullopt;
  } else if (engine != "planned") {
    return absl::InvalidArgumentError(
        absl::StrCat("--engine=", engine, ": expected planned or plain"));
  }
  const std::string resize = absl::GetFlag(FLAGS_resize);
  if (resize == "torchvision") {
    xopts.resize = vision::ResizeEngine::kTorchvision;
  } else if (resize == "pillow") {
    xopts.resize = vision::ResizeEngine::kPillow;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--resize=", resize, ": expected torchvision or pillow"));
  }
  SPATIALID_ASSIGN_OR_RETURN(
      policy::layers::Spec layers,
      policy::layers::Spec::Parse(absl::GetFlag(FLAGS_layers), preset.reference_last_layer));
  xopts.layers = layers;
  if (absl::GetFlag(FLAGS_threads) > 0) at::set_num_threads(absl::GetFlag(FLAGS_threads));

  extract::ExperimentOptions eopts;
  eopts.model_name = absl::GetFlag(FLAGS_name).empty() ? std::string(preset.alias)
                                                       : absl::GetFlag(FLAGS_name);
  const bool grid = kind == ExperimentKind::kGrid;
  eopts.out_dir = absl::GetFlag(FLAGS_out);
  if (eopts.out_dir.empty()) eopts.out_dir = grid ? "embeds/grid_id" : "embeds/universal_id";
  eopts.stream.batch_size = absl::GetFlag(FLAGS_batch_size);
  eopts.stream.prefetch = absl::GetFlag(FLAGS_prefetch);
  eopts.stream.loader_threads = absl::GetFlag(FLAGS_loader_threads);
  eopts.axes.size = absl::GetFlag(FLAGS_axis_size);
  eopts.axes.strict = absl::GetFlag(FLAGS_strict_axes);
  eopts.overwrite = absl::GetFlag(FLAGS_overwrite);
  eopts.quiet = absl::GetFlag(FLAGS_quiet);
  eopts.question = absl::GetFlag(FLAGS_question);
  eopts.targets = SplitList(absl::GetFlag(FLAGS_targets));
  eopts.text_targets = SplitList(absl::GetFlag(FLAGS_text_targets));
  if (grid && eopts.targets.empty()) return absl::InvalidArgumentError("--targets is empty");
  if (eopts.stream.batch_size < 0) {
    return absl::InvalidArgumentError("--batch_size must be >= 0 (0: auto)");
  }
  if (eopts.stream.loader_threads < 1) {
    return absl::InvalidArgumentError("--loader_threads must be >= 1");
  }
  eopts.shard = shard;
  if (shard) {
    // Settings every shard must share (the merge compares them); the
    // extraction adds dtype, kept layers and averaging.
    eopts.shard_config = {
        {"model", absl::GetFlag(FLAGS_model)},      {"pooling", absl::GetFlag(FLAGS_pooling)},
        {"resize", absl::GetFlag(FLAGS_resize)},    {"images", absl::GetFlag(FLAGS_images)},
        {"objects_dir", absl::GetFlag(FLAGS_objects_dir)}, {"pairs", absl::GetFlag(FLAGS_pairs)},
        {"sizes", absl::GetFlag(FLAGS_sizes)},
        {"no_same_row_or_col", absl::GetFlag(FLAGS_no_same_row_or_col)},
        {"bos", bos}, {"dtype", extract::DtypeName(dtype)},
        {"layers_flag", absl::GetFlag(FLAGS_layers)}, {"axis_size", absl::GetFlag(FLAGS_axis_size)},
        {"strict_axes", absl::GetFlag(FLAGS_strict_axes)},
        {"model_fingerprint", extract::ModelFingerprint(xopts.model_dir)}};
    if (!eopts.quiet) {
      std::fprintf(stderr, "batch_extraction: shard %d of %d (from %s) on %s\n", shard->index,
                   shard->count, shard->from.c_str(), device.c_str());
    }
  }
  SPATIALID_ASSIGN_OR_RETURN(ImageSource source, OpenImages(grid));
  if (shard) {
    extract::Fnv1a layouts;  // the image set, by layout, in order
    for (size_t i = 0; i < source.size(); ++i) {
      const data::GridLayout& l = source.layout(i);
      layouts.Add(absl::StrCat(l.a, "_", l.b, " ", l.a_cell ? l.a_cell->x : -1, ",",
                               l.a_cell ? l.a_cell->y : -1, " ", l.b_cell.x, ",", l.b_cell.y, " ",
                               l.size));
    }
    eopts.shard_config["layouts_fingerprint"] = layouts.Hex();
    SPATIALID_RETURN_IF_ERROR(extract::BeginShard(eopts.out_dir, eopts.model_name, *shard,
                                                  eopts.shard_config, eopts.overwrite));
  }

  const std::string pooling = absl::GetFlag(FLAGS_pooling);
  if (pooling == "last_subtoken") {
    xopts.pooling = policy::pooling::LastSubtoken{};
  } else if (pooling == "mean_of_subtokens") {
    xopts.pooling = policy::pooling::MeanOfSubtokens{};
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--pooling=", pooling, ": expected last_subtoken or mean_of_subtokens"));
  }
  const std::string averaging = absl::GetFlag(FLAGS_averaging);
  if (averaging == "streaming") {
    xopts.averaging = policy::Averaging::Use<policy::averaging::StreamingMean>();
  } else if (averaging == "reference") {
    xopts.averaging = policy::Averaging::Use<policy::averaging::ReferenceMean>();
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--averaging=", averaging, ": expected streaming or reference"));
  }
  SPATIALID_RETURN_IF_ERROR(CheckCheckpointFamily(xopts.model_dir, model));
  SPATIALID_RETURN_IF_ERROR(CheckOutputFolder(eopts.out_dir));
  SPATIALID_RETURN_IF_ERROR(RemoveStaleOutputs(eopts.out_dir, eopts.model_name));
  return families::DispatchModelType(model.model_type, [&]<class F>() -> absl::Status {
    return RunWith<F>(kind, xopts, eopts, source);
  });
}

}  // namespace

int ExperimentMain(ExperimentKind kind, int argc, char** argv, const char* usage) {
  std::vector<char*> rest = ParseFlags(argc, argv, usage);
  if (rest.size() > 1) {
    std::fprintf(stderr,
                 "%s: error: unexpected argument '%s' (flags are --name=value; see --help)\n",
                 std::filesystem::path(argv[0]).filename().c_str(), rest[1]);
    return 2;
  }
  absl::Status s;
  bool thrown = false;
  try {
    s = Run(kind);
  } catch (const std::exception& e) {
    // libtorch reports some failures (out of memory, a bad kernel) by throwing.
    s = absl::InternalError(e.what());
    thrown = true;
  }
  if (!s.ok()) {
    std::fprintf(stderr, "%s: error: %s\n", std::filesystem::path(argv[0]).filename().c_str(),
                 OneLine(s.message(), thrown).c_str());
    return 1;
  }
  return 0;
}

}  // namespace spatialid::examples
