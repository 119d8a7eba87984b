// Property tests of the pure planner (src/core/planner.cpp): random requests, random limits.
//
// For every random case the plan must
//   - cover exactly the requested bytes: each destination block written once, from the right source block;
//   - respect every limit in every batch (segments per command, blocks per segment, blocks per command,
//     destination contiguity when required);
//   - give, when executed batch by batch -- within a barrier phase in any order, since in-flight commands
//     complete out of order -- the same bytes as a reference memmove of each extent in request order;
//     a batch carrying a memmove order (one segment overlapping itself) runs either as one memmove, as
//     the buffered copier does, or cut by take_memmove_piece into pieces of the shift distance, one
//     after the other, each copied in a random byte order, as the engine does for an offload backend;
//   - stay as small as a plain copy's plan: an extent overlapping itself costs no more batches than
//     twice the extent's length over the largest command, whatever the shift (issue 8.3).
// The seed is printed on failure; OFFCOPY_SEED=<n> replays one run.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "src/core/planner.hpp"

using namespace offcopy;
using namespace offcopy::detail;

namespace {

std::uint64_t base_seed() {
  if (const char* s = std::getenv("OFFCOPY_SEED")) return std::strtoull(s, nullptr, 0);
  return 0x0FFC0B7ULL;
}

/// One random request on one or two media, all positions in blocks of `unit` bytes.
struct scenario {
  std::uint32_t unit = 1;
  bool same_medium = false;
  std::uint64_t medium_blocks = 0;               ///< same medium: its size
  std::uint64_t src_base = 0, dst_base = 0;      ///< same medium: where each side starts
  std::uint64_t src_blocks = 0, dst_blocks = 0;  ///< size of each side
  std::vector<extent> extents;                   ///< in bytes, request order
  copy_limits limits;

  [[nodiscard]] side_geometry src_geometry() const {
    return {src_blocks * unit, false, same_medium ? "medium" : "src", same_medium ? src_base * unit : 0};
  }
  [[nodiscard]] side_geometry dst_geometry() const {
    return {dst_blocks * unit, false, same_medium ? "medium" : "dst", same_medium ? dst_base * unit : 0};
  }
  [[nodiscard]] std::int64_t medium_delta_bytes() const {
    return same_medium ? (static_cast<std::int64_t>(dst_base) - static_cast<std::int64_t>(src_base)) * unit : 0;
  }
  [[nodiscard]] std::string describe() const {
    std::ostringstream o;
    o << "unit " << unit << (same_medium ? " same medium" : " two media") << " src " << src_base << "+" << src_blocks
      << " dst " << dst_base << "+" << dst_blocks << " limits {" << limits.max_segments_per_command << ", "
      << limits.max_segment_blocks << ", " << limits.max_command_blocks << ", "
      << (limits.contiguous_destination ? "contiguous" : "scatter") << "} extents:";
    for (const extent& e : extents)
      o << " " << e.src_offset_bytes << ":" << e.dst_offset_bytes << ":" << e.length_bytes;
    return o.str();
  }
};

std::uint64_t pick(std::mt19937_64& rng, std::uint64_t lo, std::uint64_t hi) {  // inclusive
  return std::uniform_int_distribution<std::uint64_t>(lo, hi)(rng);
}
bool chance(std::mt19937_64& rng, double p) { return std::bernoulli_distribution(p)(rng); }

copy_limits random_limits(std::mt19937_64& rng) {
  copy_limits l;
  l.max_segments_per_command = chance(rng, 0.3) ? 0 : static_cast<std::uint32_t>(pick(rng, 1, 6));
  l.max_segment_blocks = chance(rng, 0.3) ? 0 : pick(rng, 1, 16);
  l.max_command_blocks = chance(rng, 0.3) ? 0 : pick(rng, 1, 40);
  l.contiguous_destination = chance(rng, 0.5);
  return l;
}

scenario random_scenario(std::mt19937_64& rng) {
  scenario sc;
  const std::uint32_t units[] = {1, 1, 8, 512};
  sc.unit = units[pick(rng, 0, 3)];
  sc.same_medium = chance(rng, 0.45);
  if (sc.same_medium) {
    sc.medium_blocks = pick(rng, 8, 256);
    if (chance(rng, 0.5)) {  // one file: both sides are the whole medium
      sc.src_blocks = sc.dst_blocks = sc.medium_blocks;
    } else {  // two partitions (possibly overlapping) of one disk
      sc.src_base = pick(rng, 0, sc.medium_blocks / 2);
      sc.dst_base = pick(rng, 0, sc.medium_blocks / 2);
      sc.src_blocks = pick(rng, 1, sc.medium_blocks - sc.src_base);
      sc.dst_blocks = pick(rng, 1, sc.medium_blocks - sc.dst_base);
    }
  } else {
    sc.src_blocks = pick(rng, 1, 256);
    sc.dst_blocks = pick(rng, 1, 256);
  }
  // Disjoint destinations, walking up with small gaps (often none: adjacent extents).
  std::vector<std::pair<std::uint64_t, std::uint64_t>> dsts;                        // start, blocks
  std::uint64_t pos = pick(rng, 0, std::min<std::uint64_t>(4, sc.dst_blocks - 1));  // at least one extent fits
  std::uint64_t want = pick(rng, 1, chance(rng, 0.2) ? 40 : 10);
  std::uint64_t max_len = std::min<std::uint64_t>(sc.src_blocks, chance(rng, 0.5) ? 8 : 64);
  while (dsts.size() < want && pos < sc.dst_blocks) {
    std::uint64_t len = std::min(pick(rng, 1, max_len), sc.dst_blocks - pos);
    dsts.emplace_back(pos, len);
    pos += len + (chance(rng, 0.5) ? 0 : pick(rng, 1, 5));
  }
  std::uint64_t prev_src_end = 0;
  for (auto [d, len] : dsts) {
    std::uint64_t s;
    if (prev_src_end + len <= sc.src_blocks && chance(rng, 0.35)) {
      s = prev_src_end;  // source continues the previous extent: a merge candidate
    } else if (sc.same_medium && chance(rng, 0.3)) {
      // A source near its own destination on the medium: self-overlap (memmove) cases.
      std::int64_t near = static_cast<std::int64_t>(d + sc.dst_base) - static_cast<std::int64_t>(sc.src_base) +
                          static_cast<std::int64_t>(pick(rng, 0, 2 * len)) - static_cast<std::int64_t>(len);
      s = static_cast<std::uint64_t>(std::clamp<std::int64_t>(near, 0, static_cast<std::int64_t>(sc.src_blocks - len)));
    } else {
      s = pick(rng, 0, sc.src_blocks - len);
    }
    prev_src_end = s + len;
    sc.extents.push_back({s * sc.unit, d * sc.unit, len * sc.unit});
  }
  std::shuffle(sc.extents.begin(), sc.extents.end(), rng);  // request order is not destination order
  sc.limits = random_limits(rng);
  return sc;
}

/// Brute force: does some extent's source share medium bytes with some extent's destination?
bool brute_hazard(const scenario& sc) {
  if (!sc.same_medium) return false;
  std::vector<char> written(sc.medium_blocks * sc.unit, 0);
  for (const extent& e : sc.extents)
    for (std::uint64_t i = 0; i < e.length_bytes; ++i) written[sc.dst_base * sc.unit + e.dst_offset_bytes + i] = 1;
  for (const extent& e : sc.extents)
    for (std::uint64_t i = 0; i < e.length_bytes; ++i)
      if (written[sc.src_base * sc.unit + e.src_offset_bytes + i]) return true;
  return false;
}

/// Byte arrays standing for the media.
struct media {
  std::vector<std::uint8_t> src, dst;  // same medium: only `src` is used
  std::uint8_t* src_side(const scenario& sc) { return src.data() + (sc.same_medium ? sc.src_base * sc.unit : 0); }
  std::uint8_t* dst_side(const scenario& sc) {
    return sc.same_medium ? src.data() + sc.dst_base * sc.unit : dst.data();
  }
};

media random_media(const scenario& sc, std::mt19937_64& rng) {
  media m;
  auto fill = [&](std::vector<std::uint8_t>& v, std::uint64_t n) {
    v.resize(n);
    for (auto& b : v) b = static_cast<std::uint8_t>(rng());
  };
  if (sc.same_medium) {
    fill(m.src, sc.medium_blocks * sc.unit);
  } else {
    fill(m.src, sc.src_blocks * sc.unit);
    fill(m.dst, sc.dst_blocks * sc.unit);
  }
  return m;
}

/// Checks every property of `p` for `sc`; returns the first violation, or "".
std::string check_plan(const scenario& sc, const plan& p, bool hazard, const media& initial, std::mt19937_64& rng) {
  std::ostringstream err;
  const copy_limits& lim = sc.limits;
  if (p.block_bytes != sc.unit) return "block_bytes differs from the unit";
  if (p.ordered != hazard) return "ordered flag differs from the hazard";
  // Batches partition the segments in order, none empty.
  std::uint64_t next = 0;
  for (std::size_t i = 0; i < p.batches.size(); ++i) {
    const plan_batch& b = p.batches[i];
    if (b.first_segment != next || b.segment_count == 0) {
      err << "batch " << i << " does not follow on (first " << b.first_segment << ", count " << b.segment_count << ")";
      return err.str();
    }
    next += b.segment_count;
    if (!hazard && b.barrier) return "a barrier in a plan without overlap";
    // Limits.
    if (lim.max_segments_per_command && b.segment_count > lim.max_segments_per_command) {
      err << "batch " << i << ": " << b.segment_count << " segments > " << lim.max_segments_per_command;
      return err.str();
    }
    std::uint64_t blocks = 0;
    for (std::uint32_t k = 0; k < b.segment_count; ++k) {
      const plan_segment& s = p.segments[b.first_segment + k];
      if (s.blocks == 0) return "empty segment";
      if (lim.max_segment_blocks && s.blocks > lim.max_segment_blocks) {
        err << "batch " << i << " segment " << k << ": " << s.blocks << " blocks > " << lim.max_segment_blocks;
        return err.str();
      }
      if (k > 0) {
        const plan_segment& prev = p.segments[b.first_segment + k - 1];
        if (lim.contiguous_destination && prev.dst_block + prev.blocks != s.dst_block) {
          err << "batch " << i << ": destination not contiguous at segment " << k;
          return err.str();
        }
        // Adjacent on both sides must have been merged, unless the segment limit forbade it.
        if (prev.src_block + prev.blocks == s.src_block && prev.dst_block + prev.blocks == s.dst_block &&
            (lim.max_segment_blocks == 0 || prev.blocks < lim.max_segment_blocks)) {
          err << "batch " << i << ": segments " << k - 1 << " and " << k << " should have been merged";
          return err.str();
        }
      }
      blocks += s.blocks;
    }
    if (lim.max_command_blocks && blocks > lim.max_command_blocks) {
      err << "batch " << i << ": " << blocks << " blocks > " << lim.max_command_blocks;
      return err.str();
    }
  }
  if (next != p.segments.size()) return "segments outside any batch";

  // Coverage: destination block -> the source block it must come from.
  constexpr std::uint64_t none = std::numeric_limits<std::uint64_t>::max();
  std::vector<std::uint64_t> want(sc.dst_blocks, none);
  std::uint64_t requested = 0;
  for (const extent& e : sc.extents)
    for (std::uint64_t i = 0; i < e.length_bytes / sc.unit; ++i)
      want[e.dst_offset_bytes / sc.unit + i] = e.src_offset_bytes / sc.unit + i;
  for (const extent& e : sc.extents) requested += e.length_bytes;
  std::vector<std::uint32_t> writes(sc.dst_blocks, 0);
  for (const plan_segment& s : p.segments) {
    for (std::uint64_t i = 0; i < s.blocks; ++i) {
      std::uint64_t d = s.dst_block + i;
      if (d >= sc.dst_blocks || want[d] == none) {
        err << "destination block " << d << " was not requested";
        return err.str();
      }
      if (want[d] != s.src_block + i) {
        err << "destination block " << d << " comes from source block " << s.src_block + i << ", not " << want[d];
        return err.str();
      }
      if (++writes[d] > 1) {
        err << "destination block " << d << " written twice";
        return err.str();
      }
    }
  }
  if (p.total_bytes() != requested) {
    err << "plan moves " << p.total_bytes() << " bytes, request " << requested;
    return err.str();
  }

  // Execution. Phases: a barrier batch starts a new phase; within a phase anything may run concurrently.
  struct phase_segment {
    plan_segment s;
    copy_order order = copy_order::any;
  };
  std::vector<std::vector<phase_segment>> phases;
  for (std::size_t i = 0; i < p.batches.size(); ++i) {
    const plan_batch& b = p.batches[i];
    if (b.order != copy_order::any) {
      // One segment, behind a barrier, alone in its phase, really overlapping itself in that direction.
      if (b.segment_count != 1 || !b.barrier || (i + 1 < p.batches.size() && !p.batches[i + 1].barrier)) {
        err << "memmove batch " << i << " is not one segment alone between barriers";
        return err.str();
      }
      const plan_segment& s = p.segments[b.first_segment];
      std::int64_t shift =
          (static_cast<std::int64_t>(sc.dst_base + s.dst_block) - static_cast<std::int64_t>(sc.src_base + s.src_block));
      if (!sc.same_medium || shift == 0 || std::abs(shift) >= static_cast<std::int64_t>(s.blocks) ||
          (shift > 0) != (b.order == copy_order::descending)) {
        err << "memmove batch " << i << " (" << to_string(b.order) << ", shift " << shift
            << ") does not overlap itself that way";
        return err.str();
      }
    }
    if (phases.empty() || b.barrier) phases.emplace_back();
    for (std::uint32_t k = 0; k < b.segment_count; ++k)
      phases.back().push_back({p.segments[b.first_segment + k], b.order});
  }
  if (hazard) {
    // Bounded: a self-overlapping extent costs about what a plain copy of it costs.
    std::uint64_t max_piece = 0;
    for (std::uint64_t v : {lim.max_segment_blocks, lim.max_command_blocks})
      if (v != 0 && (max_piece == 0 || v < max_piece)) max_piece = v;
    std::uint64_t bound = 0;
    for (const extent& e : sc.extents) {
      std::uint64_t blocks = e.length_bytes / sc.unit;
      bound += max_piece == 0 ? 1 : 2 * ((blocks + max_piece - 1) / max_piece) + 2;
    }
    if (max_piece != 0 && p.batches.size() > bound) {
      err << p.batches.size() << " batches, more than the bound " << bound;
      return err.str();
    }
  }
  // Concurrent commands must not race on the medium: nothing a phase reads may be written in that phase
  // (a segment copying a range onto itself excepted: it rewrites what is there).
  if (sc.same_medium) {
    for (const auto& ph : phases) {
      for (const phase_segment& rp : ph) {
        const plan_segment& r = rp.s;
        std::uint64_t rs = sc.src_base + r.src_block, re = rs + r.blocks;
        if (sc.src_base + r.src_block == sc.dst_base + r.dst_block) continue;
        for (const phase_segment& wp : ph) {
          if (&wp == &rp && rp.order != copy_order::any) continue;  // a memmove segment against itself
          const plan_segment& w = wp.s;
          std::uint64_t ws = sc.dst_base + w.dst_block, we = ws + w.blocks;
          if (rs < we && ws < re) {
            err << "segment reading medium blocks [" << rs << ", " << re << ") runs concurrently with one writing ["
                << ws << ", " << we << ")";
            return err.str();
          }
        }
      }
    }
  }
  media ref = initial;
  for (const extent& e : sc.extents)
    std::memmove(ref.dst_side(sc) + e.dst_offset_bytes, ref.src_side(sc) + e.src_offset_bytes, e.length_bytes);
  media run = initial;
  // A device copying a range that must not overlap itself: bytes in a random order.
  auto device_copy = [&](const plan_segment& s) {
    std::uint8_t* to = run.dst_side(sc) + s.dst_block * sc.unit;
    const std::uint8_t* from = run.src_side(sc) + s.src_block * sc.unit;
    const std::uint64_t n = s.blocks * sc.unit;
    if (chance(rng, 0.5))
      for (std::uint64_t i = 0; i < n; ++i) to[i] = from[i];
    else
      for (std::uint64_t i = n; i-- > 0;) to[i] = from[i];
  };
  for (auto& ph : phases) {
    std::shuffle(ph.begin(), ph.end(), rng);  // completion order within a phase is arbitrary
    for (const phase_segment& ps : ph) {
      const plan_segment& s = ps.s;
      if (ps.order == copy_order::any) {
        device_copy(s);
      } else if (chance(rng, 0.5)) {  // the buffered copier: memmove order itself
        std::memmove(run.dst_side(sc) + s.dst_block * sc.unit, run.src_side(sc) + s.src_block * sc.unit,
                     s.blocks * sc.unit);
      } else {  // the engine for an offload backend: pieces of the distance, one at a time
        plan_segment rest = s;
        const std::uint64_t piece = memmove_piece_blocks(s, sc.unit, sc.medium_delta_bytes());
        while (rest.blocks > 0) {
          plan_segment one = take_memmove_piece(rest, ps.order, piece);
          std::uint64_t rs = sc.src_base + one.src_block, ws = sc.dst_base + one.dst_block;
          if (rs < ws + one.blocks && ws < rs + one.blocks) {
            err << "memmove piece src " << one.src_block << " dst " << one.dst_block << " x " << one.blocks
                << " overlaps itself";
            return err.str();
          }
          device_copy(one);
        }
      }
    }
  }
  if (run.src != ref.src || run.dst != ref.dst) return "executed plan differs from the reference memmove";
  return {};
}

}  // namespace

TEST_CASE("planner property: random requests and limits give exact, limit-respecting, memmove-equal plans") {
  const std::uint64_t seed = base_seed();
  std::mt19937_64 rng(seed);
  const int cases = 6000;
  int hazards = 0, merged = 0, multi_batch = 0, memmove = 0;
  for (int i = 0; i < cases; ++i) {
    std::uint64_t case_seed = rng();
    std::mt19937_64 crng(case_seed);
    scenario sc = random_scenario(crng);
    side_geometry sg = sc.src_geometry(), dg = sc.dst_geometry();
    std::vector<extent> ext = sc.extents;
    status v = validate_extents(ext, sg, dg);
    if (!v.ok()) {
      FAIL("seed " << seed << " case " << i << " (case seed " << case_seed
                   << "): valid request refused: " << v.to_string() << "\n"
                   << sc.describe());
    }
    bool hazard = has_overlap_hazard(ext, sg, dg);
    if (hazard != brute_hazard(sc)) {
      FAIL("seed " << seed << " case " << i << " (case seed " << case_seed << "): has_overlap_hazard says " << hazard
                   << "\n"
                   << sc.describe());
    }
    hazards += hazard;
    plan p;
    pack_extents(ext, sc.unit, sc.limits, hazard, sc.medium_delta_bytes(), p);
    merged += p.segments.size() < sc.extents.size();
    multi_batch += p.batches.size() > 1;
    memmove +=
        std::any_of(p.batches.begin(), p.batches.end(), [](const plan_batch& b) { return b.order != copy_order::any; });
    media initial = random_media(sc, crng);
    std::string bad = check_plan(sc, p, hazard, initial, crng);
    if (!bad.empty()) {
      FAIL("seed " << seed << " case " << i << " (case seed " << case_seed << "): " << bad << "\n"
                   << sc.describe() << "\n"
                   << p.to_text());
    }
  }
  // The generator must exercise what it claims to.
  CHECK(hazards > cases / 10);
  CHECK(merged > cases / 20);
  CHECK(multi_batch > cases / 4);
  CHECK(memmove > cases / 50);
  MESSAGE("hazards " << hazards << ", plans with a memmove batch " << memmove << " of " << cases);
}

namespace {

/// Fewest commands for one destination-contiguous run (sorted by destination, in blocks), by dynamic
/// programming over every split point: a command [a, b) is feasible when its blocks and the segments its
/// source-contiguous pieces need fit the limits.
std::uint64_t optimal_commands(const std::vector<plan_segment>& run, const copy_limits& lim) {
  // Merge pieces contiguous on both sides first: they are one source run.
  std::vector<plan_segment> pieces;
  for (const plan_segment& s : run) {
    if (!pieces.empty() && pieces.back().src_block + pieces.back().blocks == s.src_block &&
        pieces.back().dst_block + pieces.back().blocks == s.dst_block)
      pieces.back().blocks += s.blocks;
    else
      pieces.push_back(s);
  }
  const std::uint64_t start = run.front().dst_block;
  std::uint64_t total = 0;
  for (const auto& s : run) total += s.blocks;
  auto feasible = [&](std::uint64_t a, std::uint64_t b) {
    if (lim.max_command_blocks && b - a > lim.max_command_blocks) return false;
    std::uint64_t segments = 0;
    for (const auto& s : pieces) {
      std::uint64_t lo = std::max(a, s.dst_block - start), hi = std::min(b, s.dst_block - start + s.blocks);
      if (lo >= hi) continue;
      std::uint64_t n = hi - lo;
      segments += lim.max_segment_blocks ? (n + lim.max_segment_blocks - 1) / lim.max_segment_blocks : 1;
    }
    return lim.max_segments_per_command == 0 || segments <= lim.max_segments_per_command;
  };
  constexpr std::uint64_t inf = std::numeric_limits<std::uint64_t>::max() / 2;
  std::vector<std::uint64_t> best(total + 1, inf);
  best[0] = 0;
  for (std::uint64_t b = 1; b <= total; ++b)
    for (std::uint64_t a = 0; a < b; ++a)
      if (best[a] + 1 < best[b] && feasible(a, b)) best[b] = best[a] + 1;
  return best[total];
}

}  // namespace

TEST_CASE("planner: greedy packing gives the fewest commands for destination-contiguous runs") {
  SUBCASE("one extent: ceil(length / min(per-command blocks, segments x segment blocks))") {
    for (std::uint64_t len : {1, 7, 128, 1000, 4096}) {
      for (std::uint32_t segs : {1U, 2U, 128U}) {
        for (std::uint64_t seg_blocks : {1ULL, 16ULL, 128ULL}) {
          for (std::uint64_t cmd_blocks : {0ULL, 64ULL, 300ULL}) {
            copy_limits lim{segs, seg_blocks, cmd_blocks, true};
            std::vector<extent> ext{{0, 512 * 1000, len * 512}};
            plan p;
            pack_extents(ext, 512, lim, false, 0, p);
            std::uint64_t per = segs * seg_blocks;
            if (cmd_blocks) per = std::min(per, cmd_blocks);
            CAPTURE(len);
            CAPTURE(segs);
            CAPTURE(seg_blocks);
            CAPTURE(cmd_blocks);
            CHECK(p.batches.size() == (len + per - 1) / per);
          }
        }
      }
    }
  }
  SUBCASE("scattered sources landing back to back (compaction) against a dynamic-programming optimum") {
    const std::uint64_t seed = base_seed() + 1;
    std::mt19937_64 rng(seed);
    for (int i = 0; i < 2500; ++i) {
      std::uint64_t case_seed = rng();
      std::mt19937_64 crng(case_seed);
      copy_limits lim = random_limits(crng);
      lim.contiguous_destination = true;
      std::vector<extent> ext;
      std::vector<plan_segment> run;
      std::uint64_t dst = pick(crng, 0, 10), src_cursor = 0;
      std::uint64_t n = pick(crng, 1, 12);
      for (std::uint64_t k = 0; k < n; ++k) {
        std::uint64_t len = pick(crng, 1, 9);
        std::uint64_t src = chance(crng, 0.3) ? src_cursor : pick(crng, 0, 1000);
        src_cursor = src + len;
        ext.push_back({src, dst, len});
        run.push_back({src, dst, len});
        dst += len;
      }
      std::vector<extent> shuffled = ext;
      std::shuffle(shuffled.begin(), shuffled.end(), crng);
      plan p;
      pack_extents(shuffled, 1, lim, false, 0, p);
      std::uint64_t best = optimal_commands(run, lim);
      if (p.batches.size() != best) {
        std::ostringstream o;
        for (const auto& e : ext) o << " " << e.src_offset_bytes << ":" << e.dst_offset_bytes << ":" << e.length_bytes;
        FAIL("seed " << seed << " case " << i << " (case seed " << case_seed << "): " << p.batches.size()
                     << " commands, optimum " << best << "; limits {" << lim.max_segments_per_command << ", "
                     << lim.max_segment_blocks << ", " << lim.max_command_blocks << "} extents:" << o.str() << "\n"
                     << p.to_text());
      }
    }
  }
}
