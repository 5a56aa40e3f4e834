#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"

#include "spatialid/policies/averaging.h"
#include "spatialid/policies/layers.h"
#include "spatialid/policies/pooling.h"

namespace spatialid::policy {
namespace {

static_assert(LayerSelector<layers::All>);
static_assert(LayerSelector<layers::Reference>);
static_assert(LayerSelector<layers::Explicit>);
static_assert(Pooler<pooling::LastSubtoken>);
static_assert(Pooler<pooling::MeanOfSubtokens>);

TEST(Layers, AllKeepsEveryHiddenState) {
  auto l = layers::All{}.Select(5);
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(*l, (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(Layers, ReferencePresetTruncates) {
  // llama-11b: 41 hidden states, the reference keeps 0..32.
  auto l = layers::Reference{.last = 32}.Select(41);
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->size(), 33u);
  EXPECT_EQ(l->back(), 32);
  EXPECT_EQ(layers::Reference{}.Select(7)->size(), 7u);
  auto too_far = layers::Reference{.last = 40}.Select(33);
  EXPECT_FALSE(too_far.ok());
  EXPECT_NE(too_far.status().message().find("only 33"), std::string::npos);
}

TEST(Layers, ExplicitSortsDedupsAndCountsFromEnd) {
  auto l = layers::Explicit{{16, 8, -1, 8}}.Select(33);
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(*l, (std::vector<int>{8, 16, 32}));
  EXPECT_FALSE(layers::Explicit{{33}}.Select(33).ok());
  EXPECT_FALSE(layers::Explicit{}.Select(33).ok());
}

TEST(Layers, SpecParsesFlags) {
  static_assert(LayerSelector<layers::Spec>);
  EXPECT_EQ(layers::Spec::Parse("all")->Select(4)->size(), 4u);
  EXPECT_EQ(layers::Spec::Parse("reference", 2)->Select(5)->size(), 3u);
  EXPECT_EQ(*layers::Spec::Parse("0,8-10,-1")->Select(33), (std::vector<int>{0, 8, 9, 10, 32}));
  EXPECT_FALSE(layers::Spec::Parse("eight").ok());
  EXPECT_FALSE(layers::Spec::Parse("1,,2").ok());
}

TEST(Pooling, LastSubtokenTakesFirstOccurrenceOfLastPiece) {
  const std::vector<int32_t> prompt = {1, 5, 7, 9, 7, 3};
  const std::vector<int32_t> word = {9, 7};  // e.g. "▁fro", "g"
  auto p = pooling::LastSubtoken{}.Positions(prompt, word);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(*p, (std::vector<int64_t>{2}));  // first 7, even before the word itself
  const std::vector<int32_t> absent = {42};
  EXPECT_FALSE(pooling::LastSubtoken{}.Positions(prompt, absent).ok());
}

TEST(Pooling, MeanOfSubtokensAveragesTheWholeWord) {
  const std::vector<int32_t> prompt = {1, 5, 7, 9, 7, 3};
  const std::vector<int32_t> word = {9, 7};
  auto p = pooling::MeanOfSubtokens{}.Positions(prompt, word);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(*p, (std::vector<int64_t>{3, 4}));
  at::Tensor rows = at::arange(12, at::kFloat).reshape({3, 2, 2});  // [layers, positions, hidden]
  at::Tensor pooled = pooling::MeanOfSubtokens{}.Pool(rows);
  EXPECT_TRUE(at::allclose(pooled, rows.mean({1})));
  EXPECT_TRUE(at::equal(pooling::LastSubtoken{}.Pool(rows), rows.select(1, 0)));
}

}  // namespace
}  // namespace spatialid::policy



namespace spatialid::policy {
namespace {

// Both averaging policies implement the same recipe; on fp32 inputs they
// must agree to rounding, and differ from a plain (uncentred) mean.
TEST(Averaging, StreamingAndReferenceMeansAgree) {
  at::manual_seed(3);
  const std::vector<int64_t> layers = {0, 5};
  averaging::StreamingMean streaming(layers);
  averaging::ReferenceMean reference(layers);
  at::Tensor plain_sum = at::zeros({2, 8});
  int plain_n = 0;
  for (int ax = 0; ax < 3; ++ax) {
    for (int bx = 0; bx < 4; ++bx) {
      if (bx == ax) continue;  // B never on A's cell
      const extract::CellKey key{bx, 0, 224};
      at::Tensor v = at::randn({2, 8}) + ax;  // folder offset that centring removes
      const std::string a = absl::StrCat(ax, "_0");
      ASSERT_TRUE(streaming.Add(a, "rog", key, v).ok());
      ASSERT_TRUE(reference.Add(a, "rog", key, v).ok());
      if (bx == 3) { plain_sum += v; ++plain_n; }
    }
  }
  EXPECT_FALSE(reference.Add("0_0", "rog", {1, 0, 224}, at::zeros({2, 8})).ok());
  auto s = streaming.Result(at::kFloat);
  auto r = reference.Result(at::kFloat);
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(r.ok());
  for (int64_t layer : layers) {
    for (int bx = 0; bx < 4; ++bx) {
      const io::PtKey k = io::PtKey::Tuple(bx, 0, 224);
      const at::Tensor a = s->at(layer).at("rog").at(k).tensor();
      const at::Tensor b = r->at(layer).at("rog").at(k).tensor();
      EXPECT_TRUE(at::allclose(a, b, 1e-5, 1e-5)) << "layer " << layer << " x " << bx;
    }
  }
  const at::Tensor uncentred = (plain_sum / plain_n)[1];
  EXPECT_FALSE(at::allclose(s->at(5).at("rog").at(io::PtKey::Tuple(3, 0, 224)).tensor(), uncentred, 1e-3, 1e-3));
}

}  // namespace
}  // namespace spatialid::policy
