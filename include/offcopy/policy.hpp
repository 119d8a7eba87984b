// offcopy/policy.hpp: how to copy.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <vector>

#include "offcopy/device.hpp"
#include "offcopy/limits.hpp"

namespace offcopy {

enum class copy_mode : std::uint8_t {
  automatic,  ///< offload where possible, fall back otherwise
  offload,    ///< fail (errc::not_supported) rather than fall back
  fallback,   ///< never offload
};

/// How offload commands are submitted.
enum class submission : std::uint8_t { automatic, synchronous, asynchronous };

/// Progress as seen by the engine.
struct progress {
  std::uint64_t bytes_done = 0;
  std::uint64_t bytes_total = 0;
  std::uint64_t commands_done = 0;
  double elapsed_seconds = 0;
};

struct policy {
  copy_mode mode = copy_mode::automatic;
  /// Backends to try, in order; empty means the default order (offload first, then
  /// copy-file-range, then buffered).
  std::vector<backend_kind> backends;
  unsigned commands_in_flight = 32;
  submission submit = submission::automatic;
  /// Applied on top of the device limits; can only tighten them.
  copy_limits limit_override;
  /// Read both sides back with O_DIRECT after the copy and compare.
  bool verify = false;
  /// Same-device copies whose source overlaps their destination: allowed (memmove) unless false.
  bool allow_overlap = true;
  /// Buffered path: bytes per I/O and I/Os in flight (0 = defaults).
  std::uint32_t buffer_bytes = 0;
  unsigned buffers_in_flight = 0;
  /// Make the destination durable (fdatasync / flush) before reporting success.
  bool sync = true;
  std::function<void(const progress&)> on_progress;
  /// Polled between commands; set to true to stop (errc::cancelled).
  const std::atomic<bool>* cancel = nullptr;
};

}  // namespace offcopy
