// offcopy/report.hpp: what a copy did.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "offcopy/device.hpp"
#include "offcopy/status.hpp"

namespace offcopy {

struct backend_usage {
  std::uint64_t bytes = 0;
  std::uint64_t commands = 0;
  std::uint64_t retries = 0;  ///< commands re-sent smaller after "size limit exceeded"
  /// Of `bytes`, those shared with the source by the file system (a reflink clone), not copied.
  std::uint64_t cloned_bytes = 0;
};

struct report {
  status result;                   ///< first error, or ok
  std::uint64_t bytes_requested = 0;
  std::uint64_t bytes_copied = 0;  ///< bytes known to be at the destination
  std::array<backend_usage, 5> usage{};  ///< indexed by backend_kind
  std::vector<std::string> fallback_reasons;
  double elapsed_seconds = 0;
  bool verified = false;           ///< verify ran and matched
  std::int64_t first_mismatch_offset = -1;  ///< destination byte offset, when verify failed

  [[nodiscard]] backend_usage& of(backend_kind b) noexcept { return usage[static_cast<std::size_t>(b)]; }
  [[nodiscard]] const backend_usage& of(backend_kind b) const noexcept {
    return usage[static_cast<std::size_t>(b)];
  }
  [[nodiscard]] std::string to_text() const;
  /// DESIGN §5 JSON: bytes_copied, backends{name:{bytes,commands}}, fallback_reason, error, ...
  [[nodiscard]] std::string to_json() const;
};

}  // namespace offcopy
