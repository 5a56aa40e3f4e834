// The extractor: a model family composed with a layer selector and a pooler,
// turning images and a question into one vector per target word and layer.
//
// It owns everything one model needs (weights, image processor, tokenizer,
// chat template) and does the reference's prompt work (REFERENCE.md 2): the
// question as one user turn with one image (or none), the model's own chat
// template with the generation prompt, the processor's image-placeholder
// expansion and BOS rule, the target word's position by the pooler. The
// forward returns only the rows and layers asked for (families/family.h).
//
// Image batches run the family's planned forward where it has one
// (families/forward_plan.h; `ExtractorOptions::plan`): the prompt's text
// before the first image token is computed once, when the prompt is
// prepared, and its keys/values serve every batch; the deepest layer runs
// only at the target rows; q/k/v and gate/up are packed matmuls. Results
// equal the plain forward's up to matmul rounding; `plan = std::nullopt`
// gives the plain forward (op for op transformers').
//
// Example:
//   using X = extract::Extractor<families::Llava, policy::layers::Reference>;
//   SPATIALID_ASSIGN_OR_RETURN(X x, X::Create({.model_dir = dir}, {.last = 32}));
//   SPATIALID_ASSIGN_OR_RETURN(auto batch, x.Preprocess(images));
//   SPATIALID_ASSIGN_OR_RETURN(auto prompt, x.PrepareImagePrompt(question, words, batch));
//   SPATIALID_ASSIGN_OR_RETURN(std::vector<at::Tensor> rows, x.Run(prompt, batch));
//   // rows[w]: [layers, batch, hidden] for target word w
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <ATen/ops/tensor.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "spatialid/families/family.h"
#include "spatialid/families/forward_plan.h"
#include "spatialid/families/hidden_states.h"
#include "spatialid/policies/layers.h"
#include "spatialid/policies/pooling.h"
#include "spatialid/text/chat_template.h"
#include "spatialid/text/prompt.h"
#include "spatialid/text/tokenizer.h"
#include "spatialid/text/tokenizer_pretrained.h"
#include "spatialid/util/status.h"

namespace spatialid::extract {

// Which savings of the planned forward to use (families/forward_plan.h).
struct PlanOptions {
  bool reuse_prefix = true;  // shared text prefix computed once per prompt
  bool rows_only = true;     // deepest layer only at the target rows
  bool packed = true;        // packed q/k/v and gate/up matmuls
};

// Whether the tokenizer adds its special tokens (BOS) to the rendered prompt.
enum class BosRule {
  // The reference: the rendered prompt goes through `processor(text=...)`,
  // which always lets the tokenizer add them. Templates that write BOS
  // themselves (Gemma 3, Llama 3.2 Vision) then start with two BOS tokens.
  kProcessorCall,
  // transformers' `apply_chat_template(tokenize=True)`: none are added when
  // the rendered prompt already starts with the tokenizer's bos_token.
  kChatTemplate,
};

// Run-time settings, validated by Create before any weight loads.
struct ExtractorOptions {
  std::string model_dir;
  std::optional<at::ScalarType> dtype;  // unset: the family's default (config.json's dtype)
  at::Device device = at::kCPU;
  vision::ResizeEngine resize = vision::ResizeEngine::kTorchvision;
  // strftime_now in chat templates (Mllama's text-only "Today Date").
  text::ChatClock clock = text::ChatClock::Default();
  BosRule bos = BosRule::kProcessorCall;
  // The planned forward for image batches where the family has one;
  // std::nullopt: the plain forward (what --engine=plain selects).
  std::optional<PlanOptions> plan = PlanOptions{};
};

// One target word of a prepared prompt.
struct TargetWord {
  std::string word;                // as asked: "frog"
  std::string token;               // the key in output files: the last sub-token's string
  std::vector<int64_t> positions;  // prompt positions the pooler reduces
};

// Preprocessed images of one batch: the family's pixel inputs and their count.
template <class PixelBatch>
struct ImageBatch {
  PixelBatch pixels;
  int64_t size = 0;
};

// A tokenized prompt with its targets and the rows the forward must return.
struct PreparedPrompt {
  std::vector<int32_t> ids;
  std::string text;  // rendered and expanded, for diagnostics
  std::vector<TargetWord> targets;
  families::HiddenStateRequest request;  // kept layers; every target's positions, in order
  int64_t tokens_per_image = 0;          // 0 for a text-only prompt
  // Keys/values of the text before the first image token, computed once
  // for every batch (image prompts of planned-forward families).
  std::shared_ptr<const families::PrefixCache> prefix;

  // [batch, seq] int64 ids, the same prompt for every image.
  at::Tensor BatchIds(int64_t batch) const {
    at::Tensor one = at::tensor(std::vector<int64_t>(ids.begin(), ids.end()), at::kLong);
    return one.unsqueeze(0).expand({batch, static_cast<int64_t>(ids.size())}).contiguous();
  }
};

template <families::FamilyTraits F,                                 // a model family (families/)
          policy::LayerSelector L = policy::layers::All,            // which hidden states to keep
          policy::Pooler P = policy::pooling::LastSubtoken>         // target positions and pooling
class Extractor {
 public:
  using Family = F;
  using Model = typename F::Model;
  using Processor = typename F::Processor;
  using PixelBatch = typename F::PixelBatch;

  static absl::StatusOr<Extractor> Create(const ExtractorOptions& options, L layers = {},
                                          P pooler = {}) {
    std::error_code ec;
    if (options.model_dir.empty() || !std::filesystem::is_directory(options.model_dir, ec)) {
      return absl::NotFoundError(absl::StrCat(
          options.model_dir.empty() ? std::string("(empty)") : options.model_dir,
          ": expected a Hugging Face model folder (config.json, *.safetensors, tokenizer.json, "
          "a chat template, preprocessor_config.json)"));
    }
    // As transformers' AutoTokenizer builds it (for Llama it replaces the
    // file's normalizer with a Metaspace pre-tokenizer), which is what the
    // reference's processors tokenize with.
    SPATIALID_ASSIGN_OR_RETURN(text::Tokenizer tokenizer,
                               text::LoadPretrainedTokenizer(options.model_dir));
    text::ChatTemplateOptions template_options;
    template_options.clock = options.clock;
    SPATIALID_ASSIGN_OR_RETURN(text::ChatTemplate chat_template,
                               text::ChatTemplate::FromModelDir(options.model_dir, template_options));
    families::ProcessorOptions proc_options;
    proc_options.resize = options.resize;
    SPATIALID_ASSIGN_OR_RETURN(Processor processor, F::LoadProcessor(options.model_dir, proc_options));
    families::LoadOptions load;
    load.dtype = options.dtype;
    load.device = options.device;
    SPATIALID_ASSIGN_OR_RETURN(Model model, F::Load(options.model_dir, load));
    // A family whose text-only forward can number its hidden states like the
    // image forward (Mllama: skipped cross-attention layers repeat their
    // input, as transformers <= 4.54 did) uses that numbering, so the text
    // embeddings exist at every layer the image IDs do.
    if constexpr (requires { model.set_text_only_numbering(Model::kTextOnlyNumberingLikeImages); }) {
      model.set_text_only_numbering(Model::kTextOnlyNumberingLikeImages);
    }
    SPATIALID_ASSIGN_OR_RETURN(std::vector<int> kept,
                               layers.Select(static_cast<int>(model.num_layers()) + 1));
    return Extractor(std::move(model), std::move(processor), std::move(tokenizer),
                     std::move(chat_template), std::move(kept), std::move(layers),
                     std::move(pooler), options.plan, options.bos);
  }

  // Whether image batches run the family's planned forward.
  static constexpr bool kHasPlannedForward = families::PlannedForwardModel<Model, PixelBatch>;
  const std::optional<PlanOptions>& plan() const { return plan_; }

  const Model& model() const { return model_; }
  const text::Tokenizer& tokenizer() const { return tokenizer_; }
  // Hidden-state indices kept, ascending; row l of every result is layers()[l].
  const std::vector<int>& layers() const { return layers_; }
  std::vector<int64_t> layers64() const { return {layers_.begin(), layers_.end()}; }

  absl::StatusOr<ImageBatch<PixelBatch>> Preprocess(std::span<const io::Image> images) const {
    if (images.empty()) return absl::InvalidArgumentError("an image batch needs at least one image");
    SPATIALID_ASSIGN_OR_RETURN(PixelBatch pixels, processor_.Preprocess(images));
    return ImageBatch<PixelBatch>{std::move(pixels), static_cast<int64_t>(images.size())};
  }

  // The prompt for one image then `question`, expanded for `pixels`' image
  // geometry (every image of a batch shares it).
  absl::StatusOr<PreparedPrompt> PrepareImagePrompt(std::string_view question,
                                                    std::span<const std::string> words,
                                                    const ImageBatch<PixelBatch>& batch) const {
    const families::ImagePrompt image = model_.ImagePromptFor(batch.pixels);
    SPATIALID_ASSIGN_OR_RETURN(text::RenderedPrompt rendered,
                               text::RenderUserPrompt(chat_template_, question, /*with_image=*/true));
    SPATIALID_ASSIGN_OR_RETURN(
        std::string expanded,
        text::ExpandImagePlaceholders(rendered.text, image.placeholder,
                                      std::vector<std::string>{image.expansion}));
    SPATIALID_ASSIGN_OR_RETURN(
        PreparedPrompt prompt,
        Prepare(std::move(expanded), AddSpecialTokens(rendered), words, image.tokens_per_image));
    if constexpr (kHasPlannedForward) {
      if (plan_ && plan_->reuse_prefix) {
        SPATIALID_ASSIGN_OR_RETURN(
            families::PrefixCache prefix,
            model_.ComputePrefix(prompt.BatchIds(1).to(model_.device()), prompt.request));
        prompt.prefix = std::make_shared<const families::PrefixCache>(std::move(prefix));
      }
    }
    return prompt;
  }

  // The same question with no image (the grid experiment's text embeddings).
  absl::StatusOr<PreparedPrompt> PrepareTextPrompt(std::string_view question,
                                                   std::span<const std::string> words) const {
    SPATIALID_ASSIGN_OR_RETURN(text::RenderedPrompt rendered,
                               text::RenderUserPrompt(chat_template_, question, /*with_image=*/false));
    return Prepare(std::move(rendered.text), AddSpecialTokens(rendered), words, 0);
  }

  // One forward over the batch; per target word, [layers, batch, hidden] in
  // the model dtype on the model device.
  absl::StatusOr<std::vector<at::Tensor>> Run(const PreparedPrompt& prompt,
                                              const ImageBatch<PixelBatch>& batch) const {
    const at::Tensor ids = prompt.BatchIds(batch.size).to(model_.device());
    at::Tensor rows;
    if constexpr (kHasPlannedForward) {
      if (plan_) {
        families::ForwardPlan plan;
        plan.prefix = plan_->reuse_prefix ? prompt.prefix.get() : nullptr;
        plan.rows_only = plan_->rows_only;
        plan.packed = plan_->packed;
        SPATIALID_ASSIGN_OR_RETURN(rows, model_.Forward(ids, batch.pixels, prompt.request, plan));
        return SplitTargets(prompt, rows);
      }
    }
    SPATIALID_ASSIGN_OR_RETURN(rows, model_.Forward(ids, batch.pixels, prompt.request));
    return SplitTargets(prompt, rows);
  }

  absl::StatusOr<std::vector<at::Tensor>> RunText(const PreparedPrompt& prompt) const {
    SPATIALID_ASSIGN_OR_RETURN(at::Tensor rows,
                               model_.Forward(prompt.BatchIds(1).to(model_.device()), prompt.request));
    return SplitTargets(prompt, rows);
  }

 private:
  Extractor(Model model, Processor processor, text::Tokenizer tokenizer,
            text::ChatTemplate chat_template, std::vector<int> kept, L layer_policy, P pooler,
            std::optional<PlanOptions> plan, BosRule bos)
      : model_(std::move(model)),
        processor_(std::move(processor)),
        tokenizer_(std::move(tokenizer)),
        chat_template_(std::move(chat_template)),
        layers_(std::move(kept)),
        layer_policy_(std::move(layer_policy)),
        pooler_(std::move(pooler)),
        plan_(plan),
        bos_(bos) {}

  bool AddSpecialTokens(const text::RenderedPrompt& rendered) const {
    return bos_ == BosRule::kProcessorCall || rendered.add_special_tokens;
  }

  absl::StatusOr<PreparedPrompt> Prepare(std::string text, bool add_special_tokens,
                                         std::span<const std::string> words,
                                         int64_t tokens_per_image) const {
    PreparedPrompt p;
    p.ids = tokenizer_.Encode(text, add_special_tokens);
    p.text = std::move(text);
    p.tokens_per_image = tokens_per_image;
    p.request.layers = layers_;
    for (const std::string& word : words) {
      // The reference tokenizes " " + word without special tokens.
      const std::vector<int32_t> word_ids = tokenizer_.Encode(absl::StrCat(" ", word), false);
      absl::StatusOr<std::vector<int64_t>> positions = pooler_.Positions(p.ids, word_ids);
      if (!positions.ok()) {
        std::string pieces;
        for (int32_t id : word_ids) {
          absl::StrAppend(&pieces, pieces.empty() ? "" : " ", tokenizer_.IdToToken(id));
        }
        return absl::InvalidArgumentError(absl::StrCat(
            "target word '", word, "' (tokens ", pieces, ") is not in the prompt \"",
            absl::CEscape(Abbreviate(p.text)), "\" (", positions.status().message(), ")"));
      }
      TargetWord t;
      t.word = word;
      t.token = tokenizer_.IdToToken(word_ids.back());
      t.positions = std::move(*positions);
      p.request.positions.insert(p.request.positions.end(), t.positions.begin(), t.positions.end());
      p.targets.push_back(std::move(t));
    }
    return p;
  }

  absl::StatusOr<std::vector<at::Tensor>> SplitTargets(const PreparedPrompt& prompt,
                                                       const at::Tensor& rows) const {
    // rows: [layers, batch, positions, hidden]; each target owns a run of positions.
    std::vector<at::Tensor> out;
    int64_t offset = 0;
    for (const TargetWord& t : prompt.targets) {
      const int64_t n = static_cast<int64_t>(t.positions.size());
      out.push_back(pooler_.Pool(rows.narrow(2, offset, n)));
      offset += n;
    }
    return out;
  }

  static std::string Abbreviate(const std::string& text) {
    // Expanded prompts hold hundreds of image tokens; show both ends.
    if (text.size() <= 240) return text;
    return absl::StrCat(text.substr(0, 60), " ... ", text.substr(text.size() - 120));
  }

  Model model_;
  Processor processor_;
  text::Tokenizer tokenizer_;
  text::ChatTemplate chat_template_;
  std::vector<int> layers_;
  L layer_policy_;
  P pooler_;
  std::optional<PlanOptions> plan_;
  BosRule bos_;
};

}  // namespace spatialid::extract
