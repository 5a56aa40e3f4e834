#include "spatialid/util/progress.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace spatialid::util {
namespace {

TEST(Progress, FormatsDurations) {
  EXPECT_EQ(Progress::FormatDuration(12.4), "12s");
  EXPECT_EQ(Progress::FormatDuration(187), "3m07s");
  EXPECT_EQ(Progress::FormatDuration(3720), "1h02m");
  EXPECT_EQ(Progress::FormatDuration(-1), "?");
}

TEST(Progress, CountsFromManyThreadsAndResumedWork) {
  Progress p("test", 1000, /*done_before=*/100, /*log_every_seconds=*/1e9);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 225; ++i) p.Add();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(p.done(), 1000);
  EXPECT_GT(p.Rate(), 0.0);
  p.Finish();
}

}  // namespace
}  // namespace spatialid::util
