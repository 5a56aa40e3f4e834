// Qwen2-VL (Qwen/Qwen2-VL-2B-Instruct) and Qwen2.5-VL
// (Qwen/Qwen2.5-VL-3B-Instruct, -7B-Instruct): transformers'
// `Qwen2VLForConditionalGeneration` (models/qwen2_vl/modeling_qwen2_vl.py)
// and `Qwen2_5_VLForConditionalGeneration` (models/qwen2_5_vl/...), 5.3.0,
// without the LM head. One header, two version policies:
//
//                      Qwen2VLVersion             Qwen2_5_VLVersion
//   ViT norms, ln_q    LayerNorm (eps 1e-6)       RMSNorm (eps 1e-6)
//   ViT MLP            fc1, quick_gelu, fc2       gate/up/down, silu (biased)
//   ViT attention      whole image                windows of window_size px,
//                                                 whole image at fullatt_block_indexes
//   ViT width keys     embed_dim, mlp_ratio;      hidden_size, intermediate_size;
//                      merger out = hidden_size   merger out = out_hidden_size
//
//   pixels [patches, 3*2*14*14] (vision/qwen2_vl_image_processor.h)
//     --patch_embed (Conv3d, kernel = stride = [2, 14, 14], no bias)-->
//     [patches, width]; 2D rotary angles per patch (nn/vision_rotary.h)
//     [Qwen2.5-VL: merge blocks regrouped window by window (nn/patch_grid.h)]
//     --depth blocks: x + attn(norm1(x)), x + mlp(norm2(x)); attention within
//       each image or window (nn/segment_attention.h)-->
//     --merger: ln_q, 2x2 patches folded into one row, mlp.0, GELU, mlp.2-->
//     [Qwen2.5-VL: back to the processor's order]  [tokens, text hidden]
//   ids [B, S] --embed_tokens, image features into the <|image_pad|> slots
//     (masked_scatter)--> hidden state 0 --Qwen2 decoder (q/k/v biases) with
//     multimodal RoPE (nn/mrope.h: 3D position ids, mrope_section)-->
//     hidden states 1..N, the last after the final RMSNorm
//     (families/hidden_states.h).
//
// The prompt: the chat template writes
// "<|vision_start|><|image_pad|><|vision_end|>" per image (with Qwen's default
// system turn) and Qwen2VLProcessor repeats "<|image_pad|>"
// grid_t * grid_h * grid_w / merge^2 times: 1024 for an 896 x 896 image.
//
// Position ids: see nn/mrope.h. transformers 5.3.0 gives Qwen2.5-VL's image
// tokens the temporal id start * tokens_per_second (an upstream bug,
// huggingface/transformers#45325, fixed later); the default here is the
// image start, as Qwen's code and transformers 4.x (the reference's runs)
// compute it. `Qwen2VLOptions::image_temporal` selects the 5.3.0 numbers.
//
// Weight names: the hub checkpoints and transformers 5.3's save_pretrained
// use model.* (text), visual.*, lm_head.*; transformers' module names are
// model.language_model.*, model.visual.*; a bare Qwen2VLModel has
// language_model.*, visual.*. All load (`kQwen2VLWeightSchemes`).
//
// Example:
//   SPATIALID_ASSIGN_OR_RETURN(auto model, Qwen2_5_VL::Load(dir, {.dtype = at::kHalf}));
//   SPATIALID_ASSIGN_OR_RETURN(auto proc, Qwen2_5_VL::LoadProcessor(dir, {}));
//   SPATIALID_ASSIGN_OR_RETURN(Qwen2VLImages px, proc.Preprocess(images));
//   families::HiddenStateRequest req{.layers = {0, 14, 28}, .positions = {1042}};
//   SPATIALID_ASSIGN_OR_RETURN(at::Tensor h, model.Forward(ids, px, req));  // [3, B, 1, 3584]
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/argsort.h>
#include <ATen/ops/conv3d.h>
#include <c10/core/InferenceMode.h>
#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "spatialid/config/fields.h"
#include "spatialid/config/processor_config.h"
#include "spatialid/families/qwen2_vl/config.h"
#include "spatialid/families/config_adapters.h"
#include "spatialid/families/family.h"
#include "spatialid/families/hidden_states.h"
#include "spatialid/families/model_preset.h"
#include "spatialid/families/multimodal_forward.h"
#include "spatialid/families/weight_names.h"
#include "spatialid/io/checkpoint.h"
#include "spatialid/io/json_file.h"
#include "spatialid/nn/activation.h"
#include "spatialid/nn/attention.h"
#include "spatialid/nn/mlp.h"
#include "spatialid/families/qwen2_vl/mrope.h"
#include "spatialid/nn/norm.h"
#include "spatialid/families/qwen2_vl/patch_grid.h"
#include "spatialid/families/qwen2_vl/segment_attention.h"
#include "spatialid/nn/text_decoder.h"
#include "spatialid/nn/transformer_block.h"
#include "spatialid/families/qwen2_vl/vision_rotary.h"
#include "spatialid/util/status.h"
#include "spatialid/vision/clip_image_processor.h"  // LoadImageProcessorConfig
#include "spatialid/families/qwen2_vl/image_processor.h"
#include "spatialid/nn/upload.h"

namespace spatialid::families {

// ---------------------------------------------------------------------------
// Config: the vision tower's numbers, whichever version's keys hold them.

struct QwenVisionShape {
  int64_t depth = 0;
  int64_t width = 0;             // Qwen2-VL embed_dim, Qwen2.5-VL hidden_size
  int64_t num_heads = 0;         // num_heads
  int64_t mlp_hidden = 0;        // int(embed_dim * mlp_ratio) / intermediate_size
  nn::Activation act = nn::Activation::kQuickGelu;  // hidden_act
  int64_t out_width = 0;         // merger output: hidden_size / out_hidden_size
  int64_t in_channels = 3;       // in_channels
  int64_t patch_size = 14;       // patch_size
  int64_t temporal_patch_size = 2;  // temporal_patch_size
  int64_t merge_size = 2;        // spatial_merge_size
  // Qwen2.5-VL: window side in merge blocks (window_size / merge / patch) and
  // the blocks that attend over the whole image; 0 / empty: no windows.
  int64_t window_blocks = 0;
  std::vector<int64_t> full_attention_blocks;

  int64_t head_dim() const { return num_heads > 0 ? width / num_heads : 0; }
  int64_t patch_values() const { return in_channels * temporal_patch_size * patch_size * patch_size; }
};

// LayerNorm(eps=1e-6) and RMSNorm(eps=1e-6) as Qwen-VL's ViT hard-codes them.
inline constexpr double kQwenVisionNormEps = 1e-6;

// The keys both versions' vision configs spell alike; the version policy
// fills in the widths.
template <class VisionConfig>
absl::StatusOr<QwenVisionShape> QwenVisionCommonShape(const VisionConfig& v) {
  QwenVisionShape s;
  s.depth = v.depth;
  s.num_heads = v.num_heads;
  SPATIALID_ASSIGN_OR_RETURN(s.act, nn::ParseActivation(v.hidden_act));
  s.in_channels = v.in_channels;
  s.patch_size = v.patch_size;
  s.temporal_patch_size = v.temporal_patch_size;
  s.merge_size = v.spatial_merge_size;
  return s;
}

// ---------------------------------------------------------------------------
// Version policies: what differs between Qwen2-VL and Qwen2.5-VL.

struct Qwen2VLVersion {
  using Config = Qwen2VLConfig;
  using VisionNorm = nn::LayerNorm;
  using VisionMlp = nn::Mlp;
  static constexpr std::string_view kModelType = "qwen2_vl";
  static constexpr std::string_view kName = "Qwen2-VL";
  static constexpr ModelPreset kPresets[] = {
      {"qwen2-2b", "Qwen/Qwen2-VL-2B-Instruct", "bfloat16", 28, 29},
  };

  static absl::StatusOr<QwenVisionShape> VisionShape(const Qwen2VLVisionConfig& v) {
    SPATIALID_ASSIGN_OR_RETURN(QwenVisionShape s, QwenVisionCommonShape(v));
    s.width = v.embed_dim;
    s.mlp_hidden = static_cast<int64_t>(static_cast<double>(v.embed_dim) * v.mlp_ratio);  // int()
    s.out_width = v.hidden_size;
    return s;
  }
  // Qwen2-VL's get_rope_index has no time interval for images.
  static int64_t ImageTemporalScale(const Config&, bool /*transformers_5_3*/) { return 1; }

  template <nn::WeightLoader L>
  static VisionNorm LoadNorm(L& loader, const std::string& prefix, int64_t dim) {
    return nn::LayerNorm::Load(loader, prefix, dim, kQwenVisionNormEps);
  }
  template <nn::WeightLoader L>
  static VisionMlp LoadMlp(L& loader, const std::string& prefix, const QwenVisionShape& s) {
    return nn::Mlp::Load(loader, prefix, s.width, s.mlp_hidden, s.width, s.act, /*with_bias=*/true);
  }
};

struct Qwen2_5_VLVersion {
  using Config = Qwen2_5_VLConfig;
  using VisionNorm = nn::RmsNorm<>;
  using VisionMlp = nn::GatedMlp;
  static constexpr std::string_view kModelType = "qwen2_5_vl";
  static constexpr std::string_view kName = "Qwen2.5-VL";
  static constexpr ModelPreset kPresets[] = {
      {"qwen-7b", "Qwen/Qwen2.5-VL-7B-Instruct", "float16", 28, 29},
      {"qwen-3b", "Qwen/Qwen2.5-VL-3B-Instruct", "float16", 36, 37},
  };

  static absl::StatusOr<QwenVisionShape> VisionShape(const Qwen2_5_VLVisionConfig& v) {
    SPATIALID_ASSIGN_OR_RETURN(QwenVisionShape s, QwenVisionCommonShape(v));
    s.width = v.hidden_size;
    s.mlp_hidden = v.intermediate_size;
    s.out_width = v.out_hidden_size;
    const int64_t unit = v.spatial_merge_size * v.patch_size;
    s.window_blocks = unit > 0 ? v.window_size / v.spatial_merge_size / v.patch_size : 0;
    if (s.window_blocks <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "vision_config.window_size ", v.window_size, " is smaller than one merge block (",
          unit, " px)"));
    }
    s.full_attention_blocks = v.fullatt_block_indexes;
    for (int64_t i : s.full_attention_blocks) {
      if (i < 0 || i >= v.depth) {
        return absl::InvalidArgumentError(absl::StrCat("vision_config.fullatt_block_indexes has ", i,
                                                       ", outside 0..", v.depth - 1));
      }
    }
    return s;
  }
  // transformers 5.3.0 multiplies the image start by tokens_per_second.
  static int64_t ImageTemporalScale(const Config& c, bool transformers_5_3) {
    return transformers_5_3 ? c.vision_config.tokens_per_second : 1;
  }

  template <nn::WeightLoader L>
  static VisionNorm LoadNorm(L& loader, const std::string& prefix, int64_t dim) {
    return nn::RmsNorm<>::Load(loader, prefix, dim, kQwenVisionNormEps);
  }
  template <nn::WeightLoader L>
  static VisionMlp LoadMlp(L& loader, const std::string& prefix, const QwenVisionShape& s) {
    return nn::GatedMlp::Load(loader, prefix, s.width, s.mlp_hidden, s.act, /*with_bias=*/true);
  }
};

template <class V>
concept QwenVLVersion = requires {
  typename V::Config;
  typename V::VisionNorm;
  typename V::VisionMlp;
  { V::kModelType } -> std::convertible_to<std::string_view>;
  { V::kName } -> std::convertible_to<std::string_view>;
};

// Reads `<model_dir>/config.json` as the version's config; a folder of the
// other version (or another family) is an error saying so.
template <QwenVLVersion V>
absl::StatusOr<typename V::Config> ReadQwen2VLConfig(const std::string& model_dir) {
  const std::string file = config::JsonPathIn(model_dir, "config.json");
  SPATIALID_ASSIGN_OR_RETURN(nlohmann::json raw, io::ReadJsonFile(file));
  const std::string got = raw.is_object() && raw.contains("model_type") && raw["model_type"].is_string()
                              ? raw["model_type"].get<std::string>()
                              : std::string("(none)");
  if (got != V::kModelType) {
    return absl::InvalidArgumentError(absl::StrCat(
        file, ": model_type: expected \"", std::string(V::kModelType), "\", got \"", got, "\" (",
        std::string(V::kName), " checkpoints expected)"));
  }
  return config::ParseConfigJson<typename V::Config>(raw, file);
}

// ---------------------------------------------------------------------------
// Weight names.

// The hub checkpoints and save_pretrained; transformers' module names; a
// bare Qwen2VLModel. The merger is part of the vision tower (no projector).
inline constexpr WeightScheme kQwen2VLWeightSchemes[] = {
    {"model", "visual", "", "lm_head."},
    {"model.language_model", "model.visual", "", "lm_head."},
    {"language_model", "visual", "", "lm_head."},
};

// ---------------------------------------------------------------------------
// The vision tower.

template <QwenVLVersion V>
class QwenVisionTower {
 public:
  using Block = nn::TransformerBlock<typename V::VisionNorm, typename V::VisionMlp,
                                     PackedQkvSelfAttention>;

  template <nn::WeightLoader L>
  static absl::StatusOr<QwenVisionTower> Load(L& loader, const std::string& prefix,
                                              const QwenVisionShape& s, at::Device device) {
    if (s.depth <= 0 || s.width <= 0 || s.num_heads <= 0 || s.width % s.num_heads != 0 ||
        s.mlp_hidden <= 0 || s.out_width <= 0 || s.merge_size <= 0 || s.patch_size <= 0 ||
        s.temporal_patch_size <= 0 || s.in_channels <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "vision tower: depth, width (divisible by num_heads ", s.num_heads, "), MLP width, "
          "output width, patch, temporal patch and merge sizes must be positive"));
    }
    QwenVisionTower t;
    t.shape_ = s;
    SPATIALID_ASSIGN_OR_RETURN(t.rotary_, VisionRotary::Create(s.head_dim(), 10000.0, device));
    t.patch_embed_ = loader.Take(nn::Join(prefix, "patch_embed.proj.weight"),
                                 {s.width, s.in_channels, s.temporal_patch_size, s.patch_size, s.patch_size});
    for (int64_t i = 0; i < s.depth; ++i) {
      const std::string p = nn::Join(prefix, absl::StrCat("blocks.", i));
      Block b;
      b.attn_norm = V::LoadNorm(loader, nn::Join(p, "norm1"), s.width);
      b.attn = PackedQkvSelfAttention::Load(loader, nn::Join(p, "attn"), s.width, s.num_heads);
      b.mlp_norm = V::LoadNorm(loader, nn::Join(p, "norm2"), s.width);
      b.mlp = V::LoadMlp(loader, nn::Join(p, "mlp"), s);
      t.blocks_.push_back(std::move(b));
    }
    const int64_t merged = s.width * s.merge_size * s.merge_size;
    t.merger_norm_ = V::LoadNorm(loader, nn::Join(prefix, "merger.ln_q"), s.width);
    // nn.Sequential(Linear, GELU(), Linear): exact-erf GELU.
    t.merger_mlp_ = nn::Mlp::Load(loader, nn::Join(prefix, "merger"), merged, merged, s.out_width,
                                  nn::Activation::kGelu, /*with_bias=*/true,
                                  nn::Mlp::Names{"mlp.0", "mlp.2"});
    return t;
  }

  const QwenVisionShape& shape() const { return shape_; }

  // pixel_values [patches, patch_values] (any float dtype) for `grids` ->
  // merged features [tokens, out_width] in the weights' dtype, in the
  // processor's token order.
  at::Tensor operator()(const at::Tensor& pixel_values, std::span<const GridThw> grids) const {
    const QwenVisionShape& s = shape_;
    const at::Device device = patch_embed_.device();
    const int64_t unit = s.merge_size * s.merge_size;
    at::Tensor x = at::conv3d(pixel_values.to(device, /*non_blocking=*/true)
                                  .to(patch_embed_.scalar_type())
                                  .view({-1, s.in_channels, s.temporal_patch_size, s.patch_size,
                                         s.patch_size}),
                              patch_embed_, {},
                              {s.temporal_patch_size, s.patch_size, s.patch_size})
                       .view({-1, s.width});
    const int64_t n = x.size(0);
    at::Tensor row_col = PatchRowColInMergeOrder(grids, s.merge_size);
    std::vector<int64_t> image_patches;
    for (const GridThw& g : grids) {
      for (int64_t t = 0; t < g.t; ++t) image_patches.push_back(g.h * g.w);
    }
    const Segments images = Segments::FromLengths(image_patches, device);
    std::optional<Segments> windows;
    at::Tensor block_index;
    if (s.window_blocks > 0) {
      WindowPartition w = PartitionIntoWindows(grids, s.merge_size, s.window_blocks);
      block_index = nn::UploadAsync(w.block_index, device);
      windows = Segments::FromLengths(w.window_patches, device);
      // Merge blocks move as units: [blocks, unit, ...] rows reordered.
      x = x.view({n / unit, unit, -1}).index_select(0, block_index).view({n, -1});
      row_col = row_col.view({n / unit, unit, 2}).index_select(0, w.block_index).view({n, 2});
    }
    const nn::CosSin rotary = rotary_(row_col);
    for (size_t i = 0; i < blocks_.size(); ++i) {
      const bool full = !windows || std::find(s.full_attention_blocks.begin(),
                                              s.full_attention_blocks.end(),
                                              static_cast<int64_t>(i)) != s.full_attention_blocks.end();
      x = blocks_[i].Apply(x, rotary, full ? images : *windows);
    }
    at::Tensor merged = merger_mlp_(merger_norm_(x).view({-1, s.width * unit}));
    if (block_index.defined()) merged = merged.index_select(0, at::argsort(block_index));
    return merged;
  }

 private:
  QwenVisionShape shape_;
  VisionRotary rotary_;
  at::Tensor patch_embed_;  // Conv3d weight [width, C, t, p, p]
  std::vector<Block> blocks_;
  typename V::VisionNorm merger_norm_;
  nn::Mlp merger_mlp_;
};

// ---------------------------------------------------------------------------
// Model.

// Run-time choices of this family beyond LoadOptions.
struct Qwen2VLOptions {
  // Qwen2.5-VL image tokens' temporal position id: the image start (Qwen's
  // code, transformers 4.x, the fixed transformers) or transformers 5.3.0's
  // start * tokens_per_second. Qwen2-VL is the same either way.
  enum class ImageTemporal { kImageStart, kTransformers5_3 };
  ImageTemporal image_temporal = ImageTemporal::kImageStart;
};

// What every decoder layer of one prompt shares: the multimodal RoPE of
// its positions.
struct Qwen2VLLayerContext {
  nn::CosSin cos_sin;
};

template <QwenVLVersion V>
class Qwen2VLModel
    : public MultimodalForward<Qwen2VLModel<V>, Qwen2VLImages, Qwen2VLLayerContext> {
 public:
  using Config = typename V::Config;
  using Pixels = Qwen2VLImages;

  static absl::StatusOr<Qwen2VLModel> Load(const std::string& model_dir, const LoadOptions& options,
                                           const Qwen2VLOptions& qwen = {}) {
    SPATIALID_ASSIGN_OR_RETURN(Config config, ReadQwen2VLConfig<V>(model_dir));
    const auto& t = config.text_config;
    if (t.num_attention_heads <= 0 || t.hidden_size % t.num_attention_heads != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          model_dir, "/config.json: text hidden_size ", t.hidden_size,
          " is not a multiple of num_attention_heads ", t.num_attention_heads));
    }
    if (!t.rope_parameters.mrope_section) {
      return absl::InvalidArgumentError(
          absl::StrCat(model_dir, "/config.json: the text config's RoPE settings lack mrope_section"));
    }
    SPATIALID_ASSIGN_OR_RETURN(nn::TextDecoderShape text_shape, Qwen2DecoderShape(t));
    SPATIALID_ASSIGN_OR_RETURN(QwenVisionShape vision_shape, V::VisionShape(config.vision_config));
    if (vision_shape.out_width != text_shape.hidden_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          model_dir, "/config.json: the vision merger outputs ", vision_shape.out_width,
          " features but the text hidden size is ", text_shape.hidden_size));
    }
    SPATIALID_ASSIGN_OR_RETURN(at::ScalarType config_dtype, DtypeFromConfig(config.dtype));
    SPATIALID_ASSIGN_OR_RETURN(io::Checkpoint ckpt, io::Checkpoint::Open(model_dir));
    SPATIALID_ASSIGN_OR_RETURN(WeightNames names,
                               DetectWeightNames(ckpt, kQwen2VLWeightSchemes, "Qwen-VL"));
    Qwen2VLModel m;
    m.config_ = config;
    m.dtype_ = options.dtype.value_or(config_dtype);
    m.device_ = options.device;
    m.positions_.spatial_merge_size = vision_shape.merge_size;
    m.positions_.image_temporal_scale = V::ImageTemporalScale(
        config, qwen.image_temporal == Qwen2VLOptions::ImageTemporal::kTransformers5_3);
    try {
      io::StateDictLoader loader(ckpt, m.dtype_, options.device);
      for (const std::string& p : names.unused_prefixes) loader.IgnorePrefix(p);
      SPATIALID_ASSIGN_OR_RETURN(m.vision_, QwenVisionTower<V>::Load(loader, names.vision,
                                                                     vision_shape, options.device));
      SPATIALID_ASSIGN_OR_RETURN(m.text_, nn::TextDecoder::Load(loader, names.text, text_shape,
                                                                options.device));
      SPATIALID_ASSIGN_OR_RETURN(m.mrope_, MultimodalRotary::Create(
                                               m.text_.rotary, *t.rope_parameters.mrope_section));
      SPATIALID_RETURN_IF_ERROR(loader.Finish());
      // Views into packed weights: the plain forward is unchanged.
      m.text_.PackWeights();
    } catch (const c10::Error& e) {
      return absl::InternalError(
          absl::StrCat(model_dir, ": loading weights failed: ", e.what_without_backtrace()));
    }
    return m;
  }

  const Config& config() const { return config_; }
  int64_t num_layers() const { return text_.num_layers(); }
  int64_t hidden_size() const { return text_.hidden_size(); }
  at::ScalarType dtype() const { return dtype_; }
  at::Device device() const { return device_; }
  const MropePositionOptions& position_options() const { return positions_; }

  // "<|image_pad|>" -> "<|image_pad|>" x tokens (Qwen2VLProcessor), for the
  // first image of `pixels`; a batch shares one prompt, so its images share
  // one size (the forward checks every image).
  ImagePrompt ImagePromptFor(const Pixels& pixels) const {
    ImagePrompt p;
    p.placeholder = kImageToken;
    p.image_token = kImageToken;
    p.image_token_id = config_.image_token_id;
    p.tokens_per_image = pixels.grids.empty() ? 0 : pixels.grids[0].tokens(positions_.spatial_merge_size);
    p.expansion.reserve(p.placeholder.size() * static_cast<size_t>(p.tokens_per_image));
    for (int64_t i = 0; i < p.tokens_per_image; ++i) p.expansion += kImageToken;
    return p;
  }

  // The 3D position ids [3, B, S] (int64, CPU) the decoder uses for these ids
  // (transformers' get_rope_index); `pixels` null for text only.
  absl::StatusOr<at::Tensor> PositionIds(const at::Tensor& input_ids, const Pixels* pixels) const {
    if (pixels == nullptr) {
      return MropeTextPositionIds(input_ids.size(0), input_ids.size(1), at::kCPU).contiguous();
    }
    return MropePositionIds(input_ids, config_.image_token_id, pixels->grids, positions_);
  }

  static constexpr char kImageToken[] = "<|image_pad|>";

  // --- MultimodalForward hooks (families/multimodal_forward.h) ---

  static constexpr std::string_view kName = V::kName;
  static constexpr bool kFeaturesReplaceImageTokens = true;
  int64_t embedding_rows() const { return config_.text_config.vocab_size; }
  int64_t image_token_id() const { return config_.image_token_id; }

  absl::Status CheckPixels(const Pixels& pixels) const {
    const QwenVisionShape& s = vision_.shape();
    const at::Tensor& p = pixels.pixel_values;
    int64_t patches = 0;
    for (const GridThw& g : pixels.grids) patches += g.patches();
    if (!p.defined() || p.dim() != 2 || !p.is_floating_point() || p.size(1) != s.patch_values() ||
        pixels.grids.empty() || p.size(0) != patches) {
      return absl::InvalidArgumentError(absl::StrCat(
          Name(), " expects float pixel_values [patches, ", s.patch_values(),
          "] with one image_grid_thw row per image covering every patch; got ",
          p.defined() ? c10::str(p.sizes()) : std::string("none"), " for ", pixels.grids.size(),
          " grid(s) of ", patches, " patches"));
    }
    return ValidateGrids(pixels.grids, s.merge_size);
  }

  ImageTokenCount ExpectedImageTokens(const Pixels& pixels) const {
    ImageTokenCount c;
    for (const GridThw& g : pixels.grids) c.per_image.push_back(g.tokens(positions_.spatial_merge_size));
    c.how = absl::StrCat("expand each <|image_pad|> to its image's grid_t*grid_h*grid_w/",
                         positions_.spatial_merge_size * positions_.spatial_merge_size, " tokens");
    return c;
  }

  // The grids decide the positions.
  std::vector<int64_t> ImageGeometry(const Pixels& pixels, size_t image) const {
    const GridThw& g = pixels.grids[image];
    return {g.t, g.h, g.w};
  }

  at::Tensor Embed(const at::Tensor& ids) const { return text_.Embed(ids); }

  // The vision tower's merged features [sum of tokens, text hidden] (its
  // pooler_output), in the processor's token order.
  at::Tensor EncodeImages(const Pixels& pixels, bool /*packed*/) const {
    return vision_(pixels.pixel_values.to(device_, /*non_blocking=*/true), pixels.grids);
  }

  absl::StatusOr<Qwen2VLLayerContext> PrepareLayers(const TokenLayout& tokens, const Pixels* pixels,
                                                    int64_t past, int64_t length) const {
    const at::Tensor& ids = tokens.host_ids();
    if (ids.eq(config_.video_token_id).any().template item<bool>()) {  // host ids: no device sync
      return absl::UnimplementedError(absl::StrCat(
          Name(), " forward: the ids hold video tokens (id ", config_.video_token_id,
          "); only images are supported"));
    }
    at::Tensor positions;
    if (pixels == nullptr) {
      positions = MropeTextPositionIds(tokens.rows(), tokens.seq_len(), at::kCPU);
    } else {
      // A one-row prompt prepared for a batch takes the grids of its own images.
      std::vector<GridThw> grids = pixels->grids;
      if (tokens.rows() == 1) grids.resize(std::min(grids.size(), ImageRuns(tokens)));
      SPATIALID_ASSIGN_OR_RETURN(
          positions, MropePositionIds(ids, config_.image_token_id, grids, positions_));
    }
    return Qwen2VLLayerContext{
        mrope_(nn::UploadAsync(positions.slice(2, past, length).contiguous(), device_), dtype_)};
  }

  at::Tensor RunLayer(int64_t i, const at::Tensor& x, const Qwen2VLLayerContext& context,
                      const at::Tensor& /*image_features: merged*/,
                      const nn::ExtendedCall& call) const {
    return text_.RunLayer(i, x, context.cos_sin, nn::AttentionMask::Causal(), call);
  }

  at::Tensor FinalNorm(const at::Tensor& x) const { return text_.FinalNorm(x); }

 private:
  Qwen2VLModel() = default;

  static std::string Name() { return std::string(V::kName); }

  // Runs of image tokens in the first row: its images.
  static size_t ImageRuns(const TokenLayout& tokens) {
    size_t runs = 0;
    for (int64_t p = 0; p < tokens.seq_len(); ++p) {
      const int64_t* id = tokens.host_ids().data_ptr<int64_t>();
      if (id[p] == tokens.image_token_id() && (p == 0 || id[p - 1] != tokens.image_token_id())) {
        ++runs;
      }
    }
    return runs;
  }

  Config config_;
  at::ScalarType dtype_ = at::kFloat;
  at::Device device_ = at::kCPU;
  MropePositionOptions positions_;
  QwenVisionTower<V> vision_;
  nn::TextDecoder text_;
  MultimodalRotary mrope_;
};

// ---------------------------------------------------------------------------
// Traits: one per version.

template <QwenVLVersion V>
struct Qwen2VLFamily {
  using Version = V;
  using Config = typename V::Config;
  using Model = Qwen2VLModel<V>;
  using Processor = Qwen2VLImageProcessor;
  using PixelBatch = Qwen2VLImages;
  static constexpr std::string_view kModelType = V::kModelType;
  static constexpr std::string_view kName = V::kName;
  static constexpr auto& kPresets = V::kPresets;

  static absl::StatusOr<Model> Load(const std::string& model_dir, const LoadOptions& options) {
    return Model::Load(model_dir, options);
  }

  static absl::StatusOr<Processor> LoadProcessor(const std::string& model_dir,
                                                 const ProcessorOptions& options) {
    SPATIALID_ASSIGN_OR_RETURN(
        Qwen2VLImageProcessorConfig cfg,
        vision::LoadImageProcessorConfig<Qwen2VLImageProcessorConfig>(model_dir));
    return Qwen2VLImageProcessor::Create(cfg, options.resize);
  }
};

using Qwen2VL = Qwen2VLFamily<Qwen2VLVersion>;       // model_type "qwen2_vl"
using Qwen2_5_VL = Qwen2VLFamily<Qwen2_5_VLVersion>;  // model_type "qwen2_5_vl"

static_assert(MultimodalHooks<Qwen2VLModel<Qwen2VLVersion>, Qwen2VLImages, Qwen2VLLayerContext>);
static_assert(CheckFamily<Qwen2VL>());
static_assert(CheckFamily<Qwen2_5_VL>());

}  // namespace spatialid::families
