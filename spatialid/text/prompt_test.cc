// The pipeline's prompts for the five families: the rendered text for one
// image then the question and for the question alone (docs/model_facts.md section 1),
// the processor's BOS rule, and the placeholder expansions.
#include "spatialid/text/prompt.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

namespace spatialid::text {
namespace {

using Json = nlohmann::ordered_json;

constexpr char kQuestion[] = "Is the frog to the left or right of the camel?";

ChatTemplate Load(const std::string& file, const Json& tokens) {
  std::ifstream in("spatialid/text/testdata/templates/" + file, std::ios::binary);
  EXPECT_TRUE(in.good()) << file;
  std::stringstream ss;
  ss << in.rdbuf();
  auto t = ChatTemplate::FromString(ss.str(), tokens, ChatClock::Default(), file);
  EXPECT_TRUE(t.ok()) << t.status();
  return *t;
}

bool StartsWith(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }
bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

RenderedPrompt Render(const ChatTemplate& t, bool with_image) {
  auto p = RenderUserPrompt(t, kQuestion, with_image);
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? *p : RenderedPrompt{};
}

TEST(UserTurn, MatchesTheReferenceMessages) {
  EXPECT_EQ(UserTurnMessages("q", true).dump(),
            R"([{"role":"user","content":[{"type":"image"},{"type":"text","text":"q"}]}])");
  EXPECT_EQ(UserTurnMessages("q", false).dump(), R"([{"role":"user","content":[{"type":"text","text":"q"}]}])");
  EXPECT_EQ(UserTurnMessages("q", false, TextContentForm::kString).dump(), R"([{"role":"user","content":"q"}])");
}

TEST(FamilyPrompts, Llava) {
  for (const char* file : {"llava_1_5.jinja", "llava_1_5_13b_old.jinja"}) {
    ChatTemplate t = Load(file, Json{{"bos_token", "<s>"}, {"eos_token", "</s>"}, {"unk_token", "<unk>"}});
    RenderedPrompt image = Render(t, true);
    EXPECT_EQ(image.text, "USER: <image>\nIs the frog to the left or right of the camel? ASSISTANT:") << file;
    EXPECT_TRUE(image.add_special_tokens);  // the Llama tokenizer adds <s>
    EXPECT_EQ(Render(t, false).text, "USER: Is the frog to the left or right of the camel? ASSISTANT:") << file;
    std::string expanded = ExpandImagePlaceholders(image.text, "<image>", RepeatToken("<image>", 576));
    EXPECT_EQ(CountOccurrences(expanded, "<image>"), 576u);
    EXPECT_TRUE(StartsWith(expanded, "USER: <image><image>"));
    EXPECT_TRUE(EndsWith(expanded, "<image>\nIs the frog to the left or right of the camel? ASSISTANT:"));
  }
}

TEST(FamilyPrompts, QwenVl) {
  ChatTemplate t = Load("qwen2_vl.jinja", Json{{"eos_token", "<|im_end|>"}, {"pad_token", "<|endoftext|>"}});
  RenderedPrompt image = Render(t, true);
  EXPECT_EQ(image.text,
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
            "<|vision_start|><|image_pad|><|vision_end|>Is the frog to the left or right of the camel?<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_TRUE(image.add_special_tokens);  // no bos_token: nothing to skip
  EXPECT_EQ(Render(t, false).text,
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
            "Is the frog to the left or right of the camel?<|im_end|>\n<|im_start|>assistant\n");
  std::string expanded = ExpandImagePlaceholders(image.text, "<|image_pad|>", RepeatToken("<|image_pad|>", 1024));
  EXPECT_EQ(CountOccurrences(expanded, "<|image_pad|>"), 1024u);
}

TEST(FamilyPrompts, Mllama) {
  ChatTemplate t = Load("llama_3_2_vision.jinja", Json{{"bos_token", "<|begin_of_text|>"}, {"eos_token", "<|eot_id|>"}});
  RenderedPrompt image = Render(t, true);
  EXPECT_EQ(image.text,
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n<|image|>Is the frog to the left or right "
            "of the camel?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_FALSE(image.add_special_tokens);  // the template wrote BOS
  RenderedPrompt text = Render(t, false);
  EXPECT_EQ(text.text,
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
            "Today Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nIs the frog to the "
            "left or right of the camel?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_FALSE(text.add_special_tokens);
}

TEST(FamilyPrompts, InternVl) {
  ChatTemplate t = Load("internvl3.jinja", Json{{"eos_token", "<|im_end|>"}});
  RenderedPrompt image = Render(t, true);
  EXPECT_EQ(image.text,
            "<|im_start|>user\n<IMG_CONTEXT>\nIs the frog to the left or right of the camel?<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(Render(t, false).text,
            "<|im_start|>user\nIs the frog to the left or right of the camel?<|im_end|>\n<|im_start|>assistant\n");
  std::string expanded = ExpandImagePlaceholders(image.text, "<IMG_CONTEXT>",
                                                 "<img>" + RepeatToken("<IMG_CONTEXT>", 1280) + "</img>");
  EXPECT_EQ(CountOccurrences(expanded, "<IMG_CONTEXT>"), 1280u);
  EXPECT_NE(expanded.find("<IMG_CONTEXT></img>\nIs the frog"), std::string::npos);
}

TEST(FamilyPrompts, Gemma3) {
  ChatTemplate t = Load("gemma3.jinja", Json{{"bos_token", "<bos>"}, {"eos_token", "<end_of_turn>"}});
  RenderedPrompt image = Render(t, true);
  EXPECT_EQ(image.text,
            "<bos><start_of_turn>user\n<start_of_image>Is the frog to the left or right of the camel?<end_of_turn>\n"
            "<start_of_turn>model\n");
  EXPECT_FALSE(image.add_special_tokens);
  EXPECT_EQ(Render(t, false).text,
            "<bos><start_of_turn>user\nIs the frog to the left or right of the camel?<end_of_turn>\n"
            "<start_of_turn>model\n");
  std::string expansion = "\n\n<start_of_image>" + RepeatToken("<image_soft_token>", 256) + "<end_of_image>\n\n";
  std::string expanded = ExpandImagePlaceholders(image.text, "<start_of_image>", expansion);
  EXPECT_TRUE(StartsWith(expanded, "<bos><start_of_turn>user\n\n\n<start_of_image><image_soft_token>"));
  EXPECT_EQ(CountOccurrences(expanded, "<image_soft_token>"), 256u);
  EXPECT_NE(expanded.find("<end_of_image>\n\nIs the frog"), std::string::npos);
}

TEST(Placeholders, OneExpansionPerImage) {
  auto two = ExpandImagePlaceholders("a<i>b<i>c", "<i>", std::vector<std::string>{"<i><i>", "X"});
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_EQ(*two, "a<i><i>bXc");
  auto wrong = ExpandImagePlaceholders("a<i>b", "<i>", std::vector<std::string>{"1", "2"});
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(std::string(wrong.status().message()),
            "the prompt has 1 '<i>' placeholders but 2 image expansions were given");
  EXPECT_EQ(ExpandImagePlaceholders("no image", "<i>", "X"), "no image");
  EXPECT_EQ(RepeatToken("ab", 3), "ababab");
  EXPECT_EQ(RepeatToken("ab", 0), "");
}

TEST(BosRule, FollowsTheProcessor) {
  EXPECT_FALSE(ProcessorAddsSpecialTokens("<bos>text", std::string("<bos>")));
  EXPECT_TRUE(ProcessorAddsSpecialTokens("text<bos>", std::string("<bos>")));
  EXPECT_TRUE(ProcessorAddsSpecialTokens("<bos>text", std::nullopt));
  EXPECT_TRUE(ProcessorAddsSpecialTokens("", std::string("<s>")));
}

}  // namespace
}  // namespace spatialid::text
