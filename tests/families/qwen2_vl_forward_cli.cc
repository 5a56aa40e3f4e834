// Drives the Qwen2-VL / Qwen2.5-VL family for the Python oracle
// (qwen2_vl_oracle_test.py). The version comes from config.json's
// model_type ("qwen2_vl" or "qwen2_5_vl"): one binary, both tag types.
//
// Background: transformers is the oracle for every number the family
// produces. The Python test builds tiny random-weight checkpoints, runs
// transformers, and asks this binary for the same quantities through JSON
// requests and safetensors files, so no tensor is re-derived from text.
//
// Modes:
//   --mode=forward     hidden states of `--request` (JSON: {"input_ids":
//                      [[...]], "positions": [...], "layers": [...]}) with
//                      pixels from --pixels (safetensors "pixel_values" and
//                      "image_grid_thw") or --images (the C++ processor);
//                      --text_only drops the image. Writes "hidden_states"
//                      [layers, batch, positions, hidden] in the model dtype,
//                      "image_features" with --image_features, and
//                      "pixel_values"/"image_grid_thw" when the C++
//                      processor made them.
//   --mode=preprocess  only "pixel_values" and "image_grid_thw" of --images.
//   --mode=positions   "position_ids" [3, B, S] for the request's ids and
//                      the pixels' grids (get_rope_index).
//   --mode=prompt      the reference's prompt for --question with one image
//                      per --images (or none): chat template, expansion,
//                      tokenizer; prints JSON {"text", "ids",
//                      "tokens_per_image"} on stdout.
//   --mode=config      prints what the family reads from config.json (JSON
//                      on stdout); no weights.
// --image_temporal=transformers5_3 gives Qwen2.5-VL image tokens
// transformers 5.3.0's temporal ids (nn/mrope.h). --repeat=N prints
// "forward_seconds=<mean>" over N forwards after the first.
//
// Example:
//   qwen2_vl_forward_cli --model_dir=/tmp/tiny --request=req.json
//     --pixels=px.safetensors --dtype=float32 --out=out.safetensors
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
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
#include "spatialid/families/qwen2_vl/qwen2_vl.h"
#include "spatialid/io/image.h"
#include "spatialid/io/json_file.h"
#include "spatialid/io/safetensors.h"
#include "spatialid/io/safetensors_writer.h"
#include "spatialid/text/chat_template.h"
#include "spatialid/text/prompt.h"
#include "spatialid/text/tokenizer_pretrained.h"
#include "spatialid/util/status.h"

ABSL_FLAG(std::string, mode, "forward",
          "forward, preprocess, positions, prompt or config (see the file comment)");
ABSL_FLAG(std::string, model_dir, "", "Qwen2-VL or Qwen2.5-VL checkpoint folder");
ABSL_FLAG(std::string, request, "", "JSON file with input_ids, positions and layers");
ABSL_FLAG(std::string, pixels, "",
          "safetensors file with float32 pixel_values [patches, 1176] and image_grid_thw [N, 3] (float)");
ABSL_FLAG(std::string, images, "", "comma-separated image files for the C++ processor");
ABSL_FLAG(std::string, resize, "torchvision", "C++ processor resize engine: torchvision or pillow");
ABSL_FLAG(std::string, dtype, "float32", "model dtype: float32, float16 or bfloat16");
ABSL_FLAG(std::string, image_temporal, "image_start",
          "temporal position ids of Qwen2.5-VL image tokens: image_start or transformers5_3");
ABSL_FLAG(bool, text_only, false, "run the text-only forward (no pixels)");
ABSL_FLAG(bool, image_features, false, "also write the merged image features");
ABSL_FLAG(std::string, question, "", "mode=prompt: the user's question");
ABSL_FLAG(int, repeat, 0, "time this many forwards after a warm-up and print the mean");
ABSL_FLAG(int, threads, 0, "intra-op threads (0 keeps libtorch's default)");
ABSL_FLAG(std::string, out, "", "output safetensors file");

namespace {

namespace fam = spatialid::families;
using spatialid::families::Qwen2VLImages;

// --dtype, spelled as config.json's dtype.
absl::StatusOr<at::ScalarType> ParseDtype(const std::string& name) {
  return fam::DtypeFromConfig(std::optional<std::string>(name));
}

absl::StatusOr<fam::Qwen2VLOptions> ParseQwenOptions() {
  fam::Qwen2VLOptions o;
  const std::string t = absl::GetFlag(FLAGS_image_temporal);
  if (t == "transformers5_3") {
    o.image_temporal = fam::Qwen2VLOptions::ImageTemporal::kTransformers5_3;
  } else if (t != "image_start") {
    return absl::InvalidArgumentError(
        absl::StrCat("--image_temporal=", t, ": expected image_start or transformers5_3"));
  }
  return o;
}

absl::StatusOr<std::vector<spatialid::io::Image>> LoadImages(const std::string& list) {
  std::vector<spatialid::io::Image> images;
  for (const std::string& path : std::vector<std::string>(absl::StrSplit(list, ',', absl::SkipEmpty()))) {
    SPATIALID_ASSIGN_OR_RETURN(spatialid::io::Image img, spatialid::io::LoadImage(path));
    images.push_back(std::move(img));
  }
  return images;
}

template <class F>
absl::StatusOr<Qwen2VLImages> PixelsFromImages(const std::string& model_dir, const std::string& list) {
  SPATIALID_ASSIGN_OR_RETURN(spatialid::vision::ResizeEngine engine,
                             spatialid::vision::ParseResizeEngine(absl::GetFlag(FLAGS_resize)));
  SPATIALID_ASSIGN_OR_RETURN(typename F::Processor proc, F::LoadProcessor(model_dir, {engine}));
  SPATIALID_ASSIGN_OR_RETURN(std::vector<spatialid::io::Image> images, LoadImages(list));
  return proc.Preprocess(images);
}

absl::StatusOr<Qwen2VLImages> PixelsFromFile(const std::string& path) {
  SPATIALID_ASSIGN_OR_RETURN(auto file, spatialid::io::SafetensorsFile::Open(path));
  Qwen2VLImages px;
  SPATIALID_ASSIGN_OR_RETURN(at::Tensor pv, file.Load("pixel_values", at::kFloat, at::kCPU));
  // Stored as float (the reader takes float tensors); the values are small integers.
  SPATIALID_ASSIGN_OR_RETURN(at::Tensor thw_f, file.Load("image_grid_thw", at::kFloat, at::kCPU));
  const at::Tensor thw = thw_f.to(at::kLong);
  px.pixel_values = pv.clone();
  px.image_grid_thw = thw;
  if (thw.dim() != 2 || thw.size(1) != 3) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": image_grid_thw must be [N, 3]"));
  }
  for (int64_t i = 0; i < thw.size(0); ++i) {
    px.grids.push_back({thw[i][0].item<int64_t>(), thw[i][1].item<int64_t>(), thw[i][2].item<int64_t>()});
  }
  return px;
}

absl::StatusOr<at::Tensor> IdsFromRequest(const nlohmann::json& req, fam::HiddenStateRequest* request) {
  std::vector<std::vector<int64_t>> rows;
  try {
    rows = req.at("input_ids").get<std::vector<std::vector<int64_t>>>();
    if (request != nullptr) {
      request->positions = req.at("positions").get<std::vector<int64_t>>();
      request->layers = req.at("layers").get<std::vector<int>>();
    }
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

template <class F>
absl::Status PrintConfig(const std::string& model_dir) {
  using V = typename F::Version;
  SPATIALID_ASSIGN_OR_RETURN(typename F::Config cfg, fam::ReadQwen2VLConfig<V>(model_dir));
  SPATIALID_ASSIGN_OR_RETURN(spatialid::nn::TextDecoderShape text, fam::Qwen2DecoderShape(cfg.text_config));
  SPATIALID_ASSIGN_OR_RETURN(fam::QwenVisionShape vision, V::VisionShape(cfg.vision_config));
  SPATIALID_ASSIGN_OR_RETURN(at::ScalarType dtype, fam::DtypeFromConfig(cfg.dtype));
  nlohmann::json j = {
      {"family", std::string(F::kName)},     {"num_layers", text.num_layers},
      {"hidden_size", text.hidden_size},     {"intermediate_size", text.intermediate_size},
      {"num_heads", text.num_heads},         {"num_kv_heads", text.num_kv_heads},
      {"head_dim", text.head_dim},           {"vocab_size", text.vocab_size},
      {"rms_norm_eps", text.rms_norm_eps},   {"rope_theta", text.rope.theta},
      {"mrope_section", cfg.text_config.rope_parameters.mrope_section.value_or(std::vector<int64_t>{})},
      {"vision_depth", vision.depth},        {"vision_width", vision.width},
      {"vision_heads", vision.num_heads},    {"vision_mlp", vision.mlp_hidden},
      {"vision_act", std::string(spatialid::nn::ActivationName(vision.act))},
      {"vision_out", vision.out_width},      {"window_blocks", vision.window_blocks},
      {"full_attention_blocks", vision.full_attention_blocks},
      {"image_token_id", cfg.image_token_id}, {"dtype", std::string(c10::toString(dtype))}};
  std::printf("%s\n", j.dump().c_str());
  return absl::OkStatus();
}

template <class F>
absl::Status PrintPrompt(const std::string& model_dir) {
  SPATIALID_ASSIGN_OR_RETURN(spatialid::text::ChatTemplate chat,
                             spatialid::text::ChatTemplate::FromModelDir(model_dir));
  SPATIALID_ASSIGN_OR_RETURN(spatialid::text::Tokenizer tok,
                             spatialid::text::LoadPretrainedTokenizer(model_dir));
  const std::string list = absl::GetFlag(FLAGS_images);
  const bool with_image = !list.empty();
  SPATIALID_ASSIGN_OR_RETURN(
      spatialid::text::RenderedPrompt rendered,
      spatialid::text::RenderUserPrompt(chat, absl::GetFlag(FLAGS_question), with_image));
  std::string text = rendered.text;
  int64_t tokens_per_image = 0;
  if (with_image) {
    // Only the grid matters for the expansion: preprocess, then ask the model's rule.
    SPATIALID_ASSIGN_OR_RETURN(Qwen2VLImages px, PixelsFromImages<F>(model_dir, list));
    SPATIALID_ASSIGN_OR_RETURN(typename F::Config cfg,
                               fam::ReadQwen2VLConfig<typename F::Version>(model_dir));
    std::vector<std::string> expansions;
    for (const spatialid::families::GridThw& g : px.grids) {
      tokens_per_image = g.tokens(cfg.vision_config.spatial_merge_size);
      expansions.push_back(spatialid::text::RepeatToken(F::Model::kImageToken,
                                                        static_cast<size_t>(tokens_per_image)));
    }
    SPATIALID_ASSIGN_OR_RETURN(text, spatialid::text::ExpandImagePlaceholders(
                                         text, F::Model::kImageToken, expansions));
  }
  const std::vector<int32_t> ids = tok.Encode(text, rendered.add_special_tokens);
  nlohmann::json j = {{"text", rendered.text}, {"ids", ids}, {"tokens_per_image", tokens_per_image}};
  std::printf("%s\n", j.dump().c_str());
  return absl::OkStatus();
}

template <class F>
absl::Status Run(const std::string& mode, const std::string& model_dir) {
  if (mode == "config") return PrintConfig<F>(model_dir);
  if (mode == "prompt") return PrintPrompt<F>(model_dir);
  const std::string out_path = absl::GetFlag(FLAGS_out);
  if (out_path.empty()) return absl::InvalidArgumentError("--out is required");
  std::map<std::string, at::Tensor> out;

  std::optional<Qwen2VLImages> pixels;
  if (!absl::GetFlag(FLAGS_images).empty()) {
    SPATIALID_ASSIGN_OR_RETURN(pixels, PixelsFromImages<F>(model_dir, absl::GetFlag(FLAGS_images)));
    out["pixel_values"] = pixels->pixel_values;
    out["image_grid_thw"] = pixels->image_grid_thw;
  } else if (!absl::GetFlag(FLAGS_pixels).empty()) {
    SPATIALID_ASSIGN_OR_RETURN(pixels, PixelsFromFile(absl::GetFlag(FLAGS_pixels)));
  }
  if (mode == "preprocess") {
    if (!pixels) return absl::InvalidArgumentError("--mode=preprocess needs --images");
    return spatialid::io::WriteSafetensors(out_path, out);
  }
  if (mode != "forward" && mode != "positions") {
    return absl::InvalidArgumentError(absl::StrCat("unknown --mode=", mode));
  }
  SPATIALID_ASSIGN_OR_RETURN(nlohmann::json req, spatialid::io::ReadJsonFile(absl::GetFlag(FLAGS_request)));
  fam::HiddenStateRequest request;
  SPATIALID_ASSIGN_OR_RETURN(at::Tensor ids, IdsFromRequest(req, mode == "forward" ? &request : nullptr));
  SPATIALID_ASSIGN_OR_RETURN(at::ScalarType dtype, ParseDtype(absl::GetFlag(FLAGS_dtype)));
  SPATIALID_ASSIGN_OR_RETURN(fam::Qwen2VLOptions qwen, ParseQwenOptions());
  const auto t_load = std::chrono::steady_clock::now();
  fam::LoadOptions load;
  load.dtype = dtype;
  SPATIALID_ASSIGN_OR_RETURN(typename F::Model model, F::Model::Load(model_dir, load, qwen));
  std::printf("load_seconds=%.4f\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count());
  const bool text_only = absl::GetFlag(FLAGS_text_only);
  if (!text_only && !pixels) {
    return absl::InvalidArgumentError("this mode needs --pixels or --images (or --text_only)");
  }
  if (mode == "positions") {
    SPATIALID_ASSIGN_OR_RETURN(out["position_ids"],
                               model.PositionIds(ids, text_only ? nullptr : &*pixels));
    return spatialid::io::WriteSafetensors(out_path, out);
  }
  auto forward = [&]() -> absl::StatusOr<at::Tensor> {
    return text_only ? model.Forward(ids, request) : model.Forward(ids, *pixels, request);
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
    SPATIALID_ASSIGN_OR_RETURN(out["image_features"], model.ImageFeatures(*pixels));
  }
  return spatialid::io::WriteSafetensors(out_path, out);
}

absl::Status Main() {
  const std::string mode = absl::GetFlag(FLAGS_mode);
  const std::string model_dir = absl::GetFlag(FLAGS_model_dir);
  if (model_dir.empty()) return absl::InvalidArgumentError("--model_dir is required");
  if (absl::GetFlag(FLAGS_threads) > 0) at::set_num_threads(absl::GetFlag(FLAGS_threads));
  // Both versions share the image processor: a processor-only folder is fine.
  std::error_code ec;
  if (mode == "preprocess" && !std::filesystem::exists(model_dir + "/config.json", ec)) {
    return Run<fam::Qwen2VL>(mode, model_dir);
  }
  SPATIALID_ASSIGN_OR_RETURN(nlohmann::json cfg,
                             spatialid::io::ReadJsonFile(model_dir + "/config.json"));
  const std::string type =
      cfg.is_object() && cfg.contains("model_type") && cfg["model_type"].is_string()
          ? cfg["model_type"].get<std::string>()
          : std::string();
  if (type == fam::Qwen2VL::kModelType) return Run<fam::Qwen2VL>(mode, model_dir);
  if (type == fam::Qwen2_5_VL::kModelType) return Run<fam::Qwen2_5_VL>(mode, model_dir);
  return absl::InvalidArgumentError(absl::StrCat(model_dir, "/config.json: model_type \"", type,
                                                 "\" is neither qwen2_vl nor qwen2_5_vl"));
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Runs spatialid's Qwen2-VL / Qwen2.5-VL family on a checkpoint folder for the transformers "
      "oracle test.\nExample: qwen2_vl_forward_cli --model_dir=DIR --request=req.json "
      "--pixels=px.safetensors --out=out.safetensors");
  absl::ParseCommandLine(argc, argv);
  const absl::Status s = Main();
  if (!s.ok()) {
    std::fprintf(stderr, "qwen2_vl_forward_cli: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  return 0;
}
