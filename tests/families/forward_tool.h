// The forward tool every family oracle drives, written once and templated on
// the family (tests/families/<family>_forward_cli.cc instantiate it).
//
// Background: transformers is the oracle for every number a family
// produces. A Python test (tests/python/family_oracle.py and the family's
// *_oracle_test.py) builds a tiny random-weight checkpoint, runs
// transformers, and asks this tool for the same quantities. Requests travel
// as JSON, tensors as safetensors files (pixels in, results out), so no
// tensor is re-derived from text. What a family really adds (its pixel
// tensors, the config fields it reads, Qwen's position ids, Mllama's tiling
// and numbering, InternVL's tile grids) comes from its `ToolHooks<F>`
// specialisation in the family's .cc; everything else is here, so a mode
// added here serves every family.
//
// Modes (--mode):
//   forward     hidden states of --request (JSON {"input_ids": [[...]],
//               "positions": [...], "layers": [...]}) with pixels from
//               --pixels (the safetensors the Python side saved) or --images
//               (PNG paths, the C++ processor), or --text_only. Writes
//               "hidden_states" [layers, batch, positions, hidden] in the
//               model dtype, "image_features" with --image_features, the C++
//               processor's pixels when it made them, and the family's extra
//               outputs. --engine=planned runs the planned forward
//               (families/forward_plan.h: a prefix cache from ComputePrefix
//               of the first row, the deepest layer at the requested rows
//               only, packed matmuls) and prints "prefix_length=N
//               prefix_layers=M"; --repeat=N prints "forward_seconds=<mean>"
//               over N forwards after the first.
//   extract     the pipeline's own path: extract::Extractor<F> (chat
//               template, --bos rule, the target words' positions by
//               --pooling, --layers, --engine) over --images as one batch
//               with --question and --words, or the text alone with
//               --text_only. Writes "target_<word>" [layers, batch, hidden]
//               and prints JSON {"ids", "positions", "tokens", "layers",
//               "prefix_length", "engine_note"}.
//   prompt      the prompt the extractor would tokenize, from config.json,
//               the tokenizer and the chat template only (no weights): one
//               user turn (the image if --images, then --question),
//               add_generation_prompt, the family's image expansion for the
//               first image, the --bos rule. Prints JSON {"text" (rendered,
//               not expanded), "add_special_tokens" (the template's own
//               answer), "ids", "tokens_per_image", "image_token_id", ...}
//               and writes the pixels (and family extras) to --out if given.
//   preprocess  only the C++ processor's outputs for --images.
//   config      prints what the family reads from config.json (JSON); no weights.
//   rope        "inv_freq", "cos", "sin" of the RoPE settings in --rope (JSON:
//               the HF rope_parameters object plus "head_dim",
//               "max_position_embeddings", "context_length", "seq_len").
//   and the family's own modes (its .cc says which).
//
// Example:
//   llava_forward_cli --model_dir=/tmp/tiny --request=req.json
//     --pixels=px.safetensors --dtype=float32 --out=out.safetensors
//
// Every binary built from this header is one translation unit (its flags are
// defined here), so the families compile in parallel and a mode costs no
// extra libtorch-heavy unit.
#pragma once

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/tensor.h>
#include <c10/util/Exception.h>
#include <nlohmann/json.hpp>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "spatialid/extract/extractor.h"
#include "spatialid/families/family.h"
#include "spatialid/families/forward_plan.h"
#include "spatialid/io/image.h"
#include "spatialid/io/json_file.h"
#include "spatialid/io/safetensors.h"
#include "spatialid/io/safetensors_writer.h"
#include "spatialid/nn/rotary.h"
#include "spatialid/policies/layers.h"
#include "spatialid/policies/pooling.h"
#include "spatialid/text/chat_template.h"
#include "spatialid/text/prompt.h"
#include "spatialid/text/tokenizer_pretrained.h"
#include "spatialid/util/status.h"

ABSL_FLAG(std::string, mode, "forward",
          "forward, extract, prompt, preprocess, config, rope, or the family's own (see the file comment)");
ABSL_FLAG(std::string, model_dir, "", "checkpoint folder (config.json, *.safetensors, processor files)");
ABSL_FLAG(std::string, request, "", "JSON file with input_ids, positions and layers");
ABSL_FLAG(std::string, pixels, "", "safetensors file with the family's processor outputs (float tensors)");
ABSL_FLAG(std::string, images, "", "comma-separated image files for the C++ processor");
ABSL_FLAG(std::string, resize, "torchvision", "C++ processor resize engine: torchvision or pillow");
ABSL_FLAG(std::string, dtype, "", "model dtype: float32, float16 or bfloat16 (empty: config.json's)");
ABSL_FLAG(std::string, device, "cpu", "where the model runs: cpu, cuda or cuda:N");
ABSL_FLAG(bool, text_only, false, "forward / extract / prompt without an image");
ABSL_FLAG(bool, image_features, false, "also write the image features the decoder receives");
ABSL_FLAG(std::string, engine, "plain",
          "forward and extract: plain (op for op transformers) or planned (families/forward_plan.h)");
ABSL_FLAG(std::string, question, "Is the frog to the left or right of the camel?",
          "extract and prompt: the user's question");
ABSL_FLAG(std::string, words, "frog,left,right", "extract: comma-separated target words");
ABSL_FLAG(std::string, bos, "processor",
          "extract and prompt: processor (the reference's processor(text=...) call) or chat_template "
          "(apply_chat_template(tokenize=True): no second BOS)");
ABSL_FLAG(std::string, pooling, "last_subtoken", "extract: last_subtoken or mean_of_subtokens");
ABSL_FLAG(std::string, layers, "all", "extract: all, a list 0,2,4 or a range 1-3");
ABSL_FLAG(std::string, rope, "", "mode=rope: JSON file with RoPE settings");
ABSL_FLAG(int, repeat, 0, "forward: time this many forwards after the first and print the mean");
ABSL_FLAG(int, threads, 0, "intra-op threads (0 keeps libtorch's default)");
ABSL_FLAG(std::string, out, "", "output safetensors file");

namespace spatialid::forward_tool {

namespace fam = spatialid::families;
using TensorMap = std::map<std::string, at::Tensor>;

// A family's side (specialised in its .cc):
//   static StatusOr<PixelBatch> ReadPixels(const io::SafetensorsFile&)
//       the processor outputs the Python side saved (all as float tensors:
//       the reader takes floating-point tensors)
//   static void WritePixels(const PixelBatch&, TensorMap&)
//   static StatusOr<nlohmann::json> ConfigSummary(const std::string& model_dir)
//   static StatusOr<fam::ImagePrompt> PromptFromConfig(model_dir, const PixelBatch*)
//       the image expansion from config.json alone (null: no image)
// and where the default does not fit:
//   static StatusOr<Model> Load(model_dir, const fam::LoadOptions&)   (F::Load)
//   static Status AfterLoad(Model&)
//   static Status AddOutputs(const Model&, ids, const PixelBatch&, TensorMap&)
//   static Status AddPromptOutputs(model_dir, ids [1, S], const PixelBatch&, TensorMap&)
//   static void DescribePixels(const PixelBatch&, nlohmann::json&)    (prompt JSON)
//   static std::optional<Status> RunMode(const std::string& mode, Tool<F>&)
template <class F>
struct ToolHooks;

template <class F>
class Tool;

// The request file: ids [rows, seq] and what to keep of them.
struct Request {
  at::Tensor ids;
  fam::HiddenStateRequest hidden;
};

inline absl::StatusOr<Request> ReadRequest(const std::string& path) {
  SPATIALID_ASSIGN_OR_RETURN(nlohmann::json req, io::ReadJsonFile(path));
  Request r;
  std::vector<std::vector<int64_t>> rows;
  try {
    rows = req.at("input_ids").get<std::vector<std::vector<int64_t>>>();
    r.hidden.positions = req.at("positions").get<std::vector<int64_t>>();
    r.hidden.layers = req.at("layers").get<std::vector<int>>();
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", e.what()));
  }
  if (rows.empty() || rows[0].empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": input_ids is empty"));
  }
  std::vector<int64_t> flat;
  for (const auto& row : rows) {
    if (row.size() != rows[0].size()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": input_ids rows differ in length"));
    }
    flat.insert(flat.end(), row.begin(), row.end());
  }
  r.ids = at::tensor(flat, at::kLong)
              .reshape({static_cast<int64_t>(rows.size()), static_cast<int64_t>(rows[0].size())});
  return r;
}

// A tensor of a --pixels file as float32 on the CPU, owning its bytes (the
// file is a mapping). Integers (grids, counts, ids) travel as floats too:
// the reader takes floating-point tensors.
inline absl::StatusOr<at::Tensor> ReadTensor(const io::SafetensorsFile& file, std::string_view name) {
  SPATIALID_ASSIGN_OR_RETURN(at::Tensor t, file.Load(name, at::kFloat, at::kCPU));
  return t.clone();
}

// The decoder fields every family's config summary reports.
template <class Shape>
nlohmann::json DecoderSummary(const Shape& text) {
  return {{"num_layers", text.num_layers},     {"hidden_size", text.hidden_size},
          {"intermediate_size", text.intermediate_size}, {"num_heads", text.num_heads},
          {"num_kv_heads", text.num_kv_heads}, {"head_dim", text.head_dim},
          {"vocab_size", text.vocab_size},     {"rms_norm_eps", text.rms_norm_eps}};
}

inline std::vector<std::string> SplitList(const std::string& list) {
  return absl::StrSplit(list, ',', absl::SkipEmpty());
}

inline absl::StatusOr<std::vector<io::Image>> LoadImages(const std::string& list) {
  std::vector<io::Image> images;
  for (const std::string& path : SplitList(list)) {
    SPATIALID_ASSIGN_OR_RETURN(io::Image img, io::LoadImage(path));
    images.push_back(std::move(img));
  }
  return images;
}

// --dtype: empty keeps config.json's.
inline absl::StatusOr<std::optional<at::ScalarType>> DtypeFlag() {
  const std::string name = absl::GetFlag(FLAGS_dtype);
  if (name.empty()) return std::optional<at::ScalarType>();
  SPATIALID_ASSIGN_OR_RETURN(at::ScalarType t, fam::DtypeFromConfig(name));
  return std::optional<at::ScalarType>(t);
}

inline absl::StatusOr<at::Device> DeviceFlag() {
  const std::string name = absl::GetFlag(FLAGS_device);
  try {
    return at::Device(name);
  } catch (const c10::Error&) {
    return absl::InvalidArgumentError(absl::StrCat("--device=", name, ": expected cpu, cuda or cuda:N"));
  }
}

inline absl::StatusOr<extract::BosRule> BosFlag() {
  const std::string bos = absl::GetFlag(FLAGS_bos);
  if (bos == "processor") return extract::BosRule::kProcessorCall;
  if (bos == "chat_template") return extract::BosRule::kChatTemplate;
  return absl::InvalidArgumentError(absl::StrCat("--bos=", bos, ": expected processor or chat_template"));
}

// --engine: true for planned.
inline absl::StatusOr<bool> PlannedFlag() {
  const std::string engine = absl::GetFlag(FLAGS_engine);
  if (engine == "planned") return true;
  if (engine == "plain") return false;
  return absl::InvalidArgumentError(absl::StrCat("--engine=", engine, ": expected planned or plain"));
}

// RoPE is the shared block every decoder uses; any family's tool checks it.
inline absl::Status RunRope(TensorMap& out) {
  SPATIALID_ASSIGN_OR_RETURN(nlohmann::json j, io::ReadJsonFile(absl::GetFlag(FLAGS_rope)));
  nn::RopeParameters p;
  SPATIALID_ASSIGN_OR_RETURN(p.type, nn::ParseRopeType(j.value("rope_type", "default")));
  p.theta = j.value("rope_theta", 10000.0);
  p.factor = j.value("factor", 1.0);
  p.low_freq_factor = j.value("low_freq_factor", 1.0);
  p.high_freq_factor = j.value("high_freq_factor", 4.0);
  p.original_max_position_embeddings = j.value("original_max_position_embeddings", int64_t{0});
  const int64_t max_pos = j.at("max_position_embeddings").get<int64_t>();
  SPATIALID_ASSIGN_OR_RETURN(auto rope,
                             nn::RotaryEmbedding::Create(p, j.at("head_dim").get<int64_t>(), max_pos));
  const int64_t context = j.value("context_length", max_pos);
  const int64_t seq_len = j.value("seq_len", int64_t{16});
  const at::Tensor positions = at::arange(seq_len, at::kLong).unsqueeze(0);
  const nn::CosSin cs = rope(positions, at::kFloat, context);
  out["inv_freq"] = rope.InvFreqFor(context);
  out["cos"] = cs.cos;
  out["sin"] = cs.sin;
  return absl::OkStatus();
}

inline double SecondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

template <class F>
class Tool {
 public:
  using Model = typename F::Model;
  using Pixels = typename F::PixelBatch;
  using Hooks = ToolHooks<F>;

  explicit Tool(std::string model_dir) : model_dir_(std::move(model_dir)) {}

  const std::string& model_dir() const { return model_dir_; }
  TensorMap& out() { return out_; }

  absl::Status Run(const std::string& mode) {
    if constexpr (requires(Tool& t) { Hooks::RunMode(mode, t); }) {
      if (std::optional<absl::Status> handled = Hooks::RunMode(mode, *this)) return *handled;
    }
    if (mode == "rope") {
      SPATIALID_RETURN_IF_ERROR(RunRope(out_));
      return Write();
    }
    SPATIALID_RETURN_IF_ERROR(NeedModelDir());
    if (mode == "config") {
      SPATIALID_ASSIGN_OR_RETURN(nlohmann::json j, Hooks::ConfigSummary(model_dir_));
      std::printf("%s\n", j.dump().c_str());
      return absl::OkStatus();
    }
    if (mode == "prompt") return Prompt();
    if (mode == "preprocess") {
      SPATIALID_ASSIGN_OR_RETURN(std::optional<Pixels> pixels, PixelsFromFlags());
      if (!pixels) return absl::InvalidArgumentError("--mode=preprocess needs --images");
      return Write();
    }
    if (mode == "extract") return Extract();
    if (mode == "forward") return Forward();
    return absl::InvalidArgumentError(absl::StrCat("unknown --mode=", mode));
  }

  // --- helpers the family hooks use too ---

  absl::Status NeedModelDir() const {
    if (model_dir_.empty()) return absl::InvalidArgumentError("--model_dir is required");
    return absl::OkStatus();
  }

  // Pixels from --images (the C++ processor; its outputs go to --out) or
  // --pixels (what the Python side saved); none without either.
  absl::StatusOr<std::optional<Pixels>> PixelsFromFlags() {
    const std::string images = absl::GetFlag(FLAGS_images);
    if (!images.empty()) {
      SPATIALID_ASSIGN_OR_RETURN(typename F::Processor proc, LoadProcessor());
      SPATIALID_ASSIGN_OR_RETURN(std::vector<io::Image> loaded, LoadImages(images));
      SPATIALID_ASSIGN_OR_RETURN(Pixels px, proc.Preprocess(loaded));
      Hooks::WritePixels(px, out_);
      return std::optional<Pixels>(std::move(px));
    }
    const std::string file = absl::GetFlag(FLAGS_pixels);
    if (!file.empty()) {
      SPATIALID_ASSIGN_OR_RETURN(io::SafetensorsFile st, io::SafetensorsFile::Open(file));
      SPATIALID_ASSIGN_OR_RETURN(Pixels px, Hooks::ReadPixels(st));
      return std::optional<Pixels>(std::move(px));
    }
    return std::optional<Pixels>();
  }

  absl::StatusOr<typename F::Processor> LoadProcessor() const {
    SPATIALID_ASSIGN_OR_RETURN(vision::ResizeEngine engine,
                               vision::ParseResizeEngine(absl::GetFlag(FLAGS_resize)));
    fam::ProcessorOptions options;
    options.resize = engine;
    return F::LoadProcessor(model_dir_, options);
  }

  // The model with --dtype and --device; prints "load_seconds=".
  absl::StatusOr<Model> LoadModel() const {
    fam::LoadOptions load;
    SPATIALID_ASSIGN_OR_RETURN(load.dtype, DtypeFlag());
    SPATIALID_ASSIGN_OR_RETURN(load.device, DeviceFlag());
    const auto t0 = std::chrono::steady_clock::now();
    absl::StatusOr<Model> model = [&]() -> absl::StatusOr<Model> {
      if constexpr (requires(const std::string& dir) { Hooks::Load(dir, load); }) {
        return Hooks::Load(model_dir_, load);
      } else {
        return F::Load(model_dir_, load);
      }
    }();
    if (!model.ok()) return model.status();
    if constexpr (requires(Model& m) { Hooks::AfterLoad(m); }) {
      SPATIALID_RETURN_IF_ERROR(Hooks::AfterLoad(*model));
    }
    std::printf("load_seconds=%.4f\n", SecondsSince(t0));
    return model;
  }

  // Writes every output, on the CPU, to --out.
  absl::Status Write() {
    const std::string path = absl::GetFlag(FLAGS_out);
    if (path.empty()) return absl::InvalidArgumentError("--out is required");
    TensorMap cpu;
    for (const auto& [name, t] : out_) cpu[name] = t.to(at::kCPU).contiguous();
    return io::WriteSafetensors(path, cpu);
  }

 private:
  absl::Status Forward() {
    SPATIALID_ASSIGN_OR_RETURN(std::optional<Pixels> pixels, PixelsFromFlags());
    SPATIALID_ASSIGN_OR_RETURN(Request req, ReadRequest(absl::GetFlag(FLAGS_request)));
    SPATIALID_ASSIGN_OR_RETURN(const bool planned, PlannedFlag());
    const bool text_only = absl::GetFlag(FLAGS_text_only);
    if (absl::GetFlag(FLAGS_out).empty()) return absl::InvalidArgumentError("--out is required");
    SPATIALID_ASSIGN_OR_RETURN(Model model, LoadModel());
    if (!text_only && !pixels) {
      return absl::InvalidArgumentError("forward needs --pixels or --images (or --text_only)");
    }
    if (text_only && planned) {
      return absl::InvalidArgumentError("--engine=planned serves image prompts; the text-only forward is plain");
    }
    fam::PrefixCache prefix;
    fam::ForwardPlan plan;
    if (planned) {
      // The prompt every row shares: its first row leads the others.
      SPATIALID_ASSIGN_OR_RETURN(prefix, model.ComputePrefix(req.ids.slice(0, 0, 1), req.hidden));
      plan.prefix = &prefix;
      std::printf("prefix_length=%lld prefix_layers=%d\n", static_cast<long long>(prefix.length()),
                  prefix.deepest());
    }
    auto forward = [&]() -> absl::StatusOr<at::Tensor> {
      if (text_only) return model.Forward(req.ids, req.hidden);
      if (planned) return model.Forward(req.ids, *pixels, req.hidden, plan);
      return model.Forward(req.ids, *pixels, req.hidden);
    };
    SPATIALID_ASSIGN_OR_RETURN(out_["hidden_states"], forward());
    if (const int repeat = absl::GetFlag(FLAGS_repeat); repeat > 0) {
      const auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < repeat; ++i) {
        SPATIALID_ASSIGN_OR_RETURN(at::Tensor again, forward());
        (void)again;
      }
      std::printf("forward_seconds=%.6f\n", SecondsSince(t0) / repeat);
    }
    if (!text_only) {
      if constexpr (requires(const Pixels& px, TensorMap& o) { Hooks::AddOutputs(model, req.ids, px, o); }) {
        SPATIALID_RETURN_IF_ERROR(Hooks::AddOutputs(model, req.ids, *pixels, out_));
      }
      if (absl::GetFlag(FLAGS_image_features)) {
        SPATIALID_ASSIGN_OR_RETURN(out_["image_features"], model.ImageFeatures(*pixels));
      }
    }
    return Write();
  }

  absl::Status Extract() {
    using X = extract::Extractor<F>;
    extract::ExtractorOptions o;
    o.model_dir = model_dir_;
    SPATIALID_ASSIGN_OR_RETURN(o.dtype, DtypeFlag());
    SPATIALID_ASSIGN_OR_RETURN(o.device, DeviceFlag());
    SPATIALID_ASSIGN_OR_RETURN(o.resize, vision::ParseResizeEngine(absl::GetFlag(FLAGS_resize)));
    SPATIALID_ASSIGN_OR_RETURN(o.bos, BosFlag());
    SPATIALID_ASSIGN_OR_RETURN(const bool planned, PlannedFlag());
    if (!planned) o.plan = std::nullopt;
    SPATIALID_ASSIGN_OR_RETURN(policy::layers::Spec layers,
                               policy::layers::Spec::Parse(absl::GetFlag(FLAGS_layers)));
    o.layers = layers;
    const std::string pooling = absl::GetFlag(FLAGS_pooling);
    if (pooling == "mean_of_subtokens") {
      o.pooling = policy::pooling::MeanOfSubtokens{};
    } else if (pooling != "last_subtoken") {
      return absl::InvalidArgumentError(
          absl::StrCat("--pooling=", pooling, ": expected last_subtoken or mean_of_subtokens"));
    }
    const std::vector<std::string> words = SplitList(absl::GetFlag(FLAGS_words));
    const std::string question = absl::GetFlag(FLAGS_question);
    SPATIALID_ASSIGN_OR_RETURN(X x, X::Create(o));
    typename X::Prompt prompt;
    std::vector<at::Tensor> rows;
    if (absl::GetFlag(FLAGS_text_only)) {
      SPATIALID_ASSIGN_OR_RETURN(prompt, x.PrepareTextPrompt(question, words));
      SPATIALID_ASSIGN_OR_RETURN(rows, x.RunText(prompt));
    } else {
      SPATIALID_ASSIGN_OR_RETURN(std::vector<io::Image> images, LoadImages(absl::GetFlag(FLAGS_images)));
      SPATIALID_ASSIGN_OR_RETURN(auto batch, x.Preprocess(images));
      SPATIALID_ASSIGN_OR_RETURN(prompt, x.PrepareImagePrompt(question, words, batch));
      SPATIALID_ASSIGN_OR_RETURN(rows, x.Run(prompt, batch));
    }
    nlohmann::json positions = nlohmann::json::object(), tokens = nlohmann::json::object();
    for (size_t w = 0; w < words.size(); ++w) {
      out_["target_" + words[w]] = rows[w];
      positions[words[w]] = prompt.targets[w].positions;
      tokens[words[w]] = prompt.targets[w].token;
    }
    const nlohmann::json info = {{"ids", prompt.ids},
                                 {"positions", positions},
                                 {"tokens", tokens},
                                 {"layers", x.layers()},
                                 {"prefix_length", prompt.prefix ? prompt.prefix->length() : 0},
                                 {"engine_note", x.EngineNote(prompt)}};
    SPATIALID_RETURN_IF_ERROR(Write());
    std::printf("%s\n", info.dump().c_str());
    return absl::OkStatus();
  }

  absl::Status Prompt() {
    SPATIALID_ASSIGN_OR_RETURN(extract::BosRule bos, BosFlag());
    SPATIALID_ASSIGN_OR_RETURN(text::ChatTemplate chat, text::ChatTemplate::FromModelDir(model_dir_));
    SPATIALID_ASSIGN_OR_RETURN(text::Tokenizer tok, text::LoadPretrainedTokenizer(model_dir_));
    std::optional<Pixels> pixels;
    if (!absl::GetFlag(FLAGS_text_only)) {
      SPATIALID_ASSIGN_OR_RETURN(pixels, PixelsFromFlags());
    }
    SPATIALID_ASSIGN_OR_RETURN(
        text::RenderedPrompt rendered,
        text::RenderUserPrompt(chat, absl::GetFlag(FLAGS_question), pixels.has_value()));
    std::string expanded = rendered.text;
    nlohmann::json j = {{"text", rendered.text}, {"add_special_tokens", rendered.add_special_tokens}};
    if (pixels) {
      SPATIALID_ASSIGN_OR_RETURN(fam::ImagePrompt image, Hooks::PromptFromConfig(model_dir_, &*pixels));
      SPATIALID_ASSIGN_OR_RETURN(expanded, text::ExpandImagePlaceholders(
                                               rendered.text, image.placeholder,
                                               std::vector<std::string>{image.expansion}));
      j["tokens_per_image"] = image.tokens_per_image;
      j["image_token_id"] = image.image_token_id;
      if constexpr (requires(const Pixels& px) { Hooks::DescribePixels(px, j); }) {
        Hooks::DescribePixels(*pixels, j);
      }
    } else {
      j["tokens_per_image"] = 0;
    }
    // The extractor's rule (extract/extractor.h): the processor call always
    // adds special tokens; apply_chat_template only when the template did not.
    const bool add = bos == extract::BosRule::kProcessorCall || rendered.add_special_tokens;
    const std::vector<int32_t> ids = tok.Encode(expanded, add);
    j["ids"] = ids;
    std::printf("%s\n", j.dump().c_str());
    if (absl::GetFlag(FLAGS_out).empty()) return absl::OkStatus();
    if (pixels) {
      if constexpr (requires(const std::string& dir, const at::Tensor& row, const Pixels& px, TensorMap& o) {
                      Hooks::AddPromptOutputs(dir, row, px, o);
                    }) {
        const at::Tensor row =
            at::tensor(std::vector<int64_t>(ids.begin(), ids.end()), at::kLong).unsqueeze(0);
        SPATIALID_RETURN_IF_ERROR(Hooks::AddPromptOutputs(model_dir_, row, *pixels, out_));
      }
    }
    return Write();
  }

  std::string model_dir_;
  TensorMap out_;
};

// config.json's model_type, or empty when the folder has none (a
// processor-only folder).
inline absl::StatusOr<std::string> ModelTypeOf(const std::string& model_dir) {
  std::error_code ec;
  if (model_dir.empty() || !std::filesystem::exists(model_dir + "/config.json", ec)) return std::string();
  SPATIALID_ASSIGN_OR_RETURN(nlohmann::json cfg, io::ReadJsonFile(model_dir + "/config.json"));
  if (cfg.is_object() && cfg.contains("model_type") && cfg["model_type"].is_string()) {
    return cfg["model_type"].get<std::string>();
  }
  return std::string();
}

// One family: it runs whatever the folder holds (its loader says when the
// folder is another family's). Several (Qwen2-VL and Qwen2.5-VL share a
// tool): config.json's model_type picks one; a folder without config.json
// goes to the first.
template <class First, class... Rest>
absl::Status RunFamilies(const std::string& mode, const std::string& model_dir) {
  if constexpr (sizeof...(Rest) == 0) {
    return Tool<First>(model_dir).Run(mode);
  } else {
    SPATIALID_ASSIGN_OR_RETURN(const std::string type, ModelTypeOf(model_dir));
    if (type.empty()) return Tool<First>(model_dir).Run(mode);
    std::optional<absl::Status> result;
    auto try_one = [&]<class F>() {
      if (!result && F::kModelType == type) result = Tool<F>(model_dir).Run(mode);
    };
    try_one.template operator()<First>();
    (try_one.template operator()<Rest>(), ...);
    if (result) return *result;
    return absl::InvalidArgumentError(absl::StrCat(
        model_dir, "/config.json: model_type \"", type, "\" is none of ",
        absl::StrJoin({std::string(First::kModelType), std::string(Rest::kModelType)...}, ", ")));
  }
}

// main() of a family's tool: `usage` is its --help text.
template <class... F>
int ForwardToolMain(int argc, char** argv, const char* usage) {
  absl::SetProgramUsageMessage(usage);
  absl::ParseCommandLine(argc, argv);
  const std::string name = std::filesystem::path(argv[0]).filename().string();
  if (absl::GetFlag(FLAGS_threads) > 0) at::set_num_threads(absl::GetFlag(FLAGS_threads));
  absl::Status s;
  try {
    s = RunFamilies<F...>(absl::GetFlag(FLAGS_mode), absl::GetFlag(FLAGS_model_dir));
  } catch (const std::exception& e) {
    // The library returns Status; an exception here is a bug worth its own line.
    s = absl::InternalError(absl::StrCat("uncaught exception: ", e.what()));
  }
  if (!s.ok()) {
    std::fprintf(stderr, "%s: %s\n", name.c_str(), std::string(s.message()).c_str());
    return 1;
  }
  return 0;
}

}  // namespace spatialid::forward_tool
