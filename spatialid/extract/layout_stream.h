// Streams layouts through an extractor in batches, with image loading and
// preprocessing overlapped with the forward passes.
//
// A loader thread draws (or decodes) the RGB images of the next batches and
// runs the family's image processor while the model computes the current
// one; a bounded queue (`prefetch` batches) keeps memory flat. Every image
// of one stream shares the prompt, so one prepared prompt serves every
// batch with the same image geometry. For each image and target word the
// sink receives that image's [layers, hidden] rows.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
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
#include "spatialid/extract/extractor.h"
#include "spatialid/util/progress.h"
#include "spatialid/util/status.h"

namespace spatialid::extract {

struct StreamOptions {
  int batch_size = 8;  // images per forward
  int prefetch = 2;    // batches prepared ahead of the forward
};

// sink(layout, target index, token, rows [layers, hidden]) -> Status
using RowSink = std::function<absl::Status(const data::GridLayout&, size_t, const std::string&,
                                           const at::Tensor&)>;

template <class X, data::LayoutSource S>
absl::Status StreamLayouts(const X& extractor, const S& source, std::span<const size_t> indices,
                           std::string_view question, std::span<const std::string> words,
                           const StreamOptions& options, const RowSink& sink,
                           util::Progress* progress = nullptr) {
  using Batch = ImageBatch<typename X::PixelBatch>;
  if (options.batch_size < 1) return absl::InvalidArgumentError("batch size must be at least 1");
  struct Item {
    std::vector<size_t> layouts;
    absl::StatusOr<Batch> batch;
  };
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Item> queue;
  bool producer_done = false;
  std::atomic<bool> stop{false};
  const size_t capacity = static_cast<size_t>(std::max(1, options.prefetch));

  std::thread producer([&] {
    for (size_t start = 0; start < indices.size() && !stop; start += options.batch_size) {
      Item item;
      const size_t end = std::min(indices.size(), start + options.batch_size);
      item.layouts.assign(indices.begin() + start, indices.begin() + end);
      std::vector<io::Image> images;
      images.reserve(item.layouts.size());
      absl::Status status;
      for (size_t i : item.layouts) {
        absl::StatusOr<io::Image> rgb = source.RgbImage(i);
        if (!rgb.ok()) {
          status = rgb.status();
          break;
        }
        images.push_back(std::move(*rgb));
      }
      item.batch = status.ok() ? extractor.Preprocess(images) : absl::StatusOr<Batch>(status);
      const bool failed = !item.batch.ok();
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return queue.size() < capacity || stop; });
        if (stop) break;
        queue.push_back(std::move(item));
      }
      cv.notify_all();
      if (failed) break;
    }
    {
      std::lock_guard<std::mutex> lock(mu);
      producer_done = true;
    }
    cv.notify_all();
  });

  absl::Status result;
  std::optional<PreparedPrompt> prompt;
  while (true) {
    Item item;
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return !queue.empty() || producer_done; });
      if (queue.empty()) break;
      item = std::move(queue.front());
      queue.pop_front();
    }
    cv.notify_all();
    if (!item.batch.ok()) {
      result = item.batch.status();
      break;
    }
    // Dynamic-resolution families could change the image-token count with
    // the image size; re-prepare only then.
    const int64_t tokens = extractor.model().ImagePromptFor(item.batch->pixels).tokens_per_image;
    if (!prompt || prompt->tokens_per_image != tokens) {
      absl::StatusOr<PreparedPrompt> p = extractor.PrepareImagePrompt(question, words, *item.batch);
      if (!p.ok()) {
        result = p.status();
        break;
      }
      prompt = std::move(*p);
    }
    absl::StatusOr<std::vector<at::Tensor>> rows = extractor.Run(*prompt, *item.batch);
    if (!rows.ok()) {
      result = rows.status();
      break;
    }
    for (size_t b = 0; b < item.layouts.size() && result.ok(); ++b) {
      for (size_t w = 0; w < rows->size() && result.ok(); ++w) {
        // [layers, batch, hidden] -> this image's [layers, hidden]
        result = sink(source.layout(item.layouts[b]), w, prompt->targets[w].token,
                      (*rows)[w].select(1, static_cast<int64_t>(b)));
      }
    }
    if (!result.ok()) break;
    if (progress) progress->Add(static_cast<long>(item.layouts.size()));
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    stop = true;
  }
  cv.notify_all();
  producer.join();
  return result;
}

}  // namespace spatialid::extract
