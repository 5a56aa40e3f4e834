// Drives the InternVL3 family for the Python oracle (internvl_oracle_test.py).
//
// Background: transformers is the oracle for every number the family
// produces. The Python test builds tiny random-weight checkpoints, runs
// transformers, and asks this binary for the same quantities; tensors travel
// as safetensors files, never as text.
//
// Modes:
//   --mode=forward     hidden states of `--request` (JSON: {"input_ids":
//                      [[...]], "positions": [...], "layers": [...]}) with
//                      pixels from --pixels (safetensors "pixel_values"
//                      [P,3,448,448] and "num_patches", float32) or from --images
//                      (the C++ processor); --text_only drops the image.
//                      Writes "hidden_states" [layers, batch, positions,
//                      hidden] in the model dtype, "image_features" with
//                      --image_features, and the C++ pixels when it made them.
//   --mode=preprocess  "pixel_values" and "num_patches" of --images.
//   --mode=prompt      the reference prompt for one of --images: the model
//                      folder's chat template, one user turn (image, then
//                      --question), add_generation_prompt, the image
//                      placeholder expanded by ImagePromptFor, tokenized with
//                      the folder's tokenizer (as AutoTokenizer loads it). Prints JSON {"ids",
//                      "text", "tokens_per_image", "image_token_id",
//                      "num_patches"} on stdout.
//   --mode=extract     the pipeline's own path: extract::Extractor<InternVL>
//                      (every hidden state, last sub-token pooling) over
//                      --images as one batch with --question and the target
//                      words --words; writes "target_<word>" [layers, batch,
//                      hidden] and prints JSON {"ids", "positions"}.
//   --mode=config      prints what the family reads from config.json (JSON on
//                      stdout); no weights.
//   --mode=grids       the tile grid of each case in --request (JSON
//                      [[height, width, min_patches, max_patches], ...]) with
//                      448x448 tiles; prints [[columns, rows], ...].
//
// Example:
//   internvl_forward_cli --model_dir=/tmp/tiny --request=req.json
//     --pixels=px.safetensors --dtype=float32 --out=out.safetensors
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
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
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "spatialid/extract/extractor.h"
#include "spatialid/families/internvl/internvl.h"
#include "spatialid/io/image.h"
#include "spatialid/io/safetensors.h"
#include "spatialid/io/safetensors_writer.h"
#include "spatialid/text/chat_template.h"
#include "spatialid/text/prompt.h"
#include "spatialid/text/tokenizer_pretrained.h"
#include "spatialid/util/status.h"

ABSL_FLAG(std::string, mode, "forward",
          "forward, preprocess, prompt, config or grids (see the file comment)");
ABSL_FLAG(std::string, model_dir, "", "InternVL checkpoint folder (config.json, *.safetensors, ...)");
ABSL_FLAG(std::string, request, "", "JSON file with input_ids, positions and layers");
ABSL_FLAG(std::string, pixels, "", "safetensors file with float32 pixel_values and num_patches (as float32)");
ABSL_FLAG(std::string, images, "", "comma-separated image files for the C++ processor");
ABSL_FLAG(std::string, resize, "torchvision", "C++ processor resize engine: torchvision or pillow");
ABSL_FLAG(std::string, dtype, "float32", "model dtype: float32, float16 or bfloat16");
ABSL_FLAG(bool, text_only, false, "run the text-only forward (no pixels)");
ABSL_FLAG(bool, image_features, false, "also write the projected image features");
ABSL_FLAG(std::string, question, "Is the frog to the left or right of the camel?",
          "the user question for --mode=prompt");
ABSL_FLAG(std::string, words, "frog,left,right", "comma-separated target words for --mode=extract");
ABSL_FLAG(int, threads, 0, "intra-op threads (0 keeps libtorch's default)");
ABSL_FLAG(std::string, out, "", "output safetensors file");

namespace {

using spatialid::families::HiddenStateRequest;
using spatialid::families::InternVL;
using spatialid::families::InternVLPixels;

absl::StatusOr<nlohmann::json> ReadJson(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::stringstream buf;
  buf << in.rdbuf();
  try {
    return nlohmann::json::parse(buf.str());
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not valid JSON: ", e.what()));
  }
}

absl::StatusOr<at::ScalarType> ParseDtype(const std::string& name) {
  if (name == "float32") return at::kFloat;
  if (name == "float16") return at::kHalf;
  if (name == "bfloat16") return at::kBFloat16;
  return absl::InvalidArgumentError(
      absl::StrCat("--dtype=", name, ": expected float32, float16 or bfloat16"));
}

absl::StatusOr<InternVLPixels> PixelsFromImages(const std::string& model_dir) {
  SPATIALID_ASSIGN_OR_RETURN(spatialid::vision::ResizeEngine engine,
                             spatialid::vision::ParseResizeEngine(absl::GetFlag(FLAGS_resize)));
  SPATIALID_ASSIGN_OR_RETURN(InternVL::Processor proc, InternVL::LoadProcessor(model_dir, {engine}));
  std::vector<spatialid::io::Image> images;
  for (const std::string& path :
       std::vector<std::string>(absl::StrSplit(absl::GetFlag(FLAGS_images), ',', absl::SkipEmpty()))) {
    SPATIALID_ASSIGN_OR_RETURN(spatialid::io::Image img, spatialid::io::LoadImage(path));
    images.push_back(std::move(img));
  }
  return proc.Preprocess(images);
}

absl::StatusOr<InternVLPixels> PixelsFromFile(const std::string& path) {
  SPATIALID_ASSIGN_OR_RETURN(auto file, spatialid::io::SafetensorsFile::Open(path));
  InternVLPixels px;
  SPATIALID_ASSIGN_OR_RETURN(px.pixel_values, file.Load("pixel_values", at::kFloat, at::kCPU));
  px.pixel_values = px.pixel_values.clone();
  // Counts stored as float32 (the reader takes floating-point tensors).
  SPATIALID_ASSIGN_OR_RETURN(at::Tensor n, file.Load("num_patches", at::kFloat, at::kCPU));
  for (int64_t i = 0; i < n.numel(); ++i) px.num_patches.push_back(std::lround(n[i].item<float>()));
  return px;
}

void AddPixels(const InternVLPixels& px, std::map<std::string, at::Tensor>& out) {
  out["pixel_values"] = px.pixel_values;
  out["num_patches"] = at::tensor(px.num_patches, at::kLong).to(at::kFloat);
}

absl::Status PrintConfig(const std::string& model_dir) {
  using namespace spatialid::families;
  SPATIALID_ASSIGN_OR_RETURN(spatialid::families::InternVLConfig cfg, ReadInternVLConfig(model_dir));
  SPATIALID_ASSIGN_OR_RETURN(spatialid::nn::TextDecoderShape text, Qwen2DecoderShape(cfg.text_config));
  SPATIALID_ASSIGN_OR_RETURN(spatialid::families::InternVisionShape vision, InternVisionShapeOf(cfg.vision_config));
  SPATIALID_ASSIGN_OR_RETURN(at::ScalarType dtype, DtypeFromConfig(cfg.dtype));
  nlohmann::json j = {
      {"num_layers", text.num_layers},
      {"hidden_size", text.hidden_size},
      {"intermediate_size", text.intermediate_size},
      {"num_heads", text.num_heads},
      {"num_kv_heads", text.num_kv_heads},
      {"head_dim", text.head_dim},
      {"vocab_size", text.vocab_size},
      {"rms_norm_eps", text.rms_norm_eps},
      {"rope_theta", text.rope.theta},
      {"rope_dynamic", text.rope.type == spatialid::nn::RopeType::kDynamic},
      {"rope_factor", text.rope.factor},
      {"max_position_embeddings", text.max_position_embeddings},
      {"vision_layers", vision.num_layers},
      {"vision_hidden_size", vision.hidden_size},
      {"image_size", vision.image_size},
      {"patch_size", vision.patch_size},
      {"use_qk_norm", vision.use_qk_norm},
      {"use_mean_pooling", vision.use_mean_pooling},
      {"tokens_per_patch", InternVLTokensPerPatch(cfg)},
      {"image_token_id", cfg.image_token_id},
      {"dtype", std::string(c10::toString(dtype))},
      {"vision_feature_layer", cfg.vision_feature_layer}};
  std::printf("%s\n", j.dump().c_str());
  return absl::OkStatus();
}

absl::Status PrintPrompt(const std::string& model_dir) {
  SPATIALID_ASSIGN_OR_RETURN(InternVLPixels px, PixelsFromImages(model_dir));
  // Only the prompt geometry is needed: the config, not the weights.
  SPATIALID_ASSIGN_OR_RETURN(spatialid::families::InternVLConfig cfg,
                             spatialid::families::ReadInternVLConfig(model_dir));
  const spatialid::families::ImagePrompt image =
      spatialid::families::InternVLImagePrompt(cfg, px.num_patches.front());
  SPATIALID_ASSIGN_OR_RETURN(auto chat, spatialid::text::ChatTemplate::FromModelDir(model_dir));
  SPATIALID_ASSIGN_OR_RETURN(
      auto rendered, spatialid::text::RenderUserPrompt(chat, absl::GetFlag(FLAGS_question), true));
  SPATIALID_ASSIGN_OR_RETURN(std::string text,
                             spatialid::text::ExpandImagePlaceholders(
                                 rendered.text, image.placeholder, std::vector<std::string>{image.expansion}));
  SPATIALID_ASSIGN_OR_RETURN(auto tok, spatialid::text::LoadPretrainedTokenizer(model_dir));
  nlohmann::json j = {{"ids", tok.Encode(text, rendered.add_special_tokens)},
                      {"text", text},
                      {"tokens_per_image", image.tokens_per_image},
                      {"image_token_id", cfg.image_token_id},
                      {"num_patches", px.num_patches}};
  std::printf("%s\n", j.dump().c_str());
  return absl::OkStatus();
}

absl::Status RunExtractor(const std::string& model_dir, std::map<std::string, at::Tensor>& out) {
  using X = spatialid::extract::Extractor<InternVL>;
  SPATIALID_ASSIGN_OR_RETURN(at::ScalarType dtype, ParseDtype(absl::GetFlag(FLAGS_dtype)));
  SPATIALID_ASSIGN_OR_RETURN(X x, X::Create({.model_dir = model_dir, .dtype = dtype}));
  std::vector<spatialid::io::Image> images;
  for (const std::string& path :
       std::vector<std::string>(absl::StrSplit(absl::GetFlag(FLAGS_images), ',', absl::SkipEmpty()))) {
    SPATIALID_ASSIGN_OR_RETURN(spatialid::io::Image img, spatialid::io::LoadImage(path));
    images.push_back(std::move(img));
  }
  SPATIALID_ASSIGN_OR_RETURN(auto batch, x.Preprocess(images));
  const std::vector<std::string> words = absl::StrSplit(absl::GetFlag(FLAGS_words), ',', absl::SkipEmpty());
  SPATIALID_ASSIGN_OR_RETURN(auto prompt, x.PrepareImagePrompt(absl::GetFlag(FLAGS_question), words, batch));
  SPATIALID_ASSIGN_OR_RETURN(std::vector<at::Tensor> rows, x.Run(prompt, batch));
  nlohmann::json positions = nlohmann::json::object();
  for (size_t w = 0; w < words.size(); ++w) {
    out["target_" + words[w]] = rows[w];
    positions[words[w]] = prompt.targets[w].positions;
  }
  std::printf("%s\n", nlohmann::json({{"ids", prompt.ids}, {"positions", positions}}).dump().c_str());
  return absl::OkStatus();
}

absl::Status PrintGrids() {
  SPATIALID_ASSIGN_OR_RETURN(nlohmann::json cases, ReadJson(absl::GetFlag(FLAGS_request)));
  nlohmann::json grids = nlohmann::json::array();
  try {
    for (const auto& c : cases) {
      const auto g = spatialid::families::OptimalTiledCanvas(c.at(0).get<int64_t>(), c.at(1).get<int64_t>(),
                                                           448, 448, c.at(2).get<int64_t>(),
                                                           c.at(3).get<int64_t>());
      grids.push_back({g.columns, g.rows});
    }
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(absl::GetFlag(FLAGS_request), ": ", e.what()));
  }
  std::printf("%s\n", grids.dump().c_str());
  return absl::OkStatus();
}

absl::StatusOr<at::Tensor> ReadRequest(HiddenStateRequest& request) {
  SPATIALID_ASSIGN_OR_RETURN(nlohmann::json req, ReadJson(absl::GetFlag(FLAGS_request)));
  std::vector<std::vector<int64_t>> rows;
  try {
    rows = req.at("input_ids").get<std::vector<std::vector<int64_t>>>();
    request.positions = req.at("positions").get<std::vector<int64_t>>();
    request.layers = req.at("layers").get<std::vector<int>>();
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(absl::GetFlag(FLAGS_request), ": ", e.what()));
  }
  if (rows.empty() || rows[0].empty()) return absl::InvalidArgumentError("input_ids is empty");
  std::vector<int64_t> flat;
  for (const auto& r : rows) {
    if (r.size() != rows[0].size()) return absl::InvalidArgumentError("input_ids rows differ in length");
    flat.insert(flat.end(), r.begin(), r.end());
  }
  return at::tensor(flat, at::kLong)
      .reshape({static_cast<int64_t>(rows.size()), static_cast<int64_t>(rows[0].size())});
}

absl::Status Run() {
  const std::string mode = absl::GetFlag(FLAGS_mode);
  const std::string model_dir = absl::GetFlag(FLAGS_model_dir);
  if (mode == "grids") return PrintGrids();
  if (model_dir.empty()) return absl::InvalidArgumentError("--model_dir is required");
  if (mode == "config") return PrintConfig(model_dir);
  if (mode == "prompt") return PrintPrompt(model_dir);
  const std::string out_path = absl::GetFlag(FLAGS_out);
  if (out_path.empty()) return absl::InvalidArgumentError("--out is required");
  if (absl::GetFlag(FLAGS_threads) > 0) at::set_num_threads(absl::GetFlag(FLAGS_threads));
  std::map<std::string, at::Tensor> out;

  InternVLPixels pixels;
  if (!absl::GetFlag(FLAGS_images).empty()) {
    SPATIALID_ASSIGN_OR_RETURN(pixels, PixelsFromImages(model_dir));
    AddPixels(pixels, out);
  } else if (!absl::GetFlag(FLAGS_pixels).empty()) {
    SPATIALID_ASSIGN_OR_RETURN(pixels, PixelsFromFile(absl::GetFlag(FLAGS_pixels)));
  }
  if (mode == "extract") {
    SPATIALID_RETURN_IF_ERROR(RunExtractor(model_dir, out));
    return spatialid::io::WriteSafetensors(out_path, out);
  }
  if (mode == "preprocess") {
    if (!pixels.pixel_values.defined()) return absl::InvalidArgumentError("--mode=preprocess needs --images");
    return spatialid::io::WriteSafetensors(out_path, out);
  }
  if (mode != "forward") return absl::InvalidArgumentError(absl::StrCat("unknown --mode=", mode));

  HiddenStateRequest request;
  SPATIALID_ASSIGN_OR_RETURN(const at::Tensor ids, ReadRequest(request));
  SPATIALID_ASSIGN_OR_RETURN(at::ScalarType dtype, ParseDtype(absl::GetFlag(FLAGS_dtype)));
  SPATIALID_ASSIGN_OR_RETURN(InternVL::Model model, InternVL::Load(model_dir, {.dtype = dtype}));
  const bool text_only = absl::GetFlag(FLAGS_text_only);
  if (text_only) {
    SPATIALID_ASSIGN_OR_RETURN(out["hidden_states"], model.Forward(ids, request));
    return spatialid::io::WriteSafetensors(out_path, out);
  }
  if (!pixels.pixel_values.defined()) {
    return absl::InvalidArgumentError("forward needs --pixels or --images (or --text_only)");
  }
  SPATIALID_ASSIGN_OR_RETURN(out["hidden_states"], model.Forward(ids, pixels, request));
  if (absl::GetFlag(FLAGS_image_features)) {
    SPATIALID_ASSIGN_OR_RETURN(out["image_features"], model.ImageFeatures(pixels));
  }
  return spatialid::io::WriteSafetensors(out_path, out);
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Runs spatialid's InternVL3 family on a checkpoint folder for the transformers oracle test.\n"
      "Example: internvl_forward_cli --model_dir=DIR --request=req.json --pixels=px.safetensors "
      "--out=out.safetensors");
  absl::ParseCommandLine(argc, argv);
  const absl::Status s = Run();
  if (!s.ok()) {
    std::fprintf(stderr, "internvl_forward_cli: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  return 0;
}
