// Progress reporting for long runs: count, rate and ETA.
//
// On a terminal the line is redrawn in place (carriage return); in a log
// (stderr not a TTY) a plain line is printed at most every `log_every`
// seconds, so a 20-hour extraction leaves a readable log rather than
// millions of lines. Thread-safe: producer threads may call Add.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>

#include "absl/strings/str_format.h"

namespace spatialid::util {

class Progress {
 public:
  // `total` = 0 when unknown (no ETA). `done_before` counts work a resumed
  // run found already finished: it is shown but not used for the rate.
  Progress(std::string label, long total, long done_before = 0, double log_every_seconds = 10.0)
      : label_(std::move(label)),
        total_(total),
        done_(done_before),
        done_before_(done_before),
        log_every_(log_every_seconds),
        tty_(::isatty(STDERR_FILENO) != 0),
        start_(Clock::now()),
        last_print_(start_) {}

  void Add(long n = 1) {
    std::lock_guard<std::mutex> lock(mu_);
    done_ += n;
    const auto now = Clock::now();
    const double since = Seconds(last_print_, now);
    if ((tty_ && since >= 0.2) || since >= log_every_ || done_ == total_) {
      PrintLocked(now, /*final=*/false);
      last_print_ = now;
    }
  }

  // Prints the closing line (always, so a log ends with the totals).
  void Finish() {
    std::lock_guard<std::mutex> lock(mu_);
    PrintLocked(Clock::now(), /*final=*/true);
  }

  long done() const {
    std::lock_guard<std::mutex> lock(mu_);
    return done_;
  }

  double Rate() const {
    std::lock_guard<std::mutex> lock(mu_);
    return RateLocked(Clock::now());
  }

  // "1h02m", "3m07s", "12s".
  static std::string FormatDuration(double seconds) {
    if (!(seconds >= 0) || seconds > 1e8) return "?";
    long s = static_cast<long>(seconds + 0.5);
    if (s >= 3600) return absl::StrFormat("%ldh%02ldm", s / 3600, (s % 3600) / 60);
    if (s >= 60) return absl::StrFormat("%ldm%02lds", s / 60, s % 60);
    return absl::StrFormat("%lds", s);
  }

 private:
  using Clock = std::chrono::steady_clock;
  static double Seconds(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
  }
  double RateLocked(Clock::time_point now) const {
    const double secs = Seconds(start_, now);
    return secs > 0 ? static_cast<double>(done_ - done_before_) / secs : 0.0;
  }

  void PrintLocked(Clock::time_point now, bool final) {
    const double rate = RateLocked(now);
    std::string line = absl::StrFormat("%s: %ld", label_, done_);
    if (total_ > 0) {
      line += absl::StrFormat("/%ld (%.1f%%)", total_, 100.0 * done_ / total_);
    }
    line += absl::StrFormat(", %.2f/s", rate);
    if (final) {
      line += ", took " + FormatDuration(Seconds(start_, now));
    } else if (total_ > 0 && rate > 0) {
      line += ", ETA " + FormatDuration((total_ - done_) / rate);
    }
    if (tty_) {
      std::fprintf(stderr, "\r\033[K%s%s", line.c_str(), final ? "\n" : "");
    } else {
      std::fprintf(stderr, "%s\n", line.c_str());
    }
    std::fflush(stderr);
  }

  mutable std::mutex mu_;
  std::string label_;
  long total_;
  long done_;
  long done_before_;
  double log_every_;
  bool tty_;
  Clock::time_point start_;
  Clock::time_point last_print_;
};

}  // namespace spatialid::util
