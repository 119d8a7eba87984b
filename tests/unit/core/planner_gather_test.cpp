// pack_gather (src/core/plan_gather.cpp, declared in planner.hpp): the packing of a gathering
// part, against an oracle that shares none of its code. The oracle works block by block: the
// destination run is a list of blocks, each read from (source, source block); a command is an
// interval of it that is valid when its destinations are contiguous, its ranges — each maximal run
// of one source's consecutive blocks cut into pieces of that source's MSSRL — are at most MSRC + 1,
// its blocks at most MCL, and no block of the destination's own namespace follows a block of
// another namespace (QEMU 10's stale source namespace, docs/nvme.md). The fewest commands is a
// dynamic program over the intervals; the packer must reach it, and every batch it makes must be
// valid and the batches together must write each block once from the right place.
// OFFCOPY_SEED=<n> replays one run.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <map>
#include <random>
#include <vector>

#include "src/core/planner.hpp"

using namespace offcopy;
using namespace offcopy::detail;

namespace {

struct block_ref {
  std::uint32_t source = 0;
  std::uint64_t src = 0;
  std::uint64_t dst = 0;
};

struct limits_case {
  std::vector<std::uint32_t> mssrl;  ///< per source, 0 = none
  std::uint32_t max_segments = 0;
  std::uint64_t mcl = 0;
  std::int64_t own = -1;
};

/// The fewest ranges covering blocks [i, j) of `b` (all destination-contiguous).
std::uint64_t ranges_needed(const std::vector<block_ref>& b, std::size_t i, std::size_t j, const limits_case& l) {
  std::uint64_t n = 0;
  std::size_t k = i;
  while (k < j) {
    std::size_t e = k + 1;
    while (e < j && b[e].source == b[k].source && b[e].src == b[e - 1].src + 1) ++e;
    const std::uint64_t len = e - k;
    const std::uint32_t m = l.mssrl[b[k].source];
    n += m == 0 ? 1 : (len + m - 1) / m;
    k = e;
  }
  return n;
}

bool valid_command(const std::vector<block_ref>& b, std::size_t i, std::size_t j, const limits_case& l) {
  if (l.mcl != 0 && j - i > l.mcl) return false;
  bool foreign = false;
  for (std::size_t k = i; k < j; ++k) {
    if (k > i && b[k].dst != b[k - 1].dst + 1) return false;
    const bool own = l.own >= 0 && b[k].source == static_cast<std::uint32_t>(l.own);
    if (own && foreign) return false;
    foreign = foreign || !own;
  }
  return l.max_segments == 0 || ranges_needed(b, i, j, l) <= l.max_segments;
}

std::uint64_t fewest_commands(const std::vector<block_ref>& b, const limits_case& l) {
  const std::uint64_t inf = std::numeric_limits<std::uint64_t>::max();
  std::vector<std::uint64_t> best(b.size() + 1, inf);
  best[0] = 0;
  for (std::size_t j = 1; j <= b.size(); ++j)
    for (std::size_t i = 0; i < j; ++i)
      if (best[i] != inf && valid_command(b, i, j, l)) best[j] = std::min(best[j], best[i] + 1);
  return best[b.size()];
}

}  // namespace

TEST_CASE("pack_gather: the fewest commands, every limit, the own-namespace rule, every block once") {
  const std::uint64_t seed0 =
      std::getenv("OFFCOPY_SEED") ? std::strtoull(std::getenv("OFFCOPY_SEED"), nullptr, 0) : 0x6A7E4ULL;
  const int runs = std::getenv("OFFCOPY_SEED") ? 1 : 400;
  for (int run = 0; run < runs; ++run) {
    const std::uint64_t seed = seed0 + static_cast<std::uint64_t>(run);
    CAPTURE(seed);
    std::mt19937_64 rng(seed);
    auto pick = [&](std::uint64_t lo, std::uint64_t hi) {
      return std::uniform_int_distribution<std::uint64_t>(lo, hi)(rng);
    };
    limits_case l;
    const auto sources = static_cast<std::uint32_t>(pick(1, 4));
    for (std::uint32_t s = 0; s < sources; ++s) l.mssrl.push_back(static_cast<std::uint32_t>(pick(0, 6)));
    l.max_segments = static_cast<std::uint32_t>(pick(0, 5));
    l.mcl = pick(0, 1) ? pick(1, 20) : 0;
    l.own = pick(0, 2) ? static_cast<std::int64_t>(pick(0, sources - 1)) : -1;
    // Segments: a few destination runs with gaps, each piece from a random source, sometimes
    // continuing the previous piece's source blocks (so the packer merges them back).
    std::vector<plan_segment> items;
    std::vector<block_ref> blocks;
    std::map<std::uint32_t, std::uint64_t> next_src;
    std::uint64_t dst = pick(0, 10);
    const int n = static_cast<int>(pick(1, 14));
    for (int k = 0; k < n; ++k) {
      if (pick(0, 4) == 0) dst += pick(1, 5);  // a gap: a new destination run
      const auto s = static_cast<std::uint32_t>(pick(0, sources - 1));
      std::uint64_t src = pick(0, 1) && next_src.count(s) ? next_src[s] : pick(0, 1000) + 2000 * s;
      const std::uint64_t len = pick(1, 9);
      items.push_back({src, dst, len, s});
      for (std::uint64_t b = 0; b < len; ++b) blocks.push_back({s, src + b, dst + b});
      next_src[s] = src + len;
      dst += len;
    }
    std::shuffle(items.begin(), items.end(), rng);  // the packer sorts by destination itself
    plan p;
    pack_gather(items, l.mssrl, l.max_segments, l.mcl, l.own, 3, p);

    const std::uint64_t want = fewest_commands(blocks, l);
    CHECK(p.batches.size() == want);
    // Each batch valid, and the batches write every block once, from the right place.
    std::map<std::uint64_t, block_ref> written;
    for (const plan_batch& b : p.batches) {
      CHECK(b.part == 3);
      CHECK_FALSE(b.barrier);
      std::vector<block_ref> cmd;
      std::uint64_t ranges = 0;
      for (std::uint32_t i = 0; i < b.segment_count; ++i) {
        const plan_segment& s = p.segments[b.first_segment + i];
        REQUIRE(s.source < sources);
        CHECK(s.blocks >= 1);
        if (l.mssrl[s.source] != 0) CHECK(s.blocks <= l.mssrl[s.source]);
        ++ranges;
        for (std::uint64_t k = 0; k < s.blocks; ++k) {
          cmd.push_back({s.source, s.src_block + k, s.dst_block + k});
          CHECK(written.emplace(s.dst_block + k, block_ref{s.source, s.src_block + k, s.dst_block + k}).second);
        }
      }
      if (l.max_segments != 0) CHECK(ranges <= l.max_segments);
      CHECK(valid_command(cmd, 0, cmd.size(), l));
    }
    REQUIRE(written.size() == blocks.size());
    for (const block_ref& b : blocks) {
      const block_ref& w = written.at(b.dst);
      CHECK(w.source == b.source);
      CHECK(w.src == b.src);
    }
  }
}

TEST_CASE("pack_gather: a range of the destination's namespace after another's starts a command") {
  // Own (source 0) 4 blocks, then source 1 4 blocks, then own 4 blocks, back to back: without the
  // rule one command; with it two, the second led by the own range.
  std::vector<plan_segment> items{{100, 0, 4, 0}, {500, 4, 4, 1}, {200, 8, 4, 0}};
  const std::vector<std::uint32_t> mssrl{0, 0};
  plan with_rule, without;
  pack_gather(items, mssrl, 0, 0, 0, 0, with_rule);
  pack_gather(items, mssrl, 0, 0, -1, 0, without);
  CHECK(without.batches.size() == 1);
  REQUIRE(with_rule.batches.size() == 2);
  CHECK(with_rule.batches[0].segment_count == 2);
  CHECK(with_rule.segments[with_rule.batches[1].first_segment] == plan_segment{200, 8, 4, 0});
}
