// Shared pieces of the faults-at-scale property tests (issue 8.9, tests/unit/nvme and
// tests/unit/scsi): iteration count and seed from the environment, a watchdog that turns a hang
// into a failure naming the seed, random helpers, a cancel and a throwing progress callback at
// random calls, and the check of a destination against its source and its old bytes.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <doctest/doctest.h>

#include "offcopy/copy.hpp"

namespace offcopy::test_faults {

/// A number from the environment, or `fallback`.
inline std::uint64_t env_number(const char* name, std::uint64_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  return std::strtoull(v, nullptr, 0);
}

/// Iterations: OFFCOPY_FAULT_ITERATIONS (a longer run), else `ci_default` (tens of seconds in CI
/// for all of them together, sanitizers included).
inline unsigned iterations(unsigned ci_default) {
  return static_cast<unsigned>(env_number("OFFCOPY_FAULT_ITERATIONS", ci_default));
}

/// The first seed: OFFCOPY_FAULT_SEED (to replay a failure), else a fixed one.
inline std::uint64_t first_seed(std::uint64_t fixed) { return env_number("OFFCOPY_FAULT_SEED", fixed); }

/// Where the tests keep their media: tmpfs when there is one (the engine syncs destinations:
/// on a disk thousands of fdatasyncs would cost minutes), else the temp directory.
inline std::string media_dir() { return ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp"; }

/// Aborts the process when one iteration runs longer than `limit` (a hang), printing its seed.
class watchdog {
 public:
  explicit watchdog(std::chrono::seconds limit) : limit_(limit), thread_([this] { run(); }) {}
  ~watchdog() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  watchdog(const watchdog&) = delete;
  watchdog& operator=(const watchdog&) = delete;

  /// Starts timing the iteration with this seed.
  void start(std::uint64_t seed) {
    {
      std::lock_guard lock(mu_);
      seed_ = seed;
      started_ = std::chrono::steady_clock::now();
      ++generation_;
    }
    cv_.notify_all();
  }

  /// Ends the iteration started last: keeps its time when it is the slowest so far.
  void finish() {
    std::lock_guard lock(mu_);
    const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    if (took > slowest_seconds_) {
      slowest_seconds_ = took;
      slowest_seed_ = seed_;
    }
  }
  /// The slowest finished iteration: its time in seconds and its seed.
  double slowest_seconds() {
    std::lock_guard lock(mu_);
    return slowest_seconds_;
  }
  std::uint64_t slowest_seed() {
    std::lock_guard lock(mu_);
    return slowest_seed_;
  }

 private:
  void run() {
    std::unique_lock lock(mu_);
    while (!stop_) {
      if (generation_ == 0) {
        cv_.wait(lock, [&] { return stop_ || generation_ != 0; });
        continue;
      }
      const std::uint64_t gen = generation_;
      if (cv_.wait_until(lock, started_ + limit_, [&] { return stop_ || generation_ != gen; })) continue;
      std::fprintf(stderr, "faults at scale: the iteration with seed %llu ran for %lld s: a hang\n",
                   static_cast<unsigned long long>(seed_), static_cast<long long>(limit_.count()));
      std::abort();
    }
  }

  std::chrono::seconds limit_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::uint64_t seed_ = 0;
  std::uint64_t generation_ = 0;
  double slowest_seconds_ = 0;
  std::uint64_t slowest_seed_ = 0;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::thread thread_;
};

/// Uniform in [lo, hi].
inline std::uint64_t pick(std::mt19937_64& g, std::uint64_t lo, std::uint64_t hi) {
  return std::uniform_int_distribution<std::uint64_t>(lo, hi)(g);
}
/// True with probability percent / 100.
inline bool chance(std::mt19937_64& g, unsigned percent) { return pick(g, 0, 99) < percent; }

/// `n` random bytes from `g`.
inline std::vector<std::uint8_t> random_bytes(std::mt19937_64& g, std::size_t n) {
  std::vector<std::uint8_t> v(n);
  for (std::size_t i = 0; i < n; i += 8) {
    const std::uint64_t x = g();
    std::memcpy(v.data() + i, &x, std::min<std::size_t>(8, n - i));
  }
  return v;
}

/// Wires into `pol` a cancel at a random progress call (15 %; call 0: before the copy starts) and a
/// progress callback that throws at another (10 %), both within the first `last_call` calls.
/// Keep it alive while the copy runs: the policy points at it.
struct progress_faults {
  std::atomic<bool> cancel{false};
  int cancel_at = -1;
  int throw_at = -1;
  int calls = 0;

  progress_faults(std::mt19937_64& g, policy& pol, int last_call) {
    pol.cancel = &cancel;
    cancel_at = chance(g, 15) ? static_cast<int>(pick(g, 0, static_cast<std::uint64_t>(last_call))) : -1;
    throw_at = chance(g, 10) ? static_cast<int>(pick(g, 1, static_cast<std::uint64_t>(last_call))) : -1;
    if (cancel_at == 0) cancel = true;
    pol.on_progress = [this](const progress&) {
      ++calls;
      if (calls == cancel_at) cancel = true;
      if (calls == throw_at) throw std::runtime_error("progress callback gave up");
    };
  }
  progress_faults(const progress_faults&) = delete;
  progress_faults& operator=(const progress_faults&) = delete;
};

/// The destination medium after a copy of `ex` from `source`: `before` is the destination's bytes
/// before it (the same vector as `source` when both are one medium), `after` its bytes now.
struct outcome_checker {
  std::uint32_t lba;
  const std::vector<std::uint8_t>& source;
  const std::vector<std::uint8_t>& before;
  const std::vector<std::uint8_t>& after;

  /// Blocks of the destination ranges holding the source's bytes; every other block of them still
  /// holds its old bytes, and nothing outside them changed.
  std::uint64_t copied_blocks(const std::vector<extent>& ex) const {
    std::vector<bool> in_range(before.size() / lba, false);
    std::uint64_t copied = 0;
    for (const extent& e : ex) {
      for (std::uint64_t b = 0; b < e.length_bytes / lba; ++b) {
        const std::uint64_t s = e.src_offset_bytes + b * lba, d = e.dst_offset_bytes + b * lba;
        in_range[d / lba] = true;
        const bool now_source = std::equal(after.begin() + d, after.begin() + d + lba, source.begin() + s);
        const bool still_old = std::equal(after.begin() + d, after.begin() + d + lba, before.begin() + d);
        CHECK_MESSAGE((now_source || still_old), "destination block " << d / lba << " holds neither");
        if (now_source) ++copied;
      }
    }
    for (std::size_t b = 0; b < in_range.size(); ++b) {
      if (in_range[b]) continue;
      const bool same = std::equal(after.begin() + b * lba, after.begin() + (b + 1) * lba, before.begin() + b * lba);
      CHECK_MESSAGE(same, "block " << b << " outside the destination ranges changed");
    }
    return copied;
  }
};

}  // namespace offcopy::test_faults
