// Shared pieces of the faults-at-scale property tests (issue 8.9, tests/unit/nvme and
// tests/unit/scsi): iteration count and seed from the environment, a watchdog that turns a hang
// into a failure naming the seed, random helpers.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <random>
#include <string>
#include <thread>

#include <unistd.h>

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
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::thread thread_;
};

/// Uniform in [lo, hi].
inline std::uint64_t pick(std::mt19937_64& g, std::uint64_t lo, std::uint64_t hi) {
  return std::uniform_int_distribution<std::uint64_t>(lo, hi)(g);
}
/// True with probability percent / 100.
inline bool chance(std::mt19937_64& g, unsigned percent) { return pick(g, 0, 99) < percent; }

}  // namespace offcopy::test_faults
