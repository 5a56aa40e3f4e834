// Streams layouts through an extractor in batches, with image loading and
// preprocessing overlapped with the forward passes.
//
// Loader threads draw (or decode) the RGB images of the next batches and
// run the family's image processor while the model computes the current
// one; at most `prefetch` finished batches wait, so memory stays flat.
// Batches reach the model in order whatever the number of loaders, so
// results do not depend on it. Every image of one stream shares the prompt,
// so one prepared prompt (with its shared-prefix cache) serves every batch
// with the same image geometry. For each image and target word the sink
// receives that image's [layers, hidden] rows.
//
// `StreamStats` says whether the overlap works: `wait_seconds` is the time
// the model sat idle waiting for images. (Loaders keep libtorch's default
// intra-op threads: calling at::set_num_threads(1) in a loader slowed the
// model's forwards on the same process by 1.7x on a 2-core machine.)
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "spatialid/data/layout_source.h"
#include "spatialid/extract/batch_size.h"
#include "spatialid/extract/extractor.h"
#include "spatialid/util/progress.h"
#include "spatialid/util/status.h"

namespace spatialid::extract {

// Where a stream's time went, in seconds, summed over every call given the
// same StreamStats.
struct StreamStats {
  long images = 0;
  double total_seconds = 0;       // wall time of StreamLayouts
  double forward_seconds = 0;     // the model's forwards
  double sink_seconds = 0;        // handing rows to the sink (accumulation)
  double wait_seconds = 0;        // the model idle, waiting for a loader
  double load_seconds = 0;        // loaders drawing or decoding images (all threads)
  double preprocess_seconds = 0;  // loaders running the image processor (all threads)
  int batch_size = 0;             // the batch size used (after auto)
};

struct StreamOptions {
  int batch_size = 8;      // images per forward; 0: AutoBatchSize (batch_size.h)
  int prefetch = 2;        // finished batches waiting ahead of the forward
  int loader_threads = 1;  // threads loading and preprocessing batches
  StreamStats* stats = nullptr;  // accumulates timings when set
  // Receives the extractor's EngineNote for each prompt prepared, if any.
  std::function<void(const std::string&)> note;
};

// sink(layout, target index, token, rows [layers, hidden]) -> Status
using RowSink = std::function<absl::Status(const data::GridLayout&, size_t, const std::string&,
                                           const at::Tensor&)>;

namespace internal {

using Clock = std::chrono::steady_clock;

inline double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// One batch as a loader hands it over.
template <class Batch>
struct LoadedBatch {
  std::vector<size_t> layouts;
  absl::StatusOr<Batch> batch = absl::UnknownError("not loaded");
  double load_seconds = 0;
  double preprocess_seconds = 0;
};

template <class X, data::LayoutSource S>
LoadedBatch<ImageBatch<typename X::PixelBatch>> LoadBatch(const X& extractor, const S& source,
                                                          std::span<const size_t> layouts) {
  LoadedBatch<ImageBatch<typename X::PixelBatch>> item;
  item.layouts.assign(layouts.begin(), layouts.end());
  const Clock::time_point start = Clock::now();
  std::vector<io::Image> images;
  images.reserve(layouts.size());
  for (size_t i : layouts) {
    absl::StatusOr<io::Image> rgb = source.RgbImage(i);
    if (!rgb.ok()) {
      item.batch = rgb.status();
      return item;
    }
    images.push_back(std::move(*rgb));
  }
  item.load_seconds = SecondsSince(start);
  const Clock::time_point preprocess = Clock::now();
  item.batch = extractor.Preprocess(images);
  item.preprocess_seconds = SecondsSince(preprocess);
  return item;
}

// The batch size for `options`: itself, or AutoBatchSize from the prompt of
// the first layout (which this loads and preprocesses once).
template <class X, data::LayoutSource S>
absl::StatusOr<int> ResolveBatchSize(const X& extractor, const S& source,
                                     std::span<const size_t> indices, std::string_view question,
                                     std::span<const std::string> words,
                                     const StreamOptions& options) {
  if (options.batch_size < 0) return absl::InvalidArgumentError("batch size must be >= 0 (0: auto)");
  if (options.batch_size > 0) return options.batch_size;
  const at::Device device = extractor.model().device();
  if (device.is_cpu() || indices.empty()) return kCpuAutoBatch;
  auto first = LoadBatch(extractor, source, indices.subspan(0, 1));
  if (!first.batch.ok()) return first.batch.status();
  SPATIALID_ASSIGN_OR_RETURN(typename X::Prompt prompt,
                             extractor.PrepareImagePrompt(question, words, *first.batch));
  return AutoBatchSize(device, static_cast<int64_t>(prompt.ids.size()),
                       extractor.model().hidden_size(), at::elementSize(extractor.model().dtype()));
}

}  // namespace internal

template <class X, data::LayoutSource S>
absl::Status StreamLayouts(const X& extractor, const S& source, std::span<const size_t> indices,
                           std::string_view question, std::span<const std::string> words,
                           const StreamOptions& options, const RowSink& sink,
                           util::Progress* progress = nullptr) {
  using internal::Clock;
  using internal::SecondsSince;
  using Item = internal::LoadedBatch<ImageBatch<typename X::PixelBatch>>;
  const Clock::time_point start = Clock::now();
  SPATIALID_ASSIGN_OR_RETURN(
      const int batch_size,
      internal::ResolveBatchSize(extractor, source, indices, question, words, options));
  const size_t batch = static_cast<size_t>(batch_size);
  const size_t num_batches = (indices.size() + batch - 1) / batch;
  const size_t capacity = static_cast<size_t>(std::max(1, options.prefetch));
  const int loaders = static_cast<int>(
      std::clamp<size_t>(static_cast<size_t>(std::max(1, options.loader_threads)), 1,
                         std::max<size_t>(num_batches, 1)));

  std::mutex mu;
  std::condition_variable cv;
  std::map<size_t, Item> ready;  // finished batches by index
  size_t claimed = 0;            // next batch index a loader takes
  size_t consumed = 0;           // next batch index the model takes
  bool stop = false;
  double load_seconds = 0, preprocess_seconds = 0;

  auto loader = [&] {
    while (true) {
      size_t k;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return stop || claimed >= num_batches || claimed < consumed + capacity; });
        if (stop || claimed >= num_batches) break;
        k = claimed++;
      }
      const size_t begin = k * batch;
      const size_t end = std::min(indices.size(), begin + batch);
      Item item = internal::LoadBatch(extractor, source, indices.subspan(begin, end - begin));
      {
        std::lock_guard<std::mutex> lock(mu);
        load_seconds += item.load_seconds;
        preprocess_seconds += item.preprocess_seconds;
        ready.emplace(k, std::move(item));
      }
      cv.notify_all();
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < loaders; ++t) threads.emplace_back(loader);

  absl::Status result;
  std::optional<typename X::Prompt> prompt;
  double forward_seconds = 0, sink_seconds = 0, wait_seconds = 0;
  long images = 0;
  for (size_t k = 0; k < num_batches && result.ok(); ++k) {
    Item item;
    {
      const Clock::time_point wait = Clock::now();
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return ready.count(k) > 0; });
      item = std::move(ready.at(k));
      ready.erase(k);
      consumed = k + 1;
      wait_seconds += SecondsSince(wait);
    }
    cv.notify_all();
    if (!item.batch.ok()) {
      result = item.batch.status();
      break;
    }
    const Clock::time_point forward = Clock::now();
    // Dynamic-resolution families could change the image-token count with
    // the image size; re-prepare only then.
    const int64_t tokens = extractor.model().ImagePromptFor(item.batch->pixels).tokens_per_image;
    if (!prompt || prompt->tokens_per_image != tokens) {
      absl::StatusOr<typename X::Prompt> p =
          extractor.PrepareImagePrompt(question, words, *item.batch);
      if (!p.ok()) {
        result = p.status();
        break;
      }
      prompt = std::move(*p);
      if (options.note) {
        const std::string note = extractor.EngineNote(*prompt);
        if (!note.empty()) options.note(note);
      }
    }
    absl::StatusOr<std::vector<at::Tensor>> rows = extractor.Run(*prompt, *item.batch);
    if (!rows.ok()) {
      result = rows.status();
      break;
    }
    const Clock::time_point handing = Clock::now();
    forward_seconds += std::chrono::duration<double>(handing - forward).count();
    for (size_t b = 0; b < item.layouts.size() && result.ok(); ++b) {
      for (size_t w = 0; w < rows->size() && result.ok(); ++w) {
        // [layers, batch, hidden] -> this image's [layers, hidden]
        result = sink(source.layout(item.layouts[b]), w, prompt->targets[w].token,
                      (*rows)[w].select(1, static_cast<int64_t>(b)));
      }
    }
    sink_seconds += SecondsSince(handing);
    if (!result.ok()) break;
    images += static_cast<long>(item.layouts.size());
    if (progress) progress->Add(static_cast<long>(item.layouts.size()));
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    stop = true;
  }
  cv.notify_all();
  for (std::thread& t : threads) t.join();
  if (options.stats != nullptr) {
    StreamStats& s = *options.stats;
    s.images += images;
    s.total_seconds += SecondsSince(start);
    s.forward_seconds += forward_seconds;
    s.sink_seconds += sink_seconds;
    s.wait_seconds += wait_seconds;
    s.load_seconds += load_seconds;
    s.preprocess_seconds += preprocess_seconds;
    s.batch_size = batch_size;
  }
  return result;
}

}  // namespace spatialid::extract
