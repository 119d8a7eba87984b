// offcopy/report.hpp: what a copy did.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "offcopy/device.hpp"
#include "offcopy/export.h"
#include "offcopy/status.hpp"
#include "offcopy/timings.hpp"

namespace offcopy {
inline namespace v0 {

/// What one backend did. Thread safety: a plain value.
struct backend_usage {
  std::uint64_t bytes = 0;
  std::uint64_t commands = 0;
  std::uint64_t retries = 0;  ///< commands re-sent smaller after "size limit exceeded"
  /// Of `bytes`, those shared with the source by the file system (a reflink clone), not copied.
  std::uint64_t cloned_bytes = 0;
};

/// What a copy did. Thread safety: a plain value.
struct OFFCOPY_API report {
  status result;  ///< first error, or ok
  std::uint64_t bytes_requested = 0;
  std::uint64_t bytes_copied = 0;  ///< bytes known to be at the destination
  /// Per backend name, in order of first use.
  std::vector<std::pair<std::string, backend_usage>> usage;
  std::vector<std::string> fallback_reasons;
  double elapsed_seconds = 0;               ///< execute(): start to the last completion and sync (verify excluded)
  timings time;                             ///< the plan's probe/plan times plus flush, copy, verify
  bool verified = false;                    ///< verify ran and matched
  bool verify_skipped = false;              ///< verify was asked for but cannot run (overlapping move)
  std::int64_t first_mismatch_offset = -1;  ///< destination byte offset, when verify failed
  /// Source media read by gathering commands (one NVMe Copy naming several namespaces), each once.
  std::vector<std::string> gathered_sources;

  /// The usage of backend `name` (added, zero, when not used yet).
  [[nodiscard]] backend_usage& of(std::string_view name);
  /// The usage of backend `name`; zeros when it was not used.
  [[nodiscard]] const backend_usage& of(std::string_view name) const noexcept;
  /// Human-readable, terminal-safe.
  [[nodiscard]] std::string to_text() const;
  /// DESIGN §5 JSON: bytes_copied, backends{name:{bytes,commands}}, fallback_reason, error, ...;
  /// valid UTF-8.
  [[nodiscard]] std::string to_json() const;
};

}  // namespace v0
}  // namespace offcopy
