// Unit tests of the tokenizer's components on small hand-written
// tokenizer.json files, plus spot checks on the real files when
// $SPATIALID_ASSETS is set. HF parity over a large corpus is
// tokenizer_oracle_test.py's job.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "spatialid/text/byte_level.h"
#include "spatialid/text/regex.h"
#include "spatialid/text/text_piece.h"
#include "spatialid/text/tokenizer.h"
#include "spatialid/text/tokenizer_config.h"
#include "spatialid/text/tokenizer_pretrained.h"
#include "spatialid/text/unicode.h"

namespace spatialid::text {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Json = nlohmann::json;

std::string TempDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : std::filesystem::temp_directory_path().string();
}

std::string WriteFile(const std::string& name, const std::string& content) {
  const std::string path = TempDir() + "/" + name;
  std::ofstream(path) << content;
  return path;
}

// A small BPE tokenizer.json; callers patch sections.
Json TinyBpe() {
  Json vocab = Json::object();
  int id = 0;
  for (const char* t : {"<unk>", "<s>", "a", "b", "c", "ab", "bc", "abc", "▁", "▁a", "▁ab", "d"}) {
    vocab[t] = id++;
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    vocab[name] = id++;
  }
  Json model = {{"type", "BPE"},         {"dropout", nullptr},    {"unk_token", "<unk>"},
                {"fuse_unk", true},      {"byte_fallback", false}, {"vocab", vocab},
                {"merges", Json::array({"▁ a", "a b", Json::array({"ab", "c"}), "▁a b"})}};
  return {{"version", "1.0"},
          {"added_tokens", Json::array({{{"id", 1},
                                         {"content", "<s>"},
                                         {"single_word", false},
                                         {"lstrip", false},
                                         {"rstrip", false},
                                         {"normalized", false},
                                         {"special", true}}})},
          {"normalizer", nullptr},
          {"pre_tokenizer", nullptr},
          {"post_processor", nullptr},
          {"decoder", nullptr},
          {"model", model}};
}

Tokenizer Load(const Json& j) {
  auto t = Tokenizer::FromJsonText(j.dump());
  EXPECT_TRUE(t.ok()) << t.status();
  return std::move(*t);
}

std::vector<std::string> Tokens(const Tokenizer& t, const std::string& text,
                                bool special = false) {
  return t.EncodeToTokens(text, special);
}

TEST(Unicode, LossyRepairMatchesRust) {
  EXPECT_EQ(ToValidUtf8("ok"), "ok");
  EXPECT_EQ(ToValidUtf8("\xE2\x82" "A"), "\xEF\xBF\xBD" "A");       // truncated 3-byte: one U+FFFD
  EXPECT_EQ(ToValidUtf8("\xF0\x90\x80"), "\xEF\xBF\xBD");            // truncated at the end
  EXPECT_EQ(ToValidUtf8("\xC0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD");    // overlong: two
  EXPECT_EQ(ToValidUtf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  EXPECT_TRUE(IsValidUtf8("caf\xC3\xA9"));
  EXPECT_FALSE(IsValidUtf8("caf\xC3"));
}

TEST(Unicode, NormalFormsAndClasses) {
  EXPECT_EQ(Normalize("e\xCC\x81", NormalForm::kNfc), "\xC3\xA9");
  EXPECT_EQ(Normalize("\xC3\xA9", NormalForm::kNfd), "e\xCC\x81");
  EXPECT_EQ(Normalize("\xEF\xAC\x81", NormalForm::kNfkc), "fi");  // ligature
  EXPECT_TRUE(IsWhitespace(0x3000));
  EXPECT_FALSE(IsWhitespace(0x200B));  // zero width space is not White_Space
  EXPECT_TRUE(IsNumeric(0x00BD));      // ½ is No
}

TEST(ByteLevel, TableMapsBytesToPrintableCharacters) {
  const auto& table = ByteLevelTable::Get();
  EXPECT_EQ(table.Utf8For(' '), "\xC4\xA0");   // Ġ
  EXPECT_EQ(table.Utf8For('\n'), "\xC4\x8A");  // Ċ
  EXPECT_EQ(table.Utf8For('a'), "a");
  for (int b = 0; b < 256; ++b) EXPECT_EQ(table.ByteFor(table.CharFor(b)), b);
}

TEST(Regex, FindAllSkipsEmptyMatchAtPreviousEnd) {
  auto re = Regex::Compile("a*");
  ASSERT_TRUE(re.ok()) << re.status();
  // The onig crate's find_iter: (4,4) touches the end of (1,4) and is skipped.
  EXPECT_THAT(re->FindAll("baaac"), ElementsAre(MatchRange{0, 0}, MatchRange{1, 4},
                                                 MatchRange{5, 5}));
  auto lookahead = Regex::Compile(R"(\s+(?!\S)|\s+)");
  ASSERT_TRUE(lookahead.ok());
  EXPECT_THAT(lookahead->FindAll("a   b"), ElementsAre(MatchRange{1, 3}, MatchRange{3, 4}));
  auto literal = Regex::Literal("a.b");
  ASSERT_TRUE(literal.ok());
  EXPECT_THAT(literal->FindAll("axb a.b"), ElementsAre(MatchRange{4, 7}));
  EXPECT_FALSE(Regex::Compile("(unclosed").ok());
}

std::vector<std::string> SplitDashes(SplitBehavior behavior) {
  const TextPiece piece{"the-final--countdown", 0, -1};
  std::vector<MatchSpan> spans;
  CoverWithCharMatches(piece.text, [](char32_t c) { return c == '-'; }, &spans);
  std::vector<TextPiece> out;
  SplitPiece(piece, spans, behavior, &out);
  std::vector<std::string> texts;
  for (const auto& p : out) texts.push_back(p.text);
  return texts;
}

TEST(SplitPiece, AllBehaviorsAsDocumentedByHf) {
  EXPECT_THAT(SplitDashes(SplitBehavior::kRemoved), ElementsAre("the", "final", "countdown"));
  EXPECT_THAT(SplitDashes(SplitBehavior::kIsolated),
              ElementsAre("the", "-", "final", "-", "-", "countdown"));
  EXPECT_THAT(SplitDashes(SplitBehavior::kMergedWithPrevious),
              ElementsAre("the-", "final-", "-", "countdown"));
  EXPECT_THAT(SplitDashes(SplitBehavior::kMergedWithNext),
              ElementsAre("the", "-final", "-", "-countdown"));
  EXPECT_THAT(SplitDashes(SplitBehavior::kContiguous),
              ElementsAre("the", "-", "final", "--", "countdown"));
}

TEST(Bpe, MergesInBothSerialisationsLowestRankFirst) {
  Tokenizer t = Load(TinyBpe());
  EXPECT_THAT(Tokens(t, "abc"), ElementsAre("abc"));     // a b -> ab, ab c -> abc
  EXPECT_THAT(Tokens(t, "bc"), ElementsAre("b", "c"));   // no "b c" merge
  EXPECT_THAT(Tokens(t, "abab"), ElementsAre("ab", "ab"));
}

TEST(Bpe, UnknownCharactersFuseIntoOneUnk) {
  Tokenizer t = Load(TinyBpe());
  EXPECT_THAT(Tokens(t, "axyb"), ElementsAre("a", "<unk>", "b"));
  Json j = TinyBpe();
  j["model"]["fuse_unk"] = false;
  EXPECT_THAT(Tokens(Load(j), "axyb"), ElementsAre("a", "<unk>", "<unk>", "b"));
}

TEST(Bpe, ByteFallbackSpellsMissingCharactersAsBytes) {
  Json j = TinyBpe();
  j["model"]["byte_fallback"] = true;
  Tokenizer t = Load(j);
  EXPECT_THAT(Tokens(t, "a\xC3\xA9"), ElementsAre("a", "<0xC3>", "<0xA9>"));
  j["decoder"] = {{"type", "Sequence"},
                  {"decoders", Json::array({{{"type", "ByteFallback"}}, {{"type", "Fuse"}}})}};
  Tokenizer with_decoder = Load(j);
  EXPECT_EQ(with_decoder.Decode(with_decoder.Encode("a\xC3\xA9", false), false), "a\xC3\xA9");
  // A lone continuation byte is not UTF-8: one U+FFFD per byte.
  const int32_t lone = *with_decoder.TokenToId("<0xA9>");
  EXPECT_EQ(with_decoder.Decode(std::vector<int32_t>{lone, lone}, false),
            "\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(Bpe, IgnoreMergesTakesWholeWordsFromTheVocab) {
  Json j = TinyBpe();
  j["model"]["merges"] = Json::array({"a b"});
  EXPECT_THAT(Tokens(Load(j), "abc"), ElementsAre("ab", "c"));
  j["model"]["ignore_merges"] = true;
  EXPECT_THAT(Tokens(Load(j), "abc"), ElementsAre("abc"));
}

TEST(Normalizer, PrependAndReplaceRunPerPieceBetweenAddedTokens) {
  Json j = TinyBpe();
  j["normalizer"] = {
      {"type", "Sequence"},
      {"normalizers",
       Json::array({{{"type", "Prepend"}, {"prepend", "▁"}},
                    {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "▁"}}})}};
  Tokenizer t = Load(j);
  EXPECT_THAT(Tokens(t, "ab"), ElementsAre("▁ab"));
  EXPECT_THAT(Tokens(t, "<s>ab"), ElementsAre("<s>", "▁ab"));  // ▁ after the special token
  EXPECT_THAT(Tokens(t, " a"), ElementsAre("▁", "▁a"));
}

TEST(PreTokenizer, MetaspacePrependSchemes) {
  Json j = TinyBpe();
  j["pre_tokenizer"] = {
      {"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "first"}, {"split", true}};
  Tokenizer first = Load(j);
  EXPECT_THAT(Tokens(first, "ab ab"), ElementsAre("▁ab", "▁ab"));
  EXPECT_THAT(Tokens(first, "<s>ab"), ElementsAre("<s>", "ab"));  // not the input's start
  j["pre_tokenizer"]["prepend_scheme"] = "always";
  EXPECT_THAT(Tokens(Load(j), "<s>ab"), ElementsAre("<s>", "▁ab"));
  j["pre_tokenizer"]["prepend_scheme"] = "never";
  EXPECT_THAT(Tokens(Load(j), "ab"), ElementsAre("ab"));
  j["pre_tokenizer"]["prepend_scheme"] = "sometimes";
  EXPECT_THAT(Tokenizer::FromJsonText(j.dump()).status().message(), HasSubstr("sometimes"));
}

TEST(PreTokenizer, SplitRegexIsolatedAndInverted) {
  Json j = TinyBpe();
  j["pre_tokenizer"] = {{"type", "Split"},
                        {"pattern", {{"Regex", "\\p{L}+"}}},
                        {"behavior", "Removed"},
                        {"invert", true}};
  // Inverted + Removed keeps the letter runs and drops the rest.
  EXPECT_THAT(Tokens(Load(j), "ab, c!!"), ElementsAre("ab", "c"));
}

TEST(AddedTokens, StripAndSingleWordFlags) {
  Json j = TinyBpe();
  j["added_tokens"].push_back({{"id", 500}, {"content", "<m>"}, {"single_word", false},
                               {"lstrip", true}, {"rstrip", true}, {"normalized", false},
                               {"special", true}});
  j["added_tokens"].push_back({{"id", 501}, {"content", "cab"}, {"single_word", true},
                               {"lstrip", false}, {"rstrip", false}, {"normalized", false},
                               {"special", false}});
  Tokenizer t = Load(j);
  EXPECT_THAT(Tokens(t, "a  <m>  b"), ElementsAre("a", "<m>", "b"));
  EXPECT_THAT(Tokens(t, "a cab b"), ElementsAre("a", "<unk>", "cab", "<unk>", "b"));
  EXPECT_THAT(Tokens(t, "acab"), ElementsAre("a", "c", "ab"));  // glued: not a single word
  // HF numbers new tokens after the vocabulary, whatever the file says.
  EXPECT_EQ(*t.TokenToId("<m>"), static_cast<int32_t>(t.VocabSize(false)));
  EXPECT_TRUE(t.IsSpecialToken(*t.TokenToId("<m>")));
  EXPECT_FALSE(t.IsSpecialToken(*t.TokenToId("cab")));
  EXPECT_EQ(t.Decode(t.Encode("a<m>b", false), true), "a b");  // no decoder: joined by " "
}

TEST(PostProcessor, TemplateAddsBosOnlyWithSpecialTokens) {
  Json j = TinyBpe();
  j["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", Json::array({{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                              {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
      {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}};
  Tokenizer t = Load(j);
  EXPECT_THAT(t.Encode("ab", true), ElementsAre(1, 5));
  EXPECT_THAT(t.Encode("ab", false), ElementsAre(5));
  j["post_processor"]["single"] = "<s> $A";  // HF rejects the shorthand in a file
  EXPECT_THAT(Tokenizer::FromJsonText(j.dump()).status().message(), HasSubstr("single"));
}

TEST(Errors, NameTheFileAndTheProblem) {
  auto missing = Tokenizer::FromFile("/nonexistent/tokenizer.json");
  EXPECT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(), HasSubstr("/nonexistent/tokenizer.json"));

  const std::string bad_json = WriteFile("bad.json", "{\"model\": ");
  auto malformed = Tokenizer::FromFile(bad_json);
  EXPECT_THAT(malformed.status().message(), HasSubstr(bad_json));
  EXPECT_THAT(malformed.status().message(), HasSubstr("not valid JSON"));

  Json j = TinyBpe();
  j["normalizer"] = {{"type", "BertNormalizer"}};
  const std::string unsupported = WriteFile("unsupported.json", j.dump());
  auto bert = Tokenizer::FromFile(unsupported);
  EXPECT_THAT(bert.status().message(), HasSubstr(unsupported));
  EXPECT_THAT(bert.status().message(), HasSubstr("unsupported normalizer type 'BertNormalizer'"));

  j = TinyBpe();
  j["pre_tokenizer"] = {{"type", "Sequence"},
                        {"pretokenizers", Json::array({{{"type", "UnicodeScripts"}}})}};
  EXPECT_THAT(Tokenizer::FromJsonText(j.dump()).status().message(),
              HasSubstr("pre_tokenizer.pretokenizers[0]: unsupported pre_tokenizer type "
                        "'UnicodeScripts'"));

  j = TinyBpe();
  j["model"] = {{"type", "Unigram"}, {"vocab", Json::array()}};
  EXPECT_THAT(Tokenizer::FromJsonText(j.dump()).status().message(),
              HasSubstr("unsupported model type 'Unigram'"));

  j = TinyBpe();
  j["model"]["merges"] = Json::array({"a zz"});
  EXPECT_THAT(Tokenizer::FromJsonText(j.dump()).status().message(),
              HasSubstr("\"zz\" that is not in the vocab"));

  j = TinyBpe();
  j["model"]["dropout"] = 0.1;
  EXPECT_THAT(Tokenizer::FromJsonText(j.dump()).status().message(), HasSubstr("dropout"));

  j = TinyBpe();
  j["decoder"] = {{"type", "CTC"}};
  EXPECT_THAT(Tokenizer::FromJsonText(j.dump()).status().message(),
              HasSubstr("unsupported decoder type 'CTC'"));
}

TEST(Tokenizer, InvalidUtf8IsRepairedNotFatal) {
  Tokenizer t = Load(TinyBpe());
  EXPECT_THAT(Tokens(t, "a\xFF" "b"), ElementsAre("a", "<unk>", "b"));
}

TEST(TokenizerConfig, TokenFieldsInBothSpellings) {
  auto config = TokenizerConfig::FromJsonText(R"({
    "bos_token": {"__type": "AddedToken", "content": "<s>", "lstrip": false},
    "eos_token": "</s>", "pad_token": null, "add_bos_token": true,
    "image_token": "<image_soft_token>",
    "extra_special_tokens": {"boi_token": "<start_of_image>"},
    "chat_template": [{"name": "default", "template": "{{ x }}"},
                      {"name": "tool_use", "template": "{{ y }}"}]})");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->bos_token, "<s>");
  EXPECT_EQ(config->eos_token, "</s>");
  EXPECT_FALSE(config->pad_token.has_value());
  EXPECT_EQ(config->add_bos_token, true);
  EXPECT_FALSE(config->add_eos_token.has_value());
  EXPECT_EQ(config->named_tokens.at("image_token"), "<image_soft_token>");
  EXPECT_EQ(config->named_tokens.at("boi_token"), "<start_of_image>");
  EXPECT_EQ(config->chat_template, "{{ x }}");
  EXPECT_EQ(config->chat_templates.at("tool_use"), "{{ y }}");
  EXPECT_FALSE(TokenizerConfig::FromJsonText(R"({"bos_token": 3})").ok());
}

// --- the real tokenizer files, when tools/setup.sh has fetched them ---

std::string AssetDir(const std::string& name) {
  const char* assets = std::getenv("SPATIALID_ASSETS");
  if (assets == nullptr) return "";
  return std::string(assets) + "/tokenizers/" + name;
}

TEST(RealFiles, TargetTokensOfTheGridPrompt) {
  if (AssetDir("qwen3").empty()) GTEST_FAIL() << "SPATIALID_ASSETS is not set";
  auto qwen = Tokenizer::FromFile(AssetDir("qwen3") + "/tokenizer.json");
  ASSERT_TRUE(qwen.ok()) << qwen.status();
  const std::vector<int32_t> ids =
      qwen->Encode("<|im_start|>user\nIs the frog to the left or right of the camel?", false);
  EXPECT_EQ(ids[0], 151644);
  auto frog = qwen->TargetToken("frog");
  ASSERT_TRUE(frog.ok());
  EXPECT_EQ(frog->token, "\xC4\xA0" "frog");  // Ġfrog
  EXPECT_EQ(Tokenizer::FindFirst(ids, frog->id), 5u);
  auto left = qwen->TargetToken("left");
  EXPECT_EQ(Tokenizer::FindFirst(ids, left->id), 8u);
  EXPECT_FALSE(Tokenizer::FindFirst(ids, *qwen->TokenToId("<|im_end|>")).has_value());

  auto gemma = Tokenizer::FromFile(AssetDir("gemma3") + "/tokenizer.json");
  ASSERT_TRUE(gemma.ok()) << gemma.status();
  EXPECT_THAT(gemma->EncodeToTokens(" frog", true), ElementsAre("<bos>", "▁frog"));
  EXPECT_EQ(gemma->VocabSize(), 262145u);
}

TEST(RealFiles, PretrainedLlamaFollowsTransformersNotTheRawFile) {
  if (AssetDir("llama2").empty()) GTEST_FAIL() << "SPATIALID_ASSETS is not set";
  auto raw = Tokenizer::FromFile(AssetDir("llama2") + "/tokenizer.json");
  auto pretrained = LoadPretrainedTokenizer(AssetDir("llama2"));
  ASSERT_TRUE(raw.ok() && pretrained.ok());
  EXPECT_THAT(raw->EncodeToTokens(" x", false), ElementsAre("▁", "▁x"));
  EXPECT_THAT(pretrained->EncodeToTokens(" x", false), ElementsAre("▁x"));
  EXPECT_EQ(raw->Encode("Is the frog left?", true), pretrained->Encode("Is the frog left?", true));
}

}  // namespace
}  // namespace spatialid::text
