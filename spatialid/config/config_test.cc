// Typed configs parsed from in-memory JSON; the transformers oracle is
// tests/config/config_oracle_test.py.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <variant>

#include "spatialid/config/processor_config.h"
#include "spatialid/families/gemma3/config.h"
#include "spatialid/families/internvl/config.h"
#include "spatialid/families/llava/config.h"
#include "spatialid/families/mllama/config.h"
#include "spatialid/families/qwen2_vl/config.h"
#include "spatialid/config/processor_config.h"

namespace spatialid::config {
namespace {

nlohmann::json J(const char* text) { return nlohmann::json::parse(text); }

TEST(LlavaConfig, DefaultsMatchLlava15) {
  absl::StatusOr<families::LlavaConfig> c = ParseConfigJson<families::LlavaConfig>(J(R"({"model_type": "llava"})"), "c.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->vision_config.image_size, 336);
  EXPECT_EQ(c->vision_config.patch_size, 14);
  EXPECT_EQ(c->vision_config.num_hidden_layers, 24);
  EXPECT_EQ(c->text_config.head_dim, 128);
  EXPECT_EQ(c->text_config.num_key_value_heads, 32);
  EXPECT_EQ(c->text_config.rope_parameters.rope_type, "default");
  EXPECT_EQ(c->text_config.rope_parameters.rope_theta, 10000.0);
  EXPECT_EQ(c->vision_feature_layer, std::vector<int64_t>{-2});
  EXPECT_EQ(c->image_token_index, 32000);
}

TEST(LlavaConfig, PresentVisionConfigUsesClipDefaults) {
  // A vision_config object starts from CLIPVisionConfig's defaults, not
  // LlavaConfig's built-in tower.
  absl::StatusOr<families::LlavaConfig> c = ParseConfigJson<families::LlavaConfig>(
      J(R"({"model_type": "llava", "vision_config": {"hidden_size": 64}, "image_token_id": 5,
            "text_config": {"num_key_value_heads": null, "head_dim": null, "tie_word_embeddings": true}})"),
      "c.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->vision_config.hidden_size, 64);
  EXPECT_EQ(c->vision_config.image_size, 224);
  EXPECT_EQ(c->image_token_index, 5);
  EXPECT_TRUE(c->tie_word_embeddings);
  EXPECT_EQ(c->text_config.num_key_value_heads, 32);
}

TEST(Qwen2VLConfig, ReadsTopLevelTextFieldsAndMrope) {
  absl::StatusOr<families::Qwen2VLConfig> c = ParseConfigJson<families::Qwen2VLConfig>(
      J(R"({"model_type": "qwen2_vl", "hidden_size": 1536, "num_hidden_layers": 28,
            "rope_theta": 1000000.0, "sliding_window": 32768,
            "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]}})"),
      "c.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->text_config.hidden_size, 1536);
  EXPECT_EQ(c->text_config.layer_types.size(), 28u);
  EXPECT_FALSE(c->text_config.sliding_window.has_value());
  EXPECT_EQ(c->text_config.rope_parameters.rope_type, "default");
  EXPECT_EQ(*c->text_config.rope_parameters.mrope_section, (std::vector<int64_t>{16, 24, 24}));
}

TEST(Gemma3Config, LegacyRopeKeysMapToPerLayerSettings) {
  absl::StatusOr<families::Gemma3Config> c = ParseConfigJson<families::Gemma3Config>(
      J(R"({"model_type": "gemma3", "text_config": {"num_hidden_layers": 12,
            "rope_scaling": {"rope_type": "linear", "factor": 8.0}, "rope_local_base_freq": 10000.0}})"),
      "c.json");
  ASSERT_TRUE(c.ok()) << c.status();
  const families::Gemma3TextConfig& t = c->text_config;
  EXPECT_EQ(t.rope_parameters.at("full_attention").rope_type, "linear");
  EXPECT_EQ(*t.rope_parameters.at("full_attention").factor, 8.0);
  EXPECT_EQ(t.rope_parameters.at("full_attention").rope_theta, 1e6);
  EXPECT_EQ(t.rope_parameters.at("sliding_attention").rope_type, "default");
  EXPECT_EQ(t.rope_local_base_freq(), 1e4);
  EXPECT_EQ(t.layer_types[5], "full_attention");
  EXPECT_EQ(t.layer_types[4], "sliding_attention");
  EXPECT_EQ(t.layer_types[11], "full_attention");
}

TEST(MllamaConfig, Llama3RopeAndAttentionHeadsAlias) {
  absl::StatusOr<families::MllamaConfig> c = ParseConfigJson<families::MllamaConfig>(
      J(R"({"model_type": "mllama", "vision_config": {"num_attention_heads": 4},
            "text_config": {"rope_scaling": {"rope_type": "llama3", "factor": 8.0,
                            "low_freq_factor": 1.0, "high_freq_factor": 4.0}}})"),
      "c.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->vision_config.attention_heads, 4);
  EXPECT_EQ(c->vision_config.max_aspect_ratio_id(), 8);
  EXPECT_EQ(c->text_config.rope_parameters.rope_theta, 500000.0);
  // Absent original_max_position_embeddings defaults to max_position_embeddings.
  EXPECT_EQ(*c->text_config.rope_parameters.original_max_position_embeddings, 131072);
}

TEST(ModelConfig, ErrorsNameTheDottedKey) {
  absl::StatusOr<families::InternVLConfig> c = ParseConfigJson<families::InternVLConfig>(
      J(R"({"model_type": "internvl", "text_config": {"hidden_size": 1.5, "layer_types": "x"}})"),
      "config.json");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(std::string(c.status().message()),
            "config.json: text_config.hidden_size: expected an integer, got 1.5 (and 1 more errors)");
}

TEST(ProcessorConfig, Qwen2PixelBoundsOverrideSize) {
  absl::StatusOr<families::Qwen2VLImageProcessorConfig> p = ParseProcessorConfigJson<families::Qwen2VLImageProcessorConfig>(
      J(R"({"min_pixels": 3136, "max_pixels": 12845056})"), "p.json");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->min_pixels, 3136);
  EXPECT_EQ(p->max_pixels, 12845056);
  EXPECT_EQ(*p->size.longest_edge, 12845056);
  EXPECT_EQ(p->resample, kResampleBicubic);
}

TEST(ProcessorConfig, ClipSizeIntegerIsShortestEdgeCropIsSquare) {
  absl::StatusOr<CLIPImageProcessorConfig> p = ParseProcessorConfigJson<CLIPImageProcessorConfig>(
      J(R"({"size": 336, "crop_size": 336, "image_mean": 0.5})"), "p.json");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(*p->size.shortest_edge, 336);
  EXPECT_FALSE(p->size.height.has_value());
  EXPECT_EQ(*p->crop_size.height, 336);
  EXPECT_EQ(*p->crop_size.width, 336);
  EXPECT_EQ(p->image_mean, (std::vector<double>{0.5, 0.5, 0.5}));
}

}  // namespace
}  // namespace spatialid::config
