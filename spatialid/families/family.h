// The contract every model family satisfies: `FamilyTraits`.
//
// A family is one folder under spatialid/families/ (llava/ is the model to
// copy) whose main header ends with a traits struct, e.g. `families::Llava`,
// naming:
//   Config      its typed config.json (HF field names)
//   Model       loaded weights; derives MultimodalForward
//               (multimodal_forward.h), which gives it the forward
//   Processor   its image processor (settings from the model folder)
//   PixelBatch  what the processor produces for a batch of images and the
//               forward consumes (LLaVA: float32 pixel_values [N, 3, 336, 336])
//   kModelType  config.json's "model_type" ("llava"): the registry
//               (registry.h) dispatches on it
//   kName       a human name for messages ("LLaVA-1.5")
//   kPresets    the paper's models of this family (model_preset.h): alias,
//               checkpoint, reference dtype and layer range
// and providing
//   static StatusOr<Model>     Load(model_dir, LoadOptions)
//   static StatusOr<Processor> LoadProcessor(model_dir, ProcessorOptions)
//   processor.Preprocess(span<const io::Image>) -> StatusOr<PixelBatch>
//   model.ImagePromptFor(pixels) -> ImagePrompt (the placeholder and its expansion)
//   the forward of MultimodalForward: Forward(ids, pixels, request[, plan]),
//     Forward(ids, request) (text only), Prepare/Run (a prompt prepared once
//     for many batches), ComputePrefix, ImageFeatures
//   model.num_layers(), hidden_size(), dtype(), device()
//
// Forward takes int64 ids [batch, seq] (image placeholders already expanded,
// one image per sequence for the paper's prompts, every sequence with the
// same token layout) and returns the requested hidden states as
// [request.layers.size(), batch, request.positions.size(), hidden] in the
// model dtype on the model device. What hidden-state index i means is
// defined once, in families/hidden_states.h. Forwards never compute the LM
// head, drop positions after the last requested one and stop after the
// deepest requested layer. Errors come back as Status (bad ids, a
// placeholder count that does not match the images, out-of-range requests);
// exceptions do not cross this API.
//
// The prompt side stays with the chat-template and tokenizer code: the
// family only says which string the template writes per image and what the
// processor turns it into (`ImagePrompt`).
//
// Porting a family (README.md "Porting a model family" has the checklist):
// one folder with its config.h, image processor, own towers and the model
// with its MultimodalForward hooks, one entry in registry.h, and its
// oracle parameters under tests/families.
#pragma once

#include <concepts>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "spatialid/families/forward_plan.h"
#include "spatialid/families/hidden_states.h"
#include "spatialid/families/model_preset.h"
#include "spatialid/io/image.h"
#include "spatialid/vision/resize_engine.h"

namespace spatialid::families {

// Run-time settings of a model, validated before weights load.
struct LoadOptions {
  std::optional<at::ScalarType> dtype;  // unset: config.json's dtype (torch_dtype), else fp32
  at::Device device = at::kCPU;
};

struct ProcessorOptions {
  vision::ResizeEngine resize = vision::ResizeEngine::kTorchvision;
};

// How one image appears in the prompt. The chat template writes
// `placeholder`; the processor replaces each with `expansion`, in which
// `image_token` (id `image_token_id`) occurs `tokens_per_image` times and
// receives the image features in order.
struct ImagePrompt {
  std::string placeholder;   // LLaVA: "<image>"
  std::string expansion;     // LLaVA: "<image>" x 576
  std::string image_token;   // LLaVA: "<image>"
  int64_t image_token_id = -1;
  int64_t tokens_per_image = 0;
};

// --- the concept, in parts so a failing family learns which part is wrong ---

template <class F>
concept FamilyTypes = requires {
  typename F::Config;
  typename F::Model;
  typename F::Processor;
  typename F::PixelBatch;
  typename F::Model::Prepared;
  { F::kModelType } -> std::convertible_to<std::string_view>;
  { F::kName } -> std::convertible_to<std::string_view>;
  { F::kPresets } -> std::convertible_to<std::span<const ModelPreset>>;
};

template <class F>
concept FamilyLoading = requires(const std::string& dir, const LoadOptions& load,
                                 const ProcessorOptions& proc) {
  { F::Load(dir, load) } -> std::same_as<absl::StatusOr<typename F::Model>>;
  { F::LoadProcessor(dir, proc) } -> std::same_as<absl::StatusOr<typename F::Processor>>;
};

template <class F>
concept FamilyProcessing = requires(const typename F::Processor& processor,
                                    std::span<const io::Image> images) {
  { processor.Preprocess(images) } -> std::same_as<absl::StatusOr<typename F::PixelBatch>>;
};

template <class F>
concept FamilyForward = requires(const typename F::Model& model,
                                 const typename F::PixelBatch& pixels,
                                 const at::Tensor& input_ids,
                                 const HiddenStateRequest& request,
                                 const typename F::Model::Prepared& prepared,
                                 const ForwardPlan& plan, const PrefixCache& prefix) {
  { model.ImagePromptFor(pixels) } -> std::same_as<ImagePrompt>;
  { model.Forward(input_ids, pixels, request) } -> std::same_as<absl::StatusOr<at::Tensor>>;
  { model.Forward(input_ids, request) } -> std::same_as<absl::StatusOr<at::Tensor>>;
  { model.Forward(input_ids, pixels, request, plan) } -> std::same_as<absl::StatusOr<at::Tensor>>;
  { model.Prepare(input_ids, &pixels, request, &prefix, true) }
      -> std::same_as<absl::StatusOr<typename F::Model::Prepared>>;
  { model.Run(prepared, &pixels, int64_t{1}, &plan) } -> std::same_as<absl::StatusOr<at::Tensor>>;
  { model.ComputePrefix(input_ids, request) } -> std::same_as<absl::StatusOr<PrefixCache>>;
  { model.PrefixDepth() } -> std::convertible_to<int64_t>;
  { pixels.pixel_values } -> std::convertible_to<at::Tensor>;
  { model.num_layers() } -> std::convertible_to<int64_t>;
  { model.hidden_size() } -> std::convertible_to<int64_t>;
  { model.dtype() } -> std::same_as<at::ScalarType>;
  { model.device() } -> std::same_as<at::Device>;
};

template <class F>
concept FamilyTraits = FamilyTypes<F> && FamilyLoading<F> && FamilyProcessing<F> &&
                       FamilyForward<F>;

// `static_assert(CheckFamily<MyFamily>());` at the bottom of a family header
// turns a concept failure into a message saying what to add.
template <class F>
constexpr bool CheckFamily() {
  static_assert(FamilyTypes<F>,
                "family traits need the types Config, Model (deriving MultimodalForward), "
                "Processor, PixelBatch and the constants kModelType (config.json's model_type), "
                "kName and kPresets; see spatialid/families/family.h and llava/llava.h");
  if constexpr (FamilyTypes<F>) {
    static_assert(FamilyLoading<F>,
                  "family traits need `static absl::StatusOr<Model> Load(const std::string& "
                  "model_dir, const LoadOptions&)` and `static absl::StatusOr<Processor> "
                  "LoadProcessor(const std::string& model_dir, const ProcessorOptions&)`");
    static_assert(FamilyProcessing<F>,
                  "the family's Processor needs `absl::StatusOr<PixelBatch> "
                  "Preprocess(std::span<const io::Image>) const`");
    static_assert(FamilyForward<F>,
                  "the family's Model needs `ImagePrompt ImagePromptFor(const PixelBatch&) const`, "
                  "the forward of MultimodalForward<Model, PixelBatch, LayerContext> (derive it "
                  "and provide its hooks: multimodal_forward.h), num_layers(), hidden_size(), "
                  "dtype(), device(), and a PixelBatch with a `pixel_values` tensor");
  }
  return FamilyTraits<F>;
}

}  // namespace spatialid::families
