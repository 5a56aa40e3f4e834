// Loading tensors from safetensors files and model folders (libtorch).
#include "spatialid/io/safetensors.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "spatialid/io/checkpoint.h"

namespace spatialid::io {
namespace {

namespace fs = std::filesystem;

std::string DtypeName(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "F32";
    case at::kHalf: return "F16";
    case at::kBFloat16: return "BF16";
    case at::kLong: return "I64";
    default: return "?";
  }
}

// Writes `tensors` as a safetensors file. Like the Python writer, the header
// is padded with spaces to a multiple of 8 bytes; `header_pad` more spaces
// (an odd count) misalign the data area.
void WriteSafetensors(const std::string& path,
                      const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      size_t header_pad = 0) {
  nlohmann::json header = nlohmann::json::object();
  std::string data;
  for (const auto& [name, t] : tensors) {
    at::Tensor c = t.contiguous();
    const size_t begin = data.size();
    data.append(static_cast<const char*>(c.data_ptr()), c.nbytes());
    header[name] = {{"dtype", DtypeName(c.scalar_type())},
                    {"shape", c.sizes().vec()},
                    {"data_offsets", {begin, data.size()}}};
  }
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8 + header_pad, ' ');
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((json.size() >> (8 * i)) & 0xff);
  std::ofstream(path, std::ios::binary) << out << json << data;
}

std::string FreshDir(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  fs::path dir = fs::path(tmp ? tmp : "/tmp") / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

bool BitEqual(const at::Tensor& a, const at::Tensor& b) {
  return a.scalar_type() == b.scalar_type() && a.sizes().equals(b.sizes()) &&
         std::memcmp(a.contiguous().data_ptr(), b.contiguous().data_ptr(), a.nbytes()) == 0;
}

TEST(SafetensorsFile, LoadsWithoutCopyWhenDtypeMatches) {
  const std::string dir = FreshDir("zero_copy");
  const std::string path = dir + "/w.safetensors";
  at::Tensor w = at::randn({3, 4});
  WriteSafetensors(path, {{"w", w}});
  at::Tensor t;
  {
    absl::StatusOr<SafetensorsFile> f = SafetensorsFile::Open(path);
    ASSERT_TRUE(f.ok()) << f.status();
    absl::StatusOr<at::Tensor> a = f->Load("w", at::kFloat, at::kCPU);
    absl::StatusOr<at::Tensor> b = f->Load("w", at::kFloat, at::kCPU);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(a->data_ptr(), b->data_ptr()) << "both loads should alias the mapping";
    t = *a;
  }
  // The file object is gone; the tensor keeps the mapping alive.
  EXPECT_TRUE(BitEqual(t, w));
  // Writes go to private copy-on-write pages, not to the file.
  t.fill_(7.0f);
  absl::StatusOr<SafetensorsFile> again = SafetensorsFile::Open(path);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(BitEqual(*again->Load("w", at::kFloat, at::kCPU), w));
}

TEST(SafetensorsFile, ConvertsDtypesLikeLibtorch) {
  const std::string path = FreshDir("convert") + "/w.safetensors";
  at::Tensor f32 = at::randn({5, 7}) * 100;
  at::Tensor f16 = at::randn({6}).to(at::kHalf);
  at::Tensor bf16 = at::randn({2, 3, 4}).to(at::kBFloat16);
  WriteSafetensors(path, {{"f32", f32}, {"f16", f16}, {"bf16", bf16}});
  absl::StatusOr<SafetensorsFile> f = SafetensorsFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->Names(), (std::vector<std::string>{"bf16", "f16", "f32"}));
  for (const auto& [name, src] : std::vector<std::pair<std::string, at::Tensor>>{
           {"f32", f32}, {"f16", f16}, {"bf16", bf16}}) {
    for (at::ScalarType dt : {at::kFloat, at::kHalf, at::kBFloat16}) {
      absl::StatusOr<at::Tensor> t = f->Load(name, dt, at::kCPU);
      ASSERT_TRUE(t.ok()) << t.status();
      EXPECT_TRUE(BitEqual(*t, src.to(dt))) << name << " -> " << at::toString(dt);
    }
  }
}

TEST(SafetensorsFile, CopiesMisalignedData) {
  const std::string path = FreshDir("misaligned") + "/w.safetensors";
  at::Tensor w = at::randn({9});
  WriteSafetensors(path, {{"w", w}}, /*header_pad=*/1);
  absl::StatusOr<SafetensorsFile> f = SafetensorsFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_NE(f->Find("w")->begin % 4, 0u) << "the test meant to misalign the data";
  absl::StatusOr<at::Tensor> t = f->Load("w", at::kFloat, at::kCPU);
  ASSERT_TRUE(t.ok());
  EXPECT_TRUE(BitEqual(*t, w));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t->data_ptr()) % 4, 0u);
}

TEST(SafetensorsFile, ErrorsNameFileTensorAndDtype) {
  const std::string path = FreshDir("errors") + "/w.safetensors";
  WriteSafetensors(path, {{"ids", at::arange(4, at::kLong)}});
  absl::StatusOr<SafetensorsFile> f = SafetensorsFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  absl::StatusOr<at::Tensor> t = f->Load("ids", at::kFloat, at::kCPU);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find(path), std::string::npos) << t.status();
  EXPECT_NE(t.status().message().find("\"ids\""), std::string::npos) << t.status();
  EXPECT_NE(t.status().message().find("I64"), std::string::npos) << t.status();
  absl::StatusOr<at::Tensor> m = f->Load("nope", at::kFloat, at::kCPU);
  EXPECT_EQ(m.status().code(), absl::StatusCode::kNotFound);

  EXPECT_EQ(SafetensorsFile::Open(path + ".absent").status().code(), absl::StatusCode::kNotFound);
  std::ofstream(path + ".empty");
  absl::StatusOr<SafetensorsFile> empty = SafetensorsFile::Open(path + ".empty");
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find("too short"), std::string::npos) << empty.status();
}

TEST(Checkpoint, OpensSingleFile) {
  const std::string dir = FreshDir("single");
  at::Tensor a = at::randn({2, 2});
  WriteSafetensors(dir + "/model.safetensors", {{"a", a}});
  WriteSafetensors(dir + "/other.safetensors", {{"ignored", a}});
  absl::StatusOr<Checkpoint> c = Checkpoint::Open(dir);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->Names(), std::vector<std::string>{"a"});
  EXPECT_TRUE(c->Has("a"));
  EXPECT_FALSE(c->Has("ignored"));
  EXPECT_EQ(c->dir(), dir);
  EXPECT_TRUE(BitEqual(*c->Load("a", at::kFloat, at::kCPU), a));
  EXPECT_EQ(c->Load("zz", at::kFloat, at::kCPU).status().code(), absl::StatusCode::kNotFound);
}

void WriteIndex(const std::string& dir, const nlohmann::json& weight_map) {
  nlohmann::json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", weight_map}};
  std::ofstream(dir + "/model.safetensors.index.json") << index.dump();
}

TEST(Checkpoint, OpensShardedIndex) {
  const std::string dir = FreshDir("sharded");
  at::Tensor a = at::randn({3}), b = at::randn({4}).to(at::kHalf), c = at::randn({5});
  WriteSafetensors(dir + "/model-00001-of-00002.safetensors", {{"a", a}, {"b", b}});
  WriteSafetensors(dir + "/model-00002-of-00002.safetensors", {{"c", c}});
  WriteIndex(dir, {{"a", "model-00001-of-00002.safetensors"},
                   {"b", "model-00001-of-00002.safetensors"},
                   {"c", "model-00002-of-00002.safetensors"}});
  absl::StatusOr<Checkpoint> ck = Checkpoint::Open(dir);
  ASSERT_TRUE(ck.ok()) << ck.status();
  EXPECT_EQ(ck->Names(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(ck->files().size(), 2u);
  EXPECT_TRUE(BitEqual(*ck->Load("b", at::kHalf, at::kCPU), b));
  EXPECT_TRUE(BitEqual(*ck->Load("c", at::kFloat, at::kCPU), c));
}

TEST(Checkpoint, RejectsInconsistentIndexes) {
  const std::string dir = FreshDir("bad_index");
  WriteSafetensors(dir + "/s1.safetensors", {{"a", at::zeros({1})}});
  auto expect = [&](const nlohmann::json& map, const std::string& needle) {
    WriteIndex(dir, map);
    absl::StatusOr<Checkpoint> ck = Checkpoint::Open(dir);
    ASSERT_FALSE(ck.ok()) << needle;
    EXPECT_NE(ck.status().message().find(needle), std::string::npos) << ck.status();
  };
  expect({{"a", "s2.safetensors"}}, "does not exist");
  expect({{"b", "s1.safetensors"}}, "lacks it");
  expect({{"a", "../s1.safetensors"}}, "not a file name");
  expect({{"a", "/etc/passwd"}}, "not a file name");
  expect({{"a", 3}}, "weight_map.a");
  std::ofstream(dir + "/model.safetensors.index.json") << "{\"weight_map\": ";
  EXPECT_FALSE(Checkpoint::Open(dir).ok());
}

TEST(Checkpoint, OpensLooseFilesAndRejectsDuplicates) {
  const std::string dir = FreshDir("loose");
  EXPECT_EQ(Checkpoint::Open(dir).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Checkpoint::Open(dir + "/absent").status().code(), absl::StatusCode::kNotFound);
  WriteSafetensors(dir + "/x.safetensors", {{"a", at::zeros({1})}});
  WriteSafetensors(dir + "/y.safetensors", {{"b", at::ones({1})}});
  absl::StatusOr<Checkpoint> ck = Checkpoint::Open(dir);
  ASSERT_TRUE(ck.ok()) << ck.status();
  EXPECT_EQ(ck->Names(), (std::vector<std::string>{"a", "b"}));
  WriteSafetensors(dir + "/z.safetensors", {{"a", at::zeros({1})}});
  absl::StatusOr<Checkpoint> dup = Checkpoint::Open(dir);
  ASSERT_FALSE(dup.ok());
  EXPECT_NE(dup.status().message().find("\"a\" is in both x.safetensors and z.safetensors"),
            std::string::npos)
      << dup.status();
}

TEST(StateDictLoader, LoadsEverythingAndFinishesOk) {
  const std::string dir = FreshDir("loader_ok");
  at::Tensor w = at::randn({4, 2}), n = at::randn({4}).to(at::kBFloat16);
  WriteSafetensors(dir + "/model.safetensors",
                   {{"layer.weight", w}, {"norm.weight", n}, {"lm_head.weight", w}});
  absl::StatusOr<Checkpoint> ck = Checkpoint::Open(dir);
  ASSERT_TRUE(ck.ok());
  StateDictLoader loader(*ck, at::kHalf, at::kCPU);
  loader.IgnorePrefix("lm_head.");
  at::Tensor lw = loader.Take("layer.weight", {4, 2});
  at::Tensor ln = loader.Take("norm.weight", {4}, at::kFloat);
  at::Tensor opt = loader.TakeOptional("layer.bias", {4});
  EXPECT_TRUE(BitEqual(lw, w.to(at::kHalf)));
  EXPECT_TRUE(BitEqual(ln, n.to(at::kFloat)));
  EXPECT_FALSE(opt.defined());
  EXPECT_TRUE(loader.Finish().ok()) << loader.Finish();
}

TEST(StateDictLoader, ReportsEveryProblemAtOnce) {
  const std::string dir = FreshDir("loader_bad");
  std::vector<std::pair<std::string, at::Tensor>> tensors = {
      {"a", at::zeros({2, 3})}, {"ids", at::zeros({2}, at::kLong)}};
  for (int i = 0; i < 25; ++i) tensors.emplace_back("extra." + std::to_string(i), at::zeros({1}));
  WriteSafetensors(dir + "/model.safetensors", tensors);
  absl::StatusOr<Checkpoint> ck = Checkpoint::Open(dir);
  ASSERT_TRUE(ck.ok()) << ck.status();
  StateDictLoader loader(*ck, at::kFloat, at::kCPU);
  EXPECT_FALSE(loader.Take("a", {3, 2}).defined());
  EXPECT_FALSE(loader.Take("missing.weight", {1}).defined());
  EXPECT_FALSE(loader.Take("ids", {2}).defined());
  absl::Status s = loader.Finish();
  ASSERT_FALSE(s.ok());
  const std::string msg(s.message());
  EXPECT_NE(msg.find(dir), std::string::npos) << msg;
  EXPECT_NE(msg.find("1 missing (missing.weight)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("1 wrong-shape (a [2, 3] vs expected [3, 2])"), std::string::npos) << msg;
  EXPECT_NE(msg.find("1 unloadable"), std::string::npos) << msg;
  EXPECT_NE(msg.find("I64"), std::string::npos) << msg;
  EXPECT_NE(msg.find("25 unexpected (extra.0, "), std::string::npos) << msg;
  EXPECT_NE(msg.find("... 5 more"), std::string::npos) << msg;

  StateDictLoader ignoring(*ck, at::kFloat, at::kCPU);
  ignoring.IgnorePrefix("extra.");
  ignoring.IgnorePrefix("ids");
  ignoring.Take("a", {2, 3});
  EXPECT_TRUE(ignoring.Finish().ok()) << ignoring.Finish();
}

}  // namespace
}  // namespace spatialid::io
