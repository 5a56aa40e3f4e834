// Drives the Gemma 3 family for the Python oracle (gemma3_oracle_test.py).
//
// Background: transformers is the oracle for every number the family
// produces. The Python test builds a tiny random-weight checkpoint, runs
// transformers, and asks this binary for the same quantities; tensors travel
// as safetensors files (pixels in, results out), requests as JSON.
//
// Modes:
//   --mode=forward     hidden states of `--request` (JSON: {"input_ids":
//                      [[...]], "positions": [...], "layers": [...]}) with
//                      pixels from --pixels (safetensors "pixel_values") or
//                      from --images (image files, the C++ processor);
//                      --text_only drops the image. Writes "hidden_states"
//                      [layers, batch, positions, hidden] in the model dtype,
//                      "image_features" with --image_features and
//                      "pixel_values" when the C++ processor made them.
//   --mode=preprocess  only "pixel_values" of --images.
//   --mode=prompt      the pipeline's prompt for --text (with an image unless
//                      --text_only): chat template, the processor's BOS rule,
//                      the family's image expansion, the tokenizer; prints
//                      JSON {"text", "add_special_tokens", "input_ids"}.
//   --mode=config      prints what the family reads from config.json (JSON on
//                      stdout); no weights.
// --repeat=N times N forwards after the first and prints "forward_seconds=".
//
// Example:
//   gemma3_forward_cli --model_dir=/tmp/tiny --request=req.json
//     --pixels=px.safetensors --dtype=float32 --out=out.safetensors
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
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
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "spatialid/families/gemma3/gemma3.h"
#include "spatialid/io/image.h"
#include "spatialid/io/safetensors.h"
#include "spatialid/io/safetensors_writer.h"
#include "spatialid/text/chat_template.h"
#include "spatialid/text/prompt.h"
#include "spatialid/text/tokenizer_pretrained.h"
#include "spatialid/util/status.h"

ABSL_FLAG(std::string, mode, "forward", "forward, preprocess, prompt or config (see the file comment)");
ABSL_FLAG(std::string, model_dir, "", "Gemma 3 checkpoint folder (config.json, *.safetensors, ...)");
ABSL_FLAG(std::string, request, "", "JSON file with input_ids, positions and layers");
ABSL_FLAG(std::string, pixels, "", "safetensors file holding float32 pixel_values [N,3,H,W]");
ABSL_FLAG(std::string, images, "", "comma-separated image files for the C++ processor");
ABSL_FLAG(std::string, resize, "torchvision", "C++ processor resize engine: torchvision or pillow");
ABSL_FLAG(std::string, dtype, "", "model dtype: float32, float16 or bfloat16 (empty: config.json's)");
ABSL_FLAG(bool, text_only, false, "forward/prompt without an image");
ABSL_FLAG(bool, image_features, false, "also write the projected image features");
ABSL_FLAG(std::string, text, "", "the user question (mode=prompt)");
ABSL_FLAG(int, repeat, 0, "time this many forwards after the first and print the mean");
ABSL_FLAG(int, threads, 0, "intra-op threads (0 keeps libtorch's default)");
ABSL_FLAG(std::string, out, "", "output safetensors file");

namespace {

namespace fam = spatialid::families;
using fam::Gemma3;
using fam::Gemma3Pixels;
using fam::HiddenStateRequest;

absl::StatusOr<nlohmann::json> ReadJsonFile(const std::string& path) {
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

absl::StatusOr<std::optional<at::ScalarType>> DtypeFlag(const std::string& name) {
  if (name.empty()) return std::optional<at::ScalarType>();
  SPATIALID_ASSIGN_OR_RETURN(at::ScalarType t, fam::DtypeFromConfig(name));
  return std::optional<at::ScalarType>(t);
}

absl::StatusOr<at::Tensor> PixelsFromImages(const std::string& model_dir, const std::string& list) {
  SPATIALID_ASSIGN_OR_RETURN(spatialid::vision::ResizeEngine engine,
                             spatialid::vision::ParseResizeEngine(absl::GetFlag(FLAGS_resize)));
  SPATIALID_ASSIGN_OR_RETURN(Gemma3::Processor proc, Gemma3::LoadProcessor(model_dir, {engine}));
  std::vector<spatialid::io::Image> images;
  for (const std::string& path : std::vector<std::string>(absl::StrSplit(list, ',', absl::SkipEmpty()))) {
    SPATIALID_ASSIGN_OR_RETURN(spatialid::io::Image img, spatialid::io::LoadImage(path));
    images.push_back(std::move(img));
  }
  SPATIALID_ASSIGN_OR_RETURN(Gemma3Pixels px, proc.Preprocess(images));
  return px.pixel_values;
}

nlohmann::json RopeJson(const spatialid::nn::RopeParameters& r) {
  const char* type = r.type == spatialid::nn::RopeType::kLinear    ? "linear"
                     : r.type == spatialid::nn::RopeType::kDynamic ? "dynamic"
                     : r.type == spatialid::nn::RopeType::kLlama3  ? "llama3"
                                                                   : "default";
  return {{"rope_type", type}, {"rope_theta", r.theta}, {"factor", r.factor}};
}

absl::Status PrintConfig(const std::string& model_dir) {
  SPATIALID_ASSIGN_OR_RETURN(spatialid::families::Gemma3Config cfg, fam::ReadGemma3Config(model_dir));
  SPATIALID_ASSIGN_OR_RETURN(fam::Gemma3TextShape text, fam::Gemma3TextShapeOf(cfg.text_config));
  SPATIALID_ASSIGN_OR_RETURN(spatialid::families::SiglipVisionShape vision,
                             fam::SiglipVisionShapeOf(cfg.vision_config));
  SPATIALID_ASSIGN_OR_RETURN(at::ScalarType dtype, fam::DtypeFromConfig(cfg.dtype));
  const fam::Gemma3Pooling pooling = fam::Gemma3PoolingOf(cfg);
  const fam::ImagePrompt prompt = fam::Gemma3ImagePrompt(cfg);
  std::vector<std::string> layer_types;
  for (bool s : text.sliding) layer_types.push_back(s ? "sliding_attention" : "full_attention");
  nlohmann::json j = {
      {"num_layers", text.num_layers},
      {"hidden_size", text.hidden_size},
      {"intermediate_size", text.intermediate_size},
      {"num_heads", text.num_heads},
      {"num_kv_heads", text.num_kv_heads},
      {"head_dim", text.head_dim},
      {"vocab_size", text.vocab_size},
      {"rms_norm_eps", text.rms_norm_eps},
      {"query_pre_attn_scalar", text.query_pre_attn_scalar},
      {"sliding_window", text.sliding_window},
      {"layer_types", layer_types},
      {"rope_full", RopeJson(text.rope)},
      {"rope_sliding", RopeJson(text.rope_sliding)},
      {"vision_layers", vision.num_layers},
      {"vision_hidden_size", vision.hidden_size},
      {"vision_intermediate_size", vision.intermediate_size},
      {"vision_heads", vision.num_heads},
      {"image_size", vision.image_size},
      {"patch_size", vision.patch_size},
      {"pool_kernel", pooling.kernel},
      {"image_tokens", prompt.tokens_per_image},
      {"image_token_index", cfg.image_token_index},
      {"boi_token_index", cfg.boi_token_index},
      {"eoi_token_index", cfg.eoi_token_index},
      {"dtype", std::string(c10::toString(dtype))}};
  std::printf("%s\n", j.dump().c_str());
  return absl::OkStatus();
}

absl::Status PrintPrompt(const std::string& model_dir) {
  namespace text = spatialid::text;
  SPATIALID_ASSIGN_OR_RETURN(spatialid::families::Gemma3Config cfg, fam::ReadGemma3Config(model_dir));
  SPATIALID_ASSIGN_OR_RETURN(text::ChatTemplate tmpl, text::ChatTemplate::FromModelDir(model_dir));
  SPATIALID_ASSIGN_OR_RETURN(text::Tokenizer tok, text::LoadPretrainedTokenizer(model_dir));
  const bool with_image = !absl::GetFlag(FLAGS_text_only);
  SPATIALID_ASSIGN_OR_RETURN(text::RenderedPrompt rendered,
                             text::RenderUserPrompt(tmpl, absl::GetFlag(FLAGS_text), with_image));
  const fam::ImagePrompt image = fam::Gemma3ImagePrompt(cfg);
  const std::string expanded =
      text::ExpandImagePlaceholders(rendered.text, image.placeholder, image.expansion);
  const std::vector<int32_t> ids = tok.Encode(expanded, rendered.add_special_tokens);
  const nlohmann::json j = {{"text", rendered.text},
                            {"add_special_tokens", rendered.add_special_tokens},
                            {"input_ids", ids}};
  std::printf("%s\n", j.dump().c_str());
  return absl::OkStatus();
}

absl::StatusOr<std::pair<at::Tensor, HiddenStateRequest>> ReadRequest(const std::string& path) {
  SPATIALID_ASSIGN_OR_RETURN(nlohmann::json req, ReadJsonFile(path));
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
    if (r.size() != rows[0].size()) return absl::InvalidArgumentError(absl::StrCat(path, ": input_ids rows differ in length"));
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
  if (mode == "config") return PrintConfig(model_dir);
  if (mode == "prompt") return PrintPrompt(model_dir);
  if (out_path.empty()) return absl::InvalidArgumentError("--out is required");
  if (absl::GetFlag(FLAGS_threads) > 0) at::set_num_threads(absl::GetFlag(FLAGS_threads));
  std::map<std::string, at::Tensor> out;

  at::Tensor pixel_values;
  if (!absl::GetFlag(FLAGS_images).empty()) {
    SPATIALID_ASSIGN_OR_RETURN(pixel_values, PixelsFromImages(model_dir, absl::GetFlag(FLAGS_images)));
    out["pixel_values"] = pixel_values;
  } else if (!absl::GetFlag(FLAGS_pixels).empty()) {
    SPATIALID_ASSIGN_OR_RETURN(auto file, spatialid::io::SafetensorsFile::Open(absl::GetFlag(FLAGS_pixels)));
    SPATIALID_ASSIGN_OR_RETURN(pixel_values, file.Load("pixel_values", at::kFloat, at::kCPU));
    pixel_values = pixel_values.clone();
  }
  if (mode == "preprocess") {
    if (!pixel_values.defined()) return absl::InvalidArgumentError("--mode=preprocess needs --images");
    return spatialid::io::WriteSafetensors(out_path, out);
  }
  if (mode != "forward") return absl::InvalidArgumentError(absl::StrCat("unknown --mode=", mode));

  SPATIALID_ASSIGN_OR_RETURN(auto request, ReadRequest(absl::GetFlag(FLAGS_request)));
  const auto& [ids, hidden_request] = request;
  SPATIALID_ASSIGN_OR_RETURN(std::optional<at::ScalarType> dtype, DtypeFlag(absl::GetFlag(FLAGS_dtype)));
  const auto t_load = std::chrono::steady_clock::now();
  SPATIALID_ASSIGN_OR_RETURN(Gemma3::Model model, Gemma3::Load(model_dir, {.dtype = dtype}));
  std::printf("load_seconds=%.4f\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count());

  const bool text_only = absl::GetFlag(FLAGS_text_only);
  if (!text_only && !pixel_values.defined()) {
    return absl::InvalidArgumentError("forward needs --pixels or --images (or --text_only)");
  }
  const Gemma3Pixels pixels{pixel_values};
  auto forward = [&]() -> absl::StatusOr<at::Tensor> {
    return text_only ? model.Forward(ids, hidden_request) : model.Forward(ids, pixels, hidden_request);
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
  if (absl::GetFlag(FLAGS_image_features) && !text_only) {
    SPATIALID_ASSIGN_OR_RETURN(out["image_features"], model.ImageFeatures(pixels));
  }
  return spatialid::io::WriteSafetensors(out_path, out);
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Runs spatialid's Gemma 3 family on a checkpoint folder for the transformers oracle test.\n"
      "Example: gemma3_forward_cli --model_dir=DIR --request=req.json --pixels=px.safetensors "
      "--out=out.safetensors");
  absl::ParseCommandLine(argc, argv);
  const absl::Status s = Run();
  if (!s.ok()) {
    std::fprintf(stderr, "gemma3_forward_cli: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  return 0;
}
