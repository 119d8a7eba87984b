// Fuzz target: the planner, request -> plan (src/core/planner.cpp: validate_extents,
// first_misaligned, has_overlap_hazard, pack_extents). The input picks the unit, the limits, one
// medium or two (and where each side starts on a shared one) and up to 64 extents; whatever it
// is, validation either refuses it or the plan must hold:
//   - bounds: every segment inside both sides;
//   - coverage: each destination block of the request written exactly once, from its own source
//     block (so no destination written twice);
//   - limits: segments per command, blocks per segment, blocks per command, destination
//     contiguity when asked; a memmove-ordered batch is one segment;
//   - on small media, memmove equivalence: executing the plan phase by phase (a barrier starts a
//     phase) -- every batch of a phase reading before any writes, or one after the other in
//     reverse order -- gives the bytes of a memmove of each extent in request order.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <vector>

#include "src/core/planner.hpp"

using namespace offcopy;
using namespace offcopy::detail;

namespace {

[[noreturn]] void broken(int line) {
  std::fprintf(stderr, "planner: invariant at line %d broken\n", line);
  std::abort();
}
#define FUZZ_REQUIRE(cond)         \
  do {                             \
    if (!(cond)) broken(__LINE__); \
  } while (0)

/// Reads little-endian fields off the input, zeros past its end.
struct reader {
  const std::uint8_t* p;
  std::size_t n;
  std::uint64_t take(int bytes) {
    std::uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) {
      const std::uint8_t b = n > 0 ? *p : 0;
      if (n > 0) {
        ++p;
        --n;
      }
      v |= std::uint64_t{b} << (8 * i);
    }
    return v;
  }
};

constexpr std::uint64_t small_medium_units = 4096;  // simulated byte for byte up to this size

/// Runs the plan on `medium` (units of one byte each, the source side at `src_base`, the
/// destination side at `dst_base`); `reverse`: batches of a phase one after the other in reverse
/// order, else all of a phase's reads before its writes.
void execute(const plan& p, std::vector<std::uint8_t>& src_medium, std::vector<std::uint8_t>& dst_medium,
             std::uint64_t src_base, std::uint64_t dst_base, bool reverse) {
  std::size_t i = 0;
  while (i < p.batches.size()) {
    std::size_t end = i + 1;
    while (end < p.batches.size() && !p.batches[end].barrier) ++end;
    if (reverse) {
      for (std::size_t b = end; b-- > i;) {
        const plan_batch& batch = p.batches[b];
        for (std::uint32_t k = 0; k < batch.segment_count; ++k) {
          const plan_segment& s = p.segments[batch.first_segment + k];
          std::memmove(dst_medium.data() + dst_base + s.dst_block, src_medium.data() + src_base + s.src_block,
                       s.blocks);
        }
      }
    } else {
      std::vector<std::vector<std::uint8_t>> read;
      for (std::size_t b = i; b < end; ++b) {
        const plan_batch& batch = p.batches[b];
        for (std::uint32_t k = 0; k < batch.segment_count; ++k) {
          const plan_segment& s = p.segments[batch.first_segment + k];
          const auto* from = src_medium.data() + src_base + s.src_block;
          read.emplace_back(from, from + s.blocks);
        }
      }
      std::size_t r = 0;
      for (std::size_t b = i; b < end; ++b) {
        const plan_batch& batch = p.batches[b];
        for (std::uint32_t k = 0; k < batch.segment_count; ++k) {
          const plan_segment& s = p.segments[batch.first_segment + k];
          std::memcpy(dst_medium.data() + dst_base + s.dst_block, read[r++].data(), s.blocks);
        }
      }
    }
    i = end;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  reader in{data, size};
  const std::uint8_t flags = static_cast<std::uint8_t>(in.take(1));
  const bool same_medium = flags & 1;
  const bool small = flags & 2;
  const std::uint32_t unit = 1u << (in.take(1) % 13);  // 1 B .. 4 KiB
  copy_limits limits;
  limits.max_segments_per_command = static_cast<std::uint32_t>(in.take(1) % 9);  // 0 = no limit
  limits.max_segment_blocks = in.take(2) % 300;
  limits.max_command_blocks = in.take(2) % 600;
  limits.contiguous_destination = flags & 4;
  // Sizes in units; bounded so a plan stays small enough to check every block.
  const std::uint64_t cap = small ? small_medium_units : 1u << 16;
  const std::uint64_t src_units = in.take(2) % (cap + 1);
  const std::uint64_t dst_units = in.take(2) % (cap + 1);
  std::uint64_t src_base = 0, dst_base = 0, medium_units = 0;
  if (same_medium) {
    medium_units = std::max(src_units, dst_units) + in.take(2) % cap;
    src_base = in.take(2) % (medium_units - src_units + 1);
    dst_base = in.take(2) % (medium_units - dst_units + 1);
  }
  const side_geometry src{src_units * unit, false, same_medium ? "m" : "s", same_medium ? src_base * unit : 0};
  const side_geometry dst{dst_units * unit, false, same_medium ? "m" : "d", same_medium ? dst_base * unit : 0};
  std::vector<extent> extents;
  const unsigned count = static_cast<unsigned>(in.take(1) % 65);
  for (unsigned i = 0; i < count && in.n > 0; ++i) {
    extent e;
    // Mostly in units (aligned), sometimes raw bytes (misaligned or absurd).
    const bool raw = in.take(1) % 8 == 0;
    if (raw) {
      e.src_offset_bytes = in.take(8);
      e.dst_offset_bytes = in.take(8);
      e.length_bytes = in.take(8);
    } else {
      e.src_offset_bytes = in.take(2) % (cap + 1) * unit;
      e.dst_offset_bytes = in.take(2) % (cap + 1) * unit;
      e.length_bytes = in.take(2) % (cap / 4 + 1) * unit;
    }
    extents.push_back(e);
  }
  std::vector<extent> v = extents;
  if (!validate_extents(v, src, dst).ok()) return 0;
  if (first_misaligned(v, unit) >= 0) return 0;
  const bool ordered = has_overlap_hazard(v, src, dst);
  const std::int64_t delta =
      same_medium ? (static_cast<std::int64_t>(dst_base) - static_cast<std::int64_t>(src_base)) * unit : 0;
  std::vector<extent> packed = v;  // request order (validation keeps it), as make_plan packs a hazard
  plan p;
  pack_extents(packed, unit, limits, ordered, delta, p);

  // Bounds, limits, coverage.
  std::map<std::uint64_t, std::uint64_t> written;  // destination unit -> source unit
  for (const plan_batch& b : p.batches) {
    FUZZ_REQUIRE(b.segment_count >= 1);
    FUZZ_REQUIRE(std::uint64_t{b.first_segment} + b.segment_count <= p.segments.size());
    if (limits.max_segments_per_command != 0) FUZZ_REQUIRE(b.segment_count <= limits.max_segments_per_command);
    if (b.order != copy_order::any) FUZZ_REQUIRE(b.segment_count == 1);
    std::uint64_t blocks = 0;
    for (std::uint32_t k = 0; k < b.segment_count; ++k) {
      const plan_segment& s = p.segments[b.first_segment + k];
      FUZZ_REQUIRE(s.blocks >= 1);
      if (limits.max_segment_blocks != 0) FUZZ_REQUIRE(s.blocks <= limits.max_segment_blocks);
      FUZZ_REQUIRE(s.src_block + s.blocks <= src_units && s.src_block + s.blocks >= s.src_block);
      FUZZ_REQUIRE(s.dst_block + s.blocks <= dst_units && s.dst_block + s.blocks >= s.dst_block);
      if (limits.contiguous_destination && k > 0) {
        const plan_segment& prev = p.segments[b.first_segment + k - 1];
        FUZZ_REQUIRE(prev.dst_block + prev.blocks == s.dst_block);
      }
      for (std::uint64_t u = 0; u < s.blocks; ++u)
        FUZZ_REQUIRE(written.emplace(s.dst_block + u, s.src_block + u).second);
      blocks += s.blocks;
    }
    if (limits.max_command_blocks != 0) FUZZ_REQUIRE(blocks <= limits.max_command_blocks);
  }
  std::uint64_t requested_units = 0;
  for (const extent& e : v) {
    requested_units += e.length_bytes / unit;
    for (std::uint64_t u = 0; u < e.length_bytes / unit; ++u) {
      auto it = written.find(e.dst_offset_bytes / unit + u);
      FUZZ_REQUIRE(it != written.end() && it->second == e.src_offset_bytes / unit + u);
    }
  }
  FUZZ_REQUIRE(written.size() == requested_units);
  FUZZ_REQUIRE(p.total_bytes() == requested_units * unit);

  // Memmove equivalence, one byte per unit, on small media.
  if (!small) return 0;
  const std::uint64_t units = same_medium ? medium_units : std::max(src_units, dst_units);
  std::vector<std::uint8_t> start(units);
  for (std::uint64_t i = 0; i < units; ++i) start[i] = static_cast<std::uint8_t>(i * 131 + (i >> 8) * 7 + 1);
  std::vector<std::uint8_t> other(units);  // the destination medium when there are two
  for (std::uint64_t i = 0; i < units; ++i) other[i] = static_cast<std::uint8_t>(~start[i]);
  std::vector<std::uint8_t> expect_src = start, expect_dst = same_medium ? start : other;
  for (const extent& e : v) {
    auto& to = same_medium ? expect_src : expect_dst;
    std::memmove(to.data() + dst_base + e.dst_offset_bytes / unit,
                 expect_src.data() + src_base + e.src_offset_bytes / unit, e.length_bytes / unit);
  }
  for (bool reverse : {false, true}) {
    std::vector<std::uint8_t> s = start, d = same_medium ? start : other;
    if (same_medium) {
      execute(p, s, s, src_base, dst_base, reverse);
      FUZZ_REQUIRE(s == expect_src);
    } else {
      execute(p, s, d, 0, 0, reverse);
      FUZZ_REQUIRE(d == expect_dst);
      FUZZ_REQUIRE(s == start);
    }
  }
  return 0;
}
