// JSON reading: syntax errors with line/column, typed fields with dotted paths.
#include "spatialid/io/json_file.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

namespace spatialid::io {
namespace {

std::string TmpFile(const std::string& name, const std::string& contents) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string path = std::string(tmp ? tmp : "/tmp") + "/" + name;
  std::ofstream(path, std::ios::binary) << contents;
  return path;
}

TEST(ReadJsonFile, ReadsObjects) {
  absl::StatusOr<nlohmann::json> j = ReadJsonFile(TmpFile("ok.json", R"({"a": [1, 2]})"));
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_EQ((*j)["a"][1], 2);
}

TEST(ReadJsonFile, SyntaxErrorsNameFileLineAndColumn) {
  const std::string path = TmpFile("bad.json", "{\n  \"a\": 1,\n  \"b\": tru\n}\n");
  absl::StatusOr<nlohmann::json> j = ReadJsonFile(path);
  ASSERT_FALSE(j.ok());
  const std::string msg(j.status().message());
  EXPECT_NE(msg.find(path + ":3:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("invalid JSON"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("[json.exception"), std::string::npos) << msg;

  absl::StatusOr<nlohmann::json> empty = ReadJsonFile(TmpFile("empty.json", ""));
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find(":1:1:"), std::string::npos) << empty.status();

  EXPECT_EQ(ReadJsonFile(path + ".absent").status().code(), absl::StatusCode::kNotFound);
}

TEST(ParseJson, RefusesDeepNesting) {
  const int n = 200000;
  absl::StatusOr<nlohmann::json> deep =
      ParseJson(std::string(n, '[') + std::string(n, ']'), "deep.json");
  ASSERT_FALSE(deep.ok());
  EXPECT_NE(deep.status().message().find("nested deeper than 256 levels"), std::string::npos)
      << deep.status();
  const int ok_depth = kMaxJsonDepth;
  EXPECT_TRUE(ParseJson(std::string(ok_depth, '[') + std::string(ok_depth, ']'), "d.json").ok());
  EXPECT_FALSE(ParseJson(std::string(ok_depth + 1, '{'), "d.json").ok());
}

TEST(JsonFields, PreviewsOfNestedValuesAreShort) {
  const nlohmann::json j = nlohmann::json::parse(R"({"k": [[[[[1]]]], {"a": [1, 2, 3]}]})");
  JsonFields f(j, "c.json");
  int64_t k = 0;
  EXPECT_FALSE(f.Get("k", &k));
  EXPECT_EQ(f.errors()[0], "c.json: k: expected an integer, got [[[...]],{\"a\":[...]}]");
}

TEST(ParseJson, ReportsLaterLines) {
  absl::StatusOr<nlohmann::json> j = ParseJson("[1,\n2,\n\n  x]", "mem.json");
  ASSERT_FALSE(j.ok());
  EXPECT_NE(j.status().message().find("mem.json:4:3:"), std::string::npos) << j.status();
}

TEST(JsonFields, ReadsTypedFieldsKeepingDefaults) {
  const nlohmann::json j = nlohmann::json::parse(R"({
    "i": 7, "f": 2.5, "fi": 3, "b": true, "s": "x", "n": null, "v": [1, 2, 3],
    "vv": [[1, 2], [3]], "whole": 4.0, "big": 3000000000,
    "sub": {"deep": {"k": 1}}})");
  JsonFields f(j, "config.json");
  int64_t i = 0;
  double d = 0, di = 0;
  bool b = false;
  std::string s;
  std::optional<int64_t> n = 5, absent = 9;
  std::vector<int64_t> v;
  std::vector<std::vector<int64_t>> vv;
  int whole = 0;
  int64_t keep = 42;
  EXPECT_TRUE(f.Get("i", &i));
  EXPECT_TRUE(f.Get("f", &d));
  EXPECT_TRUE(f.Get("fi", &di));
  EXPECT_TRUE(f.Get("b", &b));
  EXPECT_TRUE(f.Get("s", &s));
  EXPECT_TRUE(f.Get("n", &n));
  EXPECT_FALSE(f.Get("absent", &absent));
  EXPECT_TRUE(f.Get("v", &v));
  EXPECT_TRUE(f.Get("vv", &vv));
  EXPECT_TRUE(f.Get("whole", &whole));
  EXPECT_FALSE(f.Get("missing", &keep));
  EXPECT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(i, 7);
  EXPECT_EQ(d, 2.5);
  EXPECT_EQ(di, 3.0);
  EXPECT_TRUE(b);
  EXPECT_EQ(s, "x");
  EXPECT_FALSE(n.has_value());
  EXPECT_EQ(absent, 9);
  EXPECT_EQ(v, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(vv.size(), 2u);
  EXPECT_EQ(whole, 4);
  EXPECT_EQ(keep, 42);
  EXPECT_TRUE(f.Has("n"));
  EXPECT_FALSE(f.HasValue("n"));

  int32_t narrow = 0;
  EXPECT_FALSE(f.Get("big", &narrow));
  EXPECT_NE(f.status().message().find("config.json: big: expected an integer in range"),
            std::string::npos)
      << f.status();
}

TEST(JsonFields, ErrorsCarryDottedPaths) {
  const nlohmann::json j = nlohmann::json::parse(
      R"({"text_config": {"hidden_size": "4096", "rope": {"f": [1, "x"]}}, "flag": 1,
          "vision_config": 3})");
  JsonFields root(j, "config.json");
  JsonFields text = root.Child("text_config");
  int64_t hidden = 0;
  EXPECT_FALSE(text.Get("hidden_size", &hidden));
  std::vector<double> f;
  JsonFields rope = text.Child("rope");
  EXPECT_FALSE(rope.Get("f", &f));
  bool flag = false;
  EXPECT_FALSE(root.Get("flag", &flag));
  JsonFields vision = root.Child("vision_config");
  EXPECT_FALSE(vision.Has("x"));
  int64_t req = 0;
  EXPECT_FALSE(root.Require("model_type", &req));
  double frac = 0;
  EXPECT_TRUE(root.Child("absent").json().empty());
  (void)frac;

  ASSERT_EQ(root.errors().size(), 5u);
  EXPECT_EQ(root.errors()[0],
            "config.json: text_config.hidden_size: expected an integer, got \"4096\"");
  EXPECT_EQ(root.errors()[1],
            "config.json: text_config.rope.f: element 1: expected a number, got \"x\"");
  EXPECT_EQ(root.errors()[2], "config.json: flag: expected a boolean, got 1");
  EXPECT_EQ(root.errors()[3], "config.json: vision_config: expected a JSON object, got 3");
  EXPECT_EQ(root.errors()[4], "config.json: model_type: required field is missing");
  EXPECT_NE(root.status().message().find("(and 4 more errors)"), std::string::npos);
}

TEST(JsonFields, RejectsNonIntegralNumbersAndNonObjects) {
  const nlohmann::json j = nlohmann::json::parse(R"({"a": 2.5, "b": -1, "c": 1e300})");
  JsonFields f(j, "c.json");
  int64_t a = 0;
  uint32_t b = 0;
  int64_t c = 0;
  EXPECT_FALSE(f.Get("a", &a));
  EXPECT_FALSE(f.Get("b", &b));
  EXPECT_FALSE(f.Get("c", &c));
  EXPECT_EQ(f.errors().size(), 3u);

  const nlohmann::json arr = nlohmann::json::array();
  JsonFields g(arr, "d.json");
  EXPECT_FALSE(g.ok());
  EXPECT_EQ(g.errors()[0], "d.json: expected a JSON object, got []");
}

}  // namespace
}  // namespace spatialid::io
