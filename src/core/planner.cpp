#include "src/core/planner.hpp"

#include <algorithm>
#include <limits>

#include <fmt/format.h>

namespace offcopy {
inline namespace v0 {

const char* to_string(copy_order order) noexcept {
  switch (order) {
    case copy_order::any: return "any";
    case copy_order::ascending: return "ascending";
    case copy_order::descending: return "descending";
  }
  return "?";
}

}  // namespace v0
}  // namespace offcopy

namespace offcopy::detail {
namespace {

bool add_overflows(std::uint64_t a, std::uint64_t b) noexcept {
  return a > std::numeric_limits<std::uint64_t>::max() - b;
}

/// Greedy packer: fills the open command until the next block would break a limit.
class packer {
 public:
  packer(plan& p, const copy_limits& lim) : p_(p), lim_(lim) {}

  void close() noexcept { open_ = false; }

  /// One segment as a batch of its own behind a barrier (a memmove piece: limits already applied).
  void add_alone(const plan_segment& s, copy_order order) {
    close();
    p_.batches.push_back({static_cast<std::uint32_t>(p_.segments.size()), 1, true, order});
    p_.segments.push_back(s);
  }

  void add(std::uint64_t src, std::uint64_t dst, std::uint64_t blocks, bool barrier) {
    if (barrier) close();
    while (blocks > 0) {
      if (open_ && full(dst)) open_ = false;
      if (!open_) {
        p_.batches.push_back({static_cast<std::uint32_t>(p_.segments.size()), 0, barrier});
        barrier = false;
        open_ = true;
        batch_blocks_ = 0;
      }
      plan_batch& b = p_.batches.back();
      std::uint64_t take = blocks;
      if (lim_.max_command_blocks) take = std::min(take, lim_.max_command_blocks - batch_blocks_);
      bool merged = false;
      if (b.segment_count > 0) {
        plan_segment& last = p_.segments.back();
        if (last.src_block + last.blocks == src && last.dst_block + last.blocks == dst &&
            (lim_.max_segment_blocks == 0 || last.blocks < lim_.max_segment_blocks)) {
          if (lim_.max_segment_blocks) take = std::min(take, lim_.max_segment_blocks - last.blocks);
          last.blocks += take;
          merged = true;
        }
      }
      if (!merged) {
        if (lim_.max_segments_per_command && b.segment_count >= lim_.max_segments_per_command) {
          open_ = false;
          continue;
        }
        if (lim_.max_segment_blocks) take = std::min(take, lim_.max_segment_blocks);
        p_.segments.push_back({src, dst, take});
        ++b.segment_count;
      }
      batch_blocks_ += take;
      src += take;
      dst += take;
      blocks -= take;
      next_dst_ = dst;
    }
  }

 private:
  [[nodiscard]] bool full(std::uint64_t dst) const noexcept {
    if (lim_.max_command_blocks && batch_blocks_ >= lim_.max_command_blocks) return true;
    if (lim_.contiguous_destination && dst != next_dst_) return true;
    if (lim_.max_segments_per_command && p_.batches.back().segment_count >= lim_.max_segments_per_command) {
      // Still room when the next piece merges into the last segment.
      const plan_segment& last = p_.segments.back();
      bool mergeable = last.dst_block + last.blocks == dst &&
                       (lim_.max_segment_blocks == 0 || last.blocks < lim_.max_segment_blocks);
      return !mergeable;
    }
    return false;
  }

  plan& p_;
  copy_limits lim_;
  bool open_ = false;
  std::uint64_t batch_blocks_ = 0;
  std::uint64_t next_dst_ = 0;
};

}  // namespace

status validate_extents(std::vector<extent>& extents, const side_geometry& src, const side_geometry& dst) {
  if (extents.empty()) {
    if (src.size_bytes == 0) return status(errc::zero_length, "source is empty: nothing to copy");
    extents.push_back({0, 0, src.size_bytes});
  }
  for (std::size_t i = 0; i < extents.size(); ++i) {
    const extent& e = extents[i];
    if (e.length_bytes == 0) return status(errc::zero_length, fmt::format("extent {}: zero length", i + 1));
    if (add_overflows(e.src_offset_bytes, e.length_bytes) || add_overflows(e.dst_offset_bytes, e.length_bytes))
      return status(errc::invalid_argument, fmt::format("extent {}: offset + length overflows 64 bits", i + 1));
    if (e.src_offset_bytes + e.length_bytes > src.size_bytes)
      return status(errc::out_of_range,
                    fmt::format("extent {}: source bytes [{}, {}) are past the end of the source ({} bytes)", i + 1,
                                e.src_offset_bytes, e.src_offset_bytes + e.length_bytes, src.size_bytes));
    // A growing file still ends at the largest off_t: past it every write fails (EINVAL/EFBIG).
    if (dst.can_grow &&
        e.dst_offset_bytes + e.length_bytes > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      return status(errc::out_of_range,
                    fmt::format("extent {}: destination bytes [{}, {}) are past the largest file offset", i + 1,
                                e.dst_offset_bytes, e.dst_offset_bytes + e.length_bytes));
    if (!dst.can_grow && e.dst_offset_bytes + e.length_bytes > dst.size_bytes)
      return status(errc::out_of_range,
                    fmt::format("extent {}: destination bytes [{}, {}) are past the end of the destination ({} bytes)",
                                i + 1, e.dst_offset_bytes, e.dst_offset_bytes + e.length_bytes, dst.size_bytes));
  }
  // Two extents writing the same destination bytes: sort (destination, index) pairs, which is
  // much faster than an index sorted through the extents (bench/planner.cpp); skipped when the
  // extents are already in destination order.
  const bool in_order = std::is_sorted(extents.begin(), extents.end(), [](const extent& a, const extent& b) {
    return a.dst_offset_bytes < b.dst_offset_bytes;
  });
  if (in_order) {
    for (std::size_t k = 1; k < extents.size(); ++k) {
      const extent& a = extents[k - 1];
      const extent& b = extents[k];
      if (a.dst_offset_bytes + a.length_bytes > b.dst_offset_bytes)
        return status(
            errc::overlap,
            fmt::format("extents {} and {} both write destination bytes [{}, {})", k, k + 1, b.dst_offset_bytes,
                        std::min(a.dst_offset_bytes + a.length_bytes, b.dst_offset_bytes + b.length_bytes)));
    }
  } else {
    std::vector<std::pair<std::uint64_t, std::uint32_t>> by_dst(extents.size());
    for (std::uint32_t i = 0; i < by_dst.size(); ++i) by_dst[i] = {extents[i].dst_offset_bytes, i};
    std::sort(by_dst.begin(), by_dst.end());
    for (std::size_t k = 1; k < by_dst.size(); ++k) {
      const std::uint32_t order_a = by_dst[k - 1].second, order_b = by_dst[k].second;
      const extent& a = extents[order_a];
      const extent& b = extents[order_b];
      if (a.dst_offset_bytes + a.length_bytes > b.dst_offset_bytes) {
        auto lo = std::min(order_a, order_b) + 1;
        auto hi = std::max(order_a, order_b) + 1;
        return status(errc::overlap,
                      fmt::format("extents {} and {} both write destination bytes [{}, {})", lo, hi, b.dst_offset_bytes,
                                  std::min(a.dst_offset_bytes + a.length_bytes, b.dst_offset_bytes + b.length_bytes)));
      }
    }
  }
  return {};
}

std::int64_t first_misaligned(const std::vector<extent>& extents, std::uint32_t unit_bytes) noexcept {
  if (unit_bytes <= 1) return -1;
  for (std::size_t i = 0; i < extents.size(); ++i) {
    const extent& e = extents[i];
    if (e.src_offset_bytes % unit_bytes || e.dst_offset_bytes % unit_bytes || e.length_bytes % unit_bytes)
      return static_cast<std::int64_t>(i);
  }
  return -1;
}

bool has_overlap_hazard(const std::vector<extent>& extents, const side_geometry& src, const side_geometry& dst) {
  if (src.identity.empty() || src.identity != dst.identity) return false;
  // Destination ranges on the medium, sorted; they do not overlap each other (validated).
  std::vector<std::pair<std::uint64_t, std::uint64_t>> d;
  d.reserve(extents.size());
  for (const extent& e : extents) {
    std::uint64_t s = e.dst_offset_bytes + dst.identity_offset_bytes;
    d.emplace_back(s, s + e.length_bytes);
  }
  std::sort(d.begin(), d.end());
  for (const extent& e : extents) {
    std::uint64_t s = e.src_offset_bytes + src.identity_offset_bytes;
    std::uint64_t end = s + e.length_bytes;
    // First destination range ending after s.
    auto it = std::upper_bound(
        d.begin(), d.end(), s,
        [](std::uint64_t v, const std::pair<std::uint64_t, std::uint64_t>& r) { return v < r.second; });
    if (it != d.end() && it->first < end) return true;
  }
  return false;
}

void pack_extents(std::vector<extent>& extents, std::uint32_t unit_bytes, const copy_limits& limits, bool ordered,
                  std::int64_t medium_delta_bytes, plan& p) {
  p.segments.clear();
  p.batches.clear();
  p.block_bytes = unit_bytes;
  p.limits = limits;
  p.ordered = ordered;
  packer pk(p, limits);
  const std::uint64_t u = unit_bytes;

  if (!ordered) {
    // Reserve what the limits can split the extents into: growing past a plain reserve(n) by even
    // one segment doubles the vector and the planner's peak memory (bench/planner.cpp).
    std::size_t bound = 0;
    std::uint64_t total_blocks = 0;
    for (const extent& e : extents) {
      const std::uint64_t blocks = e.length_bytes / u;
      total_blocks += blocks;
      bound += limits.max_segment_blocks ? (blocks + limits.max_segment_blocks - 1) / limits.max_segment_blocks : 1;
    }
    if (limits.max_command_blocks) bound += total_blocks / limits.max_command_blocks + 1;
    p.segments.reserve(bound);
    auto by_dst = [](const extent& a, const extent& b) { return a.dst_offset_bytes < b.dst_offset_bytes; };
    if (!std::is_sorted(extents.begin(), extents.end(), by_dst)) std::sort(extents.begin(), extents.end(), by_dst);
    for (const extent& e : extents) pk.add(e.src_offset_bytes / u, e.dst_offset_bytes / u, e.length_bytes / u, false);
    return;
  }

  // The largest one-segment command the limits allow (0: unlimited): the size of the pieces an
  // extent overlapping itself is cut into, so its plan is no bigger than that of a plain copy.
  std::uint64_t max_piece = 0;
  for (std::uint64_t v : {limits.max_segment_blocks, limits.max_command_blocks})
    if (v != 0 && (max_piece == 0 || v < max_piece)) max_piece = v;
  p.segments.reserve(extents.size());
  for (const extent& e : extents) {
    // Positions on the shared medium decide self-overlap: dst_medium - src_medium.
    std::int64_t shift = static_cast<std::int64_t>(e.dst_offset_bytes) - static_cast<std::int64_t>(e.src_offset_bytes) +
                         medium_delta_bytes;
    std::uint64_t distance = static_cast<std::uint64_t>(shift < 0 ? -shift : shift);
    std::uint64_t src = e.src_offset_bytes / u, dst = e.dst_offset_bytes / u, blocks = e.length_bytes / u;
    if (distance >= e.length_bytes || distance == 0) {
      pk.add(src, dst, blocks, true);
      continue;
    }
    const bool up = shift > 0;
    const std::uint64_t d = std::max<std::uint64_t>(1, distance / u);
    if (max_piece != 0 && d >= max_piece) {
      // Pieces of d blocks never read what an earlier piece wrote when they run in memmove order
      // (from the end when moving up) with a barrier each; a piece may be split by the limits
      // and its parts run concurrently, since none of them overlaps another.
      if (up) {
        for (std::uint64_t remaining = blocks; remaining > 0;) {
          std::uint64_t n = std::min(d, remaining);
          remaining -= n;
          pk.add(src + remaining, dst + remaining, n, true);
        }
      } else {
        for (std::uint64_t off = 0; off < blocks;) {
          std::uint64_t n = std::min(d, blocks - off);
          pk.add(src + off, dst + off, n, true);
          off += n;
        }
      }
      pk.close();
      continue;
    }
    // A shift shorter than a command: pieces of a whole command each, in memmove order behind a
    // barrier each; a piece longer than the shift is one segment the copier runs in memmove order.
    const std::uint64_t piece = max_piece == 0 ? blocks : max_piece;
    const copy_order order = up ? copy_order::descending : copy_order::ascending;
    plan_segment rest{src, dst, blocks};
    while (rest.blocks > 0) {
      plan_segment s = take_memmove_piece(rest, order, piece);
      pk.add_alone(s, distance < s.blocks * u ? order : copy_order::any);
    }
  }
}

std::uint64_t smallest_self_overlap_shift(const std::vector<extent>& extents,
                                          std::int64_t medium_delta_bytes) noexcept {
  std::uint64_t smallest = 0;
  for (const extent& e : extents) {
    const std::int64_t shift = static_cast<std::int64_t>(e.dst_offset_bytes) -
                               static_cast<std::int64_t>(e.src_offset_bytes) + medium_delta_bytes;
    const std::uint64_t distance = static_cast<std::uint64_t>(shift < 0 ? -shift : shift);
    if (distance != 0 && distance < e.length_bytes && (smallest == 0 || distance < smallest)) smallest = distance;
  }
  return smallest;
}

std::uint64_t memmove_piece_blocks(const plan_segment& s, std::uint32_t unit_bytes,
                                   std::int64_t medium_delta_bytes) noexcept {
  const std::int64_t u = unit_bytes == 0 ? 1 : unit_bytes;
  const std::int64_t shift =
      static_cast<std::int64_t>(s.dst_block) * u + medium_delta_bytes - static_cast<std::int64_t>(s.src_block) * u;
  const std::uint64_t distance = static_cast<std::uint64_t>(shift < 0 ? -shift : shift);
  return std::max<std::uint64_t>(1, distance / static_cast<std::uint64_t>(u));
}

plan_segment take_memmove_piece(plan_segment& rest, copy_order order, std::uint64_t max_blocks) noexcept {
  const std::uint64_t n = std::min(rest.blocks, std::max<std::uint64_t>(1, max_blocks));
  plan_segment piece;
  if (order == copy_order::descending) {
    piece = {rest.src_block + rest.blocks - n, rest.dst_block + rest.blocks - n, n};
  } else {
    piece = {rest.src_block, rest.dst_block, n};
    rest.src_block += n;
    rest.dst_block += n;
  }
  rest.blocks -= n;
  return piece;
}

}  // namespace offcopy::detail
