// Gemma 3 (google/gemma-3-4b-it, -12b-it): transformers'
// `Gemma3ForConditionalGeneration` (models/gemma3/modeling_gemma3.py,
// 5.3.0), without the LM head.
//
//   pixels [N, 3, 896, 896] --SigLIP so400m/14 (nn/siglip_vision.h)--> its
//     last_hidden_state (after post_layernorm), [N, 64*64, 1152]
//     --projector: the 64x64 patch grid average-pooled 4x4 to 16x16 =
//     mm_tokens_per_image (256), mm_soft_emb_norm (Gemma RMSNorm, 1 + w),
//     @ mm_input_projection_weight--> [N, 256, text hidden]
//   ids [B, S] --embed_tokens, times sqrt(hidden_size) rounded to the model
//     dtype--> [B, S, hidden]; the projected features replace the
//     embeddings of the `image_token_index` tokens in order (unscaled)
//     => hidden state 0
//   --Gemma 3 decoder--> hidden states 1..N, the last after the final norm
//     (families/hidden_states.h defines the indices). Each layer:
//       x = x + post_attention_layernorm(attn(input_layernorm(x)))
//       x = x + post_feedforward_layernorm(mlp(pre_feedforward_layernorm(x)))
//     all norms Gemma RMSNorm; attention with per-head QK-norm, GQA, scale
//     query_pre_attn_scalar^-0.5; GeGLU (gelu_pytorch_tanh) MLP. The
//     config's `layer_types` make a layer "sliding_attention" (RoPE
//     rope_parameters.sliding_attention: theta 10k, window `sliding_window`)
//     or "full_attention" (rope_parameters.full_attention: theta 1M with
//     linear scaling x8 in the real checkpoints; no window).
//
// Attention masks. transformers runs Gemma 3 with the processor's
// `token_type_ids` (1 on image soft tokens), which adds bidirectional
// attention inside each image: with Q, K positions and W the window,
//   full layers:     K <= Q                 or same_image(Q, K)
//   sliding layers:  Q - W < K <= Q         or same_image(Q, K)
// where same_image means both are image tokens of the same contiguous run
// (`create_causal_mask_mapping`, `token_type_ids_mask_function`); the
// "or" lifts the window too. The masks are always explicit boolean masks,
// as transformers builds them once token_type_ids are given (which
// Gemma3Processor always returns, zeros for text-only prompts). Token types
// are derived here from the ids (id == image_token_index), exactly the
// processor's rule.
//
// Because image tokens look ahead inside their block, the hidden state of
// an image-token position depends on the rest of its block: a forward keeps
// positions up to the last requested one, extended to the end of an image
// block that it falls in (`ForwardLengthHook`).
//
// The prompt: the chat template writes "<start_of_image>" per image (after
// "<bos>", which it writes itself) and Gemma3Processor replaces it with
// "\n\n<start_of_image>" + "<image_soft_token>" x 256 + "<end_of_image>\n\n";
// `ImagePromptFor` gives that expansion from the config.
//
// Weight names: real google/gemma-3-* downloads and transformers 5.3's
// save_pretrained use
//   language_model.model.*, vision_tower.vision_model.*, multi_modal_projector.*
// (no lm_head: tied to embed_tokens); transformers >= 4.52 module names are
//   model.language_model.*, model.vision_tower.vision_model.*,
//   model.multi_modal_projector.*, lm_head.*
// and a bare Gemma3Model has language_model.*. `kGemma3WeightSchemes` lists
// them (families/weight_names.h).
//
// Example:
//   SPATIALID_ASSIGN_OR_RETURN(auto model, Gemma3::Load(dir, {}));   // bf16 from config.json
//   SPATIALID_ASSIGN_OR_RETURN(auto proc, Gemma3::LoadProcessor(dir, {}));
//   SPATIALID_ASSIGN_OR_RETURN(Gemma3Pixels px, proc.Preprocess(images));
//   families::HiddenStateRequest req{.layers = {0, 15, 29}, .positions = {270}};
//   SPATIALID_ASSIGN_OR_RETURN(at::Tensor h, model.Forward(ids, px, req));  // [3, B, 1, 2560]
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
#include <ATen/ops/arange.h>
#include <ATen/ops/avg_pool2d.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/cumsum.h>
#include <ATen/ops/embedding.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/scalar_tensor.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros.h>
#include <c10/core/InferenceMode.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "spatialid/families/gemma3/config.h"
#include "spatialid/config/processor_config.h"
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
#include "spatialid/nn/mlp.h"
#include "spatialid/nn/norm.h"
#include "spatialid/nn/rotary.h"
#include "spatialid/families/gemma3/siglip_vision.h"
#include "spatialid/nn/text_decoder.h"
#include "spatialid/nn/transformer_block.h"
#include "spatialid/nn/weights.h"
#include "spatialid/util/status.h"
#include "spatialid/vision/clip_image_processor.h"
#include "spatialid/families/gemma3/image_processor.h"

namespace spatialid::families {

// Gemma3RMSNorm: normalise in fp32, scale by (1 + weight) in fp32.
using GemmaRmsNorm = nn::RmsNorm<nn::RmsNormWeight::kOnePlus>;

// ---------------------------------------------------------------------------
// Config: config.json as Gemma3Config, translated into block shapes.

// The numbers of a Gemma3TextConfig (HF keys in comments): the Llama-style
// sizes of the base (its `rope` is rope_parameters.full_attention,
// `attention_bias` biases q/k/v/o) plus what Gemma 3 adds.
struct Gemma3TextShape : nn::TextDecoderShape {
  double query_pre_attn_scalar = 256;  // query_pre_attn_scalar
  int64_t sliding_window = 0;          // sliding_window (0: no sliding layers)
  std::vector<bool> sliding;           // layer_types[i] == "sliding_attention"
  nn::RopeParameters rope_sliding;     // rope_parameters.sliding_attention
};

inline absl::StatusOr<Gemma3TextShape> Gemma3TextShapeOf(const Gemma3TextConfig& t) {
  Gemma3TextShape s;
  s.vocab_size = t.vocab_size;
  s.hidden_size = t.hidden_size;
  s.intermediate_size = t.intermediate_size;
  s.num_layers = t.num_hidden_layers;
  s.num_heads = t.num_attention_heads;
  s.num_kv_heads = t.num_key_value_heads;
  s.head_dim = t.head_dim;
  s.max_position_embeddings = t.max_position_embeddings;
  s.rms_norm_eps = t.rms_norm_eps;
  SPATIALID_ASSIGN_OR_RETURN(s.act, nn::ParseActivation(t.hidden_activation));
  s.attention_bias = t.attention_bias;
  if (!t.query_pre_attn_scalar || *t.query_pre_attn_scalar <= 0) {
    return absl::InvalidArgumentError(
        "text_config.query_pre_attn_scalar must be a positive number (the attention scale is its "
        "inverse square root)");
  }
  s.query_pre_attn_scalar = *t.query_pre_attn_scalar;
  if (t.use_bidirectional_attention) {
    return absl::UnimplementedError(
        "text_config.use_bidirectional_attention is true (an EmbeddingGemma-style encoder); "
        "Gemma 3 vision-language checkpoints are causal and only those are supported");
  }
  if (static_cast<int64_t>(t.layer_types.size()) != t.num_hidden_layers) {
    return absl::InvalidArgumentError(absl::StrCat("text_config.layer_types has ",
                                                   t.layer_types.size(), " entries for ",
                                                   t.num_hidden_layers, " layers"));
  }
  bool any_sliding = false;
  for (size_t i = 0; i < t.layer_types.size(); ++i) {
    const std::string& kind = t.layer_types[i];
    if (kind != "sliding_attention" && kind != "full_attention") {
      return absl::UnimplementedError(absl::StrCat(
          "text_config.layer_types[", i, "] is \"", kind,
          "\" (Gemma 3 layers are \"sliding_attention\" or \"full_attention\")"));
    }
    s.sliding.push_back(kind == "sliding_attention");
    any_sliding = any_sliding || s.sliding.back();
  }
  if (any_sliding) {
    if (!t.sliding_window || *t.sliding_window <= 0) {
      return absl::InvalidArgumentError(
          "text_config.sliding_window must be a positive number when layer_types has sliding "
          "layers");
    }
    s.sliding_window = *t.sliding_window;
  }
  for (const char* kind : {"full_attention", "sliding_attention"}) {
    auto it = t.rope_parameters.find(kind);
    if (it == t.rope_parameters.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("text_config.rope_parameters has no \"", kind, "\" entry"));
    }
    absl::StatusOr<nn::RopeParameters> rope = RopeFromConfig(it->second);
    if (!rope.ok()) {
      return absl::Status(rope.status().code(), absl::StrCat("text_config.rope_parameters.", kind,
                                                             ": ", rope.status().message()));
    }
    (std::string_view(kind) == "full_attention" ? s.rope : s.rope_sliding) = *rope;
  }
  return s;
}

inline absl::StatusOr<SiglipVisionShape> SiglipVisionShapeOf(
    const SiglipVisionConfig& v) {
  SiglipVisionShape s;
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

// Soft tokens per side of an image (sqrt(mm_tokens_per_image)) and the
// average-pooling kernel that gets there from the patch grid.
struct Gemma3Pooling {
  int64_t patches_per_side = 0;
  int64_t tokens_per_side = 0;
  int64_t kernel = 0;
};

// Reads `<model_dir>/config.json` and checks what the forward relies on.
inline absl::StatusOr<Gemma3Config> ReadGemma3Config(const std::string& model_dir) {
  absl::StatusOr<Gemma3Config> c = config::LoadConfig<Gemma3Config>(model_dir);
  if (!c.ok()) {
    return absl::Status(c.status().code(),
                        absl::StrCat(c.status().message(), " (Gemma 3 checkpoints expected)"));
  }
  const SiglipVisionConfig& v = c->vision_config;
  if (v.patch_size <= 0 || v.image_size <= 0 || v.image_size % v.patch_size != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        model_dir, "/config.json: vision_config.image_size ", v.image_size,
        " is not a positive multiple of patch_size ", v.patch_size));
  }
  const int64_t per_side = v.image_size / v.patch_size;
  const auto tokens_per_side =
      static_cast<int64_t>(std::sqrt(static_cast<double>(c->mm_tokens_per_image)));
  if (c->mm_tokens_per_image <= 0 || tokens_per_side * tokens_per_side != c->mm_tokens_per_image ||
      per_side % tokens_per_side != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        model_dir, "/config.json: mm_tokens_per_image ", c->mm_tokens_per_image,
        " must be a square whose side divides the ", per_side, "x", per_side,
        " patch grid (image_size / patch_size)"));
  }
  return c;
}

inline Gemma3Pooling Gemma3PoolingOf(const Gemma3Config& c) {
  Gemma3Pooling p;
  p.patches_per_side = c.vision_config.image_size / c.vision_config.patch_size;
  p.tokens_per_side = static_cast<int64_t>(std::sqrt(static_cast<double>(c.mm_tokens_per_image)));
  p.kernel = p.patches_per_side / p.tokens_per_side;
  return p;
}

// Gemma3Processor's token strings (the Gemma 3 tokenizer's boi_token,
// image_token and eoi_token; ids come from config.json).
inline constexpr char kGemma3BoiToken[] = "<start_of_image>";
inline constexpr char kGemma3ImageToken[] = "<image_soft_token>";
inline constexpr char kGemma3EoiToken[] = "<end_of_image>";

// "<start_of_image>" -> "\n\n<start_of_image>" + "<image_soft_token>" x
// mm_tokens_per_image + "<end_of_image>\n\n" (Gemma3Processor's
// full_image_sequence; pan-and-scan is off in the processor call).
inline ImagePrompt Gemma3ImagePrompt(const Gemma3Config& c) {
  ImagePrompt p;
  p.placeholder = kGemma3BoiToken;
  p.image_token = kGemma3ImageToken;
  p.image_token_id = c.image_token_index;
  p.tokens_per_image = c.mm_tokens_per_image;
  p.expansion = absl::StrCat("\n\n", kGemma3BoiToken);
  for (int64_t i = 0; i < p.tokens_per_image; ++i) p.expansion += kGemma3ImageToken;
  absl::StrAppend(&p.expansion, kGemma3EoiToken, "\n\n");
  return p;
}

// ---------------------------------------------------------------------------
// Attention masks and the forward's length.

// Boolean masks [B, 1, L, L] (true = attend) for the full and the sliding
// layers, from `is_image` [B, L] (image soft tokens); see the file comment.
struct Gemma3Masks {
  at::Tensor full;
  at::Tensor sliding;
};

inline Gemma3Masks Gemma3AttentionMasks(const at::Tensor& is_image, int64_t sliding_window) {
  const int64_t b = is_image.size(0), len = is_image.size(1);
  const at::Tensor pos = at::arange(len, at::TensorOptions().dtype(at::kLong).device(is_image.device()));
  const at::Tensor q = pos.unsqueeze(1), k = pos.unsqueeze(0);
  const at::Tensor causal = k <= q;  // [L, L]
  // Runs of image tokens: a run starts where an image token follows a
  // non-image one; its group id counts the starts so far.
  const at::Tensor previous =
      at::cat({at::zeros({b, 1}, is_image.options()), is_image.slice(1, 0, len - 1)}, 1);
  const at::Tensor starts = is_image.logical_and(previous.logical_not());
  const at::Tensor group =
      at::where(is_image, at::cumsum(starts.to(at::kLong), 1) - 1, at::scalar_tensor(-1, pos.options()));
  const at::Tensor same_image = is_image.unsqueeze(2)
                                    .logical_and(is_image.unsqueeze(1))
                                    .logical_and(group.unsqueeze(2) == group.unsqueeze(1));  // [B, L, L]
  Gemma3Masks m;
  m.full = causal.unsqueeze(0).logical_or(same_image).unsqueeze(1);
  if (sliding_window > 0) {
    const at::Tensor window = causal.logical_and(k > q - sliding_window);
    m.sliding = window.unsqueeze(0).logical_or(same_image).unsqueeze(1);
  }
  return m;
}

// ---------------------------------------------------------------------------
// Weight names.

// google/gemma-3-* downloads and transformers' save_pretrained output (no
// lm_head: tied); transformers >= 4.52 module names
// (Gemma3ForConditionalGeneration); a bare Gemma3Model.
inline constexpr WeightScheme kGemma3WeightSchemes[] = {
    {"language_model.model", "vision_tower.vision_model", "multi_modal_projector",
     "language_model.lm_head."},
    {"model.language_model", "model.vision_tower.vision_model", "model.multi_modal_projector",
     "lm_head."},
    {"language_model", "vision_tower.vision_model", "multi_modal_projector", "lm_head."},
};

// ---------------------------------------------------------------------------
// Modules.

// Gemma3MultiModalProjector: pool the patch grid, normalise, project.
struct Gemma3Projector {
  at::Tensor mm_input_projection_weight;  // [vision hidden, text hidden]
  GemmaRmsNorm mm_soft_emb_norm;
  Gemma3Pooling pooling;

  template <nn::WeightLoader L>
  static Gemma3Projector Load(L& loader, const std::string& prefix, int64_t vision_hidden,
                              int64_t text_hidden, double eps, const Gemma3Pooling& pooling) {
    Gemma3Projector p;
    p.mm_input_projection_weight =
        loader.Take(nn::Join(prefix, "mm_input_projection_weight"), {vision_hidden, text_hidden});
    p.mm_soft_emb_norm = GemmaRmsNorm::Load(loader, nn::Join(prefix, "mm_soft_emb_norm"),
                                            vision_hidden, eps);
    p.pooling = pooling;
    return p;
  }

  // SigLIP last_hidden_state [N, patches, C] -> [N, tokens, text hidden].
  at::Tensor operator()(const at::Tensor& vision_out) const {
    const int64_t n = vision_out.size(0), c = vision_out.size(2);
    const int64_t side = pooling.patches_per_side, k = pooling.kernel;
    const at::Tensor grid = vision_out.transpose(1, 2).reshape({n, c, side, side}).contiguous();
    const at::Tensor pooled = at::avg_pool2d(grid, {k, k}, {k, k}).flatten(2).transpose(1, 2);
    return at::matmul(mm_soft_emb_norm(pooled), mm_input_projection_weight)
        .to(vision_out.scalar_type());
  }
};

// Gemma3TextModel's modules: scaled embeddings, sandwich-norm layers, two
// RoPE settings, the final norm. The forward loop lives in Gemma3Model.
struct Gemma3TextDecoder {
  using Layer = nn::TransformerBlock<GemmaRmsNorm, nn::GatedMlp, nn::SelfAttention<GemmaRmsNorm>>;

  at::Tensor embed_tokens;  // [vocab, hidden]
  at::Tensor embed_scale;   // sqrt(hidden) as a 0-dim tensor in the weights' dtype
  std::vector<Layer> layers;
  GemmaRmsNorm norm;
  nn::RotaryEmbedding rope_full;
  nn::RotaryEmbedding rope_sliding;
  Gemma3TextShape shape;

  template <nn::WeightLoader L>
  static absl::StatusOr<Gemma3TextDecoder> Load(L& loader, const std::string& prefix,
                                                const Gemma3TextShape& s, at::ScalarType dtype,
                                                at::Device device) {
    if (s.hidden_size <= 0 || s.num_layers <= 0 || s.num_heads <= 0 || s.num_kv_heads <= 0 ||
        s.head_dim <= 0 || s.vocab_size <= 0 || s.intermediate_size <= 0) {
      return absl::InvalidArgumentError(
          "Gemma 3 text config: sizes (vocab, hidden, intermediate, layers, heads, kv heads, "
          "head_dim) must all be positive");
    }
    if (s.num_heads % s.num_kv_heads != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Gemma 3 text config: num_attention_heads ", s.num_heads,
          " is not a multiple of num_key_value_heads ", s.num_kv_heads));
    }
    Gemma3TextDecoder d;
    d.shape = s;
    SPATIALID_ASSIGN_OR_RETURN(d.rope_full, nn::RotaryEmbedding::Create(
                                                s.rope, s.head_dim, s.max_position_embeddings, device));
    SPATIALID_ASSIGN_OR_RETURN(d.rope_sliding,
                               nn::RotaryEmbedding::Create(s.rope_sliding, s.head_dim,
                                                           s.max_position_embeddings, device));
    d.embed_tokens =
        loader.Take(nn::Join(prefix, "embed_tokens.weight"), {s.vocab_size, s.hidden_size});
    // Gemma3TextScaledWordEmbedding: an fp32 buffer hidden_size**0.5 cast to
    // the weights' dtype at every call (bf16 rounds sqrt(2560) to 50.5).
    d.embed_scale = at::scalar_tensor(std::pow(static_cast<double>(s.hidden_size), 0.5),
                                      at::TensorOptions().dtype(at::kFloat).device(device))
                        .to(dtype);
    nn::AttentionShape attn;
    attn.hidden_size = s.hidden_size;
    attn.num_heads = s.num_heads;
    attn.num_kv_heads = s.num_kv_heads;
    attn.head_dim = s.head_dim;
    attn.qkv_bias = attn.o_bias = s.attention_bias;
    attn.scale = std::pow(s.query_pre_attn_scalar, -0.5);
    attn.qk_norm = nn::QkNormScope::kPerHead;
    attn.qk_norm_eps = s.rms_norm_eps;
    d.layers.reserve(static_cast<size_t>(s.num_layers));
    for (int64_t i = 0; i < s.num_layers; ++i) {
      const std::string p = nn::Join(prefix, absl::StrCat("layers.", i));
      auto norm = [&](const char* name) {
        return GemmaRmsNorm::Load(loader, nn::Join(p, name), s.hidden_size, s.rms_norm_eps);
      };
      Layer layer;
      layer.attn_norm = norm("input_layernorm");
      layer.attn = nn::SelfAttention<GemmaRmsNorm>::Load(loader, nn::Join(p, "self_attn"), attn);
      layer.attn_out_norm = norm("post_attention_layernorm");
      layer.mlp_norm = norm("pre_feedforward_layernorm");
      layer.mlp = nn::GatedMlp::Load(loader, nn::Join(p, "mlp"), s.hidden_size, s.intermediate_size,
                                     s.act, /*with_bias=*/false);
      layer.mlp_out_norm = norm("post_feedforward_layernorm");
      d.layers.push_back(std::move(layer));
    }
    d.norm = GemmaRmsNorm::Load(loader, nn::Join(prefix, "norm"), s.hidden_size, s.rms_norm_eps);
    return d;
  }

  int64_t num_layers() const { return static_cast<int64_t>(layers.size()); }
  bool is_sliding(int64_t i) const { return shape.sliding[static_cast<size_t>(i)]; }

  // int64 ids [B, S] -> scaled embeddings [B, S, hidden] in the weights' dtype.
  at::Tensor Embed(const at::Tensor& input_ids) const {
    return at::embedding(embed_tokens, input_ids) * embed_scale;
  }

  // Packed q/k/v and gate/up for the planned forward; the plain layers are
  // unchanged (the unpacked weights become views).
  void PackWeights() {
    for (Layer& layer : layers) {
      layer.attn.PackProjections();
      layer.mlp.PackGateUp();
    }
  }
};

// ---------------------------------------------------------------------------
// Processor.

// Preprocessed images: float32 [N, 3, image_size, image_size] on the CPU.
using Gemma3Pixels = ImagePixels;
using Gemma3Processor = ImagePixelsProcessor<Gemma3ImageProcessor>;

// ---------------------------------------------------------------------------
// Model.

// What every decoder layer of one prompt shares: both RoPE settings and
// both attention masks for the positions that run.
struct Gemma3LayerContext {
  nn::CosSin rope_full;
  nn::CosSin rope_sliding;
  nn::AttentionMask full;
  nn::AttentionMask sliding;
};

class Gemma3Model : public MultimodalForward<Gemma3Model, Gemma3Pixels, Gemma3LayerContext> {
 public:
  // Loads config.json and the weights; `options.dtype` unset means the
  // config's dtype (bfloat16 for the real checkpoints, fp32 if none).
  static absl::StatusOr<Gemma3Model> Load(const std::string& model_dir, const LoadOptions& options) {
    SPATIALID_ASSIGN_OR_RETURN(Gemma3Config config, ReadGemma3Config(model_dir));
    absl::StatusOr<Gemma3TextShape> text_shape = Gemma3TextShapeOf(config.text_config);
    if (!text_shape.ok()) {
      return absl::Status(text_shape.status().code(), absl::StrCat(model_dir, "/config.json: ",
                                                                   text_shape.status().message()));
    }
    SPATIALID_ASSIGN_OR_RETURN(SiglipVisionShape vision_shape,
                               SiglipVisionShapeOf(config.vision_config));
    SPATIALID_ASSIGN_OR_RETURN(at::ScalarType config_dtype, DtypeFromConfig(config.dtype));
    SPATIALID_ASSIGN_OR_RETURN(io::Checkpoint ckpt, io::Checkpoint::Open(model_dir));
    // SigLIP's pooling head and position_ids buffer are not used.
    SPATIALID_ASSIGN_OR_RETURN(
        WeightNames names, DetectWeightNames(ckpt, kGemma3WeightSchemes, "Gemma 3",
                                             {".head.", ".embeddings.position_ids"}));
    const at::ScalarType dtype = options.dtype.value_or(config_dtype);
    Gemma3Model m;
    m.config_ = config;
    m.dtype_ = dtype;
    m.device_ = options.device;
    try {
      io::StateDictLoader loader(ckpt, dtype, options.device);
      for (const std::string& p : names.unused_prefixes) loader.IgnorePrefix(p);
      SPATIALID_ASSIGN_OR_RETURN(m.vision_,
                                 SiglipVisionTower::Load(loader, names.vision, vision_shape));
      m.projector_ = Gemma3Projector::Load(loader, names.projector, vision_shape.hidden_size,
                                           text_shape->hidden_size, vision_shape.layer_norm_eps,
                                           Gemma3PoolingOf(config));
      SPATIALID_ASSIGN_OR_RETURN(
          m.text_, Gemma3TextDecoder::Load(loader, names.text, *text_shape, dtype, options.device));
      SPATIALID_RETURN_IF_ERROR(loader.Finish());
      m.text_.PackWeights();
    } catch (const c10::Error& e) {
      return absl::InternalError(
          absl::StrCat(model_dir, ": loading weights failed: ", e.what_without_backtrace()));
    }
    return m;
  }

  const Gemma3Config& config() const { return config_; }
  int64_t num_layers() const { return text_.num_layers(); }
  int64_t hidden_size() const { return text_.shape.hidden_size; }
  at::ScalarType dtype() const { return dtype_; }
  at::Device device() const { return device_; }

  ImagePrompt ImagePromptFor(const Gemma3Pixels& /*pixels: fixed geometry*/) const {
    return Gemma3ImagePrompt(config_);
  }

  // --- MultimodalForward hooks (families/multimodal_forward.h) ---

  static constexpr std::string_view kName = "Gemma 3";
  static constexpr bool kFeaturesReplaceImageTokens = true;
  int64_t embedding_rows() const { return config_.text_config.vocab_size; }
  int64_t image_token_id() const { return config_.image_token_index; }

  absl::Status CheckPixels(const Gemma3Pixels& pixels) const {
    return CheckSquarePixels(pixels.pixel_values, config_.vision_config.num_channels,
                             config_.vision_config.image_size, "Gemma 3");
  }

  ImageTokenCount ExpectedImageTokens(const Gemma3Pixels& pixels) const {
    return {std::vector<int64_t>(static_cast<size_t>(pixels.pixel_values.size(0)),
                                 config_.mm_tokens_per_image),
            "expand each <start_of_image> as Gemma3Processor does"};
  }

  // Image tokens look ahead inside their block: run to its end.
  int64_t ForwardLengthHook(const TokenLayout& tokens, int64_t needed) const {
    const int64_t seq = tokens.seq_len();
    if (needed <= 0 || needed >= seq) return std::min(std::max<int64_t>(needed, 0), seq);
    int64_t length = needed;
    while (length < seq && tokens.image_column(length - 1) && tokens.image_column(length)) ++length;
    return length;
  }

  // Gemma3Model: an image token outside the vocabulary embeds as id 0
  // (its row is replaced by the image's features anyway).
  at::Tensor Embed(const at::Tensor& ids) const {
    const int64_t image_id = config_.image_token_index;
    return text_.Embed(image_id >= embedding_rows() ? ids.masked_fill(ids == image_id, 0) : ids);
  }

  // get_image_features: SigLIP last_hidden_state -> projector, [N,
  // mm_tokens_per_image, text hidden] (the model's `image_hidden_states`).
  at::Tensor EncodeImages(const Gemma3Pixels& pixels, bool /*packed*/) const {
    return projector_(vision_.LastHiddenState(pixels.pixel_values.to(device_, /*non_blocking=*/true)));
  }

  Gemma3LayerContext PrepareLayers(const TokenLayout& tokens, const Gemma3Pixels* /*pixels*/,
                                   int64_t past, int64_t length) const {
    const at::Tensor position_ids =
        at::arange(past, length, at::TensorOptions().dtype(at::kLong).device(device_)).unsqueeze(0);
    Gemma3LayerContext c;
    c.rope_full = text_.rope_full(position_ids, dtype_, tokens.seq_len());
    c.rope_sliding = text_.rope_sliding(position_ids, dtype_, tokens.seq_len());
    // Rows past..length-1 over keys 0..length-1.
    const Gemma3Masks masks = Gemma3AttentionMasks(tokens.image_mask(tokens.rows()).slice(1, 0, length),
                                                   text_.shape.sliding_window);
    c.full = nn::AttentionMask::Explicit(masks.full.slice(2, past, length));
    if (masks.sliding.defined()) {
      c.sliding = nn::AttentionMask::Explicit(masks.sliding.slice(2, past, length));
    }
    return c;
  }

  at::Tensor RunLayer(int64_t i, const at::Tensor& x, const Gemma3LayerContext& c,
                      const at::Tensor& /*image_features: merged*/,
                      const nn::ExtendedCall& call) const {
    const bool local = text_.is_sliding(i);
    const nn::CosSin* cs = local ? &c.rope_sliding : &c.rope_full;
    const nn::AttentionMask& mask = local ? c.sliding : c.full;
    const Gemma3TextDecoder::Layer& layer = text_.layers[static_cast<size_t>(i)];
    return call.IsPlain() ? layer(x, cs, mask) : layer.Extended(x, cs, mask, call);
  }

  at::Tensor FinalNorm(const at::Tensor& x) const { return text_.norm(x); }

 private:
  Gemma3Model() = default;

  Gemma3Config config_;
  at::ScalarType dtype_ = at::kFloat;
  at::Device device_ = at::kCPU;
  SiglipVisionTower vision_;
  Gemma3Projector projector_;
  Gemma3TextDecoder text_;
};

// ---------------------------------------------------------------------------
// Traits.

struct Gemma3 {
  using Config = Gemma3Config;
  using Model = Gemma3Model;
  using Processor = Gemma3Processor;
  using PixelBatch = Gemma3Pixels;
  static constexpr std::string_view kModelType = "gemma3";
  static constexpr std::string_view kName = "Gemma 3";
  static constexpr ModelPreset kPresets[] = {
      {"gemma-4b", "google/gemma-3-4b-it", "bfloat16", 29, 35},
      {"gemma-12b", "google/gemma-3-12b-it", "bfloat16", 39, 49},
  };

  static absl::StatusOr<Model> Load(const std::string& model_dir, const LoadOptions& options) {
    return Gemma3Model::Load(model_dir, options);
  }

  static absl::StatusOr<Processor> LoadProcessor(const std::string& model_dir,
                                                 const ProcessorOptions& options) {
    SPATIALID_ASSIGN_OR_RETURN(
        Gemma3ImageProcessorConfig cfg,
        vision::LoadImageProcessorConfig<Gemma3ImageProcessorConfig>(model_dir));
    SPATIALID_ASSIGN_OR_RETURN(Gemma3ImageProcessor p,
                               Gemma3ImageProcessor::Create(cfg, options.resize));
    return Gemma3Processor(std::move(p));
  }
};

static_assert(MultimodalHooks<Gemma3Model, Gemma3Pixels, Gemma3LayerContext>);
static_assert(CheckFamily<Gemma3>());

}  // namespace spatialid::families
