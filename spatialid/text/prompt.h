// The prompts the spatial-ID pipeline feeds a model (libtorch-free).
//
// The reference builds one user turn - an image then the question, or the
// question alone for the text-only embeddings - renders it with the model's
// own chat template and `add_generation_prompt=True`, and hands the text to
// the model's processor, which expands the image placeholder to the model's
// number of image tokens and tokenizes. This header gives:
// - UserTurnMessages(): that turn as transformers' message list. Text is
//   always a `{"type": "text"}` item of a content list (text-only turns too:
//   the LLaVA template only renders list content, so the reference cannot
//   have passed a bare string);
// - RenderUserPrompt(): the rendered text plus `add_special_tokens`, decided
//   like transformers' ProcessorMixin.apply_chat_template(tokenize=True):
//   false when the text already starts with the tokenizer's bos_token
//   (Llama 3.2 and Gemma 3 templates write BOS themselves), true otherwise
//   (LLaVA's Llama tokenizer then adds `<s>`; Qwen2-VL and InternVL have no
//   BOS to add);
// - ExpandImagePlaceholders(): the generic step each family's processor
//   performs, replacing every placeholder by that image's expansion.
//
// What each family expands (transformers 5.3.0; counts for the 896x896 grid
// images of the reference, see docs/model_facts.md section 1):
// - LLaVA-1.5 (LlavaProcessor): "<image>" -> "<image>" x N, N = (336/14)^2 =
//   576 (+1 CLS - 1 for the "default" feature strategy). Rendered:
//   "USER: <image>\nQ ASSISTANT:", tokenized with a leading <s>.
// - Qwen2-VL / Qwen2.5-VL (Qwen2VLProcessor): "<|image_pad|>" ->
//   "<|image_pad|>" x (grid_t*grid_h*grid_w / merge_size^2) = 1024 at
//   896x896 (grid 1x64x64, merge 2). Surrounding <|vision_start|> and
//   <|vision_end|> come from the template.
// - Llama 3.2 Vision / LLaVA-CoT (MllamaProcessor): no expansion; the text
//   keeps one "<|image|>" and the vision features enter through
//   cross-attention (4 tiles x 1601 positions at 896x896).
// - InternVL3 (InternVLProcessor): "<IMG_CONTEXT>" -> "<img>" +
//   "<IMG_CONTEXT>" x (256 * num_patches) + "</img>"; 896x896 gives 4 tiles
//   + 1 thumbnail = 5 patches = 1280 context tokens. The template writes
//   "<IMG_CONTEXT>\n", so the newline follows "</img>".
// - Gemma 3 (Gemma3Processor): "<start_of_image>" -> "\n\n<start_of_image>" +
//   "<image_soft_token>" x 256 + "<end_of_image>\n\n".
//
// Example:
//   SPATIALID_ASSIGN_OR_RETURN(text::ChatTemplate t, text::ChatTemplate::FromModelDir(dir));
//   SPATIALID_ASSIGN_OR_RETURN(text::RenderedPrompt p,
//       text::RenderUserPrompt(t, "Is the frog to the left or right of the camel?", true));
//   std::string expanded = text::ExpandImagePlaceholders(
//       p.text, "<image>", text::RepeatToken("<image>", 576));
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "spatialid/text/chat_template.h"

namespace spatialid::text {

// How the text of a turn is written into the message.
enum class TextContentForm {
  kList,    // [{"type": "text", "text": ...}] (the reference, and the default)
  kString,  // "content": "..." (templates that accept it; LLaVA's does not)
};

// One user turn: an image item then the text, or the text alone.
inline nlohmann::ordered_json UserTurnMessages(std::string_view text, bool with_image,
                                               TextContentForm form = TextContentForm::kList) {
  nlohmann::ordered_json message = nlohmann::ordered_json::object();
  message["role"] = "user";
  if (!with_image && form == TextContentForm::kString) {
    message["content"] = std::string(text);
  } else {
    nlohmann::ordered_json content = nlohmann::ordered_json::array();
    if (with_image) content.push_back(nlohmann::ordered_json{{"type", "image"}});
    content.push_back(nlohmann::ordered_json{{"type", "text"}, {"text", std::string(text)}});
    message["content"] = std::move(content);
  }
  return nlohmann::ordered_json::array({message});
}

// A rendered prompt and whether tokenizing it should add special tokens.
struct RenderedPrompt {
  std::string text;
  bool add_special_tokens = true;
};

// transformers' processor rule: no special tokens when the rendered text
// already starts with bos_token.
inline bool ProcessorAddsSpecialTokens(std::string_view rendered, const std::optional<std::string>& bos_token) {
  return !(bos_token.has_value() && rendered.substr(0, bos_token->size()) == *bos_token);
}

// The reference's prompt: one user turn, add_generation_prompt=True.
inline absl::StatusOr<RenderedPrompt> RenderUserPrompt(const ChatTemplate& chat_template, std::string_view text,
                                                       bool with_image,
                                                       TextContentForm form = TextContentForm::kList) {
  auto rendered = chat_template.Apply(UserTurnMessages(text, with_image, form), /*add_generation_prompt=*/true);
  if (!rendered.ok()) return rendered.status();
  RenderedPrompt out;
  out.add_special_tokens = ProcessorAddsSpecialTokens(*rendered, chat_template.bos_token());
  out.text = std::move(*rendered);
  return out;
}

// `token` written `count` times.
inline std::string RepeatToken(std::string_view token, size_t count) {
  std::string out;
  out.reserve(token.size() * count);
  for (size_t i = 0; i < count; ++i) out.append(token);
  return out;
}

inline size_t CountOccurrences(std::string_view text, std::string_view placeholder) {
  if (placeholder.empty()) return 0;
  size_t n = 0;
  for (size_t at = text.find(placeholder); at != std::string_view::npos;
       at = text.find(placeholder, at + placeholder.size())) {
    ++n;
  }
  return n;
}

// Replaces every occurrence of `placeholder`, left to right, by
// `expansion`; text inserted by an expansion is not searched again (LLaVA's
// expansion repeats the placeholder itself).
inline std::string ExpandImagePlaceholders(std::string_view text, std::string_view placeholder,
                                           std::string_view expansion) {
  if (placeholder.empty()) return std::string(text);
  std::string out;
  size_t start = 0;
  for (size_t at = text.find(placeholder); at != std::string_view::npos; at = text.find(placeholder, start)) {
    out.append(text.substr(start, at - start));
    out.append(expansion);
    start = at + placeholder.size();
  }
  out.append(text.substr(start));
  return out;
}

// One expansion per occurrence, in order (images of different sizes). The
// number of expansions must equal the number of placeholders.
inline absl::StatusOr<std::string> ExpandImagePlaceholders(std::string_view text, std::string_view placeholder,
                                                           const std::vector<std::string>& expansions) {
  size_t found = CountOccurrences(text, placeholder);
  if (placeholder.empty() || found != expansions.size()) {
    return absl::InvalidArgumentError(absl::StrCat("the prompt has ", found, " '", std::string(placeholder),
                                                   "' placeholders but ", expansions.size(),
                                                   " image expansions were given"));
  }
  std::string out;
  size_t start = 0;
  for (const std::string& expansion : expansions) {
    size_t at = text.find(placeholder, start);
    out.append(text.substr(start, at - start));
    out.append(expansion);
    start = at + placeholder.size();
  }
  out.append(text.substr(start));
  return out;
}

}  // namespace spatialid::text
