// compose_extractor: the README's one-line composition of an extractor, as a
// program that runs it.
//
// Background. spatialid's extractor is a model family composed with three
// policies: which hidden states to keep (a LayerSelector), which prompt rows
// stand for a target word and how they reduce to one vector (a Pooler), and
// how a pair's vectors become its IDs (an Averager). The family is a
// template parameter: its vision tower, decoder and forward are compiled for
// it. The policies are run-time values of `ExtractorOptions`, each built
// from any type that satisfies its concept (policies/*.h): they are asked
// once per model, prompt or image, so compiling them in would buy no speed
// and multiply the instantiations of every family's forward.
//
// Details. This program composes `Extractor<families::Llava>` with
// `policy::layers::Reference{.last = N}` (hidden states 0..N, as the
// reference keeps 0..32 for llava-7b) and a pooler chosen by --pooling, in
// the one statement the README shows. It then does what the experiment
// binaries do for one batch: the images through LLaVA's processor, the
// question through the model's chat template with one image (BOS and image
// expansion as transformers' processor does them), each target word's
// positions by the pooler, one forward over the batch that stops after
// layer N and after the last target. It writes the rows as a .pt file that
// `torch.load(path, weights_only=True)` reads as
//   {layer: {token: tensor[images, hidden]}}
// with `token` the tokenizer's string of the word's last sub-token (the key
// the paper's files use), images in --images order, in the model dtype.
// tests/e2e/llava_e2e_test.py builds it, runs it on a tiny LLaVA and
// compares every row with transformers run by the reference recipe.
//
// Command line:
//   compose_extractor --model_dir=/models/llava-1.5-7b-hf --images=a.png,b.png \
//     --question="Is the frog to the left or right of the camel?" \
//     --words=frog,left,right --last=32 --pooling=last_subtoken --out=rows.pt
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "examples/cli_flags.h"
#include "spatialid/extract/extractor.h"
#include "spatialid/families/config_adapters.h"
#include "spatialid/families/llava/llava.h"
#include "spatialid/io/image.h"
#include "spatialid/io/torch_file_dict.h"
#include "spatialid/io/torch_file_writer.h"
#include "spatialid/policies/layers.h"
#include "spatialid/policies/pooling.h"
#include "spatialid/util/status.h"

ABSL_FLAG(std::string, model_dir, "", "LLaVA-1.5 checkpoint folder (default: $SPATIALID_DEFAULT_MODEL)");
ABSL_FLAG(std::string, images, "", "comma-separated image files: one batch, one row each");
ABSL_FLAG(std::string, question, "Is the frog to the left or right of the camel?", "the user's question");
ABSL_FLAG(std::string, words, "frog,left,right", "comma-separated target words of the question");
ABSL_FLAG(int, last, -1, "keep hidden states 0..last (policy::layers::Reference); -1: all of them");
ABSL_FLAG(std::string, pooling, "last_subtoken",
          "last_subtoken (the reference: first occurrence of the word's last sub-token) or "
          "mean_of_subtokens (mean of the first run of all its sub-tokens)");
ABSL_FLAG(std::string, dtype, "", "float32, float16 or bfloat16 (empty: config.json's)");
ABSL_FLAG(std::string, out, "", "output .pt file");

namespace {

namespace sid = spatialid;

absl::StatusOr<sid::policy::AnyPooler> PoolingFlag() {
  const std::string name = absl::GetFlag(FLAGS_pooling);
  if (name == "last_subtoken") return sid::policy::AnyPooler(sid::policy::pooling::LastSubtoken{});
  if (name == "mean_of_subtokens") return sid::policy::AnyPooler(sid::policy::pooling::MeanOfSubtokens{});
  return absl::InvalidArgumentError(
      absl::StrCat("--pooling=", name, ": expected last_subtoken or mean_of_subtokens"));
}

absl::Status Run() {
  std::string dir = absl::GetFlag(FLAGS_model_dir);
  if (dir.empty() && std::getenv("SPATIALID_DEFAULT_MODEL") != nullptr) dir = std::getenv("SPATIALID_DEFAULT_MODEL");
  const std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty()) return absl::InvalidArgumentError("--out is required");
  const std::vector<std::string> paths = absl::StrSplit(absl::GetFlag(FLAGS_images), ',', absl::SkipEmpty());
  if (paths.empty()) return absl::InvalidArgumentError("--images: give at least one image file");
  const std::vector<std::string> words = absl::StrSplit(absl::GetFlag(FLAGS_words), ',', absl::SkipEmpty());
  SPATIALID_ASSIGN_OR_RETURN(sid::policy::AnyPooler pooling, PoolingFlag());
  std::optional<at::ScalarType> dtype;
  if (!absl::GetFlag(FLAGS_dtype).empty()) {
    SPATIALID_ASSIGN_OR_RETURN(dtype, sid::families::DtypeFromConfig(absl::GetFlag(FLAGS_dtype)));
  }
  const int last = absl::GetFlag(FLAGS_last);

  // The composition: the family at compile time, the policies as values.
  using X = sid::extract::Extractor<sid::families::Llava>;
  SPATIALID_ASSIGN_OR_RETURN(X x, X::Create({.model_dir = dir, .dtype = dtype,
                                             .layers = sid::policy::layers::Reference{.last = last},
                                             .pooling = pooling}));

  std::vector<sid::io::Image> images;
  for (const std::string& path : paths) {
    SPATIALID_ASSIGN_OR_RETURN(sid::io::Image image, sid::io::LoadImage(path));
    images.push_back(std::move(image));
  }
  SPATIALID_ASSIGN_OR_RETURN(auto batch, x.Preprocess(images));
  SPATIALID_ASSIGN_OR_RETURN(auto prompt, x.PrepareImagePrompt(absl::GetFlag(FLAGS_question), words, batch));
  // rows[w]: [layers, images, hidden] for target word w.
  SPATIALID_ASSIGN_OR_RETURN(std::vector<at::Tensor> rows, x.Run(prompt, batch));

  sid::io::PtDict file;
  for (size_t w = 0; w < rows.size(); ++w) {
    const at::Tensor cpu = rows[w].to(at::kCPU);
    for (size_t l = 0; l < x.layers().size(); ++l) {
      file[x.layers()[l]][prompt.targets[w].token] = cpu[static_cast<int64_t>(l)].contiguous();
    }
  }
  SPATIALID_RETURN_IF_ERROR(sid::io::WriteTorchFile(out, file));
  std::printf("%zu images, %zu words, hidden states 0..%d -> %s\n", paths.size(), words.size(),
              x.layers().back(), out.c_str());
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  spatialid::examples::ParseFlags(
      argc, argv,
      "Composes Extractor<families::Llava> with policy::layers::Reference{.last = N} and a pooler,\n"
      "runs it on images and a question, and writes {layer: {token: [images, hidden]}} as a .pt file.\n"
      "Example: compose_extractor --model_dir=DIR --images=a.png,b.png --last=32 --out=rows.pt");
  const absl::Status s = Run();
  if (!s.ok()) {
    std::fprintf(stderr, "compose_extractor: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  return 0;
}
