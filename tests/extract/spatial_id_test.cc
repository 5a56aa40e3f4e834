// The spatial-ID math on hand-computed cases: centring per A folder,
// averaging, universal means, both axis variants, text embeddings, shard
// states and the error paths. (spatial_id_oracle_test.py checks the same
// functions against the reference recipe in torch on random vectors.)
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <fstream>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "spatialid/extract/spatial_id.h"
#include "spatialid/io/torch_file_reader.h"

namespace spatialid::extract {
namespace {

std::string TempDir() {
  const char* t = std::getenv("TEST_TMPDIR");
  std::string d = std::string(t ? t : "/tmp") + "/spatial_id_test";
  std::filesystem::create_directories(d);
  return d;
}

at::Tensor Row(std::vector<float> v) { return at::tensor(v, at::kFloat).reshape({1, -1}); }

const at::Tensor& Leaf(const io::PtDict& d, int64_t layer, const std::string& token,
                       const CellKey& key) {
  return d.at(layer).at(token).at(key.ToPtKey()).tensor();
}

// A0 holds k1 = [1, 0], k2 = [3, 2] (mean [2, 1]); A1 holds k2 = [5, 5],
// k3 = [1, -1] (mean [3, 2]). Centred: k1 = [-1, -1]; k2 = [1, 1] and [2, 3];
// k3 = [-2, -3]. IDs: k1 = [-1, -1], k2 = [1.5, 2], k3 = [-2, -3].
const CellKey k1{0, 0, 224}, k2{1, 0, 224}, k3{2, 0, 224};

void AddHandExample(PairIdAccumulator& acc, const std::vector<int>& order = {0, 1, 2, 3}) {
  const std::vector<std::tuple<std::string, CellKey, std::vector<float>>> items = {
      {"A0", k1, {1, 0}}, {"A0", k2, {3, 2}}, {"A1", k2, {5, 5}}, {"A1", k3, {1, -1}}};
  for (int i : order) {
    const auto& [a, key, v] = items[i];
    ASSERT_TRUE(acc.Add(a, "rog", key, Row(v)).ok());
  }
}

void ExpectHandResult(const io::PtDict& ids) {
  EXPECT_TRUE(at::allclose(Leaf(ids, 5, "rog", k1), at::tensor({-1.f, -1.f})));
  EXPECT_TRUE(at::allclose(Leaf(ids, 5, "rog", k2), at::tensor({1.5f, 2.f})));
  EXPECT_TRUE(at::allclose(Leaf(ids, 5, "rog", k3), at::tensor({-2.f, -3.f})));
}

TEST(PairId, CentresPerFolderAndAveragesOverFoldersHoldingTheKey) {
  PairIdAccumulator acc({5});
  AddHandExample(acc);
  EXPECT_EQ(acc.vectors_added(), 4);
  EXPECT_EQ(acc.dim(), 2);
  auto ids = acc.Result(at::kFloat);
  ASSERT_TRUE(ids.ok()) << ids.status();
  ExpectHandResult(*ids);
  // Keys come out sorted; the leaf is a [D] tensor of the requested dtype.
  std::vector<io::PtKey> keys;
  for (const auto& [k, v] : ids->at(5).at("rog").dict()) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<io::PtKey>{k1.ToPtKey(), k2.ToPtKey(), k3.ToPtKey()}));
  auto half = acc.Result(at::kHalf);
  ASSERT_TRUE(half.ok());
  EXPECT_EQ(Leaf(*half, 5, "rog", k2).scalar_type(), at::kHalf);
  EXPECT_EQ(Leaf(*half, 5, "rog", k2).sizes(), at::IntArrayRef({2}));
}

TEST(PairId, ArrivalOrderDoesNotMatter) {
  PairIdAccumulator acc({5});
  AddHandExample(acc, {3, 1, 0, 2});
  auto ids = acc.Result(at::kFloat);
  ASSERT_TRUE(ids.ok());
  ExpectHandResult(*ids);
}

TEST(PairId, LargeCommonComponentKeepsItsPrecision) {
  // Hidden states share large components (massive activations); here every
  // vector is 3000 + a signal of size 0.01. Summing raw float32 vectors
  // would lose ~1e-4 of the signal to rounding; the pivoted sums must stay
  // within float32 rounding of the signal itself. Reference in double.
  at::manual_seed(1);
  PairIdAccumulator acc({0});
  std::map<std::pair<int, int>, std::vector<double>> e;  // (folder, cell) -> vector
  const int64_t dim = 64;
  for (int a = 0; a < 16; ++a) {
    for (int b = 0; b < 16; ++b) {
      if (a == b) continue;
      at::Tensor v = (at::randn({1, dim}, at::kDouble) * 0.01 + 3000).to(at::kFloat);
      ASSERT_TRUE(acc.Add(absl::StrCat(a), "t", CellKey{b % 4, b / 4, 224}, v).ok());
      at::Tensor vd = v.to(at::kDouble).contiguous();
      e[{a, b}] = std::vector<double>(vd.data_ptr<double>(), vd.data_ptr<double>() + dim);
    }
  }
  auto ids = acc.Result(at::kFloat);
  ASSERT_TRUE(ids.ok());
  std::vector<std::vector<double>> mean(16, std::vector<double>(dim, 0.0));
  for (const auto& [ab, v] : e) {
    for (int64_t d = 0; d < dim; ++d) mean[ab.first][d] += v[d] / 15.0;
  }
  double worst = 0;
  for (int b = 0; b < 16; ++b) {
    const at::Tensor got = Leaf(*ids, 0, "t", CellKey{b % 4, b / 4, 224}).to(at::kDouble);
    for (int64_t d = 0; d < dim; ++d) {
      double want = 0;
      for (int a = 0; a < 16; ++a) {
        if (a != b) want += (e[{a, b}][d] - mean[a][d]) / 15.0;
      }
      worst = std::max(worst, std::abs(got[d].item<double>() - want));
    }
  }
  EXPECT_LT(worst, 2e-6) << "float32 rounding of the raw sums leaked into the IDs";
}

TEST(PairId, LayersTokensAndFlatFolder) {
  PairIdAccumulator acc({0, 12, 32});
  // One flat folder ("") with two keys; two tokens.
  at::Tensor a = at::arange(6, at::kFloat).reshape({3, 2});
  ASSERT_TRUE(acc.Add("", "left", k1, a).ok());
  ASSERT_TRUE(acc.Add("", "left", k2, a + 2).ok());
  ASSERT_TRUE(acc.Add("", "rog", k1, a.to(at::kHalf)).ok());
  ASSERT_TRUE(acc.Add("", "rog", k2, a.to(at::kHalf) * 3).ok());
  auto ids = acc.Result(at::kFloat);
  ASSERT_TRUE(ids.ok());
  std::vector<int64_t> layers;
  for (const auto& [k, v] : *ids) layers.push_back(k.as_int());
  EXPECT_EQ(layers, (std::vector<int64_t>{0, 12, 32}));
  // Layer 12 is row 1: left = [2, 3] and [4, 5], mean [3, 4].
  EXPECT_TRUE(at::allclose(Leaf(*ids, 12, "left", k1), at::tensor({-1.f, -1.f})));
  std::vector<std::string> tokens;
  for (const auto& [k, v] : ids->at(32).dict()) tokens.push_back(k.as_string());
  EXPECT_EQ(tokens, (std::vector<std::string>{"left", "rog"}));
}

TEST(PairId, Errors) {
  PairIdAccumulator acc({0, 1});
  EXPECT_FALSE(acc.Add("A", "t", k1, at::zeros({3, 4})).ok());              // 3 rows, 2 layers
  EXPECT_FALSE(acc.Add("A", "t", k1, at::zeros({4})).ok());                 // 1-D
  EXPECT_FALSE(acc.Add("A", "t", k1, at::zeros({2, 4}, at::kLong)).ok());   // not floating
  EXPECT_FALSE(acc.Add("A", "t", k1, at::Tensor()).ok());
  ASSERT_TRUE(acc.Add("A", "t", k1, at::zeros({2, 4})).ok());
  auto dup = acc.Add("A", "t", k1, at::ones({2, 4}));
  ASSERT_FALSE(dup.ok());
  EXPECT_NE(std::string(dup.message()).find("already added"), std::string::npos);
  EXPECT_FALSE(acc.Add("A", "t", k2, at::zeros({2, 5})).ok());  // D changed
  EXPECT_TRUE(acc.Add("B", "t", k1, at::zeros({2, 4})).ok());   // same key, other folder
  EXPECT_FALSE(acc.Result(at::kLong).ok());
}

TEST(PairId, MergedShardsAndReloadedStatesGiveTheSameIds) {
  at::manual_seed(4);
  const std::vector<int64_t> layers = {0, 7};
  PairIdAccumulator whole(layers), part1(layers), part2(layers);
  int n = 0;
  for (int ax = 0; ax < 4; ++ax) {
    for (int bx = 0; bx < 4; ++bx) {
      if (ax == bx) continue;
      for (int64_t s : {74, 224}) {
        const std::string a = absl::StrCat(ax, "_0");
        const CellKey key{bx, 0, s};
        at::Tensor v = at::randn({2, 6}) + 50;
        ASSERT_TRUE(whole.Add(a, "t", key, v).ok());
        // Shards split A folders across both parts.
        ASSERT_TRUE(((n++ % 2) ? part1 : part2).Add(a, "t", key, v).ok());
      }
    }
  }
  const std::string dir = TempDir();
  ASSERT_TRUE(SaveState(dir + "/p1.pt", part1).ok());
  ASSERT_TRUE(SaveState(dir + "/p2.pt", part2).ok());
  auto l1 = LoadPairIdState(dir + "/p1.pt");
  auto l2 = LoadPairIdState(dir + "/p2.pt");
  ASSERT_TRUE(l1.ok()) << l1.status();
  ASSERT_TRUE(l2.ok()) << l2.status();
  ASSERT_TRUE(l1->Merge(*l2).ok());
  EXPECT_EQ(l1->vectors_added(), whole.vectors_added());
  auto a = whole.Result(at::kFloat);
  auto b = l1->Result(at::kFloat);
  ASSERT_TRUE(a.ok() && b.ok());
  float worst = 0;
  for (int64_t layer : layers) {
    for (const auto& [k, v] : a->at(layer).at("t").dict()) {
      worst = std::max(worst, (v.tensor() - b->at(layer).at("t").at(k).tensor()).abs().max().item<float>());
    }
  }
  EXPECT_LT(worst, 1e-5);
  // Merging the same shard twice would count its vectors twice: refused.
  EXPECT_FALSE(l1->Merge(*l2).ok());
  // A state from another layer set does not merge.
  PairIdAccumulator other({1, 2});
  EXPECT_FALSE(other.Merge(*l2).ok());
}

TEST(PairId, MalformedStates) {
  EXPECT_FALSE(PairIdAccumulator::FromState(io::PtDict{}, "empty.pt").ok());
  PairIdAccumulator acc({5});
  AddHandExample(acc);
  ASSERT_TRUE(PairIdAccumulator::FromState(acc.State(), "good_state.pt").ok());
  io::PtDict state = acc.State();
  state["pair_id_state"]["tokens"]["rog"]["keys"][k1.ToPtKey()]["in"]["nowhere"];
  auto r = PairIdAccumulator::FromState(state, "bad_state.pt");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(std::string(r.status().message()).find("bad_state.pt"), std::string::npos);
}

TEST(Universal, MeanOverPairsAndTokensInOneBucket) {
  io::PtDict p1, p2;
  p1[3]["rog"][k1.ToPtKey()] = at::tensor({1.f, 2.f}).to(at::kHalf);
  p1[3]["left"][k1.ToPtKey()] = at::tensor({3.f, 4.f}).to(at::kHalf);
  p2[3]["amel"][k1.ToPtKey()] = at::tensor({5.f, 0.f}).to(at::kHalf);
  p2[3]["amel"][k2.ToPtKey()] = at::tensor({7.f, 7.f}).to(at::kHalf);
  UniversalIdAccumulator acc;
  ASSERT_TRUE(acc.AddPairIds(p1, "p1").ok());
  ASSERT_TRUE(acc.AddPairIds(p2, "p2").ok());
  EXPECT_EQ(acc.pairs_added(), 2);
  auto u = acc.Result(at::kHalf);
  ASSERT_TRUE(u.ok());
  EXPECT_TRUE(at::equal(Leaf(*u, 3, "universal", k1), at::tensor({3.f, 2.f}).to(at::kHalf)));
  EXPECT_TRUE(at::equal(Leaf(*u, 3, "universal", k2), at::tensor({7.f, 7.f}).to(at::kHalf)));

  // Shards of pairs, through state files.
  UniversalIdAccumulator s1, s2;
  ASSERT_TRUE(s1.AddPairIds(p1, "p1").ok());
  ASSERT_TRUE(s2.AddPairIds(p2, "p2").ok());
  ASSERT_TRUE(SaveState(TempDir() + "/u1.pt", s1).ok());
  auto l1 = LoadUniversalIdState(TempDir() + "/u1.pt");
  ASSERT_TRUE(l1.ok()) << l1.status();
  ASSERT_TRUE(l1->Merge(s2).ok());
  auto m = l1->Result(at::kHalf);
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(at::equal(Leaf(*m, 3, "universal", k1), Leaf(*u, 3, "universal", k1)));
  EXPECT_EQ(l1->pairs_added(), 2);
}

TEST(Universal, MalformedPairDictsAreRejectedWhole) {
  UniversalIdAccumulator acc;
  io::PtDict bad;
  bad["twelve"]["rog"][k1.ToPtKey()] = at::zeros({2});
  auto s = acc.AddPairIds(bad, "bad.pt");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(std::string(s.message()).find("bad.pt"), std::string::npos);
  EXPECT_NE(std::string(s.message()).find("int layer key"), std::string::npos);
  io::PtDict mixed;
  mixed[0]["rog"][k1.ToPtKey()] = at::zeros({2});
  mixed[0]["rog"][k2.ToPtKey()] = at::zeros({3});
  EXPECT_FALSE(acc.AddPairIds(mixed, "mixed.pt").ok());
  io::PtDict two_keys;
  two_keys[0]["rog"][io::PtKey::Tuple(1, 2)] = at::zeros({2});
  EXPECT_FALSE(acc.AddPairIds(two_keys, "k.pt").ok());
  EXPECT_EQ(acc.pairs_added(), 0);
  auto r = acc.Result(at::kFloat);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->empty());  // nothing half-added
  EXPECT_FALSE(acc.AddPairFile(TempDir() + "/missing.pt").ok());
}

TEST(Axes, ReferenceAndStrictVariants) {
  // id(x, y) = x * ex + y * ey on the 4 x 4 grid at size 224 (plus noise at size 74).
  const at::Tensor ex = at::tensor({1.f, 0.f, 2.f}), ey = at::tensor({0.f, 1.f, -1.f});
  io::PtDict ids;
  for (int x = 0; x < 4; ++x) {
    for (int y = 0; y < 4; ++y) {
      ids[9]["universal"][io::PtKey::Tuple(x, y, 224)] = (ex * x + ey * y).to(at::kHalf);
      ids[9]["universal"][io::PtKey::Tuple(x, y, 74)] = at::full({3}, 100.f).to(at::kHalf);
    }
  }
  auto ref = ComputeAxes(ids);
  ASSERT_TRUE(ref.ok()) << ref.status();
  // Per column, sum over y1 <= y2 of (y2 - y1) is 10 over 9 differences.
  const at::Tensor y_ref = ref->y.at(9).at("universal").tensor();
  EXPECT_EQ(y_ref.scalar_type(), at::kHalf);  // follows the IDs' dtype
  EXPECT_TRUE(at::allclose(y_ref.to(at::kFloat), ey * (10.0 / 9.0), 1e-3, 1e-3));
  EXPECT_TRUE(at::allclose(ref->x.at(9).at("universal").tensor().to(at::kFloat), ex * (10.0 / 9.0),
                           1e-3, 1e-3));
  AxisOptions strict;
  strict.strict = true;
  strict.dtype = at::kFloat;
  auto st = ComputeAxes(ids, strict);
  ASSERT_TRUE(st.ok());
  EXPECT_TRUE(at::allclose(st->y.at(9).at("universal").tensor(), ey * (10.0 / 6.0), 1e-3, 1e-3));
  EXPECT_EQ(st->y.at(9).at("universal").tensor().scalar_type(), at::kFloat);
  // Size 74 is flat: its axes are zero.
  AxisOptions small;
  small.size = 74;
  auto sm = ComputeAxes(ids, small);
  ASSERT_TRUE(sm.ok());
  EXPECT_EQ(sm->y.at(9).at("universal").tensor().abs().max().item<float>(), 0.f);
}

TEST(Axes, MissingCellsAreSkippedLikeTheReference) {
  io::PtDict ids;
  // Only column 0 exists, rows 0 and 2: y axis = mean of {0, 2, 0} = 2/3 (reference).
  ids[0]["t"][io::PtKey::Tuple(0, 0, 224)] = at::tensor({0.f});
  ids[0]["t"][io::PtKey::Tuple(0, 2, 224)] = at::tensor({2.f});
  // Another token with a single cell: no difference, so no axis.
  ids[0]["lonely"][io::PtKey::Tuple(1, 1, 224)] = at::tensor({5.f});
  auto axes = ComputeAxes(ids);
  ASSERT_TRUE(axes.ok());
  EXPECT_NEAR(axes->y.at(0).at("t").tensor().item<float>(), 2.f / 3.f, 1e-6);
  // x axis: rows 0 and 2 each have one cell only but x1 == x2 == 0 pairs count: zeros.
  EXPECT_EQ(axes->x.at(0).at("t").tensor().item<float>(), 0.f);
  // A single cell still has its zero difference (y1 == y2) in the reference variant.
  EXPECT_EQ(axes->y.at(0).at("lonely").tensor().item<float>(), 0.f);
  AxisOptions strict;
  strict.strict = true;
  auto s = ComputeAxes(ids, strict);
  ASSERT_TRUE(s.ok());
  EXPECT_NEAR(s->y.at(0).at("t").tensor().item<float>(), 2.f, 1e-6);
  EXPECT_FALSE(s->x.at(0).dict().contains("t"));      // no x1 < x2 pair exists
  EXPECT_FALSE(s->y.at(0).dict().contains("lonely"));
}

TEST(Text, EmbeddingsPerLayerAndToken) {
  TextEmbeddings text({0, 4});
  ASSERT_TRUE(text.Add("left", at::tensor({1.f, 2.f, 3.f, 4.f}).reshape({2, 2})).ok());
  ASSERT_TRUE(text.Add("right", at::zeros({2, 2})).ok());
  EXPECT_FALSE(text.Add("left", at::zeros({2, 2})).ok());
  EXPECT_FALSE(text.Add("up", at::zeros({2, 3})).ok());
  EXPECT_FALSE(text.Add("down", at::zeros({3, 2})).ok());
  auto d = text.Result(at::kBFloat16);
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(at::equal(d->at(4).at("left").tensor(), at::tensor({3.f, 4.f}).to(at::kBFloat16)));
}

TEST(Files, ReferencePathsAndAtomicWrites) {
  const std::string out = TempDir() + "/embeds";
  EXPECT_EQ(PairIdPath(out, "camel", "frog", "llava-7b"), out + "/camel_frog/llava-7b.pt");
  EXPECT_EQ(UniversalIdPath(out, "llava-7b"), out + "/llava-7b.pt");
  EXPECT_EQ(AxisPaths(out + "/llava-7b").first, out + "/llava-7b_x.pt");
  PairIdAccumulator acc({5});
  AddHandExample(acc);
  ASSERT_TRUE(WritePairIds(out, "camel", "frog", "m", acc, at::kHalf).ok());
  auto back = io::ReadTorchDict(PairIdPath(out, "camel", "frog", "m"));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(at::equal(Leaf(*back, 5, "rog", k2), at::tensor({1.5f, 2.f}).to(at::kHalf)));
  UniversalIdAccumulator u;
  ASSERT_TRUE(u.AddPairFile(PairIdPath(out, "camel", "frog", "m")).ok());
  ASSERT_TRUE(WriteUniversalIds(out, "m", u, at::kHalf).ok());
  auto uni = io::ReadTorchDict(UniversalIdPath(out, "m"));
  ASSERT_TRUE(uni.ok());
  auto axes = ComputeAxes(*uni);
  ASSERT_TRUE(axes.ok());
  ASSERT_TRUE(WriteAxes(out + "/m", *axes).ok());
  EXPECT_TRUE(std::filesystem::exists(out + "/m_x.pt"));
  EXPECT_TRUE(std::filesystem::exists(out + "/m_y.pt"));
  // A folder that cannot be created: a regular file stands in its way.
  const std::string blocker = TempDir() + "/blocker";
  { std::ofstream(blocker) << "x"; }
  auto s = WritePairIds(blocker, "a", "b", "m", acc, at::kHalf);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(std::string(s.message()).find("blocker"), std::string::npos);
}

}  // namespace
}  // namespace spatialid::extract
