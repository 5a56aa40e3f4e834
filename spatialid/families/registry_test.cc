// The registry is the one list of families: aliases, help text, model-type
// dispatch and the checkpoint-family check all come from it.
#include "spatialid/families/registry.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace spatialid::families {
namespace {

std::string TempDir(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string dir = std::string(tmp ? tmp : "/tmp") + "/" + name;
  std::filesystem::create_directories(dir);
  return dir;
}

TEST(Registry, ListsThePapersThirteenModelsOnce) {
  const std::vector<PresetOfFamily> all = AllPresets();
  ASSERT_EQ(all.size(), 13u);
  std::set<std::string> aliases;
  for (const PresetOfFamily& p : all) aliases.insert(std::string(p.preset.alias));
  EXPECT_EQ(aliases.size(), 13u);
  for (const char* alias : {"llava-7b", "llava-13b", "qwen2-2b", "qwen-7b", "qwen-3b", "llama-11b",
                            "llava-cot", "internvl-1b", "internvl-2b", "internvl-8b",
                            "internvl-14b", "gemma-4b", "gemma-12b"}) {
    EXPECT_TRUE(aliases.count(alias)) << alias;
    EXPECT_NE(ModelFlagHelp().find(alias), std::string::npos) << alias;
  }
}

TEST(Registry, PresetsCarryTheReferenceSettings) {
  absl::StatusOr<PresetOfFamily> p = FindPreset("llama-11b");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->model_type, "mllama");
  EXPECT_EQ(p->preset.reference_last_layer, 32);
  EXPECT_EQ(p->preset.num_hidden_states, 41);
  EXPECT_EQ(p->preset.dtype, "bfloat16");
  p = FindPreset("qwen-7b");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->model_type, "qwen2_5_vl");
  EXPECT_EQ(p->preset.dtype, "float16");
  const absl::Status missing = FindPreset("llava-70b").status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(std::string(missing.message()).find("known: llava-7b, llava-13b"), std::string::npos)
      << missing;
}

TEST(Registry, DispatchesOnModelType) {
  std::string seen;
  ASSERT_TRUE(DispatchModelType("gemma3", [&]<class F>() {
                seen = std::string(F::kName);
                return absl::OkStatus();
              }).ok());
  EXPECT_EQ(seen, "Gemma 3");
  EXPECT_EQ(DispatchModelType("phi3_v", [&]<class F>() { return absl::OkStatus(); }).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(AliasesOfModelType("internvl"),
            (std::vector<std::string>{"internvl-1b", "internvl-2b", "internvl-8b", "internvl-14b"}));
  EXPECT_EQ(KnownModelTypes(), (std::vector<std::string>{"llava", "qwen2_vl", "qwen2_5_vl", "mllama",
                                                         "internvl", "gemma3"}));
}

TEST(Registry, ReadsModelTypeAndRejectsOthers) {
  const std::string dir = TempDir("detect");
  std::ofstream(dir + "/config.json") << R"({"model_type": "qwen2_5_vl"})";
  absl::StatusOr<std::string> t = ReadModelType(dir);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(*t, "qwen2_5_vl");
  std::ofstream(dir + "/config.json") << R"({"model_type": "phi3_v"})";
  absl::StatusOr<std::string> bad = ReadModelType(dir);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(std::string(bad.status().message()),
            dir + "/config.json: model_type \"phi3_v\" is not supported (supported: llava, "
                  "qwen2_vl, qwen2_5_vl, mllama, internvl, gemma3)");
  EXPECT_EQ(ReadModelType(dir + "/absent").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace spatialid::families
