// Drives the Llama 3.2 Vision (Mllama) family for the Python oracle
// (mllama_oracle_test.py).
//
// Background: transformers is the oracle for every number the family
// produces. The Python test builds a tiny random-weight checkpoint, runs
// transformers, and asks this binary for the same quantities; tensors travel
// as safetensors files (pixels in, results out), requests as JSON.
//
// Modes:
//   --mode=forward     hidden states of `--request` (JSON: {"input_ids":
//                      [[...]], "positions": [...], "layers": [...]}) with
//                      pixels from --pixels (safetensors "pixel_values",
//                      "aspect_ratio_ids", "aspect_ratio_mask", all F32) or from
//                      --images (image files, the C++ processor, one image
//                      per row); --text_only drops the image. Writes
//                      "hidden_states" [layers, batch, positions, hidden] in
//                      the model dtype, "cross_attention_mask" (the 0/1 mask
//                      the family derives from the ids) with pixels,
//                      "image_features" with --image_features, and the
//                      processor outputs when the C++ processor made them.
//   --mode=preprocess  only the processor outputs for --images.
//   --mode=prompt      the pipeline's prompt for --text (with an image unless
//                      --text_only): chat template (fixed date), the
//                      processor's BOS rule, the tokenizer; prints JSON
//                      {"text", "add_special_tokens", "input_ids"}; with
//                      --images also writes --out with the processor outputs
//                      and the "cross_attention_mask" for those ids.
//   --mode=tiling      for each HxW in --sizes, the processor's canvas and
//                      resize: prints JSON [[rows, cols, height, width, id], ...].
//   --mode=config      prints what the family reads from config.json (JSON on
//                      stdout); no weights.
// --repeat=N times N forwards after the first and prints "forward_seconds=".
//
// Example:
//   mllama_forward_cli --model_dir=/tmp/tiny --request=req.json
//     --pixels=px.safetensors --dtype=float32 --out=out.safetensors
#include <chrono>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/tensor.h>
#include <nlohmann/json.hpp>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "spatialid/families/mllama/mllama.h"
#include "spatialid/io/image.h"
#include "spatialid/io/json_file.h"
#include "spatialid/io/safetensors.h"
#include "spatialid/io/safetensors_writer.h"
#include "spatialid/text/chat_template.h"
#include "spatialid/text/prompt.h"
#include "spatialid/text/tokenizer_pretrained.h"
#include "spatialid/util/status.h"

ABSL_FLAG(std::string, mode, "forward", "forward, preprocess, prompt, tiling or config (see the file comment)");
ABSL_FLAG(std::string, model_dir, "", "Mllama checkpoint folder (config.json, *.safetensors, ...)");
ABSL_FLAG(std::string, request, "", "JSON file with input_ids, positions and layers");
ABSL_FLAG(std::string, pixels, "", "safetensors file with pixel_values, aspect_ratio_ids, aspect_ratio_mask");
ABSL_FLAG(std::string, images, "", "comma-separated image files for the C++ processor");
ABSL_FLAG(std::string, resize, "torchvision", "C++ processor resize engine: torchvision or pillow");
ABSL_FLAG(std::string, dtype, "", "model dtype: float32, float16 or bfloat16 (empty: config.json's)");
ABSL_FLAG(bool, text_only, false, "forward/prompt without an image");
ABSL_FLAG(bool, image_features, false, "also write the projected image features");
ABSL_FLAG(std::string, text, "", "the user question (mode=prompt)");
ABSL_FLAG(std::string, text_only_numbering, "skipped",
          "text-only hidden-state numbering: skipped (transformers >= 4.55, the default) or repeated "
          "(transformers <= 4.54)");
ABSL_FLAG(std::string, sizes, "", "comma-separated HxW image sizes (mode=tiling)");
ABSL_FLAG(int, repeat, 0, "time this many forwards after the first and print the mean");
ABSL_FLAG(int, threads, 0, "intra-op threads (0 keeps libtorch's default)");
ABSL_FLAG(std::string, out, "", "output safetensors file");

namespace {

namespace fam = spatialid::families;
using fam::HiddenStateRequest;
using fam::Mllama;
using fam::MllamaPixels;

absl::StatusOr<std::optional<at::ScalarType>> DtypeFlag(const std::string& name) {
  if (name.empty()) return std::optional<at::ScalarType>();
  SPATIALID_ASSIGN_OR_RETURN(at::ScalarType t, fam::DtypeFromConfig(name));
  return std::optional<at::ScalarType>(t);
}

absl::StatusOr<MllamaPixels> PixelsFromImages(const std::string& model_dir, const std::string& list) {
  SPATIALID_ASSIGN_OR_RETURN(spatialid::vision::ResizeEngine engine,
                             spatialid::vision::ParseResizeEngine(absl::GetFlag(FLAGS_resize)));
  SPATIALID_ASSIGN_OR_RETURN(Mllama::Processor proc, Mllama::LoadProcessor(model_dir, {engine}));
  std::vector<spatialid::io::Image> images;
  for (const std::string& path : std::vector<std::string>(absl::StrSplit(list, ',', absl::SkipEmpty()))) {
    SPATIALID_ASSIGN_OR_RETURN(spatialid::io::Image img, spatialid::io::LoadImage(path));
    images.push_back(std::move(img));
  }
  return proc.Preprocess(images);
}

absl::StatusOr<MllamaPixels> PixelsFromFile(const std::string& path) {
  SPATIALID_ASSIGN_OR_RETURN(auto file, spatialid::io::SafetensorsFile::Open(path));
  MllamaPixels px;
  SPATIALID_ASSIGN_OR_RETURN(px.pixel_values, file.Load("pixel_values", at::kFloat, at::kCPU));
  // The ids and masks travel as F32 (the reader takes float tensors).
  SPATIALID_ASSIGN_OR_RETURN(px.aspect_ratio_ids, file.Load("aspect_ratio_ids", at::kFloat, at::kCPU));
  SPATIALID_ASSIGN_OR_RETURN(px.aspect_ratio_mask, file.Load("aspect_ratio_mask", at::kFloat, at::kCPU));
  px.pixel_values = px.pixel_values.clone();  // own the bytes beyond the mapping
  px.aspect_ratio_ids = px.aspect_ratio_ids.to(at::kLong);
  px.aspect_ratio_mask = px.aspect_ratio_mask.to(at::kLong);
  return px;
}

void PutPixels(const MllamaPixels& px, std::map<std::string, at::Tensor>& out) {
  out["pixel_values"] = px.pixel_values;
  out["aspect_ratio_ids"] = px.aspect_ratio_ids;
  out["aspect_ratio_mask"] = px.aspect_ratio_mask;
}

// The 0/1 cross-attention mask the family derives for these ids.
at::Tensor CrossMask(const spatialid::families::MllamaConfig& cfg, const at::Tensor& ids, const MllamaPixels& px) {
  const at::Tensor counts = px.aspect_ratio_mask.sum(-1);
  std::vector<std::vector<int64_t>> num_tiles(static_cast<size_t>(counts.size(0)));
  for (int64_t b = 0; b < counts.size(0); ++b) {
    for (int64_t j = 0; j < counts.size(1); ++j) num_tiles[static_cast<size_t>(b)].push_back(counts[b][j].item<int64_t>());
  }
  return fam::MllamaTileAttentionRows(ids, cfg.image_token_index, num_tiles, px.pixel_values.size(1),
                                      px.pixel_values.size(2));
}

absl::Status PrintConfig(const std::string& model_dir) {
  SPATIALID_ASSIGN_OR_RETURN(spatialid::families::MllamaConfig cfg, fam::ReadMllamaConfig(model_dir));
  SPATIALID_ASSIGN_OR_RETURN(spatialid::nn::TextDecoderShape text, fam::MllamaDecoderShape(cfg.text_config));
  SPATIALID_ASSIGN_OR_RETURN(spatialid::families::MllamaVisionShape vision, fam::MllamaVisionShapeOf(cfg.vision_config));
  SPATIALID_ASSIGN_OR_RETURN(at::ScalarType dtype, fam::DtypeFromConfig(cfg.dtype));
  const int64_t cross = static_cast<int64_t>(text.other_layers.size());
  const char* rope = text.rope.type == spatialid::nn::RopeType::kLlama3 ? "llama3" : "other";
  const nlohmann::json j = {
      {"num_layers", text.num_layers},
      {"text_only_num_layers", text.num_layers - cross},
      {"cross_attention_layers", text.other_layers},
      {"hidden_size", text.hidden_size},
      {"num_heads", text.num_heads},
      {"num_kv_heads", text.num_kv_heads},
      {"head_dim", text.head_dim},
      {"embedding_rows", text.vocab_size},
      {"rope_type", rope},
      {"rope_theta", text.rope.theta},
      {"rope_factor", text.rope.factor},
      {"vision_layers", vision.num_layers},
      {"vision_global_layers", vision.num_global_layers},
      {"vision_hidden_size", vision.hidden_size},
      {"vision_output_dim", vision.output_dim()},
      {"tile_size", vision.image_size},
      {"max_num_tiles", vision.max_num_tiles},
      {"positions_per_tile", vision.num_patches()},
      {"padded_positions_per_tile", vision.padded_patches()},
      {"vision_positions_per_image", vision.max_num_tiles * vision.num_patches()},
      {"image_tokens", 1},
      {"image_token_index", cfg.image_token_index},
      {"dtype", std::string(c10::toString(dtype))}};
  std::printf("%s\n", j.dump().c_str());
  return absl::OkStatus();
}

absl::Status PrintTiling(const std::string& model_dir) {
  SPATIALID_ASSIGN_OR_RETURN(Mllama::Processor proc, Mllama::LoadProcessor(model_dir, {}));
  const spatialid::families::MllamaImageProcessor& ip = proc.image_processor();
  nlohmann::json rows = nlohmann::json::array();
  for (const std::string& item : std::vector<std::string>(absl::StrSplit(absl::GetFlag(FLAGS_sizes), ',',
                                                                         absl::SkipEmpty()))) {
    const std::vector<std::string> hw = absl::StrSplit(item, 'x');
    int64_t h = 0, w = 0;
    if (hw.size() != 2 || !absl::SimpleAtoi(hw[0], &h) || !absl::SimpleAtoi(hw[1], &w) || h <= 0 || w <= 0) {
      return absl::InvalidArgumentError(absl::StrCat("--sizes: \"", item, "\" is not HxW"));
    }
    const spatialid::families::MllamaTileLayout layout = ip.LayoutFor(h, w);
    const auto [rh, rw] = ip.ResizedSize(h, w);
    rows.push_back({layout.rows, layout.cols, rh, rw, ip.AspectRatioId(layout)});
  }
  std::printf("%s\n", rows.dump().c_str());
  return absl::OkStatus();
}

absl::Status PrintPrompt(const std::string& model_dir, std::map<std::string, at::Tensor>& out) {
  namespace text = spatialid::text;
  SPATIALID_ASSIGN_OR_RETURN(spatialid::families::MllamaConfig cfg, fam::ReadMllamaConfig(model_dir));
  SPATIALID_ASSIGN_OR_RETURN(text::ChatTemplate tmpl, text::ChatTemplate::FromModelDir(model_dir));
  SPATIALID_ASSIGN_OR_RETURN(text::Tokenizer tok, text::LoadPretrainedTokenizer(model_dir));
  const bool with_image = !absl::GetFlag(FLAGS_text_only);
  SPATIALID_ASSIGN_OR_RETURN(text::RenderedPrompt rendered,
                             text::RenderUserPrompt(tmpl, absl::GetFlag(FLAGS_text), with_image));
  // Mllama's placeholder is its own expansion: the text keeps one "<|image|>".
  const std::string expanded = text::ExpandImagePlaceholders(
      rendered.text, fam::MllamaModel::kImageToken, fam::MllamaModel::kImageToken);
  const std::vector<int32_t> ids = tok.Encode(expanded, rendered.add_special_tokens);
  const nlohmann::json j = {{"text", rendered.text},
                            {"add_special_tokens", rendered.add_special_tokens},
                            {"input_ids", ids}};
  std::printf("%s\n", j.dump().c_str());
  if (!absl::GetFlag(FLAGS_images).empty()) {
    SPATIALID_ASSIGN_OR_RETURN(MllamaPixels px, PixelsFromImages(model_dir, absl::GetFlag(FLAGS_images)));
    const at::Tensor row = at::tensor(std::vector<int64_t>(ids.begin(), ids.end()), at::kLong);
    const at::Tensor batch = row.unsqueeze(0).expand({px.pixel_values.size(0), row.size(0)}).contiguous();
    out["cross_attention_mask"] = CrossMask(cfg, batch, px);
    PutPixels(px, out);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::pair<at::Tensor, HiddenStateRequest>> ReadRequest(const std::string& path) {
  SPATIALID_ASSIGN_OR_RETURN(nlohmann::json req, spatialid::io::ReadJsonFile(path));
  HiddenStateRequest request;
  std::vector<std::vector<int64_t>> rows;
  try {
    rows = req.at("input_ids").get<std::vector<std::vector<int64_t>>>();
    request.positions = req.at("positions").get<std::vector<int64_t>>();
    request.layers = req.at("layers").get<std::vector<int>>();
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", e.what()));
  }
  if (rows.empty() || rows[0].empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": input_ids is empty"));
  std::vector<int64_t> flat;
  for (const auto& r : rows) {
    if (r.size() != rows[0].size()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": input_ids rows differ in length"));
    }
    flat.insert(flat.end(), r.begin(), r.end());
  }
  const at::Tensor ids = at::tensor(flat, at::kLong).reshape(
      {static_cast<int64_t>(rows.size()), static_cast<int64_t>(rows[0].size())});
  return std::make_pair(ids, request);
}

absl::Status Run() {
  const std::string mode = absl::GetFlag(FLAGS_mode);
  const std::string model_dir = absl::GetFlag(FLAGS_model_dir);
  const std::string out_path = absl::GetFlag(FLAGS_out);
  if (model_dir.empty()) return absl::InvalidArgumentError("--model_dir is required");
  if (absl::GetFlag(FLAGS_threads) > 0) at::set_num_threads(absl::GetFlag(FLAGS_threads));
  if (mode == "config") return PrintConfig(model_dir);
  if (mode == "tiling") return PrintTiling(model_dir);
  std::map<std::string, at::Tensor> out;
  if (mode == "prompt") {
    SPATIALID_RETURN_IF_ERROR(PrintPrompt(model_dir, out));
    if (out.empty()) return absl::OkStatus();
    if (out_path.empty()) return absl::InvalidArgumentError("--out is required with --images");
    return spatialid::io::WriteSafetensors(out_path, out);
  }
  if (out_path.empty()) return absl::InvalidArgumentError("--out is required");

  std::optional<MllamaPixels> pixels;
  if (!absl::GetFlag(FLAGS_images).empty()) {
    SPATIALID_ASSIGN_OR_RETURN(pixels, PixelsFromImages(model_dir, absl::GetFlag(FLAGS_images)));
    PutPixels(*pixels, out);
  } else if (!absl::GetFlag(FLAGS_pixels).empty()) {
    SPATIALID_ASSIGN_OR_RETURN(pixels, PixelsFromFile(absl::GetFlag(FLAGS_pixels)));
  }
  if (mode == "preprocess") {
    if (!pixels) return absl::InvalidArgumentError("--mode=preprocess needs --images");
    return spatialid::io::WriteSafetensors(out_path, out);
  }
  if (mode != "forward") return absl::InvalidArgumentError(absl::StrCat("unknown --mode=", mode));

  SPATIALID_ASSIGN_OR_RETURN(auto parsed, ReadRequest(absl::GetFlag(FLAGS_request)));
  const auto& [ids, request] = parsed;
  SPATIALID_ASSIGN_OR_RETURN(std::optional<at::ScalarType> dtype, DtypeFlag(absl::GetFlag(FLAGS_dtype)));
  const auto t_load = std::chrono::steady_clock::now();
  SPATIALID_ASSIGN_OR_RETURN(Mllama::Model model, Mllama::Load(model_dir, {.dtype = dtype}));
  std::printf("load_seconds=%.4f\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count());
  const std::string numbering = absl::GetFlag(FLAGS_text_only_numbering);
  if (numbering == "repeated") {
    model.set_text_only_numbering(fam::MllamaTextOnlyNumbering::kRepeated);
  } else if (numbering != "skipped") {
    return absl::InvalidArgumentError(absl::StrCat("--text_only_numbering=", numbering, ": skipped or repeated"));
  }
  const bool text_only = absl::GetFlag(FLAGS_text_only);
  if (!text_only && !pixels) return absl::InvalidArgumentError("forward needs --pixels or --images (or --text_only)");
  auto forward = [&]() -> absl::StatusOr<at::Tensor> {
    return text_only ? model.Forward(ids, request) : model.Forward(ids, *pixels, request);
  };
  SPATIALID_ASSIGN_OR_RETURN(out["hidden_states"], forward());
  if (const int repeat = absl::GetFlag(FLAGS_repeat); repeat > 0) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < repeat; ++i) {
      SPATIALID_ASSIGN_OR_RETURN(at::Tensor again, forward());
      (void)again;
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("forward_seconds=%.6f\n", secs / repeat);
  }
  if (!text_only) {
    out["cross_attention_mask"] = CrossMask(model.config(), ids, *pixels);
    if (absl::GetFlag(FLAGS_image_features)) {
      SPATIALID_ASSIGN_OR_RETURN(out["image_features"], model.ImageFeatures(*pixels));
    }
  }
  return spatialid::io::WriteSafetensors(out_path, out);
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Runs spatialid's Llama 3.2 Vision (Mllama) family on a checkpoint folder for the transformers\n"
      "oracle test. Example: mllama_forward_cli --model_dir=DIR --request=req.json "
      "--pixels=px.safetensors --out=out.safetensors");
  absl::ParseCommandLine(argc, argv);
  const absl::Status s = Run();
  if (!s.ok()) {
    std::fprintf(stderr, "mllama_forward_cli: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  return 0;
}
