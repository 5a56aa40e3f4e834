// Encode throughput of spatialid's tokenizer on the oracle corpus.
//
// Background: every prompt of an extraction run goes through the tokenizer;
// it must never be the slow part, and it should beat HF `tokenizers`, the
// library it reproduces. tokenizer_benchmark_compare.py runs this binary and
// HF on the same corpus in one go and prints the ratio.
//
// Details: the corpus is spatialid/text/testdata/tokenizer/corpus.jsonl
// (2,432 strings: prompts, chat prompts, many scripts, emoji, random
// Unicode), the tokenizers are $SPATIALID_ASSETS/tokenizers/{llama2,llama3,
// qwen3,gemma3}/tokenizer.json. One iteration of BM_EncodeCorpus encodes
// every string with special tokens; the per-word BPE cache is warm after
// the first iteration, as HF's is. BM_EncodeCorpus/threads:2 encodes from
// two threads at once (compare with HF's multi-threaded `encode_batch`).
//
// Example:
//   bazel run //benchmarks:tokenizer_benchmark -- --benchmark_filter=EncodeCorpus
//   (flags: --corpus=PATH, --tokenizers=DIR; defaults as above)
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <nlohmann/json.hpp>

#include "spatialid/text/tokenizer.h"

namespace {

using spatialid::text::Tokenizer;

const char* const kNames[] = {"llama2", "llama3", "qwen3", "gemma3"};

struct Setup {
  std::vector<std::string> corpus;
  size_t corpus_bytes = 0;
  std::string tokenizers_dir;
  std::map<std::string, std::unique_ptr<Tokenizer>> tokenizers;
};

Setup& State() {
  static Setup setup;
  return setup;
}

const Tokenizer& Get(const std::string& name) {
  auto& slot = State().tokenizers[name];
  if (slot == nullptr) {
    auto loaded = Tokenizer::FromFile(State().tokenizers_dir + "/" + name + "/tokenizer.json");
    if (!loaded.ok()) {
      std::cerr << "tokenizer_benchmark: " << loaded.status().message() << "\n";
      std::exit(1);
    }
    slot = std::make_unique<Tokenizer>(std::move(*loaded));
  }
  return *slot;
}

void BM_EncodeCorpus(benchmark::State& state, std::string name) {
  const Tokenizer& tokenizer = Get(name);
  const auto& corpus = State().corpus;
  size_t tokens = 0;
  for (auto _ : state) {
    for (const std::string& text : corpus) {
      std::vector<int32_t> ids = tokenizer.Encode(text, true);
      tokens += ids.size();
      benchmark::DoNotOptimize(ids.data());
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * corpus.size()));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * State().corpus_bytes));
  state.counters["tokens"] = benchmark::Counter(static_cast<double>(tokens),
                                                benchmark::Counter::kIsRate);
}

void BM_EncodePrompt(benchmark::State& state, std::string name) {
  const Tokenizer& tokenizer = Get(name);
  const std::string prompt = "Is the frog to the left or right of the camel?";
  for (auto _ : state) {
    std::vector<int32_t> ids = tokenizer.Encode(prompt, true);
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_DecodeCorpus(benchmark::State& state, std::string name) {
  const Tokenizer& tokenizer = Get(name);
  std::vector<std::vector<int32_t>> encoded;
  for (const std::string& text : State().corpus) encoded.push_back(tokenizer.Encode(text, true));
  for (auto _ : state) {
    for (const auto& ids : encoded) {
      std::string text = tokenizer.Decode(ids, false);
      benchmark::DoNotOptimize(text.data());
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * encoded.size()));
}

void BM_Load(benchmark::State& state, std::string name) {
  const std::string path = State().tokenizers_dir + "/" + name + "/tokenizer.json";
  for (auto _ : state) {
    auto tokenizer = Tokenizer::FromFile(path);
    if (!tokenizer.ok()) state.SkipWithError(std::string(tokenizer.status().message()).c_str());
    benchmark::DoNotOptimize(tokenizer);
  }
}

// Pulls --name=value out of argv (Google Benchmark keeps its own flags).
std::string TakeFlag(int& argc, char** argv, const char* name, std::string fallback) {
  const std::string prefix = std::string("--") + name + "=";
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], prefix.c_str(), prefix.size()) == 0) {
      std::string value = argv[i] + prefix.size();
      for (int k = i; k + 1 < argc; ++k) argv[k] = argv[k + 1];
      --argc;
      return value;
    }
  }
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  const char* assets = std::getenv("SPATIALID_ASSETS");
  std::string default_dir = assets != nullptr ? std::string(assets) + "/tokenizers" : "";
  const std::string corpus_path =
      TakeFlag(argc, argv, "corpus", "spatialid/text/testdata/tokenizer/corpus.jsonl");
  State().tokenizers_dir = TakeFlag(argc, argv, "tokenizers", default_dir);
  if (State().tokenizers_dir.empty()) {
    std::cerr << "tokenizer_benchmark: set SPATIALID_ASSETS or pass --tokenizers=DIR\n";
    return 1;
  }
  std::ifstream in(corpus_path);
  if (!in) {
    std::cerr << "tokenizer_benchmark: " << corpus_path << ": cannot open corpus\n";
    return 1;
  }
  std::string line;
  while (std::getline(in, line)) {
    nlohmann::json item = nlohmann::json::parse(line, nullptr, false);
    if (!item.is_string()) {
      std::cerr << "tokenizer_benchmark: " << corpus_path << ": each line must be a JSON string\n";
      return 1;
    }
    State().corpus.push_back(item.get<std::string>());
    State().corpus_bytes += State().corpus.back().size();
  }

  // Loaded up front: the benchmark bodies may run on two threads at once.
  for (const char* name : kNames) Get(name);
  for (const char* name : kNames) {
    const std::string n = name;
    benchmark::RegisterBenchmark(("BM_EncodeCorpus/" + n).c_str(), BM_EncodeCorpus, n)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime()
        ->Threads(1)
        ->Threads(2);
    benchmark::RegisterBenchmark(("BM_EncodePrompt/" + n).c_str(), BM_EncodePrompt, n);
    benchmark::RegisterBenchmark(("BM_DecodeCorpus/" + n).c_str(), BM_DecodeCorpus, n)
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("BM_Load/" + n).c_str(), BM_Load, n)
        ->Unit(benchmark::kMillisecond)
        ->Iterations(3);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
