#include <ATen/ATen.h>
#include <gtest/gtest.h>

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
