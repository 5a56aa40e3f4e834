// Finding a checkpoint's chat template (file precedence as in transformers
// 5.3.0), its special tokens, the clock, and the variables a render sees.
#include "spatialid/text/chat_template.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace spatialid::text {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

const Json kUserTurn = Json::parse(R"([{"role": "user", "content": [{"type": "text", "text": "hi"}]}])");

class CheckpointDir : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           (std::string("ckpt_") + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  void Write(const std::string& name, const std::string& text) {
    fs::create_directories((dir_ / name).parent_path());
    std::ofstream(dir_ / name, std::ios::binary) << text;
  }

  std::string Apply(ChatTemplateLookup lookup, const std::string& name = "") {
    ChatTemplateOptions options;
    options.lookup = lookup;
    options.template_name = name;
    auto t = ChatTemplate::FromModelDir(dir_, options);
    if (!t.ok()) return "error: " + std::string(t.status().message());
    auto r = t->Apply(kUserTurn, true);
    return r.ok() ? *r : "error: " + std::string(r.status().message());
  }

  fs::path dir_;
};

TEST_F(CheckpointDir, ProcessorPrefersProcessorConfigThenLegacyJsonThenJinja) {
  Write("chat_template.jinja", "JINJA");
  Write("chat_template.json", R"({"chat_template": "LEGACY"})");
  Write("processor_config.json", R"({"chat_template": "PROCESSOR_CONFIG", "processor_class": "LlavaProcessor"})");
  Write("tokenizer_config.json", R"({"chat_template": "TOKENIZER_CONFIG"})");
  EXPECT_EQ(Apply(ChatTemplateLookup::kProcessor), "PROCESSOR_CONFIG");
  Write("processor_config.json", R"({"processor_class": "LlavaProcessor"})");
  EXPECT_EQ(Apply(ChatTemplateLookup::kProcessor), "LEGACY");
  fs::remove(dir_ / "chat_template.json");
  EXPECT_EQ(Apply(ChatTemplateLookup::kProcessor), "JINJA");
}

TEST_F(CheckpointDir, TokenizerPrefersJinjaFilesOverItsConfig) {
  Write("tokenizer_config.json", R"({"chat_template": "TOKENIZER_CONFIG"})");
  EXPECT_EQ(Apply(ChatTemplateLookup::kTokenizer), "TOKENIZER_CONFIG");
  // The processor never reads tokenizer_config.json; spatialid's default falls back to it.
  EXPECT_NE(Apply(ChatTemplateLookup::kProcessor).find("no chat template"), std::string::npos);
  EXPECT_EQ(Apply(ChatTemplateLookup::kProcessorThenTokenizer), "TOKENIZER_CONFIG");
  Write("chat_template.jinja", "JINJA");
  EXPECT_EQ(Apply(ChatTemplateLookup::kTokenizer), "JINJA");
  // chat_template.json is the processor's file only.
  fs::remove(dir_ / "chat_template.jinja");
  Write("chat_template.json", R"({"chat_template": "LEGACY"})");
  EXPECT_EQ(Apply(ChatTemplateLookup::kTokenizer), "TOKENIZER_CONFIG");
}

TEST_F(CheckpointDir, NamedTemplates) {
  Write("tokenizer_config.json",
        R"({"chat_template": [{"name": "tool_use", "template": "TOOLS"}, {"name": "default", "template": "DEF"}]})");
  EXPECT_EQ(Apply(ChatTemplateLookup::kTokenizer), "DEF");
  EXPECT_EQ(Apply(ChatTemplateLookup::kTokenizer, "tool_use"), "TOOLS");
  EXPECT_NE(Apply(ChatTemplateLookup::kTokenizer, "nope").find("available: default, tool_use"), std::string::npos);
  Write("tokenizer_config.json", R"({"chat_template": [{"name": "only", "template": "ONLY"}]})");
  EXPECT_NE(Apply(ChatTemplateLookup::kTokenizer).find("none named \"default\""), std::string::npos);
  Write("additional_chat_templates/rag.jinja", "RAG");
  Write("chat_template.jinja", "JINJA");
  EXPECT_EQ(Apply(ChatTemplateLookup::kProcessor, "rag"), "RAG");
  EXPECT_EQ(Apply(ChatTemplateLookup::kProcessor), "JINJA");
}

TEST_F(CheckpointDir, ConflictsAndBadFilesAreErrorsNamingTheFile) {
  Write("chat_template.json", R"({"chat_template": "LEGACY"})");
  Write("additional_chat_templates/rag.jinja", "RAG");
  EXPECT_NE(Apply(ChatTemplateLookup::kProcessor).find("cannot be combined"), std::string::npos);
  fs::remove_all(dir_ / "additional_chat_templates");
  Write("chat_template.json", "{not json");
  std::string error = Apply(ChatTemplateLookup::kProcessor);
  EXPECT_NE(error.find("chat_template.json:1:3: invalid JSON"), std::string::npos) << error;
  Write("chat_template.json", R"({"chat_template": 3})");
  EXPECT_NE(Apply(ChatTemplateLookup::kProcessor).find("must be a string"), std::string::npos);
  Write("chat_template.json", R"({"chat_template": "{% if %}"})");
  EXPECT_NE(Apply(ChatTemplateLookup::kProcessor).find("chat_template.json:1: TemplateSyntaxError"),
            std::string::npos);
  EXPECT_FALSE(ChatTemplate::FromModelDir(dir_ / "missing").ok());
}

TEST_F(CheckpointDir, SpecialTokensFromStringsAddedTokensAndLegacyMap) {
  Write("tokenizer_config.json", R"({
    "bos_token": {"__type": "AddedToken", "content": "<s>", "lstrip": false},
    "eos_token": "</s>", "pad_token": null, "add_bos_token": true,
    "image_token": "<image_soft_token>",
    "extra_special_tokens": {"boi_token": "<start_of_image>"},
    "chat_template": "{{ bos_token }}|{{ eos_token }}|{{ pad_token is defined }}|{{ image_token }}|{{ boi_token }}|{{ unk_token }}"
  })");
  Write("special_tokens_map.json", R"({"unk_token": {"content": "<unk>"}, "eos_token": "IGNORED"})");
  auto tokens = LoadSpecialTokens(dir_);
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  EXPECT_EQ(tokens->dump(), R"({"bos_token":"<s>","eos_token":"</s>","boi_token":"<start_of_image>","image_token":"<image_soft_token>","unk_token":"<unk>"})");
  EXPECT_EQ(Apply(ChatTemplateLookup::kTokenizer), "<s>|</s>|False|<image_soft_token>|<start_of_image>|<unk>");
}

TEST(ChatTemplateTest, ApplyPassesTransformersVariables) {
  auto t = ChatTemplate::FromString(
      "{{ messages | length }} {{ add_generation_prompt }} {{ tools }} {{ documents }} {{ bos_token }} {{ extra }}",
      Json{{"bos_token", "<s>"}});
  ASSERT_TRUE(t.ok()) << t.status();
  auto r = t->Apply(kUserTurn, true, Json{{"extra", 7}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, "1 True None None <s> 7");
  // Caller variables win over special tokens, as in transformers.
  r = t->Apply(kUserTurn, false, Json{{"bos_token", "B"}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, "1 False None None B ");
  EXPECT_EQ(t->bos_token(), "<s>");
  EXPECT_FALSE(t->Apply(Json::object(), true).ok());
}

TEST(ChatTemplateTest, RaiseExceptionAndClock) {
  auto t = ChatTemplate::FromString("{{ raise_exception('bad roles') }}", Json::object());
  ASSERT_TRUE(t.ok());
  auto r = t->Apply(kUserTurn, true);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(std::string(r.status().message()), "chat_template:1: TemplateError: bad roles");

  EXPECT_EQ(ChatClock::Default().Strftime("%d %b %Y"), "26 Jul 2024");
  EXPECT_EQ(ChatClock::Fixed(2025, 2, 3, 14, 5, 9).Strftime("%A %j %H:%M:%S %f %%"), "Monday 034 14:05:09 000000 %");
  auto dated = ChatTemplate::FromString("{{ strftime_now('%Y-%m-%d') }}", Json::object(), ChatClock::Fixed(2023, 12, 31));
  ASSERT_TRUE(dated.ok());
  EXPECT_EQ(*dated->Apply(kUserTurn, true), "2023-12-31");
  std::string now = ChatClock::System().Strftime("%Y");
  EXPECT_EQ(now.size(), 4u);
  EXPECT_GE(std::stoi(now), 2024);
}

std::string ReadTestdata(const std::string& name) {
  std::ifstream in("spatialid/text/testdata/templates/" + name, std::ios::binary);
  EXPECT_TRUE(in.good()) << name;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(ChatTemplateTest, LlamaTemplateDateAndImageRules) {
  auto t = ChatTemplate::FromString(ReadTestdata("llama_3_2_vision.jinja"), Json{{"bos_token", "<|begin_of_text|>"}});
  ASSERT_TRUE(t.ok()) << t.status();
  auto text_only = t->Apply(kUserTurn, true);
  ASSERT_TRUE(text_only.ok()) << text_only.status();
  EXPECT_EQ(*text_only,
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
            "Today Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  auto dated = t->Apply(kUserTurn, true, Json{{"date_string", "01 Jan 2025"}});
  ASSERT_TRUE(dated.ok());
  EXPECT_NE(dated->find("Today Date: 01 Jan 2025\n"), std::string::npos);
  Json image_and_system = Json::parse(R"([{"role": "system", "content": "s"},
      {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "q"}]}])");
  auto refused = t->Apply(image_and_system, true);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("Prompting with images is incompatible with system messages."),
            std::string::npos);
}

}  // namespace
}  // namespace spatialid::text
