// The backend-neutral planner: validation and packing, pure (no I/O) so it can be tested alone.
#pragma once

#include <cstdint>
#include <vector>

#include "offcopy/plan.hpp"
#include "offcopy/request.hpp"
#include "offcopy/status.hpp"

namespace offcopy::detail {

/// What validation needs to know of one side.
struct side_geometry {
  std::uint64_t size_bytes = 0;
  bool can_grow = false;           ///< regular-file destinations may be extended
  std::string identity;            ///< equal identities = same medium
  std::uint64_t identity_offset_bytes = 0;
};

/// Checks extents in place (fills the whole-device default when empty): zero length, overflow,
/// bounds, two extents writing the same destination bytes. Writes nothing.
[[nodiscard]] status validate_extents(std::vector<extent>& extents, const side_geometry& src,
                                      const side_geometry& dst);

/// Index of the first extent whose offsets or length are not multiples of `unit_bytes`, or -1.
[[nodiscard]] std::int64_t first_misaligned(const std::vector<extent>& extents, std::uint32_t unit_bytes) noexcept;

/// True when some extent's source bytes are some extent's destination bytes on the same medium.
[[nodiscard]] bool has_overlap_hazard(const std::vector<extent>& extents, const side_geometry& src,
                                      const side_geometry& dst);

/// Packs validated, unit-aligned extents into p.segments / p.batches within `limits`.
/// Without hazards the extents are sorted by destination, adjacent ones merged and greedily
/// packed. With hazards (`ordered`), request order is kept, each extent starts after a barrier,
/// and an extent overlapping itself is split into pieces that do not, in memmove order.
void pack_extents(std::vector<extent>& extents, std::uint32_t unit_bytes, const copy_limits& limits,
                  bool ordered, std::int64_t medium_delta_bytes, plan& p);

}  // namespace offcopy::detail
