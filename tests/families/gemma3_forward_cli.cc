// The forward tool (forward_tool.h) for Gemma 3, driven by
// gemma3_oracle_test.py. What is Gemma 3's own: one pixel tensor
// [N, 3, S, S], the config fields it reads (sliding and full layers with
// their own RoPE, the pooled SigLIP tower, the soft-token block), and its
// image expansion ("\n\n<start_of_image>" + soft tokens + "<end_of_image>\n\n").
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "spatialid/families/gemma3/gemma3.h"
#include "tests/families/forward_tool.h"

namespace spatialid::forward_tool {

namespace fam = spatialid::families;

template <>
struct ToolHooks<fam::Gemma3> {
  static absl::StatusOr<fam::Gemma3Pixels> ReadPixels(const io::SafetensorsFile& file) {
    SPATIALID_ASSIGN_OR_RETURN(at::Tensor pv, ReadTensor(file, "pixel_values"));
    return fam::Gemma3Pixels{pv};
  }

  static void WritePixels(const fam::Gemma3Pixels& px, TensorMap& out) { out["pixel_values"] = px.pixel_values; }

  static nlohmann::json RopeJson(const nn::RopeParameters& r) {
    const char* type = r.type == nn::RopeType::kLinear    ? "linear"
                       : r.type == nn::RopeType::kDynamic ? "dynamic"
                       : r.type == nn::RopeType::kLlama3  ? "llama3"
                                                          : "default";
    return {{"rope_type", type}, {"rope_theta", r.theta}, {"factor", r.factor}};
  }

  static absl::StatusOr<nlohmann::json> ConfigSummary(const std::string& model_dir) {
    SPATIALID_ASSIGN_OR_RETURN(fam::Gemma3Config cfg, fam::ReadGemma3Config(model_dir));
    SPATIALID_ASSIGN_OR_RETURN(fam::Gemma3TextShape text, fam::Gemma3TextShapeOf(cfg.text_config));
    SPATIALID_ASSIGN_OR_RETURN(fam::SiglipVisionShape vision, fam::SiglipVisionShapeOf(cfg.vision_config));
    SPATIALID_ASSIGN_OR_RETURN(at::ScalarType dtype, fam::DtypeFromConfig(cfg.dtype));
    std::vector<std::string> layer_types;
    for (bool s : text.sliding) layer_types.push_back(s ? "sliding_attention" : "full_attention");
    nlohmann::json j = DecoderSummary(text);
    j.update({{"query_pre_attn_scalar", text.query_pre_attn_scalar}, {"sliding_window", text.sliding_window},
              {"layer_types", layer_types}, {"rope_full", RopeJson(text.rope)},
              {"rope_sliding", RopeJson(text.rope_sliding)}, {"vision_layers", vision.num_layers},
              {"vision_hidden_size", vision.hidden_size},
              {"vision_intermediate_size", vision.intermediate_size}, {"vision_heads", vision.num_heads},
              {"image_size", vision.image_size}, {"patch_size", vision.patch_size},
              {"pool_kernel", fam::Gemma3PoolingOf(cfg).kernel},
              {"image_tokens", fam::Gemma3ImagePrompt(cfg).tokens_per_image},
              {"image_token_index", cfg.image_token_index}, {"boi_token_index", cfg.boi_token_index},
              {"eoi_token_index", cfg.eoi_token_index}, {"dtype", std::string(c10::toString(dtype))}});
    return j;
  }

  static absl::StatusOr<fam::ImagePrompt> PromptFromConfig(const std::string& model_dir,
                                                           const fam::Gemma3Pixels* /*fixed*/) {
    SPATIALID_ASSIGN_OR_RETURN(fam::Gemma3Config cfg, fam::ReadGemma3Config(model_dir));
    return fam::Gemma3ImagePrompt(cfg);
  }
};

}  // namespace spatialid::forward_tool

int main(int argc, char** argv) {
  return spatialid::forward_tool::ForwardToolMain<spatialid::families::Gemma3>(
      argc, argv,
      "Runs spatialid's Gemma 3 family on a checkpoint folder for the transformers oracle test.\n"
      "Example: gemma3_forward_cli --model_dir=DIR --request=req.json --pixels=px.safetensors "
      "--out=out.safetensors");
}
