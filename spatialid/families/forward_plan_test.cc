// The planned forward (forward_plan.h) against the plain one.
//
// A random Llama-style decoder (grouped-query attention, RoPE) runs the same
// batch both ways: plain (CollectHiddenStates over every position) and
// planned (the shared prefix's keys/values computed once at batch 1, the
// deepest layer only at the requested rows, packed q/k/v and gate/up). The
// hidden states must agree to fp32 rounding. Further cases: QK-norm and
// biased attention (the other families' switches), an explicit mask at the
// requested rows, packing leaving the plain call bit-identical, and the
// errors a stale prefix cache gets. The same check on a whole LLaVA
// checkpoint (random weights written here) covers the family's wiring.
#include "spatialid/families/forward_plan.h"

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include "gtest/gtest.h"
#include "spatialid/families/hidden_states.h"
#include "spatialid/families/llava/llava.h"
#include "spatialid/io/safetensors_writer.h"
#include "spatialid/nn/attention.h"
#include "spatialid/nn/text_decoder.h"

namespace spatialid::families {
namespace {

// Random weights by name; 1-D weights (norms, biases) near 1 or 0.
struct RandomLoader {
  int64_t seed = 0;
  at::Tensor Take(const std::string& name, const std::vector<int64_t>& shape) {
    at::manual_seed(static_cast<uint64_t>(seed++));
    if (shape.size() == 1) {
      const bool norm = name.find("norm") != std::string::npos;
      return (norm ? 1.0 : 0.0) + 0.1 * at::randn(shape);
    }
    return 0.15 * at::randn(shape);
  }
};

double RelativeDiff(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>() / b.abs().max().item<double>();
}

nn::TextDecoderShape SmallShape() {
  nn::TextDecoderShape s;
  s.vocab_size = 50;
  s.hidden_size = 64;
  s.intermediate_size = 150;
  s.num_layers = 3;
  s.num_heads = 4;
  s.num_kv_heads = 2;
  s.head_dim = 16;
  s.max_position_embeddings = 256;
  s.rms_norm_eps = 1e-5;
  return s;
}

struct Case {
  int64_t batch = 3;
  int64_t seq = 40;
  int64_t prefix = 6;  // positions shared by the batch
  HiddenStateRequest request{{0, 2, 3, 3}, {30, 11, 30, 20}};
};

// Plain and planned hidden states of one random batch whose first
// `c.prefix` positions are the same in every sequence.
template <class Decoder>
std::pair<at::Tensor, at::Tensor> PlainAndPlanned(const Decoder& d, const Case& c,
                                                  const ForwardPlan& options) {
  c10::InferenceMode guard;
  at::manual_seed(99);
  at::Tensor embeds = at::randn({c.batch, c.seq, d.hidden_size()});
  embeds.slice(1, 0, c.prefix).copy_(embeds.slice(0, 0, 1).slice(1, 0, c.prefix).expand({c.batch, -1, -1}));
  const int64_t length = c.request.needed_length();
  const at::Tensor positions = at::arange(length, at::kLong).unsqueeze(0);
  const nn::CosSin cs = d.rotary(positions, at::kFloat, c.seq);
  const nn::AttentionMask causal = nn::AttentionMask::Causal();
  const at::Tensor plain = CollectHiddenStates(
      embeds.slice(1, 0, length), d.num_layers(), c.request,
      [&](int64_t i, const at::Tensor& x) { return d.RunLayer(i, x, cs, causal); },
      [&](const at::Tensor& x) { return d.FinalNorm(x); });

  std::vector<int64_t> ids(static_cast<size_t>(c.prefix), 7);
  const int64_t past = options.prefix != nullptr ? c.prefix : 0;
  const nn::CosSin prefix_cs{cs.cos.slice(1, 0, c.prefix), cs.sin.slice(1, 0, c.prefix)};
  const PrefixCache cache = ComputePrefixCache(
      ids, embeds.slice(0, 0, 1).slice(1, 0, c.prefix), c.request.deepest_layer(),
      [&](int64_t i, const at::Tensor& x, nn::PastKv* present) {
        nn::ExtendedCall call;
        call.present = present;
        call.packed = options.packed;
        return d.RunLayer(i, x, prefix_cs, causal, call);
      });
  const nn::CosSin own_cs{cs.cos.slice(1, past), cs.sin.slice(1, past)};
  const at::Tensor planned = CollectPlannedHiddenStates(
      embeds.slice(1, past, length), past, d.num_layers(), c.request, options.rows_only,
      [&](int64_t i, const at::Tensor& x, const at::Tensor& rows) {
        nn::ExtendedCall call;
        call.past = past > 0 ? &cache.layers[static_cast<size_t>(i)] : nullptr;
        call.query_rows = rows;
        call.packed = options.packed;
        return d.RunLayer(i, x, own_cs, causal, call);
      },
      [&](const at::Tensor& x) { return d.FinalNorm(x); });
  return {plain, planned};
}

nn::TextDecoder RandomDecoder(const nn::TextDecoderShape& s) {
  RandomLoader loader;
  absl::StatusOr<nn::TextDecoder> d = nn::TextDecoder::Load(loader, "", s, at::kCPU);
  EXPECT_TRUE(d.ok()) << d.status();
  d->PackWeights();
  return *std::move(d);
}

TEST(ForwardPlan, EverySavingTogetherMatchesThePlainForward) {
  const nn::TextDecoder d = RandomDecoder(SmallShape());
  const Case c;
  PrefixCache unused;
  ForwardPlan plan{.prefix = &unused, .rows_only = true, .packed = true};
  auto [plain, planned] = PlainAndPlanned(d, c, plan);
  ASSERT_EQ(plain.sizes(), planned.sizes());
  EXPECT_EQ(plain.sizes(), (std::vector<int64_t>{4, 3, 4, 64}));
  const double diff = RelativeDiff(planned, plain);
  std::printf("prefix + rows + packed vs plain: relative diff %.3g\n", diff);
  EXPECT_LT(diff, 1e-5);
  EXPECT_GT(plain.abs().max().item<double>(), 0.5);  // the layers did something
}

TEST(ForwardPlan, EachSavingAloneMatchesThePlainForward) {
  const nn::TextDecoder d = RandomDecoder(SmallShape());
  const Case c;
  PrefixCache unused;
  for (int mask = 0; mask < 8; ++mask) {
    ForwardPlan plan{.prefix = (mask & 1) ? &unused : nullptr,
                     .rows_only = (mask & 2) != 0,
                     .packed = (mask & 4) != 0};
    auto [plain, planned] = PlainAndPlanned(d, c, plan);
    EXPECT_LT(RelativeDiff(planned, plain), 1e-5) << "prefix " << (mask & 1) << " rows "
                                                  << (mask & 2) << " packed " << (mask & 4);
    if (mask == 0) {
      EXPECT_TRUE(planned.equal(plain));  // nothing changed: the same ops
    }
  }
}

TEST(ForwardPlan, LayerZeroOnlyAndRepeatedPositions) {
  const nn::TextDecoder d = RandomDecoder(SmallShape());
  Case c;
  c.request = {{0}, {12, 12, 9}};
  PrefixCache unused;
  auto [plain, planned] = PlainAndPlanned(d, c, ForwardPlan{.prefix = &unused});
  EXPECT_TRUE(planned.equal(plain));  // embeddings only
  c.request = {{3, 0, 3}, {12, 12, 9}};
  auto [plain3, planned3] = PlainAndPlanned(d, c, ForwardPlan{.prefix = &unused});
  EXPECT_LT(RelativeDiff(planned3, plain3), 1e-5);
}

// Qwen2-style biases and Gemma-style QK-norm per head, through the same
// block, show other families can opt in.
TEST(ForwardPlan, BiasedAndQkNormedAttention) {
  using Block = nn::TransformerBlock<nn::RmsNorm<>, nn::GatedMlp, nn::SelfAttention<nn::RmsNorm<>>>;
  nn::AttentionShape a;
  a.hidden_size = 64;
  a.num_heads = 4;
  a.num_kv_heads = 2;
  a.head_dim = 16;
  a.qkv_bias = true;
  a.qk_norm = nn::QkNormScope::kPerHead;
  RandomLoader loader;
  Block block;
  block.attn_norm = nn::RmsNorm<>::Load(loader, "in_norm", 64, 1e-6);
  block.attn = nn::SelfAttention<nn::RmsNorm<>>::Load(loader, "attn", a);
  block.attn_out_norm = nn::RmsNorm<>::Load(loader, "post_attn_norm", 64, 1e-6);
  block.mlp_norm = nn::RmsNorm<>::Load(loader, "mlp_norm", 64, 1e-6);
  block.mlp = nn::GatedMlp::Load(loader, "mlp", 64, 128, nn::Activation::kGeluTanh, false);
  block.attn.PackProjections();
  block.mlp.PackGateUp();
  auto rotary = nn::RotaryEmbedding::Create({}, 16, 256);
  ASSERT_TRUE(rotary.ok());
  c10::InferenceMode guard;
  at::manual_seed(3);
  at::Tensor x = at::randn({2, 20, 64});
  x.slice(1, 0, 5).copy_(x.slice(0, 0, 1).slice(1, 0, 5).expand({2, -1, -1}));
  const nn::CosSin cs = (*rotary)(at::arange(20, at::kLong).unsqueeze(0), at::kFloat, 20);
  const nn::AttentionMask causal = nn::AttentionMask::Causal();
  const at::Tensor plain = block(x, &cs, causal);
  // Prefix of 5, then rows 7 and 19 only.
  nn::PastKv past;
  nn::ExtendedCall capture;
  capture.present = &past;
  capture.packed = true;
  const nn::CosSin head{cs.cos.slice(1, 0, 5), cs.sin.slice(1, 0, 5)};
  block.Extended(x.slice(0, 0, 1).slice(1, 0, 5), &head, causal, capture);
  nn::ExtendedCall call;
  call.past = &past;
  call.query_rows = at::tensor(std::vector<int64_t>{2, 14}, at::kLong);
  call.packed = true;
  const nn::CosSin tail{cs.cos.slice(1, 5), cs.sin.slice(1, 5)};
  const at::Tensor rows = block.Extended(x.slice(1, 5), &tail, causal, call);
  const at::Tensor expect = plain.index_select(1, at::tensor(std::vector<int64_t>{7, 19}, at::kLong));
  EXPECT_LT(RelativeDiff(rows, expect), 1e-5);
}

TEST(ForwardPlan, ExplicitMaskAtRequestedRows) {
  const nn::TextDecoder d = RandomDecoder(SmallShape());
  c10::InferenceMode guard;
  at::manual_seed(5);
  const at::Tensor x = at::randn({2, 24, 64});
  const nn::CosSin cs = d.rotary(at::arange(24, at::kLong).unsqueeze(0), at::kFloat, 24);
  // A sliding window of 6 positions (Gemma 3's local layers).
  const at::Tensor q = at::arange(24, at::kLong).unsqueeze(1), k = at::arange(24, at::kLong).unsqueeze(0);
  const nn::AttentionMask window = nn::AttentionMask::Explicit((k <= q).logical_and(k > q - 6));
  const at::Tensor plain = d.RunLayer(1, x, cs, window);
  nn::ExtendedCall call;
  call.query_rows = at::tensor(std::vector<int64_t>{3, 23}, at::kLong);
  call.packed = true;
  const at::Tensor rows = d.RunLayer(1, x, cs, window, call);
  EXPECT_LT(RelativeDiff(rows, plain.index_select(1, call.query_rows)), 1e-5);
}

TEST(ForwardPlan, PackingLeavesThePlainCallBitIdentical) {
  RandomLoader l1, l2;
  auto a = nn::TextDecoder::Load(l1, "", SmallShape(), at::kCPU);
  auto b = nn::TextDecoder::Load(l2, "", SmallShape(), at::kCPU);
  ASSERT_TRUE(a.ok() && b.ok());
  b->PackWeights();
  c10::InferenceMode guard;
  at::manual_seed(8);
  const at::Tensor x = at::randn({2, 17, 64});
  const nn::CosSin cs = a->rotary(at::arange(17, at::kLong).unsqueeze(0), at::kFloat, 17);
  for (int64_t i = 0; i < 3; ++i) {
    EXPECT_TRUE(a->RunLayer(i, x, cs, nn::AttentionMask::Causal())
                    .equal(b->RunLayer(i, x, cs, nn::AttentionMask::Causal())));
  }
}

TEST(ForwardPlan, SharedPrefixLengthStopsAtImagesAndRequests) {
  const std::vector<int64_t> ids = {1, 5, 6, 9, 9, 9, 4, 2};
  EXPECT_EQ(SharedPrefixLength(ids, 9, {{1}, {7}}), 3);
  EXPECT_EQ(SharedPrefixLength(ids, 9, {{1}, {7, 2}}), 2);
  EXPECT_EQ(SharedPrefixLength(ids, 77, {{1}, {7}}), 7);
  EXPECT_EQ(SharedPrefixLength(ids, 1, {{1}, {7}}), 0);
}

TEST(ForwardPlan, StalePrefixCachesAreErrors) {
  PrefixCache cache;
  cache.ids = {1, 2, 3};
  cache.layers.resize(2);
  const at::Tensor ids = at::tensor(std::vector<int64_t>{1, 2, 3, 4, 5, 6}, at::kLong).view({1, 6});
  EXPECT_TRUE(CheckPrefix(cache, ids, {{0, 2}, {4}}).ok());
  EXPECT_EQ(CheckPrefix(cache, ids, {{3}, {4}}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckPrefix(cache, ids, {{1}, {2}}).code(), absl::StatusCode::kInvalidArgument);
  const at::Tensor other = at::tensor(std::vector<int64_t>{1, 2, 8, 4, 5, 6}, at::kLong).view({1, 6});
  const absl::Status s = CheckPrefix(cache, other, {{1}, {4}});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("another prompt"), std::string_view::npos) << s;
}

// --- a whole LLaVA checkpoint with random weights ---------------------------------------------

constexpr int64_t kVision = 32, kText = 64, kVocab = 32064, kImageToken = 32000;

void WriteTinyLlava(const std::string& dir) {
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/config.json") << R"({
  "model_type": "llava", "architectures": ["LlavaForConditionalGeneration"], "dtype": "float32",
  "image_token_index": 32000, "projector_hidden_act": "gelu", "vision_feature_layer": -2,
  "vision_feature_select_strategy": "default", "image_seq_length": 576,
  "vision_config": {"model_type": "clip_vision_model", "hidden_size": 32, "intermediate_size": 64,
    "num_hidden_layers": 3, "num_attention_heads": 2, "image_size": 336, "patch_size": 14,
    "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5},
  "text_config": {"model_type": "llama", "hidden_size": 64, "intermediate_size": 160,
    "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 2,
    "vocab_size": 32064, "max_position_embeddings": 4096, "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0, "hidden_act": "silu"}
})";
  std::map<std::string, std::vector<int64_t>> shapes;
  const std::string v = "vision_tower.vision_model.";
  shapes[v + "embeddings.class_embedding"] = {kVision};
  shapes[v + "embeddings.patch_embedding.weight"] = {kVision, 3, 14, 14};
  shapes[v + "embeddings.position_embedding.weight"] = {577, kVision};
  for (const char* n : {"pre_layrnorm", "post_layernorm"}) {
    shapes[v + n + ".weight"] = shapes[v + n + ".bias"] = {kVision};
  }
  for (int i = 0; i < 3; ++i) {
    const std::string p = v + "encoder.layers." + std::to_string(i) + ".";
    for (const char* n : {"layer_norm1", "layer_norm2"}) {
      shapes[p + n + ".weight"] = shapes[p + n + ".bias"] = {kVision};
    }
    for (const char* n : {"q_proj", "k_proj", "v_proj", "out_proj"}) {
      shapes[p + "self_attn." + n + ".weight"] = {kVision, kVision};
      shapes[p + "self_attn." + n + ".bias"] = {kVision};
    }
    shapes[p + "mlp.fc1.weight"] = {64, kVision};
    shapes[p + "mlp.fc1.bias"] = {64};
    shapes[p + "mlp.fc2.weight"] = {kVision, 64};
    shapes[p + "mlp.fc2.bias"] = {kVision};
  }
  shapes["multi_modal_projector.linear_1.weight"] = {kText, kVision};
  shapes["multi_modal_projector.linear_1.bias"] = {kText};
  shapes["multi_modal_projector.linear_2.weight"] = {kText, kText};
  shapes["multi_modal_projector.linear_2.bias"] = {kText};
  const std::string t = "language_model.model.";
  shapes[t + "embed_tokens.weight"] = {kVocab, kText};
  shapes[t + "norm.weight"] = {kText};
  for (int i = 0; i < 3; ++i) {
    const std::string p = t + "layers." + std::to_string(i) + ".";
    shapes[p + "input_layernorm.weight"] = shapes[p + "post_attention_layernorm.weight"] = {kText};
    shapes[p + "self_attn.q_proj.weight"] = shapes[p + "self_attn.o_proj.weight"] = {kText, kText};
    shapes[p + "self_attn.k_proj.weight"] = shapes[p + "self_attn.v_proj.weight"] = {32, kText};
    shapes[p + "mlp.gate_proj.weight"] = shapes[p + "mlp.up_proj.weight"] = {160, kText};
    shapes[p + "mlp.down_proj.weight"] = {kText, 160};
  }
  RandomLoader random;
  std::map<std::string, at::Tensor> weights;
  for (const auto& [name, shape] : shapes) weights[name] = random.Take(name, shape);
  const absl::Status s = io::WriteSafetensors(dir + "/model.safetensors", weights);
  ASSERT_TRUE(s.ok()) << s;
}

TEST(ForwardPlan, LlavaPlannedForwardMatchesPlain) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string dir = std::string(tmp ? tmp : "/tmp") + "/forward_plan_llava";
  WriteTinyLlava(dir);
  absl::StatusOr<LlavaModel> model = Llava::Load(dir, {.dtype = at::kFloat});
  ASSERT_TRUE(model.ok()) << model.status();
  // "<s> USER: " + 576 image tokens + a question; targets after the image.
  std::vector<int64_t> prompt = {1, 3148, 1001, 29901, 29871};
  prompt.insert(prompt.end(), 576, kImageToken);
  for (int64_t id : {13, 3624, 285, 17627, 304, 278, 2175, 29973, 319, 1799}) prompt.push_back(id);
  const int64_t n = static_cast<int64_t>(prompt.size());
  const at::Tensor one = at::tensor(prompt, at::kLong).unsqueeze(0);
  const at::Tensor ids = one.expand({3, n}).contiguous();
  at::manual_seed(11);
  const LlavaPixels pixels{at::randn({3, 3, 336, 336})};
  const HiddenStateRequest request{{0, 1, 2, 3}, {n - 7, n - 1, 590}};
  absl::StatusOr<at::Tensor> plain = model->Forward(ids, pixels, request);
  ASSERT_TRUE(plain.ok()) << plain.status();
  absl::StatusOr<PrefixCache> prefix = model->ComputePrefix(one, request);
  ASSERT_TRUE(prefix.ok()) << prefix.status();
  EXPECT_EQ(prefix->length(), 5);
  EXPECT_EQ(prefix->deepest(), 3);
  absl::StatusOr<at::Tensor> planned = model->Forward(ids, pixels, request, ForwardPlan{.prefix = &*prefix});
  ASSERT_TRUE(planned.ok()) << planned.status();
  const double diff = RelativeDiff(*planned, *plain);
  std::printf("LLaVA planned (prefix of %ld, rows, packed) vs plain: relative diff %.3g\n",
              static_cast<long>(prefix->length()), diff);
  EXPECT_LT(diff, 1e-5);
  // Images differ, so the rows after the image differ between sequences.
  EXPECT_GT((plain->select(1, 0) - plain->select(1, 1)).abs().max().item<double>(), 1e-3);
  // A prefix cache of another prompt is refused.
  std::vector<int64_t> other = prompt;
  other[1] = 3000;
  const at::Tensor other_ids = at::tensor(other, at::kLong).unsqueeze(0).expand({3, n}).contiguous();
  EXPECT_FALSE(model->Forward(other_ids, pixels, request, ForwardPlan{.prefix = &*prefix}).ok());
}

}  // namespace
}  // namespace spatialid::families
