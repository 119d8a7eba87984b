// offcopy/limits.hpp: copy-command limits, the planner's only view of a backend.
#pragma once

#include <cstdint>

#include "offcopy/export.h"

namespace offcopy {
inline namespace v0 {

/// Limits of one copy command, in logical blocks. 0 means "no limit". Thread safety: a plain value.
struct OFFCOPY_API copy_limits {
  std::uint32_t max_segments_per_command = 0;  ///< NVMe MSRC+1, XCOPY max segment descriptors
  std::uint64_t max_segment_blocks = 0;        ///< NVMe MSSRL, XCOPY min(65535, max segment length)
  std::uint64_t max_command_blocks = 0;        ///< NVMe MCL, token max transfer size
  /// NVMe Copy shape: a command gathers its sources into one contiguous destination run.
  bool contiguous_destination = false;

  /// The stricter of two limits, field by field (0 = none). Overrides can only tighten.
  [[nodiscard]] copy_limits tightened(const copy_limits& other) const noexcept;
  [[nodiscard]] bool operator==(const copy_limits&) const = default;
};

}  // namespace v0
}  // namespace offcopy
