// The forward tool (forward_tool.h) for Qwen2-VL and Qwen2.5-VL, driven by
// qwen2_vl_oracle_test.py: one binary for both versions, config.json's
// model_type picks one (a folder without config.json preprocesses as
// Qwen2-VL: both share the image processor). What is Qwen's own: its pixels
// are patch rows with a grid per image ("image_grid_thw"), the config fields
// it reads, the image expansion (a token per merged 2x2 block), and
//   --mode=positions            "position_ids" [3, B, S] of the request's ids
//                               and the pixels' grids (get_rope_index)
//   --image_temporal=transformers5_3  Qwen2.5-VL image tokens get
//                               transformers 5.3.0's temporal ids (nn/mrope.h)
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "spatialid/families/qwen2_vl/qwen2_vl.h"
#include "tests/families/forward_tool.h"

ABSL_FLAG(std::string, image_temporal, "image_start",
          "temporal position ids of Qwen2.5-VL image tokens: image_start or transformers5_3");

namespace spatialid::forward_tool {

namespace fam = spatialid::families;

template <class F>
struct QwenHooks {
  static absl::StatusOr<fam::Qwen2VLImages> ReadPixels(const io::SafetensorsFile& file) {
    fam::Qwen2VLImages px;
    SPATIALID_ASSIGN_OR_RETURN(px.pixel_values, ReadTensor(file, "pixel_values"));
    SPATIALID_ASSIGN_OR_RETURN(at::Tensor thw_f, ReadTensor(file, "image_grid_thw"));
    const at::Tensor thw = thw_f.to(at::kLong);
    if (thw.dim() != 2 || thw.size(1) != 3) {
      return absl::InvalidArgumentError("image_grid_thw must be [N, 3]");
    }
    px.image_grid_thw = thw;
    for (int64_t i = 0; i < thw.size(0); ++i) {
      px.grids.push_back({thw[i][0].item<int64_t>(), thw[i][1].item<int64_t>(), thw[i][2].item<int64_t>()});
    }
    return px;
  }

  static void WritePixels(const fam::Qwen2VLImages& px, TensorMap& out) {
    out["pixel_values"] = px.pixel_values;
    out["image_grid_thw"] = px.image_grid_thw;
  }

  static absl::StatusOr<nlohmann::json> ConfigSummary(const std::string& model_dir) {
    using V = typename F::Version;
    SPATIALID_ASSIGN_OR_RETURN(typename F::Config cfg, fam::ReadQwen2VLConfig<V>(model_dir));
    SPATIALID_ASSIGN_OR_RETURN(nn::TextDecoderShape text, fam::Qwen2DecoderShape(cfg.text_config));
    SPATIALID_ASSIGN_OR_RETURN(fam::QwenVisionShape vision, V::VisionShape(cfg.vision_config));
    SPATIALID_ASSIGN_OR_RETURN(at::ScalarType dtype, fam::DtypeFromConfig(cfg.dtype));
    nlohmann::json j = DecoderSummary(text);
    j.update({{"family", std::string(F::kName)}, {"rope_theta", text.rope.theta},
              {"mrope_section", cfg.text_config.rope_parameters.mrope_section.value_or(std::vector<int64_t>{})},
              {"vision_depth", vision.depth}, {"vision_width", vision.width}, {"vision_heads", vision.num_heads},
              {"vision_mlp", vision.mlp_hidden}, {"vision_act", std::string(nn::ActivationName(vision.act))},
              {"vision_out", vision.out_width}, {"window_blocks", vision.window_blocks},
              {"full_attention_blocks", vision.full_attention_blocks}, {"image_token_id", cfg.image_token_id},
              {"dtype", std::string(c10::toString(dtype))}});
    return j;
  }

  // A token per merged block of the first image's grid (the extractor's rule).
  static absl::StatusOr<fam::ImagePrompt> PromptFromConfig(const std::string& model_dir,
                                                           const fam::Qwen2VLImages* px) {
    SPATIALID_ASSIGN_OR_RETURN(typename F::Config cfg, fam::ReadQwen2VLConfig<typename F::Version>(model_dir));
    fam::ImagePrompt p;
    p.placeholder = p.image_token = F::Model::kImageToken;
    p.image_token_id = cfg.image_token_id;
    p.tokens_per_image = px->grids.empty() ? 0 : px->grids[0].tokens(cfg.vision_config.spatial_merge_size);
    p.expansion = text::RepeatToken(p.image_token, static_cast<size_t>(p.tokens_per_image));
    return p;
  }

  static absl::StatusOr<fam::Qwen2VLOptions> Options() {
    fam::Qwen2VLOptions o;
    const std::string t = absl::GetFlag(FLAGS_image_temporal);
    if (t == "transformers5_3") {
      o.image_temporal = fam::Qwen2VLOptions::ImageTemporal::kTransformers5_3;
    } else if (t != "image_start") {
      return absl::InvalidArgumentError(
          absl::StrCat("--image_temporal=", t, ": expected image_start or transformers5_3"));
    }
    return o;
  }

  static absl::StatusOr<typename F::Model> Load(const std::string& model_dir, const fam::LoadOptions& load) {
    SPATIALID_ASSIGN_OR_RETURN(fam::Qwen2VLOptions qwen, Options());
    return F::Model::Load(model_dir, load, qwen);
  }

  static std::optional<absl::Status> RunMode(const std::string& mode, Tool<F>& tool) {
    if (mode != "positions") return std::nullopt;
    return Positions(tool);
  }

  static absl::Status Positions(Tool<F>& tool) {
    SPATIALID_RETURN_IF_ERROR(tool.NeedModelDir());
    SPATIALID_ASSIGN_OR_RETURN(std::optional<fam::Qwen2VLImages> pixels, tool.PixelsFromFlags());
    SPATIALID_ASSIGN_OR_RETURN(Request req, ReadRequest(absl::GetFlag(FLAGS_request)));
    SPATIALID_ASSIGN_OR_RETURN(typename F::Model model, tool.LoadModel());
    const bool text_only = absl::GetFlag(FLAGS_text_only);
    if (!text_only && !pixels) {
      return absl::InvalidArgumentError("--mode=positions needs --pixels or --images (or --text_only)");
    }
    SPATIALID_ASSIGN_OR_RETURN(tool.out()["position_ids"],
                               model.PositionIds(req.ids, text_only ? nullptr : &*pixels));
    return tool.Write();
  }
};

template <>
struct ToolHooks<fam::Qwen2VL> : QwenHooks<fam::Qwen2VL> {};
template <>
struct ToolHooks<fam::Qwen2_5_VL> : QwenHooks<fam::Qwen2_5_VL> {};

}  // namespace spatialid::forward_tool

int main(int argc, char** argv) {
  return spatialid::forward_tool::ForwardToolMain<spatialid::families::Qwen2VL,
                                                  spatialid::families::Qwen2_5_VL>(
      argc, argv,
      "Runs spatialid's Qwen2-VL / Qwen2.5-VL family on a checkpoint folder for the transformers "
      "oracle test.\nExample: qwen2_vl_forward_cli --model_dir=DIR --request=req.json "
      "--pixels=px.safetensors --out=out.safetensors");
}
