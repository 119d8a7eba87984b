// The backend-neutral planner: validation and packing, pure (no I/O) so it can be tested alone.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "offcopy/plan.hpp"
#include "offcopy/request.hpp"
#include "offcopy/status.hpp"

namespace offcopy::detail {

/// What validation needs to know of one side.
struct side_geometry {
  std::uint64_t size_bytes = 0;
  bool can_grow = false;  ///< regular-file destinations may be extended
  std::string identity;   ///< equal identities = same medium
  std::uint64_t identity_offset_bytes = 0;
};

/// Checks extents in place (fills the whole-device default when empty): zero length, overflow,
/// bounds, two extents writing the same destination bytes. Writes nothing.
[[nodiscard]] status validate_extents(std::vector<extent>& extents, const side_geometry& src, const side_geometry& dst);

/// Index of the first extent whose offsets or length are not multiples of `unit_bytes`, or -1.
[[nodiscard]] std::int64_t first_misaligned(const std::vector<extent>& extents, std::uint32_t unit_bytes) noexcept;

/// True when some extent's source bytes are some extent's destination bytes on the same medium.
[[nodiscard]] bool has_overlap_hazard(const std::vector<extent>& extents, const side_geometry& src,
                                      const side_geometry& dst);

/// Packs validated, unit-aligned extents into p.segments / p.batches within `limits`.
/// Without hazards the extents are sorted by destination, adjacent ones merged and greedily
/// packed. With hazards (`ordered`), request order is kept and each extent starts after a
/// barrier. An extent overlapping itself (shift distance d < its length) is cut, in memmove
/// order, into barrier-separated pieces as large as the limits allow; a piece longer than d is
/// one segment whose batch carries the memmove direction (plan_batch::order). The plan's size is
/// therefore that of a non-overlapping copy of the same bytes, whatever d is.
/// `medium_delta_bytes` = where the destination starts on the shared medium minus where the
/// source starts (partitions of one disk); 0 for one file or device.
void pack_extents(std::vector<extent>& extents, std::uint32_t unit_bytes, const copy_limits& limits, bool ordered,
                  std::int64_t medium_delta_bytes, plan& p);

/// Packs the segments of a gathering part (one destination namespace, several source namespaces:
/// plan_segment::source) into p.segments / p.batches as part `part`: sorted by destination,
/// neighbours from one source merged, then greedily: a command ends where the destination is not
/// contiguous, at `max_segments` ranges, at `max_command_blocks`, and before a range of
/// `own_source` (the destination's own namespace, -1: none) that would follow a range of another
/// source; each range at most segment_blocks[source] blocks (0: no limit). Every condition is
/// monotone (a part of a valid command is valid), so greedy gives the fewest commands.
void pack_gather(std::vector<plan_segment> items, std::span<const std::uint32_t> segment_blocks,
                 std::uint32_t max_segments, std::uint64_t max_command_blocks, std::int64_t own_source,
                 std::uint32_t part, plan& p);

/// A move within one file reaches copy_file_range only when its shift is at least this: the
/// kernel cannot copy a range onto itself, so it runs in pieces of the shift, one call each;
/// a smaller shift is the buffered copier's (from the plan on: make_plan does not choose
/// copy_file_range for it).
inline constexpr std::uint64_t min_copy_file_range_shift_bytes = 1ULL << 20;

/// The smallest shift distance among the extents that overlap themselves on the shared medium
/// (a move by less than their length), or 0 when none does.
[[nodiscard]] std::uint64_t smallest_self_overlap_shift(const std::vector<extent>& extents,
                                                        std::int64_t medium_delta_bytes) noexcept;

/// The shift distance of a segment on its medium, in whole blocks, at least 1: the largest piece
/// of a memmove-ordered segment that does not overlap itself.
[[nodiscard]] std::uint64_t memmove_piece_blocks(const plan_segment& s, std::uint32_t unit_bytes,
                                                 std::int64_t medium_delta_bytes) noexcept;

/// Cuts the next piece, at most `max_blocks`, off a segment that must be copied in `order`
/// (from the end of `rest` when descending, from its start when ascending); `rest` keeps the
/// remainder. Run one after the other, the pieces give memmove's result when each is no longer
/// than memmove_piece_blocks().
[[nodiscard]] plan_segment take_memmove_piece(plan_segment& rest, copy_order order, std::uint64_t max_blocks) noexcept;

}  // namespace offcopy::detail
