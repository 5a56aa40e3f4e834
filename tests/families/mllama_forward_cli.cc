// The forward tool (forward_tool.h) for Llama 3.2 Vision (Mllama), driven by
// mllama_oracle_test.py. What is Mllama's own: its pixels are tiles with
// aspect-ratio ids and masks, its image reaches the text through
// cross-attention (the forward and prompt modes also write the 0/1
// "cross_attention_mask" the family derives from the ids), the config
// fields it reads, and
//   --text_only_numbering=repeated  the text-only hidden states numbered as
//                                   transformers <= 4.54 did (skipped
//                                   cross-attention layers repeat their input)
//   --mode=tiling                   for each HxW in --sizes, the processor's
//                                   canvas and resize: prints JSON
//                                   [[rows, cols, height, width, id], ...]
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "spatialid/families/mllama/mllama.h"
#include "tests/families/forward_tool.h"

ABSL_FLAG(std::string, text_only_numbering, "skipped",
          "text-only hidden-state numbering: skipped (transformers >= 4.55, the default) or repeated "
          "(transformers <= 4.54)");
ABSL_FLAG(std::string, sizes, "", "comma-separated HxW image sizes (mode=tiling)");

namespace spatialid::forward_tool {

namespace fam = spatialid::families;

template <>
struct ToolHooks<fam::Mllama> {
  static absl::StatusOr<fam::MllamaPixels> ReadPixels(const io::SafetensorsFile& file) {
    fam::MllamaPixels px;
    SPATIALID_ASSIGN_OR_RETURN(px.pixel_values, ReadTensor(file, "pixel_values"));
    SPATIALID_ASSIGN_OR_RETURN(px.aspect_ratio_ids, ReadTensor(file, "aspect_ratio_ids"));
    SPATIALID_ASSIGN_OR_RETURN(px.aspect_ratio_mask, ReadTensor(file, "aspect_ratio_mask"));
    px.aspect_ratio_ids = px.aspect_ratio_ids.to(at::kLong);
    px.aspect_ratio_mask = px.aspect_ratio_mask.to(at::kLong);
    return px;
  }

  static void WritePixels(const fam::MllamaPixels& px, TensorMap& out) {
    out["pixel_values"] = px.pixel_values;
    out["aspect_ratio_ids"] = px.aspect_ratio_ids;
    out["aspect_ratio_mask"] = px.aspect_ratio_mask;
  }

  static absl::StatusOr<nlohmann::json> ConfigSummary(const std::string& model_dir) {
    SPATIALID_ASSIGN_OR_RETURN(fam::MllamaConfig cfg, fam::ReadMllamaConfig(model_dir));
    SPATIALID_ASSIGN_OR_RETURN(nn::TextDecoderShape text, fam::MllamaDecoderShape(cfg.text_config));
    SPATIALID_ASSIGN_OR_RETURN(fam::MllamaVisionShape vision, fam::MllamaVisionShapeOf(cfg.vision_config));
    SPATIALID_ASSIGN_OR_RETURN(at::ScalarType dtype, fam::DtypeFromConfig(cfg.dtype));
    const int64_t cross = static_cast<int64_t>(text.other_layers.size());
    return nlohmann::json{{"num_layers", text.num_layers},
                          {"text_only_num_layers", text.num_layers - cross},
                          {"cross_attention_layers", text.other_layers},
                          {"hidden_size", text.hidden_size},
                          {"num_heads", text.num_heads},
                          {"num_kv_heads", text.num_kv_heads},
                          {"head_dim", text.head_dim},
                          {"embedding_rows", text.vocab_size},
                          {"rope_type", text.rope.type == nn::RopeType::kLlama3 ? "llama3" : "other"},
                          {"rope_theta", text.rope.theta},
                          {"rope_factor", text.rope.factor},
                          {"vision_layers", vision.num_layers},
                          {"vision_global_layers", vision.num_global_layers},
                          {"vision_hidden_size", vision.hidden_size},
                          {"vision_output_dim", vision.output_dim()},
                          {"tile_size", vision.image_size},
                          {"max_num_tiles", vision.max_num_tiles},
                          {"positions_per_tile", vision.num_patches()},
                          {"padded_positions_per_tile", vision.padded_patches()},
                          {"vision_positions_per_image", vision.max_num_tiles * vision.num_patches()},
                          {"image_tokens", 1},
                          {"image_token_index", cfg.image_token_index},
                          {"dtype", std::string(c10::toString(dtype))}};
  }

  // MllamaProcessor keeps "<|image|>" as it is: one token per image.
  static absl::StatusOr<fam::ImagePrompt> PromptFromConfig(const std::string& model_dir,
                                                           const fam::MllamaPixels* /*no expansion*/) {
    SPATIALID_ASSIGN_OR_RETURN(fam::MllamaConfig cfg, fam::ReadMllamaConfig(model_dir));
    fam::ImagePrompt p;
    p.placeholder = p.expansion = p.image_token = fam::MllamaModel::kImageToken;
    p.image_token_id = cfg.image_token_index;
    p.tokens_per_image = 1;
    return p;
  }

  static absl::Status AfterLoad(fam::MllamaModel& model) {
    const std::string numbering = absl::GetFlag(FLAGS_text_only_numbering);
    if (numbering == "repeated") {
      model.set_text_only_numbering(fam::MllamaTextOnlyNumbering::kRepeated);
    } else if (numbering != "skipped") {
      return absl::InvalidArgumentError(
          absl::StrCat("--text_only_numbering=", numbering, ": skipped or repeated"));
    }
    return absl::OkStatus();
  }

  // The 0/1 cross-attention mask the family derives for these ids (one row
  // broadcast over the images' batch).
  static at::Tensor CrossMask(const fam::MllamaConfig& cfg, const at::Tensor& ids, const fam::MllamaPixels& px) {
    const at::Tensor counts = px.aspect_ratio_mask.sum(-1);
    std::vector<std::vector<int64_t>> num_tiles(static_cast<size_t>(counts.size(0)));
    for (int64_t b = 0; b < counts.size(0); ++b) {
      for (int64_t j = 0; j < counts.size(1); ++j) {
        num_tiles[static_cast<size_t>(b)].push_back(counts[b][j].item<int64_t>());
      }
    }
    const at::Tensor batch = ids.size(0) == counts.size(0) ? ids : ids.expand({counts.size(0), ids.size(1)});
    return fam::MllamaTileAttentionRows(batch.contiguous(), cfg.image_token_index, num_tiles,
                                        px.pixel_values.size(1), px.pixel_values.size(2));
  }

  static absl::Status AddOutputs(const fam::MllamaModel& model, const at::Tensor& ids, const fam::MllamaPixels& px,
                                 TensorMap& out) {
    out["cross_attention_mask"] = CrossMask(model.config(), ids, px);
    return absl::OkStatus();
  }

  static absl::Status AddPromptOutputs(const std::string& model_dir, const at::Tensor& ids,
                                       const fam::MllamaPixels& px, TensorMap& out) {
    SPATIALID_ASSIGN_OR_RETURN(fam::MllamaConfig cfg, fam::ReadMllamaConfig(model_dir));
    out["cross_attention_mask"] = CrossMask(cfg, ids, px);
    return absl::OkStatus();
  }

  static std::optional<absl::Status> RunMode(const std::string& mode, Tool<fam::Mllama>& tool) {
    if (mode != "tiling") return std::nullopt;
    return Tiling(tool);
  }

  static absl::Status Tiling(Tool<fam::Mllama>& tool) {
    SPATIALID_RETURN_IF_ERROR(tool.NeedModelDir());
    SPATIALID_ASSIGN_OR_RETURN(fam::Mllama::Processor proc, fam::Mllama::LoadProcessor(tool.model_dir(), {}));
    const fam::MllamaImageProcessor& ip = proc.image_processor();
    nlohmann::json rows = nlohmann::json::array();
    for (const std::string& item : SplitList(absl::GetFlag(FLAGS_sizes))) {
      const std::vector<std::string> hw = absl::StrSplit(item, 'x');
      int64_t h = 0, w = 0;
      if (hw.size() != 2 || !absl::SimpleAtoi(hw[0], &h) || !absl::SimpleAtoi(hw[1], &w) || h <= 0 || w <= 0) {
        return absl::InvalidArgumentError(absl::StrCat("--sizes: \"", item, "\" is not HxW"));
      }
      const fam::MllamaTileLayout layout = ip.LayoutFor(h, w);
      const auto [rh, rw] = ip.ResizedSize(h, w);
      rows.push_back({layout.rows, layout.cols, rh, rw, ip.AspectRatioId(layout)});
    }
    std::printf("%s\n", rows.dump().c_str());
    return absl::OkStatus();
  }
};

}  // namespace spatialid::forward_tool

int main(int argc, char** argv) {
  return spatialid::forward_tool::ForwardToolMain<spatialid::families::Mllama>(
      argc, argv,
      "Runs spatialid's Llama 3.2 Vision (Mllama) family on a checkpoint folder for the transformers\n"
      "oracle test. Example: mllama_forward_cli --model_dir=DIR --request=req.json "
      "--pixels=px.safetensors --out=out.safetensors");
}
