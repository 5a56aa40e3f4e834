// LLaVA-1.5 (llava-hf/llava-1.5-7b-hf, -13b-hf): transformers'
// `LlavaForConditionalGeneration` (models/llava/modeling_llava.py, 5.3.0),
// without the LM head.
//
//   pixels [N, 3, 336, 336] --CLIP ViT-L/14 (nn/clip_vision.h)--> hidden state
//     `vision_feature_layer` (-2: the output of the second-to-last encoder
//     layer, so the last layer never runs) --drop the class token
//     (`vision_feature_select_strategy` "default")--> [N, 576, 1024]
//     --projector linear_1, gelu, linear_2--> [N, 576, text hidden]
//   ids [B, S] --embed_tokens--> [B, S, hidden]; the projected features
//     replace the embeddings of the `image_token_index` tokens in order
//     (HF's masked_scatter)  => hidden state 0
//   --Llama decoder (nn/text_decoder.h: RMSNorm, RoPE, SwiGLU, causal)-->
//     hidden states 1..N, the last one after the final RMSNorm
//     (families/hidden_states.h defines the indices).
//
// The prompt: the chat template writes "<image>" per image and LlavaProcessor
// repeats it (crop/patch)^2 + 1 - 1 = 576 times (the "+1" is the class token
// the strategy then drops); `ImagePromptFor` computes that from the config.
//
// Weight names: real llava-hf downloads (and transformers 5.3's
// save_pretrained, which writes the legacy names back) use
//   language_model.model.*, language_model.lm_head.*, vision_tower.vision_model.*,
//   multi_modal_projector.*
// while transformers >= 4.52 names the modules
//   model.language_model.*, lm_head.*, model.vision_tower.vision_model.*,
//   model.multi_modal_projector.*
// (LlavaForConditionalGeneration._checkpoint_conversion_mapping). Both load:
// `kLlavaWeightSchemes` lists them (families/weight_names.h).
//
// The planned forward (families/forward_plan.h) is the extraction engine's:
// "<s> USER: " before the first image token is computed once per prompt
// (`ComputePrefix`), the deepest layer only at the requested rows, q/k/v and
// gate/up as packed matmuls. The plain `Forward` stays transformers' op
// order (the oracle checks it bit for bit at batch 1).
//
// Example:
//   SPATIALID_ASSIGN_OR_RETURN(auto model, Llava::Load(dir, {.dtype = at::kHalf}));
//   SPATIALID_ASSIGN_OR_RETURN(auto proc, Llava::LoadProcessor(dir, {}));
//   SPATIALID_ASSIGN_OR_RETURN(LlavaPixels px, proc.Preprocess(images));
//   families::HiddenStateRequest req{.layers = {0, 16, 32}, .positions = {612}};
//   SPATIALID_ASSIGN_OR_RETURN(at::Tensor h, model.Forward(ids, px, req));  // [3, B, 1, 4096]
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/cat.h>
#include <c10/core/InferenceMode.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "spatialid/families/llava/config.h"
#include "spatialid/config/processor_config.h"
#include "spatialid/families/causal_text_layers.h"
#include "spatialid/families/config_adapters.h"
#include "spatialid/families/family.h"
#include "spatialid/families/forward_plan.h"
#include "spatialid/families/hidden_states.h"
#include "spatialid/families/image_pixels.h"
#include "spatialid/families/multimodal_forward.h"
#include "spatialid/families/weight_names.h"
#include "spatialid/io/checkpoint.h"
#include "spatialid/io/image.h"
#include "spatialid/nn/activation.h"
#include "spatialid/nn/attention.h"
#include "spatialid/families/llava/clip_vision.h"
#include "spatialid/nn/mlp.h"
#include "spatialid/nn/rotary.h"
#include "spatialid/nn/text_decoder.h"
#include "spatialid/util/status.h"
#include "spatialid/vision/clip_image_processor.h"

namespace spatialid::families {

// ---------------------------------------------------------------------------
// Config: config.json as LlavaConfig (transformers' LlavaConfig with
// its LlamaConfig and CLIPVisionConfig), translated into block shapes.

// Image tokens per image: one per patch, plus the class token when
// vision_feature_select_strategy is "full" ("default" drops it).
inline int64_t LlavaImageTokens(const LlavaConfig& c) {
  const int64_t side = c.vision_config.image_size / c.vision_config.patch_size;
  return side * side + (c.vision_feature_select_strategy == "full" ? 1 : 0);
}

inline absl::StatusOr<nn::TextDecoderShape> LlamaDecoderShape(const LlamaConfig& t) {
  nn::TextDecoderShape s;
  s.vocab_size = t.vocab_size;
  s.hidden_size = t.hidden_size;
  s.intermediate_size = t.intermediate_size;
  s.num_layers = t.num_hidden_layers;
  s.num_heads = t.num_attention_heads;
  s.num_kv_heads = t.num_key_value_heads;
  s.head_dim = t.head_dim;
  s.max_position_embeddings = t.max_position_embeddings;
  s.rms_norm_eps = t.rms_norm_eps;
  SPATIALID_ASSIGN_OR_RETURN(s.act, nn::ParseActivation(t.hidden_act));
  s.attention_bias = t.attention_bias;
  s.mlp_bias = t.mlp_bias;
  SPATIALID_ASSIGN_OR_RETURN(s.rope, RopeFromConfig(t.rope_parameters));
  return s;
}

inline absl::StatusOr<ClipVisionShape> ClipVisionShapeOf(const CLIPVisionConfig& v) {
  ClipVisionShape s;
  s.hidden_size = v.hidden_size;
  s.intermediate_size = v.intermediate_size;
  s.num_layers = v.num_hidden_layers;
  s.num_heads = v.num_attention_heads;
  s.num_channels = v.num_channels;
  s.image_size = v.image_size;
  s.patch_size = v.patch_size;
  s.layer_norm_eps = v.layer_norm_eps;
  SPATIALID_ASSIGN_OR_RETURN(s.act, nn::ParseActivation(v.hidden_act));
  return s;
}

// Reads `<model_dir>/config.json`; errors name the file and say when the
// folder holds another family.
inline absl::StatusOr<LlavaConfig> ReadLlavaConfig(const std::string& model_dir) {
  absl::StatusOr<LlavaConfig> c = config::LoadConfig<LlavaConfig>(model_dir);
  if (!c.ok()) {
    return absl::Status(c.status().code(),
                        absl::StrCat(c.status().message(), " (LLaVA-1.5 checkpoints expected)"));
  }
  const CLIPVisionConfig& v = c->vision_config;
  if (v.patch_size <= 0 || v.image_size % v.patch_size != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        model_dir, "/config.json: vision_config.image_size ", v.image_size,
        " is not a multiple of patch_size ", v.patch_size));
  }
  for (int64_t layer : c->vision_feature_layer) {
    if (layer < -(v.num_hidden_layers + 1) || layer > v.num_hidden_layers) {
      return absl::InvalidArgumentError(absl::StrCat(
          model_dir, "/config.json: vision_feature_layer ", layer, " is outside the vision tower's ",
          v.num_hidden_layers + 1, " hidden states"));
    }
  }
  return c;
}

// ---------------------------------------------------------------------------
// Weight names.

// llava-hf downloads and transformers' save_pretrained output; transformers
// >= 4.52 module names (LlavaForConditionalGeneration); a bare LlavaModel.
inline constexpr WeightScheme kLlavaWeightSchemes[] = {
    {"language_model.model", "vision_tower.vision_model", "multi_modal_projector",
     "language_model.lm_head."},
    {"model.language_model", "model.vision_tower.vision_model", "model.multi_modal_projector",
     "lm_head."},
    {"language_model", "vision_tower.vision_model", "multi_modal_projector", "lm_head."},
};

// ---------------------------------------------------------------------------
// Processor.

// Preprocessed images: float32 [N, 3, image_size, image_size] on the CPU.
using LlavaPixels = ImagePixels;
using LlavaProcessor = ImagePixelsProcessor<vision::ClipImageProcessor>;

// ---------------------------------------------------------------------------
// Model.

class LlavaModel : public MultimodalForward<LlavaModel, LlavaPixels, RopeContext>,
                   public CausalTextLayers<LlavaPixels> {
 public:
  // Loads config.json and the weights; `options.dtype` unset means the
  // config's dtype (fp32 if it names none).
  static absl::StatusOr<LlavaModel> Load(const std::string& model_dir, const LoadOptions& options) {
    SPATIALID_ASSIGN_OR_RETURN(LlavaConfig config, ReadLlavaConfig(model_dir));
    SPATIALID_ASSIGN_OR_RETURN(nn::TextDecoderShape text_shape, LlamaDecoderShape(config.text_config));
    SPATIALID_ASSIGN_OR_RETURN(ClipVisionShape vision_shape,
                               ClipVisionShapeOf(config.vision_config));
    SPATIALID_ASSIGN_OR_RETURN(nn::Activation projector_act,
                               nn::ParseActivation(config.projector_hidden_act));
    SPATIALID_ASSIGN_OR_RETURN(at::ScalarType config_dtype, DtypeFromConfig(config.dtype));
    SPATIALID_ASSIGN_OR_RETURN(io::Checkpoint ckpt, io::Checkpoint::Open(model_dir));
    SPATIALID_ASSIGN_OR_RETURN(
        WeightNames names,
        DetectWeightNames(ckpt, kLlavaWeightSchemes, "LLaVA", {".embeddings.position_ids"}));
    const at::ScalarType dtype = options.dtype.value_or(config_dtype);
    LlavaModel m;
    m.config_ = config;
    m.tokens_per_image_ = LlavaImageTokens(config);
    m.dtype_ = dtype;
    m.device_ = options.device;
    try {
      io::StateDictLoader loader(ckpt, dtype, options.device);
      for (const std::string& p : names.unused_prefixes) loader.IgnorePrefix(p);
      SPATIALID_ASSIGN_OR_RETURN(m.vision_,
                                 ClipVisionTower::Load(loader, names.vision, vision_shape));
      const int64_t feature_width =
          vision_shape.hidden_size * static_cast<int64_t>(config.vision_feature_layer.size());
      m.projector_ = nn::Mlp::Load(loader, names.projector, feature_width, text_shape.hidden_size,
                                   text_shape.hidden_size, projector_act,
                                   config.multimodal_projector_bias,
                                   nn::Mlp::Names{"linear_1", "linear_2"});
      SPATIALID_ASSIGN_OR_RETURN(
          m.text_, nn::TextDecoder::Load(loader, names.text, text_shape, options.device));
      SPATIALID_RETURN_IF_ERROR(loader.Finish());
      // Views into packed weights: the plain forward is unchanged.
      m.vision_.PackWeights();
      m.text_.PackWeights();
    } catch (const c10::Error& e) {
      return absl::InternalError(
          absl::StrCat(model_dir, ": loading weights failed: ", e.what_without_backtrace()));
    }
    return m;
  }

  const LlavaConfig& config() const { return config_; }
  int64_t num_layers() const { return text_.num_layers(); }
  int64_t hidden_size() const { return text_.hidden_size(); }
  at::ScalarType dtype() const { return dtype_; }
  at::Device device() const { return device_; }

  // "<image>" -> "<image>" x tokens_per_image (LlavaProcessor's expansion).
  ImagePrompt ImagePromptFor(const LlavaPixels& /*pixels: fixed geometry*/) const {
    ImagePrompt p;
    p.placeholder = kImageToken;
    p.image_token = kImageToken;
    p.image_token_id = config_.image_token_index;
    p.tokens_per_image = tokens_per_image_;
    p.expansion.reserve(p.placeholder.size() * static_cast<size_t>(p.tokens_per_image));
    for (int64_t i = 0; i < p.tokens_per_image; ++i) p.expansion += kImageToken;
    return p;
  }

  static constexpr char kImageToken[] = "<image>";

  // --- MultimodalForward hooks (families/multimodal_forward.h); the layer
  // hooks are CausalTextLayers' ---

  static constexpr std::string_view kName = "LLaVA";
  static constexpr bool kFeaturesReplaceImageTokens = true;
  int64_t embedding_rows() const { return text_.shape.vocab_size; }
  int64_t image_token_id() const { return config_.image_token_index; }

  absl::Status CheckPixels(const LlavaPixels& pixels) const {
    return CheckSquarePixels(pixels.pixel_values, config_.vision_config.num_channels,
                             config_.vision_config.image_size, "LLaVA");
  }

  ImageTokenCount ExpectedImageTokens(const LlavaPixels& pixels) const {
    return {std::vector<int64_t>(static_cast<size_t>(pixels.pixel_values.size(0)), tokens_per_image_),
            absl::StrCat("expand each <image> placeholder ", tokens_per_image_, " times")};
  }

  at::Tensor Embed(const at::Tensor& ids) const { return text_.Embed(ids); }

  // get_image_features + multi_modal_projector: [N, tokens_per_image, text
  // hidden] (the model's `image_hidden_states`).
  at::Tensor EncodeImages(const LlavaPixels& pixels, bool packed) const {
    const std::vector<at::Tensor> states = vision_.HiddenStates(
        pixels.pixel_values.to(device_, /*non_blocking=*/true), config_.vision_feature_layer, packed);
    std::vector<at::Tensor> selected;
    for (const at::Tensor& s : states) {
      // vision_feature_select_strategy "default" drops the class token.
      selected.push_back(config_.vision_feature_select_strategy == "default" ? s.slice(1, 1) : s);
    }
    const at::Tensor features = selected.size() == 1 ? selected[0] : at::cat(selected, -1);
    return projector_(features);
  }

 private:
  LlavaModel() = default;

  LlavaConfig config_;
  int64_t tokens_per_image_ = 0;
  at::Device device_ = at::kCPU;
  ClipVisionTower vision_;
  nn::Mlp projector_;
};

// ---------------------------------------------------------------------------
// Traits.

struct Llava {
  using Config = LlavaConfig;
  using Model = LlavaModel;
  using Processor = LlavaProcessor;
  using PixelBatch = LlavaPixels;
  static constexpr std::string_view kModelType = "llava";
  static constexpr std::string_view kName = "LLaVA-1.5";
  static constexpr ModelPreset kPresets[] = {
      {"llava-7b", "llava-hf/llava-1.5-7b-hf", "float16", 32, 33},
      {"llava-13b", "llava-hf/llava-1.5-13b-hf", "float16", 40, 41},
  };

  static absl::StatusOr<Model> Load(const std::string& model_dir, const LoadOptions& options) {
    return LlavaModel::Load(model_dir, options);
  }

  static absl::StatusOr<Processor> LoadProcessor(const std::string& model_dir,
                                                 const ProcessorOptions& options) {
    SPATIALID_ASSIGN_OR_RETURN(config::CLIPImageProcessorConfig cfg,
                               vision::LoadClipImageProcessorConfig(model_dir));
    SPATIALID_ASSIGN_OR_RETURN(vision::ClipImageProcessor p,
                               vision::ClipImageProcessor::Create(cfg, options.resize));
    return LlavaProcessor(std::move(p));
  }
};

static_assert(CheckFamily<Llava>());
static_assert(MultimodalHooks<LlavaModel, LlavaPixels, RopeContext>);

}  // namespace spatialid::families
