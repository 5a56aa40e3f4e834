// Unit tests of the shared blocks (spatialid/nn), the hidden-state loop
// (families/hidden_states.h) and the CLIP processor's config parsing: the
// properties that need no transformers oracle (llava_oracle_test.py has
// the oracle comparisons).
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <ATen/ops/allclose.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/equal.h>
#include <ATen/ops/full.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/sigmoid.h>
#include <ATen/ops/softmax.h>
#include <ATen/ops/tril.h>
#include <ATen/ops/zeros.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "spatialid/config/processor_config.h"
#include "spatialid/families/hidden_states.h"
#include "spatialid/nn/activation.h"
#include "spatialid/nn/attention.h"
#include "spatialid/nn/mlp.h"
#include "spatialid/nn/norm.h"
#include "spatialid/nn/rotary.h"
#include "spatialid/nn/transformer_block.h"
#include "spatialid/nn/weights.h"
#include "spatialid/vision/clip_image_processor.h"

namespace spatialid {
namespace {

// A WeightLoader over a map that records what was missing or misshapen.
struct MapLoader {
  std::map<std::string, at::Tensor> tensors;
  std::vector<std::string> missing, wrong_shape;
  at::Tensor Take(const std::string& name, const std::vector<int64_t>& shape) {
    auto it = tensors.find(name);
    if (it == tensors.end()) {
      missing.push_back(name);
      return {};
    }
    if (!it->second.sizes().equals(shape)) {
      wrong_shape.push_back(name);
      return {};
    }
    return it->second;
  }
};
static_assert(nn::WeightLoader<MapLoader>);

double MaxAbsDiff(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

// Plain softmax attention, the definition SDPA must agree with.
at::Tensor ReferenceAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                              const at::Tensor& additive, double scale) {
  at::Tensor w = q.matmul(k.transpose(-1, -2)) * scale;
  if (additive.defined()) w = w + additive;
  return at::softmax(w, -1).matmul(v);
}

TEST(Activation, ParsesHfNamesAndComputesFormulas) {
  const at::Tensor x = at::randn({64}, at::kDouble);
  ASSERT_EQ(*nn::ParseActivation("quick_gelu"), nn::Activation::kQuickGelu);
  ASSERT_EQ(*nn::ParseActivation("swish"), nn::Activation::kSilu);
  ASSERT_EQ(*nn::ParseActivation("gelu_pytorch_tanh"), nn::Activation::kGeluTanh);
  EXPECT_FALSE(nn::ParseActivation("gelu_fancy").ok());
  EXPECT_LT(MaxAbsDiff(nn::Apply(nn::Activation::kQuickGelu, x), x * at::sigmoid(1.702 * x)), 1e-15);
  EXPECT_LT(MaxAbsDiff(nn::Apply(nn::Activation::kSilu, x), x * at::sigmoid(x)), 1e-15);
  const at::Tensor tanh_formula =
      0.5 * x * (1 + (std::sqrt(2 / M_PI) * (x + 0.044715 * x.pow(3))).tanh());
  EXPECT_LT(MaxAbsDiff(nn::Apply(nn::Activation::kGeluNew, x), tanh_formula), 1e-14);
  EXPECT_LT(MaxAbsDiff(nn::Apply(nn::Activation::kGeluTanh, x), tanh_formula), 1e-12);
  const at::Tensor erf_formula = 0.5 * x * (1 + (x / std::sqrt(2.0)).erf());
  EXPECT_LT(MaxAbsDiff(nn::Apply(nn::Activation::kGelu, x), erf_formula), 1e-14);
}

TEST(Norm, RmsNormStylesFollowTheirDefinitions) {
  const at::Tensor x = at::randn({3, 8}).to(at::kBFloat16);
  const at::Tensor w = at::randn({8}).to(at::kBFloat16);
  nn::RmsNorm<nn::RmsNormWeight::kMultiply> llama{w, 1e-6};
  nn::RmsNorm<nn::RmsNormWeight::kOnePlus> gemma{w, 1e-6};
  const at::Tensor xf = x.to(at::kFloat);
  const at::Tensor normed = xf / (xf.pow(2).mean(-1, true) + 1e-6).sqrt();
  const at::Tensor a = llama(x), b = gemma(x);
  EXPECT_EQ(a.scalar_type(), at::kBFloat16);
  EXPECT_EQ(b.scalar_type(), at::kBFloat16);
  // Llama multiplies in bf16 after casting; Gemma in fp32 before casting.
  EXPECT_TRUE(at::equal(a, w * normed.to(at::kBFloat16)));
  EXPECT_TRUE(at::equal(b, (normed * (w.to(at::kFloat) + 1)).to(at::kBFloat16)));
}

TEST(Rotary, RotatesPairsLikeComplexMultiplication) {
  auto rope = nn::RotaryEmbedding::Create({}, /*head_dim=*/8, /*max_position_embeddings=*/64);
  ASSERT_TRUE(rope.ok());
  const at::Tensor pos = at::arange(5, at::kLong).unsqueeze(0);
  const nn::CosSin cs = (*rope)(pos, at::kDouble, 5);
  const at::Tensor x = at::randn({1, 2, 5, 8}, at::kDouble);
  const at::Tensor y = nn::ApplyRotary(x, cs);
  // Half-split pairs (x_i, x_{i+4}) rotate by angle pos * inv_freq_i.
  const at::Tensor inv = rope->inv_freq().to(at::kDouble);
  for (int64_t p = 0; p < 5; ++p) {
    for (int64_t i = 0; i < 4; ++i) {
      const double angle = static_cast<double>(p) * inv[i].item<double>();
      const double a = x[0][1][p][i].item<double>(), b = x[0][1][p][i + 4].item<double>();
      EXPECT_NEAR(y[0][1][p][i].item<double>(), a * std::cos(angle) - b * std::sin(angle), 1e-6);
      EXPECT_NEAR(y[0][1][p][i + 4].item<double>(), b * std::cos(angle) + a * std::sin(angle), 1e-6);
    }
  }
  EXPECT_FALSE(nn::RotaryEmbedding::Create({}, 7, 64).ok());
  EXPECT_FALSE(nn::ParseRopeType("yarn").ok());
}

TEST(Attention, CausalFlagGqaAndMasksAgreeWithThePlainDefinition) {
  const int64_t b = 2, h = 4, kv = 2, s = 6, d = 8;
  const at::Tensor q = at::randn({b, h, s, d}), k = at::randn({b, kv, s, d}), v = at::randn({b, kv, s, d});
  const double scale = 1 / std::sqrt(8.0);
  const at::Tensor causal_bool = at::ones({s, s}, at::kBool).tril();
  const at::Tensor additive =
      at::zeros({s, s}).masked_fill(causal_bool.logical_not(), -INFINITY);
  const at::Tensor expect = ReferenceAttention(q, nn::RepeatKv(k, 2), nn::RepeatKv(v, 2), additive, scale);
  const at::Tensor by_flag = nn::Attend(q, k, v, nn::AttentionMask::Causal(), scale, true);
  const at::Tensor by_bool = nn::Attend(q, k, v, nn::AttentionMask::Explicit(causal_bool), scale, true);
  const at::Tensor by_add = nn::Attend(q, k, v, nn::AttentionMask::Explicit(additive), scale, true);
  EXPECT_LT(MaxAbsDiff(by_flag, expect), 1e-5);
  EXPECT_LT(MaxAbsDiff(by_bool, expect), 1e-5);
  EXPECT_LT(MaxAbsDiff(by_add, expect), 1e-5);
  // A sliding window (each query sees itself and one key back) is just a mask.
  const at::Tensor window = causal_bool.logical_and(at::ones({s, s}, at::kBool).triu(-1));
  const at::Tensor windowed = nn::Attend(q, k, v, nn::AttentionMask::Explicit(window), scale, true);
  const at::Tensor window_add = at::zeros({s, s}).masked_fill(window.logical_not(), -INFINITY);
  EXPECT_LT(MaxAbsDiff(windowed, ReferenceAttention(q, nn::RepeatKv(k, 2), nn::RepeatKv(v, 2),
                                                    window_add, scale)),
            1e-5);
  EXPECT_GT(MaxAbsDiff(windowed, expect), 1e-3);  // the window changes the result
}

TEST(TransformerBlock, LoadsByHfNamesAndReportsMissingOnes) {
  MapLoader w;
  const int64_t hid = 8;
  auto put = [&](const std::string& n, std::vector<int64_t> shape) { w.tensors[n] = at::randn(shape) * 0.3; };
  for (const char* p : {"q_proj", "k_proj", "v_proj", "o_proj"}) put(std::string("l.self_attn.") + p + ".weight", {hid, hid});
  put("l.self_attn.q_norm.weight", {4});
  put("l.self_attn.k_norm.weight", {4});
  put("l.mlp.gate_proj.weight", {16, hid});
  put("l.mlp.up_proj.weight", {16, hid});
  put("l.mlp.down_proj.weight", {hid, 16});
  nn::AttentionShape shape{.hidden_size = hid, .num_heads = 2, .num_kv_heads = 2, .head_dim = 4,
                           .qk_norm = nn::QkNormScope::kPerHead};
  nn::TransformerBlock<nn::RmsNorm<>, nn::GatedMlp> block;
  block.attn = nn::SelfAttention<>::Load(w, "l.self_attn", shape);
  block.mlp = nn::GatedMlp::Load(w, "l.mlp", hid, 16, nn::Activation::kSilu, false);
  block.attn_norm = nn::RmsNorm<>::Load(w, "l.input_layernorm", hid, 1e-6);
  EXPECT_EQ(w.missing, std::vector<std::string>{"l.input_layernorm.weight"});
  block.attn_norm.weight = at::ones({hid});
  block.mlp_norm.weight = at::ones({hid});
  const at::Tensor x = at::randn({1, 5, hid});
  auto rope = nn::RotaryEmbedding::Create({}, 4, 64);
  const nn::CosSin cs = (*rope)(at::arange(5, at::kLong).unsqueeze(0), at::kFloat, 5);
  const at::Tensor y = block(x, &cs, nn::AttentionMask::Causal());
  EXPECT_EQ(y.sizes(), x.sizes());
  // Causality: changing the last token leaves earlier rows alone.
  at::Tensor x2 = x.clone();
  x2.select(1, 4).add_(1.0);
  const at::Tensor y2 = block(x2, &cs, nn::AttentionMask::Causal());
  EXPECT_TRUE(at::equal(y.slice(1, 0, 4), y2.slice(1, 0, 4)));
  EXPECT_FALSE(at::equal(y.slice(1, 4), y2.slice(1, 4)));
}

TEST(HiddenStates, IndexSemanticsAndEarlyStop) {
  // "Layer" i adds 10^i; the final norm negates. Hidden state i is then the
  // embedding plus the first i terms, and state N is negated.
  const int64_t n = 4;
  const at::Tensor embeds = at::arange(2 * 3 * 2, at::kFloat).reshape({2, 3, 2});
  int calls = 0;
  auto layer = [&](int64_t i, const at::Tensor& x) {
    ++calls;
    return x + std::pow(10.0, static_cast<double>(i));
  };
  auto norm = [](const at::Tensor& x) { return -x; };
  spatialid::families::HiddenStateRequest req{.layers = {4, 0, 2}, .positions = {2, 0}};
  ASSERT_TRUE(spatialid::families::ValidateRequest(req, n, 3).ok());
  const at::Tensor out = spatialid::families::CollectHiddenStates(embeds, n, req, layer, norm);
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{3, 2, 2, 2}));
  const at::Tensor rows = embeds.index_select(1, at::arange(2, -1, -2, at::kLong));
  EXPECT_TRUE(at::equal(out[1], rows));
  EXPECT_TRUE(at::equal(out[2], rows + 11));
  EXPECT_TRUE(at::equal(out[0], -(rows + 1111)));
  EXPECT_EQ(calls, 4);
  calls = 0;
  spatialid::families::HiddenStateRequest shallow{.layers = {1}, .positions = {1}};
  spatialid::families::CollectHiddenStates(embeds, n, shallow, layer, norm);
  EXPECT_EQ(calls, 1);  // stops after the deepest requested layer
  EXPECT_EQ(shallow.needed_length(), 2);
  EXPECT_FALSE(spatialid::families::ValidateRequest({.layers = {5}, .positions = {0}}, n, 3).ok());
  EXPECT_FALSE(spatialid::families::ValidateRequest({.layers = {0}, .positions = {3}}, n, 3).ok());
  EXPECT_FALSE(spatialid::families::ValidateRequest({.layers = {}, .positions = {0}}, n, 3).ok());
}

TEST(ClipImageProcessor, ValidatesSettingsAndSizesLikeTransformers) {
  auto cfg = config::ParseProcessorConfigJson<config::CLIPImageProcessorConfig>(
      nlohmann::json::parse(R"({"size": {"shortest_edge": 336}, "crop_size": 336, "resample": 2})"),
      "p.json");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  auto proc = vision::ClipImageProcessor::Create(*cfg);
  ASSERT_TRUE(proc.ok()) << proc.status();
  // Portrait / landscape shortest-edge sizes as transformers computes them.
  EXPECT_EQ(proc->ResizedSize(517, 333), std::make_pair(int64_t{521}, int64_t{336}));
  EXPECT_EQ(proc->ResizedSize(600, 720), std::make_pair(int64_t{336}, int64_t{403}));
  io::Image empty(1, 1, 3);
  empty.pixels.clear();
  EXPECT_FALSE(proc->Preprocess(empty).ok());
  // Undersized images are zero-padded around the centre, then cropped.
  io::Image small(100, 80, 3, 255);
  config::CLIPImageProcessorConfig no_resize = *cfg;
  no_resize.do_resize = false;
  no_resize.do_normalize = false;
  no_resize.do_rescale = false;
  for (auto engine : {vision::ResizeEngine::kTorchvision, vision::ResizeEngine::kPillow}) {
    auto p = vision::ClipImageProcessor::Create(no_resize, engine);
    ASSERT_TRUE(p.ok());
    auto px = p->Preprocess(small);
    ASSERT_TRUE(px.ok()) << px.status();
    EXPECT_EQ(px->sizes(), (std::vector<int64_t>{3, 336, 336}));
    EXPECT_EQ(px->sum().item<double>(), 255.0 * 3 * 100 * 80);
    EXPECT_EQ((*px)[0][168][168].item<float>(), 255.0f);
    EXPECT_EQ((*px)[0][0][0].item<float>(), 0.0f);
  }
  config::CLIPImageProcessorConfig bad = *cfg;
  bad.image_std = {0.2, 0.0, 0.2};
  EXPECT_FALSE(vision::ClipImageProcessor::Create(bad).ok());
  bad = *cfg;
  bad.resample = 1;  // LANCZOS: Pillow has it, torchvision tensors do not
  EXPECT_FALSE(vision::ClipImageProcessor::Create(bad).ok());
  EXPECT_TRUE(vision::ClipImageProcessor::Create(bad, vision::ResizeEngine::kPillow).ok());
  EXPECT_FALSE(vision::LoadClipImageProcessorConfig("/nonexistent").ok());
}

}  // namespace
}  // namespace spatialid
