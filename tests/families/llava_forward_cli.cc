// Drives the LLaVA family for the Python oracle (llava_oracle_test.py).
//
// Background: transformers is the oracle for every number the family
// produces. The Python test builds a tiny random-weight checkpoint, runs
// transformers, and asks this binary for the same quantities; the exchange
// is a JSON request (token ids, positions, layers) plus safetensors files
// (pixels in, results out), so no tensor is ever re-derived from text.
//
// Modes:
//   --mode=forward     hidden states of `--request` (JSON: {"input_ids":
//                      [[...]], "positions": [...], "layers": [...]}) with
//                      pixels from --pixels (safetensors "pixel_values") or
//                      from --images (PNG paths, the C++ processor);
//                      --text_only drops the image. Writes "hidden_states"
//                      [layers, batch, positions, hidden] in the model dtype,
//                      "image_features" with --image_features and
//                      "pixel_values" when the C++ processor made them.
//   --mode=preprocess  only "pixel_values" of --images.
//   --mode=config      prints what the family reads from config.json (JSON on
//                      stdout: layers, sizes, dtype, image tokens); no weights.
//   --mode=rope        "inv_freq", "cos", "sin" of the RoPE settings in
//                      --rope (JSON: the HF rope_parameters object plus
//                      "head_dim", "max_position_embeddings",
//                      "context_length", "seq_len").
// --repeat=N runs the forward N times and prints "forward_seconds=<mean>"
// (after one warm-up run) for the throughput comparison.
//
// Example:
//   llava_forward_cli --model_dir=/tmp/tiny --request=req.json
//     --pixels=px.safetensors --dtype=float32 --out=out.safetensors
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/tensor.h>
#include <nlohmann/json.hpp>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "spatialid/families/llava/llava.h"
#include "spatialid/io/image.h"
#include "spatialid/io/safetensors.h"
#include "spatialid/io/safetensors_writer.h"
#include "spatialid/nn/rotary.h"
#include "spatialid/util/status.h"

ABSL_FLAG(std::string, mode, "forward", "forward, preprocess, config or rope (see the file comment)");
ABSL_FLAG(std::string, model_dir, "", "LLaVA checkpoint folder (config.json, *.safetensors, ...)");
ABSL_FLAG(std::string, request, "", "JSON file with input_ids, positions and layers");
ABSL_FLAG(std::string, pixels, "", "safetensors file holding float32 pixel_values [N,3,H,W]");
ABSL_FLAG(std::string, images, "", "comma-separated image files for the C++ processor");
ABSL_FLAG(std::string, resize, "torchvision", "C++ processor resize engine: torchvision or pillow");
ABSL_FLAG(std::string, dtype, "float32", "model dtype: float32, float16 or bfloat16");
ABSL_FLAG(bool, text_only, false, "run the text-only forward (no pixels)");
ABSL_FLAG(bool, image_features, false, "also write the projected image features");
ABSL_FLAG(std::string, rope, "", "JSON file with RoPE settings (mode=rope)");
ABSL_FLAG(int, repeat, 0, "time this many forwards after a warm-up and print the mean");
ABSL_FLAG(int, threads, 0, "intra-op threads (0 keeps libtorch's default)");
ABSL_FLAG(std::string, out, "", "output safetensors file");

namespace {

using spatialid::families::HiddenStateRequest;
using spatialid::families::Llava;
using spatialid::families::LlavaPixels;

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
  return absl::InvalidArgumentError(absl::StrCat("--dtype=", name, ": expected float32, float16 or bfloat16"));
}

absl::StatusOr<at::Tensor> PixelsFromImages(const std::string& model_dir, const std::string& list) {
  SPATIALID_ASSIGN_OR_RETURN(spatialid::vision::ResizeEngine engine,
                             spatialid::vision::ParseResizeEngine(absl::GetFlag(FLAGS_resize)));
  SPATIALID_ASSIGN_OR_RETURN(Llava::Processor proc, Llava::LoadProcessor(model_dir, {engine}));
  std::vector<spatialid::io::Image> images;
  for (const std::string& path : std::vector<std::string>(absl::StrSplit(list, ',', absl::SkipEmpty()))) {
    SPATIALID_ASSIGN_OR_RETURN(spatialid::io::Image img, spatialid::io::LoadImage(path));
    images.push_back(std::move(img));
  }
  SPATIALID_ASSIGN_OR_RETURN(LlavaPixels px, proc.Preprocess(images));
  return px.pixel_values;
}

absl::Status RunRope(std::map<std::string, at::Tensor>& out) {
  SPATIALID_ASSIGN_OR_RETURN(nlohmann::json j, ReadJson(absl::GetFlag(FLAGS_rope)));
  spatialid::nn::RopeParameters p;
  SPATIALID_ASSIGN_OR_RETURN(p.type, spatialid::nn::ParseRopeType(j.value("rope_type", "default")));
  p.theta = j.value("rope_theta", 10000.0);
  p.factor = j.value("factor", 1.0);
  p.low_freq_factor = j.value("low_freq_factor", 1.0);
  p.high_freq_factor = j.value("high_freq_factor", 4.0);
  p.original_max_position_embeddings = j.value("original_max_position_embeddings", int64_t{0});
  const int64_t max_pos = j.at("max_position_embeddings").get<int64_t>();
  SPATIALID_ASSIGN_OR_RETURN(
      auto rope, spatialid::nn::RotaryEmbedding::Create(p, j.at("head_dim").get<int64_t>(), max_pos));
  const int64_t context = j.value("context_length", max_pos);
  const int64_t seq_len = j.value("seq_len", int64_t{16});
  const at::Tensor positions = at::arange(seq_len, at::kLong).unsqueeze(0);
  const spatialid::nn::CosSin cs = rope(positions, at::kFloat, context);
  out["inv_freq"] = rope.InvFreqFor(context);
  out["cos"] = cs.cos;
  out["sin"] = cs.sin;
  return absl::OkStatus();
}

absl::Status PrintConfig(const std::string& model_dir) {
  using namespace spatialid::families;
  SPATIALID_ASSIGN_OR_RETURN(spatialid::families::LlavaConfig cfg, ReadLlavaConfig(model_dir));
  SPATIALID_ASSIGN_OR_RETURN(spatialid::nn::TextDecoderShape text, LlamaDecoderShape(cfg.text_config));
  SPATIALID_ASSIGN_OR_RETURN(spatialid::families::ClipVisionShape vision, ClipVisionShapeOf(cfg.vision_config));
  SPATIALID_ASSIGN_OR_RETURN(at::ScalarType dtype, DtypeFromConfig(cfg.dtype));
  nlohmann::json j = {
      {"num_layers", text.num_layers},      {"hidden_size", text.hidden_size},
      {"intermediate_size", text.intermediate_size}, {"num_heads", text.num_heads},
      {"num_kv_heads", text.num_kv_heads},  {"head_dim", text.head_dim},
      {"vocab_size", text.vocab_size},      {"rms_norm_eps", text.rms_norm_eps},
      {"rope_theta", text.rope.theta},      {"vision_layers", vision.num_layers},
      {"vision_hidden_size", vision.hidden_size}, {"image_size", vision.image_size},
      {"patch_size", vision.patch_size},    {"image_tokens", LlavaImageTokens(cfg)},
      {"image_token_index", cfg.image_token_index}, {"dtype", std::string(c10::toString(dtype))},
      {"vision_feature_layer", cfg.vision_feature_layer}};
  std::printf("%s\n", j.dump().c_str());
  return absl::OkStatus();
}

absl::Status Run() {
  const std::string mode = absl::GetFlag(FLAGS_mode);
  const std::string model_dir = absl::GetFlag(FLAGS_model_dir);
  const std::string out_path = absl::GetFlag(FLAGS_out);
  if (mode == "config") return PrintConfig(model_dir);
  if (out_path.empty()) return absl::InvalidArgumentError("--out is required");
  if (absl::GetFlag(FLAGS_threads) > 0) at::set_num_threads(absl::GetFlag(FLAGS_threads));
  std::map<std::string, at::Tensor> out;

  if (mode == "rope") {
    SPATIALID_RETURN_IF_ERROR(RunRope(out));
    return spatialid::io::WriteSafetensors(out_path, out);
  }
  if (model_dir.empty()) return absl::InvalidArgumentError("--model_dir is required");

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

  SPATIALID_ASSIGN_OR_RETURN(nlohmann::json req, ReadJson(absl::GetFlag(FLAGS_request)));
  HiddenStateRequest request;
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
  const at::Tensor ids =
      at::tensor(flat, at::kLong).reshape({static_cast<int64_t>(rows.size()), static_cast<int64_t>(rows[0].size())});

  SPATIALID_ASSIGN_OR_RETURN(at::ScalarType dtype, ParseDtype(absl::GetFlag(FLAGS_dtype)));
  const auto t_load = std::chrono::steady_clock::now();
  SPATIALID_ASSIGN_OR_RETURN(Llava::Model model, Llava::Load(model_dir, {.dtype = dtype}));
  std::printf("load_seconds=%.4f\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count());

  const bool text_only = absl::GetFlag(FLAGS_text_only);
  if (!text_only && !pixel_values.defined()) {
    return absl::InvalidArgumentError("forward needs --pixels or --images (or --text_only)");
  }
  const LlavaPixels pixels{pixel_values};
  auto forward = [&]() -> absl::StatusOr<at::Tensor> {
    return text_only ? model.Forward(ids, request) : model.Forward(ids, pixels, request);
  };
  SPATIALID_ASSIGN_OR_RETURN(at::Tensor hidden, forward());
  out["hidden_states"] = hidden;
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
      "Runs spatialid's LLaVA family on a checkpoint folder for the transformers oracle test.\n"
      "Example: llava_forward_cli --model_dir=DIR --request=req.json --pixels=px.safetensors "
      "--out=out.safetensors");
  absl::ParseCommandLine(argc, argv);
  const absl::Status s = Run();
  if (!s.ok()) {
    std::fprintf(stderr, "llava_forward_cli: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  return 0;
}
