// The forward tool (forward_tool.h) for LLaVA-1.5, driven by
// llava_oracle_test.py. What is LLaVA's own: one pixel tensor
// [N, 3, 336, 336] and the config fields the family reads (CLIP tower,
// Llama decoder, vision feature layer, image tokens per image).
#include <cstdio>

#include <nlohmann/json.hpp>

#include "spatialid/families/llava/llava.h"
#include "tests/families/forward_tool.h"

namespace spatialid::forward_tool {

namespace fam = spatialid::families;

template <>
struct ToolHooks<fam::Llava> {
  static absl::StatusOr<fam::LlavaPixels> ReadPixels(const io::SafetensorsFile& file) {
    SPATIALID_ASSIGN_OR_RETURN(at::Tensor pv, ReadTensor(file, "pixel_values"));
    return fam::LlavaPixels{pv};
  }

  static void WritePixels(const fam::LlavaPixels& px, TensorMap& out) { out["pixel_values"] = px.pixel_values; }

  static absl::StatusOr<nlohmann::json> ConfigSummary(const std::string& model_dir) {
    SPATIALID_ASSIGN_OR_RETURN(fam::LlavaConfig cfg, fam::ReadLlavaConfig(model_dir));
    SPATIALID_ASSIGN_OR_RETURN(nn::TextDecoderShape text, fam::LlamaDecoderShape(cfg.text_config));
    SPATIALID_ASSIGN_OR_RETURN(fam::ClipVisionShape vision, fam::ClipVisionShapeOf(cfg.vision_config));
    SPATIALID_ASSIGN_OR_RETURN(at::ScalarType dtype, fam::DtypeFromConfig(cfg.dtype));
    nlohmann::json j = DecoderSummary(text);
    j.update({{"rope_theta", text.rope.theta}, {"vision_layers", vision.num_layers},
              {"vision_hidden_size", vision.hidden_size}, {"image_size", vision.image_size},
              {"patch_size", vision.patch_size}, {"image_tokens", fam::LlavaImageTokens(cfg)},
              {"image_token_index", cfg.image_token_index}, {"dtype", std::string(c10::toString(dtype))},
              {"vision_feature_layer", cfg.vision_feature_layer}});
    return j;
  }

  // LlavaProcessor: "<image>" -> "<image>" x tokens per image (fixed geometry).
  static absl::StatusOr<fam::ImagePrompt> PromptFromConfig(const std::string& model_dir,
                                                           const fam::LlavaPixels* /*fixed*/) {
    SPATIALID_ASSIGN_OR_RETURN(fam::LlavaConfig cfg, fam::ReadLlavaConfig(model_dir));
    fam::ImagePrompt p;
    p.placeholder = p.image_token = fam::LlavaModel::kImageToken;
    p.image_token_id = cfg.image_token_index;
    p.tokens_per_image = fam::LlavaImageTokens(cfg);
    p.expansion = text::RepeatToken(p.image_token, static_cast<size_t>(p.tokens_per_image));
    return p;
  }
};

}  // namespace spatialid::forward_tool

int main(int argc, char** argv) {
  return spatialid::forward_tool::ForwardToolMain<spatialid::families::Llava>(
      argc, argv,
      "Runs spatialid's LLaVA family on a checkpoint folder for the transformers oracle test.\n"
      "Example: llava_forward_cli --model_dir=DIR --request=req.json --pixels=px.safetensors "
      "--out=out.safetensors");
}
