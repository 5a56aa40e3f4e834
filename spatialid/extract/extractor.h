// The extractor: a model family composed with a layer selector, a pooler
// and an averaging, turning images and a question into one vector per
// target word and layer (and, through StartAverager, a pair's IDs).
//
// It owns everything one model needs (weights, image processor, tokenizer,
// chat template) and does the reference's prompt work
// (docs/reference_pipeline.md section 2): the question as one user turn
// with one image (or none), the model's own chat template with the
// generation prompt, the processor's image-placeholder expansion and BOS
// rule, the target word's position by the pooler. The forward returns only
// the rows and layers asked for (families/family.h).
//
// Composition: the family is a template parameter (its towers and forward
// are compiled for it); layers, pooling and averaging are run-time values
// of `ExtractorOptions`, each built from any type satisfying its concept
// (policies/). They run once per model, prompt or image, so compiling them
// in would buy nothing and multiply the instantiations of every family's
// forward (the binaries serve 13 models x 2 poolings x 2 averagings from
// six instantiations).
//
// Image batches run the planned forward unless `ExtractorOptions::plan` is
// unset (families/forward_plan.h): the prompt's text before the first image
// token is computed once, when the prompt is prepared, and its keys/values
// serve every batch; the deepest layer runs only at the target rows; q/k/v
// and gate/up are packed matmuls. Results equal the plain forward's up to
// matmul rounding; `plan = std::nullopt` gives the plain forward (op for op
// transformers'). `EngineNote` says when a family cannot use a saving.
//
// Everything that depends only on the prompt (ids, positions, masks, the
// requested rows) is prepared once, on the model's device; a batch uploads
// its pixels (pinned on CUDA, so the copy overlaps compute) and copies out
// only the finished rows.
//
// Example (examples/compose_extractor.cc):
//   using X = extract::Extractor<families::Llava>;
//   SPATIALID_ASSIGN_OR_RETURN(X x, X::Create({.model_dir = dir,
//                                              .layers = policy::layers::Reference{.last = 32}}));
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
#include "spatialid/families/multimodal_forward.h"
#include "spatialid/families/hidden_states.h"
#include "spatialid/policies/averaging.h"
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
  // The planned forward for image batches; std::nullopt: the plain forward
  // (what --engine=plain selects).
  std::optional<PlanOptions> plan = PlanOptions{};
  // Which hidden states to keep (default: all of them).
  policy::AnyLayerSelector layers;
  // The rows standing for a target word (default: the reference's first
  // occurrence of its last sub-token).
  policy::AnyPooler pooling;
  // How a pair's per-image vectors become its IDs (default: fp32 streaming).
  policy::Averaging averaging;
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

// A tokenized prompt with its targets and, for the family's forward,
// everything that does not change from batch to batch (`Forward` is the
// model's PreparedForward).
template <class Forward>
struct PreparedPrompt {
  std::vector<int32_t> ids;
  std::string text;  // rendered and expanded, for diagnostics
  std::vector<TargetWord> targets;
  families::HiddenStateRequest request;  // kept layers; every target's positions, in order
  int64_t tokens_per_image = 0;          // 0 for a text-only prompt
  // Keys/values of the text before the first image token, computed once
  // for every batch (planned forward); null or empty: none.
  std::shared_ptr<const families::PrefixCache> prefix;
  std::shared_ptr<const Forward> forward;

  // [1, seq] int64 ids on the CPU.
  at::Tensor IdsTensor() const {
    return at::tensor(std::vector<int64_t>(ids.begin(), ids.end()), at::kLong).unsqueeze(0);
  }
};

template <families::FamilyTraits F>  // a model family (spatialid/families/)
class Extractor {
 public:
  using Family = F;
  using Model = typename F::Model;
  using Processor = typename F::Processor;
  using PixelBatch = typename F::PixelBatch;
  using Prompt = PreparedPrompt<typename Model::Prepared>;

  static absl::StatusOr<Extractor> Create(const ExtractorOptions& options) {
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
                               options.layers.Select(static_cast<int>(model.num_layers()) + 1));
    return Extractor(std::move(model), std::move(processor), std::move(tokenizer),
                     std::move(chat_template), std::move(kept), options);
  }

  const std::optional<PlanOptions>& plan() const { return plan_; }
  const Model& model() const { return model_; }
  const text::Tokenizer& tokenizer() const { return tokenizer_; }
  // Hidden-state indices kept, ascending; row l of every result is layers()[l].
  const std::vector<int>& layers() const { return layers_; }
  std::vector<int64_t> layers64() const { return {layers_.begin(), layers_.end()}; }

  // A fresh accumulator of the options' averaging for one pair's vectors.
  policy::AnyAverager StartAverager() const { return averaging_.Start(layers64()); }
  const policy::Averaging& averaging() const { return averaging_; }

  // What the planned forward cannot do for `prompt` on this family, in one
  // line, or empty (the binaries print it once).
  std::string EngineNote(const Prompt& prompt) const {
    if (!plan_ || !plan_->reuse_prefix || prompt.tokens_per_image == 0) return "";
    if (prompt.request.deepest_layer() > model_.PrefixDepth()) {
      return absl::StrCat(std::string(F::kName), ": no shared-prefix cache past decoder layer ",
                          model_.PrefixDepth(), " (there the text before the image already "
                          "depends on the image); the other savings stay on");
    }
    return "";
  }

  // Preprocessed images; on a GPU their pixels are staged in pinned memory
  // so the forward's upload overlaps compute (loader threads call this).
  absl::StatusOr<ImageBatch<PixelBatch>> Preprocess(std::span<const io::Image> images) const {
    if (images.empty()) return absl::InvalidArgumentError("an image batch needs at least one image");
    SPATIALID_ASSIGN_OR_RETURN(PixelBatch pixels, processor_.Preprocess(images));
    if (model_.device().is_cuda()) pixels.pixel_values = pixels.pixel_values.pin_memory();
    return ImageBatch<PixelBatch>{std::move(pixels), static_cast<int64_t>(images.size())};
  }

  // The prompt for one image then `question`, expanded for `batch`'s image
  // geometry (every image of a batch shares it), prepared for the forward.
  absl::StatusOr<Prompt> PrepareImagePrompt(std::string_view question,
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
        Prompt prompt,
        Tokenize(std::move(expanded), AddSpecialTokens(rendered), words, image.tokens_per_image));
    const at::Tensor ids = prompt.IdsTensor();
    if (plan_ && plan_->reuse_prefix) {
      SPATIALID_ASSIGN_OR_RETURN(families::PrefixCache prefix,
                                 model_.ComputePrefix(ids, prompt.request));
      if (prefix.length() > 0) {
        prompt.prefix = std::make_shared<const families::PrefixCache>(std::move(prefix));
      }
    }
    SPATIALID_ASSIGN_OR_RETURN(
        typename Model::Prepared forward,
        model_.Prepare(ids, &batch.pixels, prompt.request, prompt.prefix.get(), /*shared=*/true));
    prompt.forward = std::make_shared<const typename Model::Prepared>(std::move(forward));
    return prompt;
  }

  // The same question with no image (the grid experiment's text embeddings).
  absl::StatusOr<Prompt> PrepareTextPrompt(std::string_view question,
                                           std::span<const std::string> words) const {
    SPATIALID_ASSIGN_OR_RETURN(text::RenderedPrompt rendered,
                               text::RenderUserPrompt(chat_template_, question, /*with_image=*/false));
    SPATIALID_ASSIGN_OR_RETURN(
        Prompt prompt, Tokenize(std::move(rendered.text), AddSpecialTokens(rendered), words, 0));
    SPATIALID_ASSIGN_OR_RETURN(typename Model::Prepared forward,
                               model_.Prepare(prompt.IdsTensor(), nullptr, prompt.request));
    prompt.forward = std::make_shared<const typename Model::Prepared>(std::move(forward));
    return prompt;
  }

  // One forward over the batch; per target word, [layers, batch, hidden] in
  // the model dtype on the model device.
  absl::StatusOr<std::vector<at::Tensor>> Run(const Prompt& prompt,
                                              const ImageBatch<PixelBatch>& batch) const {
    if (!prompt.forward || prompt.tokens_per_image == 0) {
      return absl::InvalidArgumentError("Run needs a prompt from PrepareImagePrompt");
    }
    std::optional<families::ForwardPlan> plan;
    if (plan_) {
      plan.emplace();
      plan->prefix = prompt.prefix.get();
      plan->rows_only = plan_->rows_only;
      plan->packed = plan_->packed;
    }
    SPATIALID_ASSIGN_OR_RETURN(at::Tensor rows,
                               model_.Run(*prompt.forward, &batch.pixels, batch.size,
                                          plan ? &*plan : nullptr));
    return SplitTargets(prompt, rows);
  }

  absl::StatusOr<std::vector<at::Tensor>> RunText(const Prompt& prompt) const {
    if (!prompt.forward || prompt.tokens_per_image != 0) {
      return absl::InvalidArgumentError("RunText needs a prompt from PrepareTextPrompt");
    }
    SPATIALID_ASSIGN_OR_RETURN(at::Tensor rows, model_.Run(*prompt.forward, nullptr, 1));
    return SplitTargets(prompt, rows);
  }

 private:
  Extractor(Model model, Processor processor, text::Tokenizer tokenizer,
            text::ChatTemplate chat_template, std::vector<int> kept, const ExtractorOptions& o)
      : model_(std::move(model)),
        processor_(std::move(processor)),
        tokenizer_(std::move(tokenizer)),
        chat_template_(std::move(chat_template)),
        layers_(std::move(kept)),
        pooler_(o.pooling),
        averaging_(o.averaging),
        plan_(o.plan),
        bos_(o.bos) {}

  bool AddSpecialTokens(const text::RenderedPrompt& rendered) const {
    return bos_ == BosRule::kProcessorCall || rendered.add_special_tokens;
  }

  absl::StatusOr<Prompt> Tokenize(std::string text, bool add_special_tokens,
                                  std::span<const std::string> words,
                                  int64_t tokens_per_image) const {
    Prompt p;
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

  absl::StatusOr<std::vector<at::Tensor>> SplitTargets(const Prompt& prompt,
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
  policy::AnyPooler pooler_;
  policy::Averaging averaging_;
  std::optional<PlanOptions> plan_;
  BosRule bos_;
};

}  // namespace spatialid::extract
