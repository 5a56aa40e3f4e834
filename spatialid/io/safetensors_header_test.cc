// Header validation on well-formed and hostile safetensors bytes (no libtorch).
#include "spatialid/io/safetensors_header.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

namespace spatialid::io {
namespace {

// A safetensors file: 8-byte little-endian length, `json`, then `data`.
std::string Build(const std::string& json, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + json + data;
}

std::string WithLength(uint64_t n, const std::string& rest) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + rest;
}

// Two f32 [2] tensors and one bf16 [3] tensor, contiguous: 8 + 8 + 6 bytes.
const char kGoodJson[] =
    R"({"__metadata__":{"format":"pt"},)"
    R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
    R"("b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},)"
    R"("c":{"dtype":"BF16","shape":[3],"data_offsets":[16,22]}})";

std::string GoodFile() { return Build(kGoodJson, std::string(22, '\x01')); }

absl::Status Parse(const std::string& bytes) {
  return ParseSafetensorsHeader(bytes, "x.safetensors").status();
}

void ExpectError(const std::string& bytes, const std::string& needle) {
  absl::Status s = Parse(bytes);
  ASSERT_FALSE(s.ok()) << "accepted a bad file; expected error with: " << needle;
  EXPECT_NE(s.message().find("x.safetensors"), std::string::npos) << s;
  EXPECT_NE(s.message().find(needle), std::string::npos) << s;
}

std::string OneTensor(const std::string& dtype, const std::string& shape,
                      const std::string& offsets) {
  return R"({"t":{"dtype":")" + dtype + R"(","shape":)" + shape + R"(,"data_offsets":)" +
         offsets + "}}";
}

TEST(SafetensorsHeader, ParsesWellFormedFile) {
  const std::string file = GoodFile();
  absl::StatusOr<SafetensorsHeader> h = ParseSafetensorsHeader(file, "x.safetensors");
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->header_size, sizeof(kGoodJson) - 1);
  EXPECT_EQ(h->data_offset, 8 + h->header_size);
  ASSERT_EQ(h->tensors.size(), 3u);
  EXPECT_EQ(h->metadata.at("format"), "pt");
  const SafetensorsTensorInfo* c = h->Find("c");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->dtype, SafetensorsDtype::kBF16);
  EXPECT_EQ(c->shape, std::vector<int64_t>{3});
  EXPECT_EQ(c->begin, h->data_offset + 16);
  EXPECT_EQ(c->num_bytes(), 6u);
  EXPECT_EQ(h->Find("missing"), nullptr);
}

TEST(SafetensorsHeader, AcceptsScalarsEmptyTensorsAndPadding) {
  // A scalar (shape []) holds one element; zero-size tensors may share offsets;
  // the writer may pad the header with trailing spaces.
  const std::string json =
      R"({"s":{"dtype":"F16","shape":[],"data_offsets":[0,2]},)"
      R"("e1":{"dtype":"F32","shape":[0,5],"data_offsets":[2,2]},)"
      R"("e2":{"dtype":"F32","shape":[3,0],"data_offsets":[2,2]}}     )";
  absl::StatusOr<SafetensorsHeader> h = ParseSafetensorsHeader(Build(json, "xx"), "x.safetensors");
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->tensors.size(), 3u);
  EXPECT_TRUE(h->Find("s")->shape.empty());
}

TEST(SafetensorsHeader, ParsesUnsupportedDtypesForLaterRejection) {
  absl::StatusOr<SafetensorsHeader> h = ParseSafetensorsHeader(
      Build(OneTensor("I64", "[2]", "[0,16]"), std::string(16, '\0')), "x.safetensors");
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->Find("t")->dtype, SafetensorsDtype::kI64);
  EXPECT_FALSE(IsLoadableSafetensorsDtype(SafetensorsDtype::kI64));
  EXPECT_TRUE(IsLoadableSafetensorsDtype(SafetensorsDtype::kBF16));
}

TEST(SafetensorsHeader, EveryTruncationIsAnError) {
  const std::string file = GoodFile();
  int errors = 0;
  for (size_t len = 0; len < file.size(); ++len) {
    absl::Status s = Parse(file.substr(0, len));
    EXPECT_FALSE(s.ok()) << "prefix of " << len << " bytes accepted";
    if (!s.ok()) {
      ++errors;
      EXPECT_NE(s.message().find("x.safetensors"), std::string::npos) << s;
    }
  }
  EXPECT_EQ(errors, static_cast<int>(file.size()));
  EXPECT_TRUE(Parse(file).ok());
}

TEST(SafetensorsHeader, TruncatedDataNamesTheTensor) {
  const std::string file = GoodFile();
  ExpectError(file.substr(0, file.size() - 1), "tensor \"c\"");
}

TEST(SafetensorsHeader, RejectsHugeHeaderLengths) {
  ExpectError(WithLength(~0ull, "{}"), "limit");
  ExpectError(WithLength(kMaxSafetensorsHeaderBytes + 1, "{}"), "limit");
  ExpectError(WithLength(3, "{}"), "truncated");
  ExpectError(WithLength(0, ""), "cannot hold");
  ExpectError("abc", "too short");
}

TEST(SafetensorsHeader, RejectsMalformedJson) {
  ExpectError(Build("{\"t\":", ""), "not valid JSON");
  ExpectError(Build("[1,2]", ""), "not an object");
  ExpectError(Build("{} trailing", ""), "not valid JSON");
  ExpectError(Build("{\"a\":\"\xff\"}", ""), "not valid JSON");
  ExpectError(Build(std::string("{\"a\0\":1}", 8), ""), "not valid JSON");
  ExpectError(Build(R"({"t":5})", ""), "tensor \"t\": entry is not an object");
  ExpectError(Build(R"({"t":{"shape":[[1]]}})", ""), "nests deeper");
  ExpectError(Build(std::string(100000, '[') + std::string(100000, ']'), ""), "nests deeper");
}

TEST(SafetensorsHeader, RejectsDuplicateTensorNames) {
  const std::string json = R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                           R"("t":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})";
  ExpectError(Build(json, std::string(8, '\0')), "listed twice");
}

TEST(SafetensorsHeader, RejectsBadFieldTypes) {
  const std::string d4(4, '\0');
  ExpectError(Build(R"({"t":{"shape":[1],"data_offsets":[0,4]}})", d4), "\"dtype\"");
  ExpectError(Build(R"({"t":{"dtype":4,"shape":[1],"data_offsets":[0,4]}})", d4), "\"dtype\"");
  ExpectError(Build(R"({"t":{"dtype":"F32","data_offsets":[0,4]}})", d4), "\"shape\"");
  ExpectError(Build(OneTensor("F32", "\"1\"", "[0,4]"), d4), "\"shape\"");
  ExpectError(Build(OneTensor("F32", "[-1]", "[0,4]"), d4), "non-negative");
  ExpectError(Build(OneTensor("F32", "[1.5]", "[0,4]"), d4), "non-negative");
  ExpectError(Build(OneTensor("F32", "[[1]]", "[0,4]"), d4), "nests deeper");
  ExpectError(Build(OneTensor("F32", "[1]", "[0]"), d4), "data_offsets");
  ExpectError(Build(OneTensor("F32", "[1]", "[0,4,8]"), d4), "data_offsets");
  ExpectError(Build(OneTensor("F32", "[1]", "[-4,0]"), d4), "data_offsets");
  ExpectError(Build(OneTensor("F32", "[1]", "[0,4.0]"), d4), "data_offsets");
  ExpectError(Build(OneTensor("F32", "[1]", "{}"), d4), "data_offsets");
  ExpectError(Build(OneTensor("F99", "[1]", "[0,4]"), d4), "unknown dtype \"F99\"");
  ExpectError(Build(R"({"__metadata__":{"k":1}})", ""), "__metadata__.k");
  ExpectError(Build(R"({"__metadata__":[]})", ""), "__metadata__");
}

TEST(SafetensorsHeader, RejectsOffsetsOutsideTheDataArea) {
  const std::string d4(4, '\0');
  ExpectError(Build(OneTensor("F32", "[1]", "[4,8]"), d4), "run past the data area");
  ExpectError(Build(OneTensor("F32", "[1]", "[0,18446744073709551615]"), d4),
              "run past the data area");
  ExpectError(Build(OneTensor("F32", "[0]", "[4,0]"), d4), "begin after end");
}

TEST(SafetensorsHeader, RejectsOverlaps) {
  const std::string json = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                           R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})";
  ExpectError(Build(json, std::string(12, '\0')), "overlap");
  const std::string same = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                           R"("b":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}})";
  ExpectError(Build(same, std::string(4, '\0')), "overlap");
}

TEST(SafetensorsHeader, RejectsWrongByteLengths) {
  const std::string d8(8, '\0');
  ExpectError(Build(OneTensor("F32", "[3]", "[0,8]"), d8), "needs 12 bytes");
  ExpectError(Build(OneTensor("BF16", "[2,2]", "[0,6]"), d8), "needs 8 bytes");
  // 2^32 * 2^32 elements overflows 64 bits.
  ExpectError(Build(OneTensor("F32", "[4294967296,4294967296]", "[0,8]"), d8), "2^64");
  // 2^62 elements of 4 bytes overflows only in the byte count.
  ExpectError(Build(OneTensor("F32", "[4611686018427387904]", "[0,8]"), d8), "2^64");
  // Above INT64_MAX cannot be a libtorch dimension.
  ExpectError(Build(OneTensor("U8", "[9223372036854775808]", "[0,8]"), d8), "non-negative");
}

TEST(SafetensorsHeader, DtypeNamesRoundTrip) {
  for (const char* name : {"BOOL", "U8", "I8", "U16", "I16", "U32", "I32", "U64", "I64",
                           "F8_E4M3", "F8_E5M2", "F16", "BF16", "F32", "F64"}) {
    std::optional<SafetensorsDtype> d = SafetensorsDtypeFromName(name);
    ASSERT_TRUE(d.has_value()) << name;
    EXPECT_EQ(SafetensorsDtypeName(*d), name);
    EXPECT_GT(SafetensorsDtypeSize(*d), 0u);
  }
  EXPECT_FALSE(SafetensorsDtypeFromName("f32").has_value());
}

}  // namespace
}  // namespace spatialid::io
