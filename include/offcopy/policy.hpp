// offcopy/policy.hpp: how to copy.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "offcopy/device.hpp"
#include "offcopy/export.h"
#include "offcopy/limits.hpp"

namespace offcopy {
inline namespace v0 {

enum class copy_mode : std::uint8_t {
  automatic,  ///< offload where possible, fall back otherwise
  offload,    ///< fail (errc::not_supported) rather than fall back
  fallback,   ///< never offload
};

/// How offload commands are submitted.
enum class submission : std::uint8_t { automatic, synchronous, asynchronous };

/// Progress as seen by the engine. Thread safety: a plain value.
struct progress {
  std::uint64_t bytes_done = 0;
  std::uint64_t bytes_total = 0;
  std::uint64_t commands_done = 0;
  double elapsed_seconds = 0;
};

/// A registered backend. Thread safety: a plain value.
struct backend_info {
  std::string name;      ///< "nvme-copy", "scsi-xcopy", "scsi-token", "copy-file-range", "buffered"
  bool offload = false;  ///< device-side copy (else a host-side fallback)
};

/// The registered backends, in default order of preference.
[[nodiscard]] OFFCOPY_API std::vector<backend_info> registered_backends();

/// How to copy. Thread safety: a plain value; one policy may serve several copies at once when
/// its callback tolerates it.
struct policy {
  copy_mode mode = copy_mode::automatic;
  /// Names of the backends to try, in order (see registered_backends()); empty means the
  /// registry's order (offload first, then copy-file-range, then buffered). An unknown name is
  /// errc::invalid_argument.
  std::vector<std::string> backends;
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
  /// Called after each completed command, on the thread that called execute() (or ran the job),
  /// never concurrently with itself, with bytes_done never decreasing. It must not throw (an
  /// exception stops the copy as errc::internal) and must not start another copy on the same
  /// destination.
  std::function<void(const progress&)> on_progress;
  /// Polled before each command is submitted (and by the buffered fallback before each buffer of
  /// a command); set to true (from any thread, or a signal handler) to stop: the report's result
  /// is errc::cancelled, with the bytes done so far.
  const std::atomic<bool>* cancel = nullptr;
};

}  // namespace v0
}  // namespace offcopy
