// The zip and pickle layers of the .pt format, without libtorch, built with
// AddressSanitizer and UBSan: every malformed input must come back as an
// error, never as an out-of-bounds read.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "spatialid/io/pickle_reader.h"
#include "spatialid/io/pickle_writer.h"
#include "spatialid/io/zip_crc32.h"
#include "spatialid/io/zip_reader.h"
#include "spatialid/io/zip_writer.h"

namespace spatialid::io {
namespace {

std::span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
// A string literal with embedded NULs, its length taken from the array.
template <size_t N>
std::string Raw(const char (&s)[N]) {
  return std::string(s, N - 1);
}
std::string Str(std::span<const uint8_t> b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

TEST(Crc32, KnownValues) {
  EXPECT_EQ(Crc32("", 0), 0u);
  EXPECT_EQ(Crc32("123456789", 9), 0xCBF43926u);  // the standard check value
  EXPECT_EQ(Crc32("The quick brown fox jumps over the lazy dog", 43), 0x414FA339u);
  // Chunked continuation equals one pass, across the 8-byte fast path.
  std::string s(1000, '\0');
  for (size_t i = 0; i < s.size(); ++i) s[i] = static_cast<char>(i * 7 + 3);
  EXPECT_EQ(Crc32(s.data() + 13, s.size() - 13, Crc32(s.data(), 13)), Crc32(s.data(), s.size()));
}

std::string ThreeRecordZip(ZipWriterOptions options = {}, size_t big_size = 70000) {
  StringSink sink;
  ZipWriter zip(&sink, options);
  EXPECT_TRUE(zip.AddRecord("archive/data.pkl", std::string("pickle bytes")).ok());
  EXPECT_TRUE(zip.AddRecord("archive/empty", std::string()).ok());
  std::string big(big_size, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i % 251);
  EXPECT_TRUE(zip.AddRecord("archive/data/0", big).ok());
  EXPECT_TRUE(zip.Finish().ok());
  return sink.bytes;
}

TEST(Zip, RoundTripAndAlignment) {
  const std::string bytes = ThreeRecordZip();
  auto zip = ZipReader::Parse(Bytes(bytes), "mem.zip");
  ASSERT_TRUE(zip.ok()) << zip.status();
  ASSERT_EQ(zip->entries().size(), 3u);
  EXPECT_EQ(zip->entries()[0].name, "archive/data.pkl");
  for (const ZipEntry& e : zip->entries()) EXPECT_EQ(e.data_offset % 64, 0u) << e.name;
  auto pkl = zip->Read(*zip->Find("archive/data.pkl"));
  ASSERT_TRUE(pkl.ok());
  EXPECT_EQ(Str(*pkl), "pickle bytes");
  auto empty = zip->Read(*zip->Find("archive/empty"));
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
  auto big = zip->Read(*zip->Find("archive/data/0"));
  ASSERT_TRUE(big.ok());
  ASSERT_EQ(big->size(), 70000u);
  EXPECT_EQ((*big)[69999], 69999 % 251);
  EXPECT_EQ(zip->Find("archive/nope"), nullptr);
}

TEST(Zip, Zip64FormsWhenForced) {
  ZipWriterOptions forced;
  forced.zip64_threshold = 1;  // every size and offset >= 1 takes the zip64 form
  const std::string bytes = ThreeRecordZip(forced);
  // zip64 end record and locator precede the classic end record.
  EXPECT_NE(bytes.find(Raw("PK\x06\x06")), std::string::npos);
  EXPECT_NE(bytes.find(Raw("PK\x06\x07")), std::string::npos);
  auto zip = ZipReader::Parse(Bytes(bytes), "mem.zip");
  ASSERT_TRUE(zip.ok()) << zip.status();
  ASSERT_EQ(zip->entries().size(), 3u);
  auto big = zip->Read(*zip->Find("archive/data/0"));
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(big->size(), 70000u);
  EXPECT_EQ(Str(*zip->Read(*zip->Find("archive/data.pkl"))), "pickle bytes");
}

TEST(Zip, EveryTruncationIsAnError) {
  for (ZipWriterOptions options : {ZipWriterOptions{}, ZipWriterOptions{64, 1}}) {
    const std::string bytes = ThreeRecordZip(options, 3000);
    for (size_t n = 0; n < bytes.size(); ++n) {
      auto zip = ZipReader::Parse(Bytes(bytes).first(n), "cut.zip");
      ASSERT_FALSE(zip.ok()) << "truncated to " << n;
      EXPECT_NE(std::string(zip.status().message()).find("cut.zip"), std::string::npos);
    }
  }
}

TEST(Zip, CorruptionIsCaughtOrHarmless) {
  // Flip every byte outside the big payload: parsing must either fail
  // cleanly or yield entries whose reads fail on CRC / succeed in bounds.
  const std::string good = ThreeRecordZip();
  size_t errors = 0;
  for (size_t i = 0; i < good.size(); ++i) {
    if (i > 300 && i < good.size() - 400) continue;  // inside payloads: CRC territory
    std::string bad = good;
    bad[i] = static_cast<char>(bad[i] ^ 0x5A);
    auto zip = ZipReader::Parse(Bytes(bad), "bad.zip");
    if (!zip.ok()) {
      ++errors;
      continue;
    }
    for (const ZipEntry& e : zip->entries()) {
      auto r = zip->Read(e);
      if (r.ok()) {
        EXPECT_LE(e.data_offset + e.size, bad.size());
      }
    }
  }
  EXPECT_GT(errors, 100u);
}

TEST(Zip, PayloadCorruptionFailsCrc) {
  std::string bytes = ThreeRecordZip();
  auto zip = ZipReader::Parse(Bytes(bytes), "mem.zip");
  ASSERT_TRUE(zip.ok());
  const ZipEntry e = *zip->Find("archive/data/0");
  bytes[e.data_offset + 1234] ^= 1;
  auto again = ZipReader::Parse(Bytes(bytes), "mem.zip");
  ASSERT_TRUE(again.ok());
  auto r = again->Read(*again->Find("archive/data/0"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(std::string(r.status().message()).find("CRC"), std::string::npos);
  EXPECT_TRUE(again->Read(*again->Find("archive/data/0"), /*verify_crc=*/false).ok());
}

TEST(Zip, NotAZip) {
  auto r = ZipReader::Parse(Bytes(std::string(100, 'x')), "junk.bin");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(std::string(r.status().message()).find("end-of-central-directory"), std::string::npos);
}

TEST(Zip, CompressedEntryIsRefused) {
  std::string bytes = ThreeRecordZip();
  // Set the method of the first central directory entry to deflate (8).
  const size_t cd = bytes.find(Raw("PK\x01\x02"));
  ASSERT_NE(cd, std::string::npos);
  bytes[cd + 10] = 8;
  auto r = ZipReader::Parse(Bytes(bytes), "deflated.zip");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(std::string(r.status().message()).find("compressed"), std::string::npos);
}

// ---- pickle ----

TEST(Pickle, WriterIntEncodings) {
  PickleWriter w;
  w.Mark();
  for (int64_t v : {int64_t{0}, int64_t{255}, int64_t{256}, int64_t{65535}, int64_t{65536},
                    int64_t{-1}, int64_t{INT32_MIN}, int64_t{INT32_MAX}, int64_t{1} << 40,
                    -(int64_t{1} << 40), INT64_MAX, INT64_MIN, int64_t{0x80000000}}) {
    w.Int(v);
  }
  w.TupleFromMark();
  const std::string p = w.Finish();
  auto tree = ParsePickle(Bytes(p), "ints");
  ASSERT_TRUE(tree.ok()) << tree.status();
  const auto& items = tree->root->items;
  const std::vector<int64_t> want = {0,      255,       256,       65535,         65536,
                                     -1,     INT32_MIN, INT32_MAX, int64_t{1} << 40,
                                     -(int64_t{1} << 40), INT64_MAX, INT64_MIN, 0x80000000};
  ASSERT_EQ(items.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_EQ(items[i]->kind, PickleNode::Kind::kInt);
    EXPECT_EQ(items[i]->integer, want[i]) << i;
  }
}

// The opcodes torch.save emits for {12: {'universal': {(3, 0, 224): <tensor>}}}
// (from pickletools.dis of a real file, retyped as bytes).
std::string TorchStylePickle() {
  PickleWriter w;
  w.EmptyDict();
  w.Put();
  w.Int(12);
  w.EmptyDict();
  w.Put();
  w.String("universal");
  w.EmptyDict();
  w.Put();
  w.Int(3);
  w.Int(0);
  w.Int(224);
  w.Tuple(3);
  w.Global("torch._utils", "_rebuild_tensor_v2");
  w.Mark();
  w.Mark();
  w.MemoString("storage");
  w.Global("torch", "HalfStorage");
  w.String("0");
  w.MemoString("cpu");
  w.Int(4);
  w.TupleFromMark();
  w.PersistentId();
  w.Int(0);
  w.Int(4);
  w.Tuple(1);
  w.Int(1);
  w.Tuple(1);
  w.Bool(false);
  w.Global("collections", "OrderedDict");
  w.EmptyTuple();
  w.Reduce();
  w.TupleFromMark();
  w.Reduce();
  w.SetItem();
  w.SetItem();
  w.SetItem();
  return w.Finish();
}

TEST(Pickle, TorchStyleTensorDict) {
  const std::string p = TorchStylePickle();
  auto tree = ParsePickle(Bytes(p), "t.pkl");
  ASSERT_TRUE(tree.ok()) << tree.status();
  const PickleNode* root = tree->root;
  ASSERT_EQ(root->kind, PickleNode::Kind::kDict);
  ASSERT_EQ(root->items.size(), 2u);
  EXPECT_EQ(root->items[0]->integer, 12);
  const PickleNode* inner = root->items[1];
  ASSERT_EQ(inner->kind, PickleNode::Kind::kDict);
  EXPECT_EQ(inner->items[0]->text, "universal");
  const PickleNode* keyed = inner->items[1];
  ASSERT_EQ(keyed->items.size(), 2u);
  const PickleNode* key = keyed->items[0];
  ASSERT_EQ(key->kind, PickleNode::Kind::kTuple);
  ASSERT_EQ(key->items.size(), 3u);
  EXPECT_EQ(key->items[2]->integer, 224);
  const PickleNode* t = keyed->items[1];
  ASSERT_EQ(t->kind, PickleNode::Kind::kTensor);
  EXPECT_EQ(t->sizes, std::vector<int64_t>{4});
  EXPECT_EQ(t->strides, std::vector<int64_t>{1});
  EXPECT_EQ(t->integer, 0);
  EXPECT_EQ(t->items[0]->storage_type, "HalfStorage");
  EXPECT_EQ(t->items[0]->text, "0");
  EXPECT_EQ(t->items[0]->location, "cpu");
  EXPECT_EQ(t->items[0]->integer, 4);
}

TEST(Pickle, UnsupportedOpcodeIsNamed) {
  auto tree = ParsePickle(Bytes(Raw("\x80\x02}0.")), "pop.pkl");
  ASSERT_FALSE(tree.ok());
  EXPECT_NE(std::string(tree.status().message()).find("opcode 0x30"), std::string::npos);
  EXPECT_NE(std::string(tree.status().message()).find("byte 3"), std::string::npos);
}

TEST(Pickle, SharedDictThroughMemo) {
  PickleWriter w;
  w.EmptyDict();
  w.Put();  // outer
  w.Mark();
  w.Int(1);
  w.EmptyDict();
  const uint32_t inner = w.Put();
  w.Int(2);
  w.Get(inner);
  w.SetItems();
  const std::string p = w.Finish();
  auto tree = ParsePickle(Bytes(p), "shared.pkl");
  ASSERT_TRUE(tree.ok()) << tree.status();
  ASSERT_EQ(tree->root->items.size(), 4u);
  EXPECT_EQ(tree->root->items[1], tree->root->items[3]);  // one object, as in Python
}

TEST(Pickle, Protocol4Opcodes) {
  // FRAME, SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL, as pickle_protocol=4 writes.
  std::string p = "\x80\x04\x95";
  p.append(8, '\0');
  p += "}\x94";                                  // EMPTY_DICT MEMOIZE
  p += "\x8c\x01k\x94";                          // SHORT_BINUNICODE 'k' MEMOIZE
  p += "\x8c\x0b" "collections\x8c\x0bOrderedDict\x93)R";  // OrderedDict()
  p += "s.";
  auto tree = ParsePickle(Bytes(p), "p4.pkl");
  ASSERT_TRUE(tree.ok()) << tree.status();
  ASSERT_EQ(tree->root->items.size(), 2u);
  EXPECT_EQ(tree->root->items[0]->text, "k");
  EXPECT_EQ(tree->root->items[1]->kind, PickleNode::Kind::kDict);
}

TEST(Pickle, RefusesUnknownGlobals) {
  std::string p = "\x80\x02" "cos\nsystem\n" "X\x02\x00\x00\x00ls\x85R.";
  auto tree = ParsePickle(Bytes(p), "evil.pkl");
  ASSERT_FALSE(tree.ok());
  EXPECT_NE(std::string(tree.status().message()).find("os.system"), std::string::npos);
  EXPECT_NE(std::string(tree.status().message()).find("evil.pkl"), std::string::npos);
}

TEST(Pickle, MalformedInputs) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "without a STOP"},
      {Raw("\x80\x02}"), "without a STOP"},
      {Raw("\x80\x02s."), "underflow"},
      {Raw("\x80\x02K"), "past the end"},
      {Raw("\x80\x02X\xff\xff\xff\x7f"), "past the end"},
      {Raw("\x80\x02h\x07."), "memo slot 7"},
      {Raw("\x80\x02}K\x01."), "2 items"},
      {Raw("\x80\x02}(K\x01u."), "odd number"},
      {Raw("\x80\x02K\x01K\x01K\x02s."), "non-dict"},
      {Raw("\x80\x02" "ctorch\nFloatStorage"), "not terminated"},
      {Raw("\x80\x02t."), "MARK"},
      {Raw("\x80\x09."), "protocol 9"},
      {Raw("\x80\x02\x8a\x09"), "past the end"},
      {Raw("\x80\x02\x8a\x09" "123456789."), "64 bits"},
      {Raw("\x80\x02(K\x01Q."), "persistent id"},
  };
  for (const auto& [bytes, expect] : cases) {
    auto tree = ParsePickle(Bytes(bytes), "bad.pkl");
    ASSERT_FALSE(tree.ok()) << "accepted: " << expect;
    EXPECT_NE(std::string(tree.status().message()).find(expect), std::string::npos)
        << tree.status() << " (wanted '" << expect << "')";
  }
}

TEST(Pickle, EveryTruncationAndRandomCorruptionIsSafe) {
  const std::string good = TorchStylePickle();
  for (size_t n = 0; n < good.size(); ++n) {
    EXPECT_FALSE(ParsePickle(Bytes(good).first(n), "cut.pkl").ok()) << n;
  }
  std::mt19937 rng(7);
  size_t errors = 0;
  for (int trial = 0; trial < 20000; ++trial) {
    std::string bad = good;
    const int flips = 1 + trial % 3;
    for (int f = 0; f < flips; ++f) bad[rng() % bad.size()] = static_cast<char>(rng());
    if (!ParsePickle(Bytes(bad), "fuzz.pkl").ok()) ++errors;
  }
  EXPECT_GT(errors, 10000u);
}

TEST(Pickle, DeepChainsDoNotRecurse) {
  // d_{i+1} = {0: d_i} through the memo, 200000 levels, all collected in one
  // tuple. Parsing and destroying the tree must not recurse.
  PickleWriter w;
  w.Mark();
  w.EmptyDict();
  uint32_t prev = w.Put();
  for (int i = 0; i < 200000; ++i) {
    w.EmptyDict();
    const uint32_t next = w.Put();
    w.Int(0);
    w.Get(prev);
    w.SetItem();
    prev = next;
  }
  w.TupleFromMark();
  const std::string p = w.Finish();
  auto tree = ParsePickle(Bytes(p), "deep.pkl");
  ASSERT_TRUE(tree.ok()) << tree.status();
  ASSERT_EQ(tree->root->items.size(), 200001u);
  const PickleNode* n = tree->root->items.back();
  int depth = 0;
  while (!n->items.empty()) {
    n = n->items[1];
    ++depth;
  }
  EXPECT_EQ(depth, 200000);
}

}  // namespace
}  // namespace spatialid::io
