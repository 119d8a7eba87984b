// offcopy/request.hpp: what to copy.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "offcopy/device.hpp"

namespace offcopy {
inline namespace v0 {

/// One byte range to copy: `length_bytes` from `src_offset_bytes` of source `source`
/// to `dst_offset_bytes` of the destination. Thread safety: a plain value.
struct extent {
  std::uint64_t src_offset_bytes = 0;
  std::uint64_t dst_offset_bytes = 0;
  std::uint64_t length_bytes = 0;
  /// Which source it reads: 0 the request's `source`, k its `sources[k - 1]` (a gather from
  /// several devices into one destination, docs/architecture.md §4b).
  std::uint32_t source = 0;
  [[nodiscard]] bool operator==(const extent&) const = default;
};

/// A copy request on open devices. No extents means the whole source to offset 0 of the
/// destination. Thread safety: a plain value (the devices it points to are shareable).
struct request {
  std::shared_ptr<device> source;
  std::shared_ptr<device> destination;
  std::vector<extent> extents;
  /// More sources, named by extent::source (k = sources[k - 1]); with any, extents are required.
  std::vector<std::shared_ptr<device>> sources;
};

}  // namespace v0
}  // namespace offcopy
