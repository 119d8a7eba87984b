// offcopy/request.hpp: what to copy.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "offcopy/device.hpp"

namespace offcopy {
inline namespace v0 {

/// One byte range to copy: `length_bytes` from `src_offset_bytes` of the source
/// to `dst_offset_bytes` of the destination. Thread safety: a plain value.
struct extent {
  std::uint64_t src_offset_bytes = 0;
  std::uint64_t dst_offset_bytes = 0;
  std::uint64_t length_bytes = 0;
  [[nodiscard]] bool operator==(const extent&) const = default;
};

/// A copy request on open devices. No extents means the whole source to offset 0 of the
/// destination. Thread safety: a plain value (the devices it points to are shareable).
struct request {
  std::shared_ptr<device> source;
  std::shared_ptr<device> destination;
  std::vector<extent> extents;
};

}  // namespace v0
}  // namespace offcopy
