// The one multimodal forward every family runs: what is common to all six
// (input checks, image-token counting, merging image features into the
// embeddings, truncation, the plain and the planned hidden-state loops,
// the shared-prefix cache, turning libtorch errors into Status) written
// once, with a family supplying only what is its own through hooks.
//
// Two steps, so a batch loop pays the host-side work once per prompt:
//   Prepare(ids, pixels, request[, prefix])  host checks of the ids, the
//       family's positions and masks for the positions that run, index
//       tensors on the device; no device-to-host synchronisation after it.
//   Run(prepared, pixels[, plan])  one batch: embeddings, image features,
//       decoder layers; the only synchronisation left is the caller's copy
//       of the finished rows. A prepared prompt of one row serves batches
//       of any size (its ids and masks broadcast over the batch).
// `Forward(...)` (families/family.h) is Prepare + Run.
//
// A family derives `class XModel : public MultimodalForward<XModel, XPixels,
// XLayerContext>` and provides (the concept `MultimodalHooks` checks them):
//   kName                         for messages ("LLaVA-1.5")
//   num_layers(), hidden_size(), dtype(), device()
//   embedding_rows(), image_token_id()
//   CheckPixels(pixels) -> Status             shapes the towers accept
//   ExpectedImageTokens(pixels) -> ImageTokenCount
//   Embed(ids) -> [B, S, hidden]              hidden state 0 before images
//   EncodeImages(pixels, packed) -> Tensor    merged into the image-token
//       rows when kFeaturesReplaceImageTokens, else handed to RunLayer
//   PrepareLayers(tokens, pixels*, past, length) -> LayerContext (or a
//       StatusOr of it): positions, masks, ... for positions past..length-1
//       (pixels null: text only, or a prefix that holds no image token)
//   RunLayer(i, x, context, image_features, call) -> output of layer i
//   FinalNorm(x)
// and, where the default does not fit:
//   text_only_num_layers()        hidden states of a text-only forward
//   ForwardLength(tokens, needed) positions a truncated forward must run
//   ImageGeometry(pixels, i)      what PrepareLayers reads of image i
//   LayerReadsImage(i)            a layer that takes the image features
//   PrefixDepth()                 leading layers whose prefix rows do not
//                                 depend on the image (the shared-prefix
//                                 cache is exact only through them)
//
// The planned forward's savings (families/forward_plan.h) come from the
// skeleton: every family gets them through the same `nn::ExtendedCall`
// that its RunLayer passes on. A default ExtendedCall is the plain
// computation, op for op.
#pragma once

#include <algorithm>
#include <concepts>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <ATen/TensorOperators.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/tensor.h>
#include <c10/core/InferenceMode.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "spatialid/families/forward_plan.h"
#include "spatialid/families/hidden_states.h"
#include "spatialid/nn/attention.h"
#include "spatialid/nn/rotary.h"
#include "spatialid/util/status.h"
#include "spatialid/nn/upload.h"

namespace spatialid::families {

// What the ids say, read on the host once per prompt.
class TokenLayout {
 public:
  // `input_ids`: integer [rows, seq], on any device (a CPU tensor costs no
  // synchronisation). Checks shape, type and vocabulary.
  static absl::StatusOr<TokenLayout> Read(const std::string& family, const at::Tensor& input_ids,
                                          int64_t embedding_rows, int64_t image_token_id,
                                          at::Device device) {
    if (!input_ids.defined() || input_ids.dim() != 2 || input_ids.size(0) < 1 ||
        input_ids.size(1) < 1 ||
        (input_ids.scalar_type() != at::kLong && input_ids.scalar_type() != at::kInt)) {
      return absl::InvalidArgumentError(absl::StrCat(
          family, " forward expects integer input_ids [batch, seq] with batch, seq >= 1"));
    }
    TokenLayout t;
    t.host_ids_ = input_ids.to(at::kCPU, at::kLong).contiguous();
    const int64_t rows = t.host_ids_.size(0), seq = t.host_ids_.size(1);
    const int64_t* id = t.host_ids_.data_ptr<int64_t>();
    t.per_row_.assign(static_cast<size_t>(rows), 0);
    t.column_.assign(static_cast<size_t>(seq), false);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t s = 0; s < seq; ++s) {
        const int64_t v = id[r * seq + s];
        if (v == image_token_id) {
          ++t.per_row_[static_cast<size_t>(r)];
          t.column_[static_cast<size_t>(s)] = true;
        } else if (v < 0 || v >= embedding_rows) {
          return absl::InvalidArgumentError(absl::StrCat(
              family, " forward: input_ids outside the vocabulary 0..", embedding_rows - 1,
              " (id ", v, " at row ", r, ", position ", s, ")"));
        }
      }
    }
    t.image_token_id_ = image_token_id;
    // One upload per prompt; every batch reuses it.
    t.ids_ = nn::UploadAsync(t.host_ids_, device);
    t.image_mask_ = t.ids_ == image_token_id;
    return t;
  }

  int64_t rows() const { return host_ids_.size(0); }
  int64_t seq_len() const { return host_ids_.size(1); }
  int64_t image_token_id() const { return image_token_id_; }
  const at::Tensor& host_ids() const { return host_ids_; }  // int64 [rows, seq], CPU
  const std::vector<int64_t>& image_tokens_per_row() const { return per_row_; }
  int64_t image_tokens() const {
    int64_t n = 0;
    for (int64_t c : per_row_) n += c;
    return n;
  }
  // Whether some row holds an image token at position p.
  bool image_column(int64_t p) const { return column_[static_cast<size_t>(p)]; }
  bool AnyImageTokenIn(int64_t begin, int64_t end) const {
    for (int64_t p = std::max<int64_t>(begin, 0); p < std::min(end, seq_len()); ++p) {
      if (column_[static_cast<size_t>(p)]) return true;
    }
    return false;
  }
  // The first position holding an image token in any row (seq_len: none).
  int64_t first_image_column() const {
    for (int64_t p = 0; p < seq_len(); ++p) {
      if (column_[static_cast<size_t>(p)]) return p;
    }
    return seq_len();
  }

  // Device ids and image mask for `batch` sequences: these rows, or the
  // one row broadcast (no copy) when a prompt serves every image.
  at::Tensor ids(int64_t batch) const { return ForBatch(ids_, batch); }
  at::Tensor image_mask(int64_t batch) const { return ForBatch(image_mask_, batch); }

 private:
  at::Tensor ForBatch(const at::Tensor& t, int64_t batch) const {
    return t.size(0) == batch ? t : t.expand({batch, t.size(1)});
  }

  at::Tensor host_ids_, ids_, image_mask_;
  std::vector<int64_t> per_row_;
  std::vector<bool> column_;
  int64_t image_token_id_ = -1;
};

// How many image tokens each image of a batch fills, in order; the images
// go to the sequences in order, equally many per sequence.
struct ImageTokenCount {
  std::vector<int64_t> per_image;
  std::string how;  // how a prompt gets them, for the error message

  int64_t total() const {
    int64_t n = 0;
    for (int64_t t : per_image) n += t;
    return n;
  }
};


// Everything a forward of one prompt needs that does not change from batch
// to batch. `LayerContext` is the family's (positions, masks, ...).
template <class LayerContext>
struct PreparedForward {
  TokenLayout tokens;
  HiddenStateRequest request;
  bool with_image = false;     // prepared for image batches (else text only)
  int64_t num_layers = 0;      // decoder layers this forward numbers
  int64_t length = 0;          // positions 0..length-1 are needed
  int64_t past = 0;            // the first `past` come from `prefix`
  const PrefixCache* prefix = nullptr;
  bool needs_image = false;    // image features reach the kept rows
  // Each image's ImageGeometry in the batch the context was built for.
  std::vector<std::vector<int64_t>> geometry;
  LayerContext layers;
  RequestRows rows;
};

// The family's side of the bargain (see the file comment).
template <class M, class Pixels, class LayerContext>
concept MultimodalHooks = requires(const M& m, const Pixels& pixels, const TokenLayout& tokens,
                                   const at::Tensor& x, const LayerContext& context,
                                   const nn::ExtendedCall& call) {
  { M::kName } -> std::convertible_to<std::string_view>;
  { M::kFeaturesReplaceImageTokens } -> std::convertible_to<bool>;
  { m.num_layers() } -> std::convertible_to<int64_t>;
  { m.embedding_rows() } -> std::convertible_to<int64_t>;
  { m.image_token_id() } -> std::convertible_to<int64_t>;
  { m.dtype() } -> std::same_as<at::ScalarType>;
  { m.device() } -> std::same_as<at::Device>;
  { m.CheckPixels(pixels) } -> std::same_as<absl::Status>;
  { m.ExpectedImageTokens(pixels) } -> std::same_as<ImageTokenCount>;
  { m.Embed(x) } -> std::same_as<at::Tensor>;
  { m.EncodeImages(pixels, true) } -> std::same_as<at::Tensor>;
  requires std::same_as<decltype(m.PrepareLayers(tokens, &pixels, int64_t{0}, int64_t{1})),
                        LayerContext> ||
               std::same_as<decltype(m.PrepareLayers(tokens, &pixels, int64_t{0}, int64_t{1})),
                            absl::StatusOr<LayerContext>>;
  { m.RunLayer(int64_t{0}, x, context, x, call) } -> std::same_as<at::Tensor>;
  { m.FinalNorm(x) } -> std::same_as<at::Tensor>;
};

template <class Derived, class Pixels, class LayerContext>
class MultimodalForward {
 public:
  using Prepared = PreparedForward<LayerContext>;

  // The host-side work of a forward over `input_ids` (see the file
  // comment); `pixels` null for a text-only forward. With `prefix` (from
  // ComputePrefix of the same prompt) its positions are not run again.
  // `shared`: `input_ids` is one row that every image of `pixels` (one per
  // sequence) and of later batches shares; otherwise the rows and images
  // are the forward's own.
  absl::StatusOr<Prepared> Prepare(const at::Tensor& input_ids, const Pixels* pixels,
                                   const HiddenStateRequest& request,
                                   const PrefixCache* prefix = nullptr, bool shared = false) const {
    const Derived& m = self();
    if (pixels != nullptr) SPATIALID_RETURN_IF_ERROR(m.CheckPixels(*pixels));
    SPATIALID_ASSIGN_OR_RETURN(
        TokenLayout tokens, TokenLayout::Read(Name(), input_ids, m.embedding_rows(),
                                              m.image_token_id(), m.device()));
    Prepared p;
    p.with_image = pixels != nullptr;
    p.num_layers = p.with_image ? static_cast<int64_t>(m.num_layers()) : TextOnlyLayers();
    SPATIALID_RETURN_IF_ERROR(ValidateRequest(request, p.num_layers, tokens.seq_len()));
    if (pixels != nullptr) {
      if (shared && tokens.rows() != 1) {
        return absl::InvalidArgumentError(
            absl::StrCat(Name(), ": a prompt shared by a batch has one row of ids"));
      }
      const ImageTokenCount expected = m.ExpectedImageTokens(*pixels);
      SPATIALID_RETURN_IF_ERROR(CheckImageTokens(
          tokens, expected, shared ? static_cast<int64_t>(expected.per_image.size()) : tokens.rows()));
    }
    if (pixels == nullptr && tokens.image_tokens() > 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          Name(), " forward: the ids hold ", tokens.image_tokens(), " image tokens (id ",
          tokens.image_token_id(), ") but no image is given (the text-only forward takes no "
          "image tokens)"));
    }
    if (prefix != nullptr) {
      if (!p.with_image) {
        return absl::InvalidArgumentError(
            absl::StrCat(Name(), ": a prefix cache serves image prompts only"));
      }
      SPATIALID_RETURN_IF_ERROR(CheckPrefix(*prefix, tokens.host_ids(), request));
      p.prefix = prefix;
      p.past = prefix->length();
    }
    p.request = request;
    p.length = ForwardLength(tokens, request.needed_length());
    p.needs_image = p.with_image && NeedsImage(tokens, p.past, p.length, request);
    if (pixels != nullptr) p.geometry = Geometry(*pixels);
    try {
      c10::InferenceMode guard;
      SPATIALID_ASSIGN_OR_RETURN(p.layers, Layers(tokens, pixels, p.past, p.length));
      p.rows = RequestRows::For(request, p.past, m.device());
    } catch (const c10::Error& e) {
      return absl::InternalError(
          absl::StrCat(Name(), " forward: ", e.what_without_backtrace()));
    }
    p.tokens = std::move(tokens);
    return p;
  }

  // One batch of `prepared`: [layers, batch, positions, hidden] in the
  // model dtype on the model device. `batch`: the prompt's rows, or any
  // size when it has one row (broadcast). `pixels` must have the geometry
  // the prompt was prepared for (null for a text-only prompt); `plan` null
  // is the plain forward.
  absl::StatusOr<at::Tensor> Run(const Prepared& prepared, const Pixels* pixels, int64_t batch,
                                 const ForwardPlan* plan = nullptr) const {
    const Derived& m = self();
    if ((pixels != nullptr) != prepared.with_image) {
      return absl::InvalidArgumentError(absl::StrCat(
          Name(), ": the prompt was prepared ", prepared.with_image ? "with" : "without",
          " images but the batch has ", pixels != nullptr ? "images" : "none"));
    }
    if (batch < 1 || (prepared.tokens.rows() != 1 && prepared.tokens.rows() != batch)) {
      return absl::InvalidArgumentError(absl::StrCat(Name(), ": the prompt has ",
                                                     prepared.tokens.rows(),
                                                     " sequences; a batch of ", batch, " cannot use it"));
    }
    if (pixels != nullptr) {
      SPATIALID_RETURN_IF_ERROR(m.CheckPixels(*pixels));
      if (!SameGeometry(Geometry(*pixels), prepared)) {
        return absl::InvalidArgumentError(absl::StrCat(
            Name(),
            ": the images' geometry (size, tiles or patches) differs from the one the prompt was "
            "prepared for; prepare the prompt for these images"));
      }
      SPATIALID_RETURN_IF_ERROR(CheckImageTokens(prepared.tokens, m.ExpectedImageTokens(*pixels), batch));
    }
    const bool planned = plan != nullptr;
    if (prepared.past > 0 && !planned) {
      return absl::InvalidArgumentError(
          absl::StrCat(Name(), ": a prompt prepared with a prefix cache runs planned"));
    }
    try {
      c10::InferenceMode guard;
      const int64_t past = prepared.past;
      const at::Tensor ids = prepared.tokens.ids(batch).slice(1, past, prepared.length);
      at::Tensor embeds = m.Embed(ids);
      at::Tensor features;
      if (prepared.needs_image) {
        features = m.EncodeImages(*pixels, planned && plan->packed);
        if constexpr (Derived::kFeaturesReplaceImageTokens) {
          const at::Tensor mask =
              prepared.tokens.image_mask(batch).slice(1, past, prepared.length);
          // The image tokens past `length` take no features: drop theirs.
          const int64_t kept = KeptImageTokens(prepared, batch);
          at::Tensor rows = features.reshape({-1, embeds.size(-1)}).to(embeds.scalar_type());
          if (kept < rows.size(0)) rows = DropUnkept(prepared, rows, batch);
          embeds = embeds.masked_scatter(mask.unsqueeze(-1).expand_as(embeds), rows);
        }
      }
      auto final_norm = [&](const at::Tensor& x) { return m.FinalNorm(x); };
      if (!planned) {
        return CollectHiddenStates(
            std::move(embeds), prepared.num_layers, prepared.request, prepared.rows.rows,
            [&](int64_t i, const at::Tensor& x) {
              return m.RunLayer(i, x, prepared.layers, features, nn::ExtendedCall{});
            },
            final_norm);
      }
      return CollectPlannedHiddenStates(
          std::move(embeds), prepared.num_layers, prepared.request, prepared.rows, plan->rows_only,
          [&](int64_t i, const at::Tensor& x, const at::Tensor& rows) {
            nn::ExtendedCall call;
            call.past = past > 0 ? &prepared.prefix->layers[static_cast<size_t>(i)] : nullptr;
            call.query_rows = rows;
            call.packed = plan->packed;
            return m.RunLayer(i, x, prepared.layers, features, call);
          },
          final_norm);
    } catch (const c10::Error& e) {
      return absl::InternalError(
          absl::StrCat(Name(), " forward: ", e.what_without_backtrace()));
    }
  }

  // --- the FamilyForward API (families/family.h) ---

  // Hidden states of text with images.
  absl::StatusOr<at::Tensor> Forward(const at::Tensor& input_ids, const Pixels& pixels,
                                     const HiddenStateRequest& request) const {
    SPATIALID_ASSIGN_OR_RETURN(Prepared p, Prepare(input_ids, &pixels, request));
    return Run(p, &pixels, p.tokens.rows());
  }

  // Hidden states of text alone (no image tokens allowed).
  absl::StatusOr<at::Tensor> Forward(const at::Tensor& input_ids,
                                     const HiddenStateRequest& request) const {
    SPATIALID_ASSIGN_OR_RETURN(Prepared p, Prepare(input_ids, nullptr, request));
    return Run(p, nullptr, p.tokens.rows());
  }

  // The planned forward (forward_plan.h): the plain result up to matmul
  // rounding. `plan.prefix`, if set, comes from ComputePrefix of the same
  // prompt and request.
  absl::StatusOr<at::Tensor> Forward(const at::Tensor& input_ids, const Pixels& pixels,
                                     const HiddenStateRequest& request,
                                     const ForwardPlan& plan) const {
    SPATIALID_ASSIGN_OR_RETURN(Prepared p, Prepare(input_ids, &pixels, request, plan.prefix));
    return Run(p, &pixels, p.tokens.rows(), &plan);
  }

  // The images' features as the decoder receives them (transformers'
  // `image_hidden_states`), in the model dtype on the model device.
  absl::StatusOr<at::Tensor> ImageFeatures(const Pixels& pixels) const {
    SPATIALID_RETURN_IF_ERROR(self().CheckPixels(pixels));
    try {
      c10::InferenceMode guard;
      return self().EncodeImages(pixels, /*packed=*/false);
    } catch (const c10::Error& e) {
      return absl::InternalError(
          absl::StrCat(Name(), " image features: ", e.what_without_backtrace()));
    }
  }

  // How many leading positions of `prompt_ids` a prefix cache can hold for
  // `request`: those before the first image token and the first requested
  // position, and none when the request runs past PrefixDepth() layers.
  absl::StatusOr<int64_t> SharedPrefixLengthOf(const TokenLayout& tokens,
                                               const HiddenStateRequest& request) const {
    if (request.deepest_layer() > PrefixDepth()) return 0;
    std::vector<int64_t> ids(tokens.host_ids().data_ptr<int64_t>(),
                             tokens.host_ids().data_ptr<int64_t>() + tokens.seq_len());
    return SharedPrefixLength(ids, self().image_token_id(), request);
  }

  // Keys/values of the prompt's text before its first image token (and
  // before the first requested position), for the layers `request` runs.
  // `prompt_ids`: [1, seq], the prompt every sequence of later batches
  // holds. An empty cache (length 0) when the family's prefix rows depend
  // on the image at the layers requested (PrefixDepth).
  absl::StatusOr<PrefixCache> ComputePrefix(const at::Tensor& prompt_ids,
                                            const HiddenStateRequest& request) const {
    const Derived& m = self();
    SPATIALID_ASSIGN_OR_RETURN(
        TokenLayout tokens, TokenLayout::Read(Name(), prompt_ids, m.embedding_rows(),
                                              m.image_token_id(), m.device()));
    if (tokens.rows() != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(Name(), " prefix: expected the prompt's ids as [1, seq]"));
    }
    SPATIALID_RETURN_IF_ERROR(ValidateRequest(request, m.num_layers(), tokens.seq_len()));
    SPATIALID_ASSIGN_OR_RETURN(const int64_t n, SharedPrefixLengthOf(tokens, request));
    const int64_t* id = tokens.host_ids().data_ptr<int64_t>();
    std::vector<int64_t> ids(id, id + n);
    try {
      c10::InferenceMode guard;
      SPATIALID_ASSIGN_OR_RETURN(const LayerContext context, Layers(tokens, nullptr, 0, n));
      const at::Tensor embeds = n > 0 ? m.Embed(tokens.ids(1).slice(1, 0, n)) : at::Tensor();
      return ComputePrefixCache(std::move(ids), embeds, request.deepest_layer(),
                                [&](int64_t i, const at::Tensor& x, nn::PastKv* present) {
                                  nn::ExtendedCall call;
                                  call.present = present;
                                  call.packed = true;
                                  return m.RunLayer(i, x, context, at::Tensor(), call);
                                });
    } catch (const c10::Error& e) {
      return absl::InternalError(
          absl::StrCat(Name(), " prefix: ", e.what_without_backtrace()));
    }
  }

  // Leading decoder layers whose prefix rows do not depend on the image.
  int64_t PrefixDepth() const {
    if constexpr (requires(const Derived& d) { d.PrefixDepthHook(); }) {
      return self().PrefixDepthHook();
    } else {
      return static_cast<int64_t>(self().num_layers());
    }
  }

  // Decoder layers a text-only forward numbers.
  int64_t TextOnlyLayers() const {
    if constexpr (requires(const Derived& d) { d.text_only_num_layers(); }) {
      return self().text_only_num_layers();
    } else {
      return static_cast<int64_t>(self().num_layers());
    }
  }

 private:
  const Derived& self() const { return static_cast<const Derived&>(*this); }
  // Debian's abseil takes its own string_view, not std::string_view.
  static std::string Name() { return std::string(Derived::kName); }

  absl::StatusOr<LayerContext> Layers(const TokenLayout& tokens, const Pixels* pixels,
                                      int64_t past, int64_t length) const {
    return self().PrepareLayers(tokens, pixels, past, length);
  }

  int64_t ForwardLength(const TokenLayout& tokens, int64_t needed) const {
    if constexpr (requires(const Derived& d) { d.ForwardLengthHook(tokens, needed); }) {
      return self().ForwardLengthHook(tokens, needed);
    } else {
      return needed;
    }
  }

  // Each image's geometry, as far as PrepareLayers reads it.
  std::vector<std::vector<int64_t>> Geometry(const Pixels& pixels) const {
    const size_t images = self().ExpectedImageTokens(pixels).per_image.size();
    std::vector<std::vector<int64_t>> out(images);
    if constexpr (requires(const Derived& d) { d.ImageGeometry(pixels, size_t{0}); }) {
      for (size_t i = 0; i < images; ++i) out[i] = self().ImageGeometry(pixels, i);
    }
    return out;
  }

  // A batch fits a prepared prompt when its images are the ones the prompt
  // was prepared with (a prompt per sequence), or, for a one-row prompt
  // that every image shares, when each image has the first one's geometry.
  static bool SameGeometry(const std::vector<std::vector<int64_t>>& batch, const Prepared& p) {
    if (batch == p.geometry) return true;
    if (p.tokens.rows() != 1 || p.geometry.empty()) return false;
    for (const std::vector<int64_t>& g : batch) {
      if (g != p.geometry.front()) return false;
    }
    return true;
  }

  bool NeedsImage(const TokenLayout& tokens, int64_t past, int64_t length,
                  const HiddenStateRequest& request) const {
    if constexpr (Derived::kFeaturesReplaceImageTokens) {
      // Image features only reach the kept positions through an image
      // token among them; otherwise the vision tower is skipped.
      return tokens.AnyImageTokenIn(past, length);
    } else {
      for (int64_t i = 0; i < request.deepest_layer(); ++i) {
        if (self().LayerReadsImage(i)) return tokens.image_tokens() > 0;
      }
      return false;
    }
  }

  // The images' features must fill the batch's image tokens exactly: in
  // total, and sequence by sequence when each sequence has one image.
  // Host-only (the layout was read once per prompt).
  static absl::Status CheckImageTokens(const TokenLayout& tokens, const ImageTokenCount& expected,
                                       int64_t batch) {
    const std::vector<int64_t>& got = tokens.image_tokens_per_row();
    auto row = [&](int64_t b) { return got[static_cast<size_t>(tokens.rows() == 1 ? 0 : b)]; };
    int64_t total = 0;
    for (int64_t b = 0; b < batch; ++b) total += row(b);
    const std::string in_all = absl::StrCat(
        "the ids hold ", total, " image tokens (id ", tokens.image_token_id(), ") but ",
        expected.per_image.size(), " image(s) give ", expected.total(), " features");
    const std::string how = expected.how.empty() ? std::string() : absl::StrCat("; ", expected.how);
    if (static_cast<int64_t>(expected.per_image.size()) == batch) {
      for (int64_t b = 0; b < batch; ++b) {
        if (row(b) != expected.per_image[static_cast<size_t>(b)]) {
          return absl::InvalidArgumentError(absl::StrCat(
              Name(), " forward: sequence ", b, " holds ", row(b), " image tokens but its image gives ",
              expected.per_image[static_cast<size_t>(b)], " features (in all, ", in_all, ")", how));
        }
      }
    }
    if (total != expected.total()) {
      return absl::InvalidArgumentError(absl::StrCat(Name(), " forward: ", in_all, how));
    }
    return absl::OkStatus();
  }

  // Image tokens at positions past..length-1, over the batch.
  static int64_t KeptImageTokens(const Prepared& p, int64_t batch) {
    int64_t per = 0;
    for (int64_t s = p.past; s < p.length; ++s) per += p.tokens.image_column(s) ? 1 : 0;
    return p.tokens.rows() == 1 ? per * batch : per;  // rows() == batch otherwise
  }

  // The feature rows of image tokens at positions past..length-1, in order
  // (a truncated forward keeps only some image tokens; Gemma 3 runs to the
  // end of an image block, the others drop the rest). Computed on the
  // host from the prompt's token layout.
  static at::Tensor DropUnkept(const Prepared& p, const at::Tensor& rows, int64_t batch) {
    const int64_t seq = p.tokens.seq_len();
    const int64_t* id = p.tokens.host_ids().template data_ptr<int64_t>();
    std::vector<int64_t> keep;
    int64_t k = 0;
    for (int64_t b = 0; b < batch; ++b) {
      const int64_t r = p.tokens.rows() == 1 ? 0 : b;
      for (int64_t s = 0; s < seq; ++s) {
        if (id[r * seq + s] != p.tokens.image_token_id()) continue;
        if (s >= p.past && s < p.length) keep.push_back(k);
        ++k;
      }
    }
    return rows.index_select(0, at::tensor(keep, at::TensorOptions().dtype(at::kLong)).to(rows.device()));
  }
};

}  // namespace spatialid::families
