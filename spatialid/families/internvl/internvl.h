// InternVL3 (OpenGVLab/InternVL3-{1B,2B,8B,14B}-hf): transformers'
// `InternVLForConditionalGeneration` (models/internvl/modeling_internvl.py,
// 5.3.0) with a Qwen2 language model, without the LM head.
//
//   image --GOT-OCR2 processor (vision/got_ocr2_image_processor.h)--> P patches
//     (the tiles of the closest-aspect grid of 1..12, plus a thumbnail when
//     there is more than one tile), float32 [P, 3, 448, 448]
//   --InternViT (nn/intern_vision.h), vision_feature_layer -1 = last_hidden_state--
//     [P, 1025, 1024] --drop the class token ("default" strategy)-->
//     [P, 32, 32, 1024] --pixel shuffle 0.5 (nn/pixel_shuffle.h)-->
//     [P, 256, 4096] --projector: LayerNorm, linear_1, gelu, linear_2-->
//     [P, 256, text hidden]
//   ids [B, S] --embed_tokens--> [B, S, hidden]; the features of all patches,
//     in order, replace the embeddings of the `image_token_id`
//     ("<IMG_CONTEXT>") tokens (HF's masked_scatter)  => hidden state 0
//   --Qwen2 decoder (nn/text_decoder.h: RMSNorm, RoPE theta 1e6 (dynamic NTK
//     in the real configs, inert below 32768 tokens), q/k/v biases, SwiGLU,
//     causal)--> hidden states 1..N, the last after the final RMSNorm
//     (families/hidden_states.h).
//
// The prompt: the chat template (no default system prompt) writes
// "<IMG_CONTEXT>\n" per image and InternVLProcessor replaces each
// "<IMG_CONTEXT>" by "<img>" + "<IMG_CONTEXT>" x (256 * P) + "</img>", where
// 256 = ((448 / 14) * 0.5)^2 tokens per patch. An 896x896 image has P = 5
// (2x2 tiles + thumbnail): 1280 image tokens. `ImagePromptFor` computes
// this from the pixels' patch counts; every image of a batch must have the
// same count (the same token layout), which images of one size do.
//
// The small checkpoints tie the LM head to the embeddings (`lm_head` may be
// absent); only `embed_tokens` is needed here. The decoder's shape comes from
// config_adapters.h's Qwen2DecoderShape, which Qwen2-VL's text configs share.
//
// Weight names: hub downloads and transformers 5.3's save_pretrained write
//   language_model.model.*, language_model.lm_head.*, vision_tower.*,
//   multi_modal_projector.*
// while the module tree of transformers >= 4.52 is
//   model.language_model.*, lm_head.*, model.vision_tower.*,
//   model.multi_modal_projector.*
// (InternVLForConditionalGeneration._checkpoint_conversion_mapping), and a
// bare InternVLModel has language_model.* directly. All three load.
//
// Example:
//   SPATIALID_ASSIGN_OR_RETURN(auto model, InternVL::Load(dir, {.dtype = at::kBFloat16}));
//   SPATIALID_ASSIGN_OR_RETURN(auto proc, InternVL::LoadProcessor(dir, {}));
//   SPATIALID_ASSIGN_OR_RETURN(InternVLPixels px, proc.Preprocess(images));
//   families::ImagePrompt ip = model.ImagePromptFor(px);  // 1280 tokens at 896x896
//   families::HiddenStateRequest req{.layers = {0, 12, 24}, .positions = {1300}};
//   SPATIALID_ASSIGN_OR_RETURN(at::Tensor h, model.Forward(ids, px, req));  // [3, B, 1, 896]
#pragma once

#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/arange.h>
#include <c10/core/InferenceMode.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "spatialid/families/internvl/config.h"
#include "spatialid/config/processor_config.h"
#include "spatialid/families/causal_text_layers.h"
#include "spatialid/families/config_adapters.h"
#include "spatialid/families/family.h"
#include "spatialid/families/hidden_states.h"
#include "spatialid/families/image_pixels.h"
#include "spatialid/families/multimodal_forward.h"
#include "spatialid/families/weight_names.h"
#include "spatialid/io/checkpoint.h"
#include "spatialid/io/image.h"
#include "spatialid/nn/activation.h"
#include "spatialid/nn/attention.h"
#include "spatialid/families/internvl/intern_vision.h"
#include "spatialid/nn/mlp.h"
#include "spatialid/nn/norm.h"
#include "spatialid/families/internvl/pixel_shuffle.h"
#include "spatialid/nn/rotary.h"
#include "spatialid/nn/text_decoder.h"
#include "spatialid/util/status.h"
#include "spatialid/vision/clip_image_processor.h"
#include "spatialid/families/internvl/image_processor.h"

namespace spatialid::families {

// ---------------------------------------------------------------------------
// Config: config.json as InternVLConfig (InternVLConfig with its
// InternVLVisionConfig and Qwen2Config), translated into block shapes.

inline absl::StatusOr<InternVisionShape> InternVisionShapeOf(
    const InternVLVisionConfig& v) {
  if (v.image_size.size() != 2 || v.patch_size.size() != 2 || v.image_size[0] != v.image_size[1] ||
      v.patch_size[0] != v.patch_size[1]) {
    return absl::UnimplementedError(
        "vision_config: only square image_size and patch_size are supported");
  }
  InternVisionShape s;
  s.hidden_size = v.hidden_size;
  s.intermediate_size = v.intermediate_size;
  s.num_layers = v.num_hidden_layers;
  s.num_heads = v.num_attention_heads;
  s.num_channels = v.num_channels;
  s.image_size = v.image_size[0];
  s.patch_size = v.patch_size[0];
  s.layer_norm_eps = v.layer_norm_eps;
  SPATIALID_ASSIGN_OR_RETURN(s.act, nn::ParseActivation(v.hidden_act));
  if (v.norm_type == "layer_norm") {
    s.norm_type = VisionNormType::kLayerNorm;
  } else if (v.norm_type == "rms_norm") {
    s.norm_type = VisionNormType::kRmsNorm;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "vision_config.norm_type \"", v.norm_type, "\" is not layer_norm or rms_norm"));
  }
  s.attention_bias = v.attention_bias;
  s.use_qk_norm = v.use_qk_norm;
  s.use_mean_pooling = v.use_mean_pooling;
  s.use_absolute_position_embeddings = v.use_absolute_position_embeddings;
  return s;
}

// Image tokens per patch: the ViT's patch grid after pixel shuffle,
// ((image_size / patch_size) * downsample_ratio)^2 = 256 for InternVL3.
inline int64_t InternVLTokensPerPatch(const InternVLConfig& c) {
  const auto side = static_cast<int64_t>(
      static_cast<double>(c.vision_config.image_size[0] / c.vision_config.patch_size[0]) *
      c.downsample_ratio);
  return side * side;
}

// Reads `<model_dir>/config.json` and refuses what the blocks cannot run,
// naming the file.
inline absl::StatusOr<InternVLConfig> ReadInternVLConfig(const std::string& model_dir) {
  absl::StatusOr<InternVLConfig> c = config::LoadConfig<InternVLConfig>(model_dir);
  if (!c.ok()) {
    return absl::Status(c.status().code(),
                        absl::StrCat(c.status().message(), " (InternVL3 checkpoints expected)"));
  }
  const std::string file = absl::StrCat(model_dir, "/config.json");
  absl::StatusOr<InternVisionShape> shape = InternVisionShapeOf(c->vision_config);
  if (!shape.ok()) {
    return absl::Status(shape.status().code(), absl::StrCat(file, ": ", shape.status().message()));
  }
  const InternVisionShape& v = *shape;
  if (absl::Status text = Qwen2DecoderShape(c->text_config).status(); !text.ok()) {
    return absl::Status(text.code(), absl::StrCat(file, ": ", text.message()));
  }
  if (v.patch_size <= 0 || v.image_size % v.patch_size != 0) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": vision_config.image_size ",
                                                   v.image_size, " is not a multiple of patch_size ",
                                                   v.patch_size));
  }
  if (c->vision_feature_layer.size() != 1) {
    return absl::UnimplementedError(absl::StrCat(
        file, ": vision_feature_layer must be one index (InternVL takes one layer's features)"));
  }
  const int64_t layer = c->vision_feature_layer[0];
  if (layer < -(v.num_layers + 1) || layer > v.num_layers) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": vision_feature_layer ", layer,
                                                   " is outside the vision tower's ",
                                                   v.num_layers + 1, " hidden states"));
  }
  if (c->vision_feature_select_strategy != "default") {
    // "full" keeps the class token, and 1025 features do not form the square
    // grid pixel shuffle needs (transformers fails on it too).
    return absl::UnimplementedError(absl::StrCat(
        file, ": vision_feature_select_strategy \"", c->vision_feature_select_strategy,
        "\" is not supported (\"default\" is)"));
  }
  if (!PixelShuffleFits(v.patches_per_side(), v.hidden_size, c->downsample_ratio)) {
    return absl::InvalidArgumentError(absl::StrCat(
        file, ": downsample_ratio ", c->downsample_ratio, " does not divide the ",
        v.patches_per_side(), "x", v.patches_per_side(), " patch grid of ", v.hidden_size,
        " channels"));
  }
  return c;
}

// The strings InternVLProcessor writes (its tokenizer's start_image_token,
// context_image_token and end_image_token).
inline constexpr char kInternVLImageToken[] = "<IMG_CONTEXT>";
inline constexpr char kInternVLImageStart[] = "<img>";
inline constexpr char kInternVLImageEnd[] = "</img>";

// An image of `num_patches` patches in the prompt: "<IMG_CONTEXT>" ->
// "<img>" + "<IMG_CONTEXT>" x (tokens per patch * num_patches) + "</img>".
inline ImagePrompt InternVLImagePrompt(const InternVLConfig& c, int64_t num_patches) {
  ImagePrompt p;
  p.placeholder = kInternVLImageToken;
  p.image_token = kInternVLImageToken;
  p.image_token_id = c.image_token_id;
  p.tokens_per_image = InternVLTokensPerPatch(c) * num_patches;
  p.expansion.reserve(sizeof(kInternVLImageStart) + sizeof(kInternVLImageEnd) +
                      (sizeof(kInternVLImageToken) - 1) * static_cast<size_t>(p.tokens_per_image));
  p.expansion = kInternVLImageStart;
  for (int64_t i = 0; i < p.tokens_per_image; ++i) p.expansion += kInternVLImageToken;
  p.expansion += kInternVLImageEnd;
  return p;
}

// ---------------------------------------------------------------------------
// Weight names.

// Hub downloads and transformers' save_pretrained output; transformers >=
// 4.52 module names (InternVLForConditionalGeneration); a bare InternVLModel.
inline constexpr WeightScheme kInternVLWeightSchemes[] = {
    {"language_model.model", "vision_tower", "multi_modal_projector", "language_model.lm_head."},
    {"model.language_model", "model.vision_tower", "model.multi_modal_projector", "lm_head."},
    {"language_model", "vision_tower", "multi_modal_projector", "lm_head."},
};

// ---------------------------------------------------------------------------
// Processor.

// Every image's patches, in order, with each image's patch count.
using InternVLPixels = TiledPixels;

class InternVLProcessor {
 public:
  // InternVLProcessor passes crop_to_patches=True to the image processor
  // whatever preprocessor_config.json says (its images_kwargs defaults).
  static absl::StatusOr<InternVLProcessor> Create(GotOcr2ImageProcessorConfig cfg,
                                                  vision::ResizeEngine engine) {
    cfg.crop_to_patches = true;
    SPATIALID_ASSIGN_OR_RETURN(GotOcr2ImageProcessor p,
                               GotOcr2ImageProcessor::Create(cfg, engine));
    return InternVLProcessor(std::move(p));
  }

  absl::StatusOr<InternVLPixels> Preprocess(std::span<const io::Image> images) const {
    return image_processor_.Preprocess(images);
  }

  const GotOcr2ImageProcessor& image_processor() const { return image_processor_; }

 private:
  explicit InternVLProcessor(GotOcr2ImageProcessor p) : image_processor_(std::move(p)) {}

  GotOcr2ImageProcessor image_processor_;
};

// ---------------------------------------------------------------------------
// Model.

class InternVLModel
    : public MultimodalForward<InternVLModel, InternVLPixels, RopeContext>,
      public CausalTextLayers<InternVLPixels> {
 public:
  // Loads config.json and the weights; `options.dtype` unset means the
  // config's dtype (fp32 if it names none).
  static absl::StatusOr<InternVLModel> Load(const std::string& model_dir,
                                            const LoadOptions& options) {
    SPATIALID_ASSIGN_OR_RETURN(InternVLConfig config, ReadInternVLConfig(model_dir));
    SPATIALID_ASSIGN_OR_RETURN(nn::TextDecoderShape text_shape,
                               Qwen2DecoderShape(config.text_config));
    SPATIALID_ASSIGN_OR_RETURN(InternVisionShape vision_shape,
                               InternVisionShapeOf(config.vision_config));
    SPATIALID_ASSIGN_OR_RETURN(nn::Activation projector_act,
                               nn::ParseActivation(config.projector_hidden_act));
    SPATIALID_ASSIGN_OR_RETURN(at::ScalarType config_dtype, DtypeFromConfig(config.dtype));
    SPATIALID_ASSIGN_OR_RETURN(io::Checkpoint ckpt, io::Checkpoint::Open(model_dir));
    // The vision tower's mask token serves masked-image pretraining only.
    SPATIALID_ASSIGN_OR_RETURN(
        WeightNames names,
        DetectWeightNames(ckpt, kInternVLWeightSchemes, "InternVL", {".embeddings.mask_token"}));
    const at::ScalarType dtype = options.dtype.value_or(config_dtype);
    InternVLModel m;
    m.config_ = config;
    m.tokens_per_patch_ = InternVLTokensPerPatch(config);
    m.dtype_ = dtype;
    m.device_ = options.device;
    try {
      io::StateDictLoader loader(ckpt, dtype, options.device);
      for (const std::string& p : names.unused_prefixes) loader.IgnorePrefix(p);
      SPATIALID_ASSIGN_OR_RETURN(m.vision_,
                                 InternVisionTower::Load(loader, names.vision, vision_shape));
      // nn.LayerNorm(vision hidden / ratio^2) with torch's default eps.
      const int64_t shuffled = static_cast<int64_t>(
          static_cast<double>(vision_shape.hidden_size) /
          (config.downsample_ratio * config.downsample_ratio));
      m.projector_norm_ = nn::LayerNorm::Load(loader, nn::Join(names.projector, "layer_norm"),
                                              shuffled, kProjectorLayerNormEps);
      m.projector_ = nn::Mlp::Load(loader, names.projector, shuffled, text_shape.hidden_size,
                                   text_shape.hidden_size, projector_act, /*with_bias=*/true,
                                   nn::Mlp::Names{"linear_1", "linear_2"});
      SPATIALID_ASSIGN_OR_RETURN(
          m.text_, nn::TextDecoder::Load(loader, names.text, text_shape, options.device));
      SPATIALID_RETURN_IF_ERROR(loader.Finish());
      // Views into packed weights: the plain forward is unchanged.
      m.text_.PackWeights();
    } catch (const c10::Error& e) {
      return absl::InternalError(
          absl::StrCat(model_dir, ": loading weights failed: ", e.what_without_backtrace()));
    }
    return m;
  }

  const InternVLConfig& config() const { return config_; }
  int64_t num_layers() const { return text_.num_layers(); }
  int64_t hidden_size() const { return text_.hidden_size(); }
  at::ScalarType dtype() const { return dtype_; }
  at::Device device() const { return device_; }
  int64_t tokens_per_patch() const { return tokens_per_patch_; }

  // InternVLImagePrompt for the first image's patch count (every image of
  // a batch shares one prompt; Forward checks that their counts agree).
  ImagePrompt ImagePromptFor(const InternVLPixels& pixels) const {
    return InternVLImagePrompt(config_, pixels.num_patches.empty() ? 1 : pixels.num_patches.front());
  }

  // InternVLMultiModalProjector's nn.LayerNorm keeps torch's default eps.
  static constexpr double kProjectorLayerNormEps = 1e-5;

  // --- MultimodalForward hooks (families/multimodal_forward.h); the layer
  // hooks are CausalTextLayers' ---

  static constexpr std::string_view kName = "InternVL";
  static constexpr bool kFeaturesReplaceImageTokens = true;
  int64_t embedding_rows() const { return config_.text_config.vocab_size; }
  int64_t image_token_id() const { return config_.image_token_id; }

  absl::Status CheckPixels(const InternVLPixels& pixels) const {
    const at::Tensor& p = pixels.pixel_values;
    SPATIALID_RETURN_IF_ERROR(CheckSquarePixels(p, vision_.shape.num_channels,
                                                vision_.shape.image_size, "InternVL", "patches"));
    int64_t total = 0;
    for (int64_t n : pixels.num_patches) {
      if (n < 1) return absl::InvalidArgumentError("InternVL: an image has no patches");
      total += n;
    }
    if (total != p.size(0)) {
      return absl::InvalidArgumentError(absl::StrCat("InternVL: num_patches adds up to ", total,
                                                     " but pixel_values holds ", p.size(0),
                                                     " patches"));
    }
    return absl::OkStatus();
  }

  ImageTokenCount ExpectedImageTokens(const InternVLPixels& pixels) const {
    ImageTokenCount c;
    for (int64_t n : pixels.num_patches) c.per_image.push_back(n * tokens_per_patch_);
    c.how = absl::StrCat("expand its <IMG_CONTEXT> to ", tokens_per_patch_,
                         " tokens per patch (ImagePromptFor)");
    return c;
  }


  at::Tensor Embed(const at::Tensor& ids) const { return text_.Embed(ids); }

  // get_image_features: features of vision_feature_layer, class token
  // dropped, pixel shuffle, projector: [P, tokens_per_patch, text hidden].
  at::Tensor EncodeImages(const InternVLPixels& pixels, bool /*packed*/) const {
    at::Tensor x = vision_.Features(pixels.pixel_values.to(device_, /*non_blocking=*/true).to(dtype_),
                                    config_.vision_feature_layer[0]);
    x = x.slice(1, 1);  // "default": drop the class token
    const int64_t patches = x.size(0), side = vision_.shape.patches_per_side();
    x = PixelShuffleDownsample(x.reshape({patches, side, side, -1}), config_.downsample_ratio);
    x = x.reshape({patches, -1, x.size(-1)});
    return projector_(projector_norm_(x));
  }

 private:
  InternVLModel() = default;

  InternVLConfig config_;
  int64_t tokens_per_patch_ = 0;
  at::Device device_ = at::kCPU;
  InternVisionTower vision_;
  nn::LayerNorm projector_norm_;
  nn::Mlp projector_;
};

// ---------------------------------------------------------------------------
// Traits.

struct InternVL {
  using Config = InternVLConfig;
  using Model = InternVLModel;
  using Processor = InternVLProcessor;
  using PixelBatch = InternVLPixels;
  static constexpr std::string_view kModelType = "internvl";
  static constexpr std::string_view kName = "InternVL3";
  static constexpr ModelPreset kPresets[] = {
      {"internvl-1b", "OpenGVLab/InternVL3-1B-hf", "bfloat16", 24, 25},
      {"internvl-2b", "OpenGVLab/InternVL3-2B-hf", "bfloat16", 28, 29},
      {"internvl-8b", "OpenGVLab/InternVL3-8B-hf", "bfloat16", 28, 29},
      {"internvl-14b", "OpenGVLab/InternVL3-14B-hf", "bfloat16", 48, 49},
  };

  static absl::StatusOr<Model> Load(const std::string& model_dir, const LoadOptions& options) {
    return InternVLModel::Load(model_dir, options);
  }

  static absl::StatusOr<Processor> LoadProcessor(const std::string& model_dir,
                                                 const ProcessorOptions& options) {
    SPATIALID_ASSIGN_OR_RETURN(
        GotOcr2ImageProcessorConfig cfg,
        vision::LoadImageProcessorConfig<GotOcr2ImageProcessorConfig>(model_dir));
    return InternVLProcessor::Create(std::move(cfg), options.resize);
  }
};

static_assert(MultimodalHooks<InternVLModel, InternVLPixels, RopeContext>);
static_assert(CheckFamily<InternVL>());

}  // namespace spatialid::families
