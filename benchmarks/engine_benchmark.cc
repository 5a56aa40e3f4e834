// The extraction engine's hot paths, so a regression shows.
//
// Background: an extraction run spends its time in the model's decoder
// layers, then in the vision tower, the image processor and the per-image
// accumulation of spatial-ID sums; layouts drawn in memory add the grid
// composer (grid_composer_benchmark.cc, no libtorch). Each benchmark here is
// one of those steps at the shapes a real run has:
//   BM_ClipPreprocess      CLIP processor (LLaVA) on one 896x896 grid image:
//                          resize to 336 + crop + normalise; /0 torchvision
//                          engine (the default), /1 Pillow engine
//   BM_DecoderLayer        one Llama decoder layer, random weights, batch 8 x
//                          600 tokens (LLaVA's 576 image tokens + prompt), at
//                          hidden sizes 256 (default model), 512 (bench model)
//                          and 1024; /plain is transformers' op order, /packed
//                          the planned forward's packed matmuls, /rows the
//                          deepest-layer call (packed, 1 target row of 600)
//   BM_PrefixAttention     the planned call with a 5-token shared prefix
//                          (LLaVA's "<s> USER: ") against the plain call
//   BM_PairIdAccumulatorAdd  one image's [33, 4096] rows (llava-7b, every
//                          hidden state) added to a pair's fp32 sums
// Counters: FLOP rate for the matmul benchmarks ("FLOPS", model count:
// 2 per multiply-add, causal attention over the keys each query sees),
// items per second elsewhere.
//
// Example:
//   bazel run //benchmarks:engine_benchmark -- --benchmark_filter=DecoderLayer
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>
#include <c10/core/InferenceMode.h>

#include "spatialid/config/processor_config.h"
#include "spatialid/extract/spatial_id_pair.h"
#include "spatialid/io/image.h"
#include "spatialid/nn/text_decoder.h"
#include "spatialid/vision/clip_image_processor.h"

namespace {

using namespace spatialid;

// Random weights by name: matrices ~N(0, 0.02^2), norms 1.
struct RandomLoader {
  at::Tensor Take(const std::string&, const std::vector<int64_t>& shape) {
    return shape.size() == 1 ? at::ones(shape) : 0.02 * at::randn(shape);
  }
};

// An 896x896 RGB image like a grid layout: two coloured squares on black.
io::Image GridLikeImage() {
  io::Image img(896, 896, 3, 0);
  for (int y = 0; y < 896; ++y) {
    for (int x = 0; x < 896; ++x) {
      const bool a = x >= 30 && x < 254 && y >= 30 && y < 254;
      const bool b = x >= 478 && x < 702 && y >= 478 && y < 702;
      img.at(x, y, 0) = a ? 200 : (b ? 40 : 0);
      img.at(x, y, 1) = a ? static_cast<uint8_t>(x) : (b ? 180 : 0);
      img.at(x, y, 2) = b ? static_cast<uint8_t>(y) : 20;
    }
  }
  return img;
}

void BM_ClipPreprocess(benchmark::State& state) {
  config::CLIPImageProcessorConfig cfg;  // CLIP's defaults (mean, std, bicubic) at LLaVA's 336
  cfg.size = config::ImageSizeDict::ShortestEdge(336);
  cfg.crop_size = config::ImageSizeDict::HeightWidth(336, 336);
  const auto engine = state.range(0) == 0 ? vision::ResizeEngine::kTorchvision
                                          : vision::ResizeEngine::kPillow;
  absl::StatusOr<vision::ClipImageProcessor> proc = vision::ClipImageProcessor::Create(cfg, engine);
  if (!proc.ok()) {
    state.SkipWithError(std::string(proc.status().message()).c_str());
    return;
  }
  const io::Image image = GridLikeImage();
  c10::InferenceMode guard;
  for (auto _ : state) {
    absl::StatusOr<at::Tensor> px = proc->Preprocess(image);
    benchmark::DoNotOptimize(px);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(engine == vision::ResizeEngine::kTorchvision ? "torchvision" : "pillow");
}
BENCHMARK(BM_ClipPreprocess)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

nn::TextDecoderShape LayerShape(int64_t hidden) {
  nn::TextDecoderShape s;
  s.vocab_size = 8;
  s.hidden_size = hidden;
  s.intermediate_size = hidden * 43 / 16;  // Llama-2's 11008 / 4096
  s.num_layers = 1;
  s.head_dim = hidden >= 512 ? 128 : 32;  // the default model's 32, else Llama's 128
  s.num_heads = s.num_kv_heads = hidden / s.head_dim;
  s.max_position_embeddings = 4096;
  s.rms_norm_eps = 1e-5;
  return s;
}

// Model FLOPs of one layer over `tokens` positions of `batch` sequences
// whose outputs are wanted at `rows` positions each (all when rows == tokens).
double LayerFlops(const nn::TextDecoderShape& s, int64_t batch, int64_t tokens, int64_t rows) {
  const double h = static_cast<double>(s.hidden_size), i = static_cast<double>(s.intermediate_size);
  const double kv = 2 * h * h * tokens;                        // k and v for every position
  const double rest = (2 * h * h + 3 * h * i) * rows;          // q, o and the MLP at the rows
  const double attn = rows == tokens ? 2.0 * h * tokens * (tokens + 1) : 4.0 * h * tokens * rows;
  return 2.0 * batch * (kv + rest) + batch * attn;
}

enum class LayerCall { kPlain, kPacked, kRows };

void DecoderLayer(benchmark::State& state, LayerCall kind) {
  const nn::TextDecoderShape shape = LayerShape(state.range(0));
  constexpr int64_t kBatch = 8, kTokens = 600;
  RandomLoader loader;
  absl::StatusOr<nn::TextDecoder> d = nn::TextDecoder::Load(loader, "", shape, at::kCPU);
  if (!d.ok()) {
    state.SkipWithError(std::string(d.status().message()).c_str());
    return;
  }
  d->PackWeights();
  c10::InferenceMode guard;
  const at::Tensor x = at::randn({kBatch, kTokens, shape.hidden_size});
  const nn::CosSin cs = d->rotary(at::arange(kTokens, at::kLong).unsqueeze(0), at::kFloat, kTokens);
  const nn::AttentionMask causal = nn::AttentionMask::Causal();
  nn::ExtendedCall call;
  call.packed = kind != LayerCall::kPlain;
  if (kind == LayerCall::kRows) call.query_rows = at::tensor(std::vector<int64_t>{kTokens - 9}, at::kLong);
  for (auto _ : state) {
    at::Tensor y = kind == LayerCall::kPlain ? d->RunLayer(0, x, cs, causal)
                                             : d->RunLayer(0, x, cs, causal, call);
    benchmark::DoNotOptimize(y.data_ptr());
  }
  const double flops = LayerFlops(shape, kBatch, kTokens, kind == LayerCall::kRows ? 1 : kTokens);
  state.counters["FLOPS"] = benchmark::Counter(flops * static_cast<double>(state.iterations()),
                                               benchmark::Counter::kIsRate);
  state.SetItemsProcessed(state.iterations() * kBatch);
}
void BM_DecoderLayer_plain(benchmark::State& s) { DecoderLayer(s, LayerCall::kPlain); }
void BM_DecoderLayer_packed(benchmark::State& s) { DecoderLayer(s, LayerCall::kPacked); }
void BM_DecoderLayer_rows(benchmark::State& s) { DecoderLayer(s, LayerCall::kRows); }
BENCHMARK(BM_DecoderLayer_plain)->Arg(256)->Arg(512)->Arg(1024)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_DecoderLayer_packed)->Arg(256)->Arg(512)->Arg(1024)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_DecoderLayer_rows)->Arg(256)->Arg(512)->Arg(1024)->Unit(benchmark::kMillisecond)->UseRealTime();

// The planned call over positions 5..599 with the first 5 as shared past
// keys/values (/1) against the plain call over all 600 (/0), hidden 256.
void BM_PrefixAttention(benchmark::State& state) {
  const nn::TextDecoderShape shape = LayerShape(256);
  constexpr int64_t kBatch = 8, kTokens = 600, kPrefix = 5;
  RandomLoader loader;
  absl::StatusOr<nn::TextDecoder> d = nn::TextDecoder::Load(loader, "", shape, at::kCPU);
  if (!d.ok()) {
    state.SkipWithError(std::string(d.status().message()).c_str());
    return;
  }
  d->PackWeights();
  c10::InferenceMode guard;
  const at::Tensor x = at::randn({kBatch, kTokens, shape.hidden_size});
  const nn::CosSin cs = d->rotary(at::arange(kTokens, at::kLong).unsqueeze(0), at::kFloat, kTokens);
  const nn::AttentionMask causal = nn::AttentionMask::Causal();
  nn::PastKv past;
  nn::ExtendedCall capture;
  capture.present = &past;
  d->RunLayer(0, x.slice(0, 0, 1).slice(1, 0, kPrefix),
              {cs.cos.slice(1, 0, kPrefix), cs.sin.slice(1, 0, kPrefix)}, causal, capture);
  const nn::CosSin tail{cs.cos.slice(1, kPrefix), cs.sin.slice(1, kPrefix)};
  const at::Tensor suffix = x.slice(1, kPrefix).contiguous();
  nn::ExtendedCall call;
  call.past = &past;
  call.packed = true;
  nn::ExtendedCall plain;
  plain.packed = true;
  for (auto _ : state) {
    at::Tensor y = state.range(0) == 1 ? d->RunLayer(0, suffix, tail, causal, call)
                                       : d->RunLayer(0, x, cs, causal, plain);
    benchmark::DoNotOptimize(y.data_ptr());
  }
  state.SetLabel(state.range(0) == 1 ? "shared 5-token prefix" : "every position");
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_PrefixAttention)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_PairIdAccumulatorAdd(benchmark::State& state) {
  constexpr int64_t kLayers = 33, kHidden = 4096;
  const auto dtype = state.range(0) == 0 ? at::kFloat : at::kHalf;
  std::vector<int64_t> layers(kLayers);
  for (int64_t l = 0; l < kLayers; ++l) layers[static_cast<size_t>(l)] = l;
  c10::InferenceMode guard;
  const at::Tensor rows = at::randn({kLayers, kHidden}).to(dtype);
  // One pair: 16 A positions x 15 B cells x 4 sizes; a fresh accumulator
  // when every key is taken.
  auto acc = std::make_unique<extract::PairIdAccumulator>(layers);
  int64_t n = 0;
  const char* const kFolders[] = {"0_0", "0_1", "0_2", "0_3", "1_0", "1_1", "1_2", "1_3",
                                  "2_0", "2_1", "2_2", "2_3", "3_0", "3_1", "3_2", "3_3"};
  for (auto _ : state) {
    if (n == 16 * 16 * 4) {
      state.PauseTiming();
      acc = std::make_unique<extract::PairIdAccumulator>(layers);
      n = 0;
      state.ResumeTiming();
    }
    const extract::CellKey key{(n / 4) % 4, (n / 16) % 4, 74 + 50 * (n % 4)};
    absl::Status s = acc->Add(kFolders[n / 64], "frog", key, rows);
    if (!s.ok()) {
      state.SkipWithError(std::string(s.message()).c_str());
      return;
    }
    ++n;
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(dtype == at::kFloat ? "fp32 rows" : "fp16 rows");
}
BENCHMARK(BM_PairIdAccumulatorAdd)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
