// The forward tool (forward_tool.h) for InternVL3, driven by
// internvl_oracle_test.py. What is InternVL's own: its pixels are 448 px
// patches with a count per image ("num_patches", which also sets the image
// expansion: 256 tokens per patch), the config fields it reads, and
//   --mode=grids  the tile grid of each case in --request (JSON [[height,
//                 width, min_patches, max_patches], ...]) with 448x448
//                 tiles; prints [[columns, rows], ...] (no model folder).
#include <cmath>
#include <cstdio>
#include <optional>
#include <string>

#include <ATen/ops/tensor.h>
#include <nlohmann/json.hpp>

#include "spatialid/families/internvl/internvl.h"
#include "tests/families/forward_tool.h"

namespace spatialid::forward_tool {

namespace fam = spatialid::families;

template <>
struct ToolHooks<fam::InternVL> {
  static absl::StatusOr<fam::InternVLPixels> ReadPixels(const io::SafetensorsFile& file) {
    fam::InternVLPixels px;
    SPATIALID_ASSIGN_OR_RETURN(px.pixel_values, ReadTensor(file, "pixel_values"));
    SPATIALID_ASSIGN_OR_RETURN(at::Tensor n, ReadTensor(file, "num_patches"));
    for (int64_t i = 0; i < n.numel(); ++i) px.num_patches.push_back(std::lround(n[i].item<float>()));
    return px;
  }

  static void WritePixels(const fam::InternVLPixels& px, TensorMap& out) {
    out["pixel_values"] = px.pixel_values;
    out["num_patches"] = at::tensor(px.num_patches, at::kLong).to(at::kFloat);
  }

  static void DescribePixels(const fam::InternVLPixels& px, nlohmann::json& j) { j["num_patches"] = px.num_patches; }

  static absl::StatusOr<nlohmann::json> ConfigSummary(const std::string& model_dir) {
    SPATIALID_ASSIGN_OR_RETURN(fam::InternVLConfig cfg, fam::ReadInternVLConfig(model_dir));
    SPATIALID_ASSIGN_OR_RETURN(nn::TextDecoderShape text, fam::Qwen2DecoderShape(cfg.text_config));
    SPATIALID_ASSIGN_OR_RETURN(fam::InternVisionShape vision, fam::InternVisionShapeOf(cfg.vision_config));
    SPATIALID_ASSIGN_OR_RETURN(at::ScalarType dtype, fam::DtypeFromConfig(cfg.dtype));
    nlohmann::json j = DecoderSummary(text);
    j.update({{"rope_theta", text.rope.theta}, {"rope_dynamic", text.rope.type == nn::RopeType::kDynamic},
              {"rope_factor", text.rope.factor}, {"max_position_embeddings", text.max_position_embeddings},
              {"vision_layers", vision.num_layers}, {"vision_hidden_size", vision.hidden_size},
              {"image_size", vision.image_size}, {"patch_size", vision.patch_size},
              {"use_qk_norm", vision.use_qk_norm}, {"use_mean_pooling", vision.use_mean_pooling},
              {"tokens_per_patch", fam::InternVLTokensPerPatch(cfg)}, {"image_token_id", cfg.image_token_id},
              {"dtype", std::string(c10::toString(dtype))}, {"vision_feature_layer", cfg.vision_feature_layer}});
    return j;
  }

  // The first image's patch count sets the expansion (the extractor's rule).
  static absl::StatusOr<fam::ImagePrompt> PromptFromConfig(const std::string& model_dir,
                                                           const fam::InternVLPixels* px) {
    SPATIALID_ASSIGN_OR_RETURN(fam::InternVLConfig cfg, fam::ReadInternVLConfig(model_dir));
    return fam::InternVLImagePrompt(cfg, px->num_patches.empty() ? 1 : px->num_patches.front());
  }

  static std::optional<absl::Status> RunMode(const std::string& mode, Tool<fam::InternVL>& /*tool*/) {
    if (mode != "grids") return std::nullopt;
    const std::string path = absl::GetFlag(FLAGS_request);
    absl::StatusOr<nlohmann::json> cases = io::ReadJsonFile(path);
    if (!cases.ok()) return cases.status();
    nlohmann::json grids = nlohmann::json::array();
    try {
      for (const auto& c : *cases) {
        const auto g = fam::OptimalTiledCanvas(c.at(0).get<int64_t>(), c.at(1).get<int64_t>(), 448, 448,
                                               c.at(2).get<int64_t>(), c.at(3).get<int64_t>());
        grids.push_back({g.columns, g.rows});
      }
    } catch (const nlohmann::json::exception& e) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": ", e.what()));
    }
    std::printf("%s\n", grids.dump().c_str());
    return absl::OkStatus();
  }
};

}  // namespace spatialid::forward_tool

int main(int argc, char** argv) {
  return spatialid::forward_tool::ForwardToolMain<spatialid::families::InternVL>(
      argc, argv,
      "Runs spatialid's InternVL3 family on a checkpoint folder for the transformers oracle test.\n"
      "Example: internvl_forward_cli --model_dir=DIR --request=req.json --pixels=px.safetensors "
      "--out=out.safetensors");
}
