// Llama 3.2 Vision (meta-llama/Llama-3.2-11B-Vision-Instruct) and LLaVA-CoT
// (Xkev/Llama-3.2V-11B-cot): transformers' `MllamaForConditionalGeneration`
// (models/mllama/modeling_mllama.py, 5.3.0), without the LM head.
//
//   pixels [B, I, 4, 3, 560, 560] + aspect-ratio ids/masks (the processor,
//     vision/mllama_image_processor.h) --tiled ViT (nn/mllama_vision.h)-->
//     [B, I, 4, 1601, 7680] --multi_modal_projector (Linear + bias)-->
//     cross-attention states [B * I * 4, 1601, 4096]
//   ids [B, S] --embed_tokens (vocab_size + 8 rows)--> hidden state 0 (the
//     image never enters the embeddings; "<|image|>" is one ordinary token)
//   --40 decoder layers: Llama 3 self-attention layers (nn/text_decoder.h:
//     RMSNorm, llama3-scaled RoPE, GQA, causal) and, at
//     `cross_attention_layers` [3, 8, ..., 38], gated cross-attention layers
//     (nn/gated_cross_attention.h) reading the image states through the
//     cross-attention mask--> hidden states 1..40, the last one after the
//     final RMSNorm.
//
// Cross-attention mask: built from the ids as MllamaProcessor does
// (get_cross_attention_token_mask): with one image, the rows from the
// "<|image|>" token to the end see that image's real tiles; earlier rows see
// nothing, which transformers turns into a uniform attention over all
// vision positions whose MLP output is zeroed (gated_cross_attention.h).
// Tile counts come from aspect_ratio_mask (its row sum is the processor's
// num_tiles for every real image).
//
// HIDDEN-STATE INDICES (families/hidden_states.h):
// - With an image: every decoder layer counts, cross-attention layers
//   included: 41 states for the 11B models (0 = embeddings, 40 = final norm).
//   The reference keeps 0..32 of llama-11b's (its preset, not this file).
// - Text only (`Forward(ids, request)`): transformers skips the
//   cross-attention layers when there is no image. By default
//   (MllamaTextOnlyNumbering::kSkipped) the states are numbered as
//   transformers >= 4.55 (5.3.0 here) returns them, recording only the
//   layers that run: text_only_num_layers() + 1 = 33 states, 0 =
//   embeddings, i = output of the i-th *self-attention* layer, 32 = the
//   final norm of the last one; text-only index i >= 4 thus comes from a
//   later decoder layer than image index i. kRepeated numbers them as
//   transformers <= 4.54 did (41 states, a skipped layer repeating its
//   input, so index i comes from the same decoder layer as with an image;
//   docs/reference_pipeline.md section 10), chosen with set_text_only_numbering().
//
// The prompt: the chat template writes "<|image|>" once per image and
// MllamaProcessor does not expand it (`ImagePromptFor`: 1 token per image);
// the vision features reach the text through cross-attention only
// (4 tiles x 1601 positions for the 896 x 896 grid images).
//
// Weight names: the Meta/LLaVA-CoT downloads and transformers 5.3's
// save_pretrained use
//   language_model.model.*, language_model.lm_head.*, vision_model.*, multi_modal_projector.*
// transformers' module names are model.language_model.*, model.vision_model.*,
// model.multi_modal_projector.*, lm_head.* and a bare MllamaModel drops
// "model."; `kMllamaWeightSchemes` lists all three (families/weight_names.h).
//
// Example:
//   SPATIALID_ASSIGN_OR_RETURN(auto model, Mllama::Load(dir, {.dtype = at::kBFloat16}));
//   SPATIALID_ASSIGN_OR_RETURN(auto proc, Mllama::LoadProcessor(dir, {}));
//   SPATIALID_ASSIGN_OR_RETURN(MllamaPixels px, proc.Preprocess(images));
//   families::HiddenStateRequest req{.layers = {0, 16, 32}, .positions = {12}};
//   SPATIALID_ASSIGN_OR_RETURN(at::Tensor h, model.Forward(ids, px, req));  // [3, B, 1, 4096]
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/zeros.h>
#include <c10/core/InferenceMode.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "spatialid/families/mllama/config.h"
#include "spatialid/config/processor_config.h"
#include "spatialid/families/config_adapters.h"
#include "spatialid/families/family.h"
#include "spatialid/families/hidden_states.h"
#include "spatialid/families/multimodal_forward.h"
#include "spatialid/families/weight_names.h"
#include "spatialid/io/checkpoint.h"
#include "spatialid/io/image.h"
#include "spatialid/nn/activation.h"
#include "spatialid/nn/attention.h"
#include "spatialid/families/mllama/gated_cross_attention.h"
#include "spatialid/nn/linear.h"
#include "spatialid/families/mllama/vision_encoder.h"
#include "spatialid/nn/rotary.h"
#include "spatialid/nn/text_decoder.h"
#include "spatialid/util/status.h"
#include "spatialid/vision/clip_image_processor.h"
#include "spatialid/families/mllama/image_processor.h"

namespace spatialid::families {

// ---------------------------------------------------------------------------
// Config: config.json as MllamaConfig, translated into block shapes.

// The self-attention stack: Llama 3 layers, the cross-attention layers left
// to the family, and the embedding table's 8 extra rows
// (MllamaTextModel: nn.Embedding(vocab_size + 8, hidden)).
inline absl::StatusOr<nn::TextDecoderShape> MllamaDecoderShape(const MllamaTextConfig& t) {
  nn::TextDecoderShape s;
  s.vocab_size = t.vocab_size + 8;
  s.hidden_size = t.hidden_size;
  s.intermediate_size = t.intermediate_size;
  s.num_layers = t.num_hidden_layers;
  s.num_heads = t.num_attention_heads;
  s.num_kv_heads = t.num_key_value_heads;
  s.head_dim = t.head_dim();
  s.max_position_embeddings = t.max_position_embeddings;
  s.rms_norm_eps = t.rms_norm_eps;
  SPATIALID_ASSIGN_OR_RETURN(s.act, nn::ParseActivation(t.hidden_act));
  SPATIALID_ASSIGN_OR_RETURN(s.rope, RopeFromConfig(t.rope_parameters));
  s.other_layers = t.cross_attention_layers;
  return s;
}

inline absl::StatusOr<CrossAttentionShape> MllamaCrossAttentionShape(const MllamaTextConfig& t) {
  CrossAttentionShape s;
  s.hidden_size = t.hidden_size;
  s.num_heads = t.num_attention_heads;
  s.num_kv_heads = t.num_key_value_heads;
  s.head_dim = t.head_dim();
  s.intermediate_size = t.intermediate_size;
  s.rms_norm_eps = t.rms_norm_eps;
  SPATIALID_ASSIGN_OR_RETURN(s.act, nn::ParseActivation(t.hidden_act));
  return s;
}

inline absl::StatusOr<MllamaVisionShape> MllamaVisionShapeOf(const MllamaVisionConfig& v) {
  MllamaVisionShape s;
  s.hidden_size = v.hidden_size;
  s.intermediate_size = v.intermediate_size;
  s.num_layers = v.num_hidden_layers;
  s.num_global_layers = v.num_global_layers;
  s.num_heads = v.attention_heads;
  s.num_channels = v.num_channels;
  s.image_size = v.image_size;
  s.patch_size = v.patch_size;
  s.norm_eps = v.norm_eps;
  s.max_num_tiles = v.max_num_tiles;
  s.max_aspect_ratio_id = v.max_aspect_ratio_id();
  s.intermediate_layers_indices = v.intermediate_layers_indices;
  SPATIALID_ASSIGN_OR_RETURN(s.act, nn::ParseActivation(v.hidden_act));
  return s;
}

// Reads `<model_dir>/config.json` and checks what the blocks assume.
inline absl::StatusOr<MllamaConfig> ReadMllamaConfig(const std::string& model_dir) {
  absl::StatusOr<MllamaConfig> c = config::LoadConfig<MllamaConfig>(model_dir);
  if (!c.ok()) {
    return absl::Status(c.status().code(), absl::StrCat(c.status().message(),
                                                        " (Llama 3.2 Vision checkpoints expected)"));
  }
  const std::string file = absl::StrCat(model_dir, "/config.json");
  const MllamaVisionConfig& v = c->vision_config;
  const MllamaTextConfig& t = c->text_config;
  if (v.patch_size <= 0 || v.image_size % v.patch_size != 0) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": vision_config.image_size ", v.image_size,
                                                   " is not a multiple of patch_size ", v.patch_size));
  }
  const int64_t features =
      v.hidden_size * (1 + static_cast<int64_t>(v.intermediate_layers_indices.size()));
  if (v.vision_output_dim != features) {
    return absl::InvalidArgumentError(absl::StrCat(
        file, ": vision_config.vision_output_dim ", v.vision_output_dim, " should be hidden_size x (1 + ",
        v.intermediate_layers_indices.size(), " intermediate layers) = ", features));
  }
  if (t.num_attention_heads <= 0 || t.hidden_size % t.num_attention_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": text_config.hidden_size ", t.hidden_size,
                                                   " is not a multiple of num_attention_heads ",
                                                   t.num_attention_heads));
  }
  std::vector<bool> seen(static_cast<size_t>(std::max<int64_t>(t.num_hidden_layers, 0)), false);
  for (int64_t i : t.cross_attention_layers) {
    if (i < 0 || i >= t.num_hidden_layers || seen[static_cast<size_t>(i)]) {
      return absl::InvalidArgumentError(absl::StrCat(
          file, ": text_config.cross_attention_layers entry ", i,
          " is not a distinct layer index in 0..", t.num_hidden_layers - 1));
    }
    seen[static_cast<size_t>(i)] = true;
  }
  if (static_cast<int64_t>(t.cross_attention_layers.size()) >= t.num_hidden_layers) {
    return absl::InvalidArgumentError(
        absl::StrCat(file, ": every text layer is a cross-attention layer; none would run on text alone"));
  }
  if (c->image_token_index < 0 || c->image_token_index >= t.vocab_size + 8) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": image_token_index ", c->image_token_index,
                                                   " is outside the embedding table (vocab_size + 8 = ",
                                                   t.vocab_size + 8, " rows)"));
  }
  return c;
}

// ---------------------------------------------------------------------------
// Weight names.

// Meta / LLaVA-CoT downloads and transformers' save_pretrained; transformers'
// module names (MllamaForConditionalGeneration); a bare MllamaModel.
inline constexpr WeightScheme kMllamaWeightSchemes[] = {
    {"language_model.model", "vision_model", "multi_modal_projector", "language_model.lm_head."},
    {"model.language_model", "model.vision_model", "model.multi_modal_projector", "lm_head."},
    {"language_model", "vision_model", "multi_modal_projector", "lm_head."},
};

// ---------------------------------------------------------------------------
// Processor.

// pixel_values float32 [B, images, max_tiles, 3, tile, tile], aspect_ratio_ids
// int64 [B, images], aspect_ratio_mask int64 [B, images, max_tiles].
using MllamaPixels = MllamaPixelBatch;

class MllamaProcessor {
 public:
  explicit MllamaProcessor(MllamaImageProcessor image_processor)
      : image_processor_(std::move(image_processor)) {}

  // One image per sample.
  absl::StatusOr<MllamaPixels> Preprocess(std::span<const io::Image> images) const {
    return image_processor_.Preprocess(images);
  }

  const MllamaImageProcessor& image_processor() const { return image_processor_; }

 private:
  MllamaImageProcessor image_processor_;
};

// MllamaProcessor's cross_attention_mask for ids [B, S]: int64 [B, S,
// images, max_tiles], 1 where a text row may attend to a tile.
// `num_tiles[b][j]` is image j's tile count in sample b. Ranges as
// get_cross_attention_token_mask: image j covers its token up to the next
// image token (the last one to the end), consecutive image tokens all
// reaching as far as the last of the run.
inline at::Tensor MllamaTileAttentionRows(const at::Tensor& input_ids, int64_t image_token_id,
                                          const std::vector<std::vector<int64_t>>& num_tiles,
                                          int64_t images, int64_t max_tiles) {
  const at::Tensor ids = input_ids.to(at::kCPU, at::kLong).contiguous();
  const int64_t batch = ids.size(0), length = ids.size(1);
  at::Tensor out = at::zeros({batch, length, images, max_tiles}, at::kLong);
  const int64_t* data = ids.data_ptr<int64_t>();
  for (int64_t b = 0; b < batch; ++b) {
    std::vector<int64_t> locations;
    for (int64_t i = 0; i < length; ++i) {
      if (data[b * length + i] == image_token_id) locations.push_back(i);
    }
    std::vector<std::pair<int64_t, int64_t>> ranges;
    if (locations.size() == 1) {
      ranges.push_back({locations[0], -1});
    } else if (locations.size() > 1) {
      for (size_t k = 0; k + 1 < locations.size(); ++k) ranges.push_back({locations[k], locations[k + 1]});
      ranges.push_back({locations.back(), length});
      int64_t last_end = ranges.back().second;
      for (auto it = ranges.rbegin(); it != ranges.rend(); ++it) {
        if (it->first == it->second - 1) it->second = last_end;
        last_end = it->second;
      }
    }
    for (size_t j = 0; j < ranges.size() && j < num_tiles[static_cast<size_t>(b)].size(); ++j) {
      const int64_t start = ranges[j].first;
      int64_t end = std::min(ranges[j].second, length);
      if (end == -1) end = length;
      out[b].slice(0, start, end)
          .select(1, static_cast<int64_t>(j))
          .slice(1, 0, num_tiles[static_cast<size_t>(b)][j])
          .fill_(1);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// Model.

// How the text-only forward numbers its hidden states (see the file comment).
enum class MllamaTextOnlyNumbering {
  kSkipped,   // transformers >= 4.55 (5.3): only the layers that run; 33 states
  kRepeated,  // transformers <= 4.54: every layer, skipped ones repeat; 41 states
};

// What every decoder layer of one prompt shares: RoPE, and with images the
// cross-attention mask of the rows that run and which rows see an image.
struct MllamaLayerContext {
  nn::CosSin cos_sin;
  bool image_numbering = true;  // hidden states numbered as with an image
  nn::AttentionMask cross_mask;  // [R, 1, rows, images * tiles * P]
  at::Tensor row_mask;           // [R, rows, 1]: 1 where a row sees some tile
};

class MllamaModel : public MultimodalForward<MllamaModel, MllamaPixels, MllamaLayerContext> {
 public:
  static absl::StatusOr<MllamaModel> Load(const std::string& model_dir, const LoadOptions& options) {
    SPATIALID_ASSIGN_OR_RETURN(MllamaConfig config, ReadMllamaConfig(model_dir));
    SPATIALID_ASSIGN_OR_RETURN(nn::TextDecoderShape text_shape, MllamaDecoderShape(config.text_config));
    SPATIALID_ASSIGN_OR_RETURN(CrossAttentionShape cross_shape,
                               MllamaCrossAttentionShape(config.text_config));
    SPATIALID_ASSIGN_OR_RETURN(MllamaVisionShape vision_shape,
                               MllamaVisionShapeOf(config.vision_config));
    SPATIALID_ASSIGN_OR_RETURN(at::ScalarType config_dtype, DtypeFromConfig(config.dtype));
    SPATIALID_ASSIGN_OR_RETURN(io::Checkpoint ckpt, io::Checkpoint::Open(model_dir));
    SPATIALID_ASSIGN_OR_RETURN(WeightNames names,
                               DetectWeightNames(ckpt, kMllamaWeightSchemes, "Mllama"));
    const at::ScalarType dtype = options.dtype.value_or(config_dtype);
    MllamaModel m;
    m.config_ = config;
    m.dtype_ = dtype;
    m.device_ = options.device;
    const int64_t n = config.text_config.num_hidden_layers;
    m.cross_slot_.assign(static_cast<size_t>(n), -1);
    try {
      io::StateDictLoader loader(ckpt, dtype, options.device);
      for (const std::string& p : names.unused_prefixes) loader.IgnorePrefix(p);
      SPATIALID_ASSIGN_OR_RETURN(m.vision_, MllamaVisionEncoder::Load(loader, names.vision, vision_shape));
      m.projector_ = nn::Linear::Load(loader, names.projector, vision_shape.output_dim(),
                                      text_shape.hidden_size, /*with_bias=*/true);
      SPATIALID_ASSIGN_OR_RETURN(m.text_,
                                 nn::TextDecoder::Load(loader, names.text, text_shape, options.device));
      for (int64_t i = 0; i < n; ++i) {
        if (!m.text_.IsOtherLayer(i)) {
          m.self_layers_.push_back(i);
          continue;
        }
        m.cross_slot_[static_cast<size_t>(i)] = static_cast<int>(m.cross_layers_.size());
        m.cross_layers_.push_back(GatedCrossAttentionLayer::Load(
            loader, nn::Join(names.text, absl::StrCat("layers.", i)), cross_shape));
      }
      SPATIALID_RETURN_IF_ERROR(loader.Finish());
      // Views into packed weights: the plain forward is unchanged.
      m.text_.PackWeights();
    } catch (const c10::Error& e) {
      return absl::InternalError(
          absl::StrCat(model_dir, ": loading weights failed: ", e.what_without_backtrace()));
    }
    return m;
  }

  const MllamaConfig& config() const { return config_; }
  // Decoder layers, cross-attention layers included (40 for the 11B models).
  int64_t num_layers() const { return text_.num_layers(); }
  // The text-only forward's hidden states are 0..text_only_num_layers():
  // 32 for the 11B models with kSkipped (the default), 40 with kRepeated.
  int64_t text_only_num_layers() const {
    return text_only_numbering_ == MllamaTextOnlyNumbering::kSkipped
               ? static_cast<int64_t>(self_layers_.size())
               : num_layers();
  }
  MllamaTextOnlyNumbering text_only_numbering() const { return text_only_numbering_; }
  void set_text_only_numbering(MllamaTextOnlyNumbering n) { text_only_numbering_ = n; }
  // The numbering that keeps text-only index i at image index i's depth; the
  // extractor picks it so the grid experiment's text embeddings exist at
  // every kept layer.
  static constexpr MllamaTextOnlyNumbering kTextOnlyNumberingLikeImages =
      MllamaTextOnlyNumbering::kRepeated;
  int64_t hidden_size() const { return text_.hidden_size(); }
  at::ScalarType dtype() const { return dtype_; }
  at::Device device() const { return device_; }
  // Vision positions each image contributes to cross-attention: tiles x
  // (patches + class token) = 4 x 1601 = 6404 for the 11B models.
  int64_t vision_positions_per_image() const {
    return vision_.shape.max_num_tiles * vision_.shape.num_patches();
  }

  // "<|image|>" stays one token (MllamaProcessor does not expand it).
  ImagePrompt ImagePromptFor(const MllamaPixels& /*pixels: no expansion*/) const {
    ImagePrompt p;
    p.placeholder = kImageToken;
    p.expansion = kImageToken;
    p.image_token = kImageToken;
    p.image_token_id = config_.image_token_index;
    p.tokens_per_image = 1;
    return p;
  }

  static constexpr char kImageToken[] = "<|image|>";

  // --- MultimodalForward hooks (families/multimodal_forward.h) ---

  static constexpr std::string_view kName = "Mllama";
  // The image reaches the text through cross-attention, not the embeddings.
  static constexpr bool kFeaturesReplaceImageTokens = false;
  int64_t embedding_rows() const { return text_.shape.vocab_size; }
  int64_t image_token_id() const { return config_.image_token_index; }

  absl::Status CheckPixels(const MllamaPixels& pixels) const { return CheckPixels(pixels, -1); }

  ImageTokenCount ExpectedImageTokens(const MllamaPixels& pixels) const {
    const int64_t images = pixels.pixel_values.size(0) * pixels.pixel_values.size(1);
    return {std::vector<int64_t>(static_cast<size_t>(images), 1),
            "one <|image|> per image (MllamaProcessor does not expand it)"};
  }

  // The tile count decides the cross-attention mask.
  std::vector<int64_t> ImageGeometry(const MllamaPixels& pixels, size_t image) const {
    const at::Tensor counts = pixels.aspect_ratio_mask.reshape({-1, pixels.aspect_ratio_mask.size(-1)})
                                  .sum(-1)
                                  .to(at::kCPU, at::kLong);
    return {counts[static_cast<int64_t>(image)].item<int64_t>()};
  }

  bool LayerReadsImage(int64_t i) const { return cross_slot_[static_cast<size_t>(i)] >= 0; }

  // The text before the image sees the image from the first cross-attention
  // layer on (an average over every vision position: gated_cross_attention.h).
  int64_t PrefixDepthHook() const {
    for (size_t i = 0; i < cross_slot_.size(); ++i) {
      if (cross_slot_[i] >= 0) return static_cast<int64_t>(i);
    }
    return num_layers();
  }

  at::Tensor Embed(const at::Tensor& ids) const { return text_.Embed(ids); }

  // Vision encoder + projector: the cross-attention states [B, images,
  // tiles, P, hidden].
  at::Tensor EncodeImages(const MllamaPixels& pixels, bool /*packed*/) const {
    const at::Tensor v = vision_(pixels.pixel_values.to(device_, /*non_blocking=*/true),
                                 pixels.aspect_ratio_ids.to(device_, /*non_blocking=*/true),
                                 pixels.aspect_ratio_mask.to(device_, /*non_blocking=*/true));
    return projector_(v);
  }

  MllamaLayerContext PrepareLayers(const TokenLayout& tokens, const MllamaPixels* pixels,
                                   int64_t past, int64_t length) const {
    MllamaLayerContext c;
    c.cos_sin = text_.RotaryFor(past, length, tokens.seq_len(), dtype_);
    c.image_numbering = pixels != nullptr || tokens.image_tokens() > 0;
    if (pixels == nullptr) return c;
    // Tile counts of each row's images (a one-row prompt: the first row's).
    const int64_t images = pixels->pixel_values.size(1);
    const at::Tensor counts = pixels->aspect_ratio_mask.sum(-1).to(at::kCPU, at::kLong);
    std::vector<std::vector<int64_t>> num_tiles(static_cast<size_t>(tokens.rows()));
    for (int64_t b = 0; b < tokens.rows(); ++b) {
      for (int64_t j = 0; j < images; ++j) {
        num_tiles[static_cast<size_t>(b)].push_back(counts[b][j].item<int64_t>());
      }
    }
    const at::Tensor tiles = MllamaTileAttentionRows(tokens.host_ids(), image_token_id(), num_tiles,
                                                     images, vision_.shape.max_num_tiles)
                                 .slice(1, past, length)
                                 .to(device_);
    auto [mask, rows_seen] = MllamaCrossAttentionMask(tiles, vision_.shape.num_patches(), dtype_);
    c.cross_mask = nn::AttentionMask::Explicit(std::move(mask));
    c.row_mask = rows_seen.select(1, 0);  // [R, S, 1]
    return c;
  }

  at::Tensor RunLayer(int64_t i, const at::Tensor& x, const MllamaLayerContext& c,
                      const at::Tensor& image_features, const nn::ExtendedCall& call) const {
    const nn::AttentionMask causal = nn::AttentionMask::Causal();
    if (!c.image_numbering) {
      if (text_only_numbering_ == MllamaTextOnlyNumbering::kSkipped) {
        return text_.RunLayer(self_layers_[static_cast<size_t>(i)], x, c.cos_sin, causal, call);
      }
      // kRepeated: a skipped layer passes its input on.
      if (cross_slot_[static_cast<size_t>(i)] >= 0) {
        return call.query_rows.defined() ? x.index_select(1, call.query_rows) : x;
      }
    }
    const int slot = cross_slot_[static_cast<size_t>(i)];
    if (slot < 0) return text_.RunLayer(i, x, c.cos_sin, causal, call);
    // Cross-attention reads the image, not the other rows: the requested
    // rows alone give the same outputs.
    const GatedCrossAttentionLayer& layer = cross_layers_[static_cast<size_t>(slot)];
    const CrossKeyValues kv = layer.cross_attn.Project(
        image_features.reshape({-1, image_features.size(3), hidden_size()}), x.size(0));
    if (!call.query_rows.defined()) return layer(x, kv, c.cross_mask, c.row_mask);
    const at::Tensor& rows = call.query_rows;
    return layer(x.index_select(1, rows), kv,
                 nn::AttentionMask::Explicit(c.cross_mask.mask.index_select(-2, rows)),
                 c.row_mask.index_select(1, rows));
  }

  at::Tensor FinalNorm(const at::Tensor& x) const { return text_.FinalNorm(x); }

 private:
  MllamaModel() = default;

  // `batch` < 0: any batch size.
  absl::Status CheckPixels(const MllamaPixels& pixels, int64_t batch) const {
    const MllamaVisionShape& v = vision_.shape;
    const at::Tensor& p = pixels.pixel_values;
    if (!p.defined() || p.dim() != 6 || p.size(0) < 1 || p.size(1) < 1 || p.size(2) != v.max_num_tiles ||
        p.size(3) != v.num_channels || p.size(4) != v.image_size || p.size(5) != v.image_size ||
        !p.is_floating_point()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Mllama expects float pixel_values [B, images, ", v.max_num_tiles, ", ", v.num_channels, ", ",
          v.image_size, ", ", v.image_size, "] (max_num_tiles and the tile size); got ",
          p.defined() ? c10::str(p.sizes()) : std::string("none")));
    }
    const int64_t b = p.size(0), images = p.size(1);
    if (batch >= 0 && b != batch) {
      return absl::InvalidArgumentError(absl::StrCat("Mllama forward: ", b, " pixel rows for ", batch,
                                                     " id rows"));
    }
    const at::Tensor& ids = pixels.aspect_ratio_ids;
    const at::Tensor& mask = pixels.aspect_ratio_mask;
    if (!ids.defined() || !mask.defined() || ids.sizes() != at::IntArrayRef{b, images} ||
        mask.sizes() != at::IntArrayRef{b, images, v.max_num_tiles} || ids.is_floating_point() ||
        mask.is_floating_point()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Mllama expects integer aspect_ratio_ids [", b, ", ", images, "] and aspect_ratio_mask [", b, ", ",
          images, ", ", v.max_num_tiles, "] with the pixels"));
    }
    if ((ids < 0).logical_or(ids > v.max_aspect_ratio_id).any().item<bool>()) {
      return absl::InvalidArgumentError(absl::StrCat("Mllama: aspect_ratio_ids outside 0..",
                                                     v.max_aspect_ratio_id));
    }
    if ((mask != 0).logical_and(mask != 1).any().item<bool>()) {
      return absl::InvalidArgumentError("Mllama: aspect_ratio_mask holds values other than 0 and 1");
    }
    return absl::OkStatus();
  }

  MllamaConfig config_;
  at::ScalarType dtype_ = at::kFloat;
  at::Device device_ = at::kCPU;
  MllamaVisionEncoder vision_;
  nn::Linear projector_;
  nn::TextDecoder text_;
  std::vector<GatedCrossAttentionLayer> cross_layers_;
  std::vector<int> cross_slot_;       // decoder layer -> index in cross_layers_, -1 for self-attention
  std::vector<int64_t> self_layers_;  // decoder indices of the self-attention layers, in order
  MllamaTextOnlyNumbering text_only_numbering_ = MllamaTextOnlyNumbering::kSkipped;
};

// ---------------------------------------------------------------------------
// Traits.

struct Mllama {
  using Config = MllamaConfig;
  using Model = MllamaModel;
  using Processor = MllamaProcessor;
  using PixelBatch = MllamaPixels;
  static constexpr std::string_view kModelType = "mllama";
  static constexpr std::string_view kName = "Llama 3.2 Vision";
  static constexpr ModelPreset kPresets[] = {
      {"llama-11b", "meta-llama/Llama-3.2-11B-Vision-Instruct", "bfloat16", 32, 41},
      {"llava-cot", "Xkev/Llama-3.2V-11B-cot", "bfloat16", 40, 41},
  };

  static absl::StatusOr<Model> Load(const std::string& model_dir, const LoadOptions& options) {
    return MllamaModel::Load(model_dir, options);
  }

  static absl::StatusOr<Processor> LoadProcessor(const std::string& model_dir,
                                                 const ProcessorOptions& options) {
    SPATIALID_ASSIGN_OR_RETURN(MllamaImageProcessorConfig cfg,
                               vision::LoadImageProcessorConfig<MllamaImageProcessorConfig>(model_dir));
    SPATIALID_ASSIGN_OR_RETURN(MllamaImageProcessor p,
                               MllamaImageProcessor::Create(cfg, options.resize));
    return MllamaProcessor(std::move(p));
  }
};

static_assert(MultimodalHooks<MllamaModel, MllamaPixels, MllamaLayerContext>);
static_assert(CheckFamily<Mllama>());

}  // namespace spatialid::families
