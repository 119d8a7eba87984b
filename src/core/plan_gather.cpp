// make_plan for a request with several sources (request::sources, extent::source): each source is
// planned with the destination as a request of its own (resolution, backend choice and packing as
// for one source), the sub-plans are joined, and the NVMe Copy parts that write one namespace
// from namespaces of its controller are merged into gathering commands (format 2h/3h: one source
// namespace per range). docs/architecture.md §4b.
#include <algorithm>
#include <chrono>
#include <limits>
#include <map>

#include <fmt/format.h>

#include "src/core/device_state.hpp"
#include "src/core/plan_steps.hpp"

namespace offcopy::detail {

void pack_gather(std::vector<plan_segment> items, std::span<const std::uint32_t> segment_blocks,
                 std::uint32_t max_segments, std::uint64_t max_command_blocks, std::int64_t own_source,
                 std::uint32_t part, plan& p) {
  std::sort(items.begin(), items.end(),
            [](const plan_segment& a, const plan_segment& b) { return a.dst_block < b.dst_block; });
  // Neighbours on both sides from one source are one range.
  std::vector<plan_segment> merged;
  for (const plan_segment& s : items) {
    if (s.blocks == 0) continue;
    if (!merged.empty()) {
      plan_segment& m = merged.back();
      if (m.source == s.source && m.src_block + m.blocks == s.src_block && m.dst_block + m.blocks == s.dst_block) {
        m.blocks += s.blocks;
        continue;
      }
    }
    merged.push_back(s);
  }
  bool open = false;
  plan_batch cur;
  std::uint64_t cur_blocks = 0, cur_end = 0;
  bool cur_foreign = false;
  auto close = [&] {
    if (open) p.batches.push_back(cur);
    open = false;
  };
  for (plan_segment rest : merged) {
    const bool own = own_source >= 0 && rest.source == static_cast<std::uint64_t>(own_source);
    const std::uint64_t mssrl = rest.source < segment_blocks.size() && segment_blocks[rest.source] != 0
                                    ? segment_blocks[rest.source]
                                    : std::numeric_limits<std::uint64_t>::max();
    while (rest.blocks > 0) {
      // A command ends where the destination is not contiguous, at MSRC + 1 ranges, at MCL blocks,
      // and before a range of the destination's own namespace that would follow a range of another
      // one (QEMU 10 reads such a range from the namespace before it: docs/nvme.md).
      if (open && (rest.dst_block != cur_end || (max_segments != 0 && cur.segment_count >= max_segments) ||
                   (max_command_blocks != 0 && cur_blocks >= max_command_blocks) || (own && cur_foreign)))
        close();
      if (!open) {
        cur = plan_batch{};
        cur.first_segment = static_cast<std::uint32_t>(p.segments.size());
        cur.part = part;
        cur_blocks = 0;
        cur_foreign = false;
        open = true;
      }
      std::uint64_t take = std::min(rest.blocks, mssrl);
      if (max_command_blocks != 0) take = std::min(take, max_command_blocks - cur_blocks);
      p.segments.push_back({rest.src_block, rest.dst_block, take, rest.source});
      ++cur.segment_count;
      cur_blocks += take;
      cur_end = rest.dst_block + take;
      cur_foreign = cur_foreign || !own;
      rest.src_block += take;
      rest.dst_block += take;
      rest.blocks -= take;
    }
  }
  close();
}

namespace {

/// A byte range on a medium (by identity), of the extent `number` (request order) reading `source`.
struct medium_span {
  std::string identity;
  std::uint64_t start = 0, end = 0;
  std::uint32_t source = 0;
  std::uint32_t number = 0;
};

/// The media ranges of [offset, offset + length) of `dev`.
status spans_of(device& dev, std::uint64_t offset, std::uint64_t length, std::uint32_t source, std::uint32_t number,
                std::vector<medium_span>& out) {
  auto r = resolution_of(state_of(dev));
  if (!r.ok()) return std::move(r).error();
  const resolution& res = *r.value();
  if (res.nodes.size() == 1 && !res.media.empty()) {
    const stack_medium& m = res.media[0];
    if (!m.identity.empty())
      out.push_back(
          {m.identity, m.identity_offset_bytes + offset, m.identity_offset_bytes + offset + length, source, number});
    return {};
  }
  for (const mapped_piece& pc : pieces_of(res, offset, length)) {
    const stack_medium& m = res.media[pc.medium];
    if (m.identity.empty()) continue;
    const std::uint64_t start = m.identity_offset_bytes + pc.medium_offset_bytes;
    out.push_back({m.identity, start, start + pc.length_bytes, source, number});
  }
  return {};
}

/// Bytes one source reads that another source's extents write: the order between sources is not
/// defined (each source's own overlap with the destination is its sub-plan's, in memmove order).
status check_cross_source(const request& req) {
  std::vector<medium_span> dsts, srcs;
  for (std::uint32_t i = 0; i < req.extents.size(); ++i) {
    const extent& e = req.extents[i];
    device& src = e.source == 0 ? *req.source : *req.sources[e.source - 1];
    if (auto s = spans_of(*req.destination, e.dst_offset_bytes, e.length_bytes, e.source, i, dsts); !s.ok()) return s;
    if (auto s = spans_of(src, e.src_offset_bytes, e.length_bytes, e.source, i, srcs); !s.ok()) return s;
  }
  auto by_place = [](const medium_span& a, const medium_span& b) {
    const int c = a.identity.compare(b.identity);
    return c != 0 ? c < 0 : a.start < b.start;
  };
  std::sort(dsts.begin(), dsts.end(), by_place);
  for (const medium_span& r : srcs) {
    // Destination ranges do not overlap each other (validated): the first ending after r starts,
    // and those after it starting before r ends.
    auto it = std::lower_bound(dsts.begin(), dsts.end(), r, [](const medium_span& a, const medium_span& b) {
      const int c = a.identity.compare(b.identity);
      return c != 0 ? c < 0 : a.end <= b.start;
    });
    for (; it != dsts.end() && it->identity == r.identity && it->start < r.end; ++it) {
      if (it->source == r.source || it->end <= r.start) continue;
      return status(errc::overlap,
                    fmt::format("extent {} (source {}) reads bytes that extent {} (source {}) writes, on {}: the "
                                "order between sources is not defined; copy them in two runs",
                                r.number + 1, r.source, it->number + 1, it->source, r.identity));
    }
  }
  return {};
}

bool plain_batches(const plan& p, std::uint32_t part) {
  for (const plan_batch& b : p.batches)
    if (b.part == part && (b.barrier || b.order != copy_order::any)) return false;
  return true;
}

/// Merges the NVMe Copy parts of `p` that write one namespace and read namespaces of its
/// controller (each pair passed nvme-copy's check: one controller proven, compatible formats,
/// format 2h/3h offered) into gathering parts, packed by pack_gather.
void merge_gathers(plan& p) {
  std::map<std::string, std::vector<std::uint32_t>> by_destination;
  for (std::uint32_t k = 0; k < p.parts.size(); ++k)
    if (p.parts[k].backend == "nvme-copy" && plain_batches(p, k))
      by_destination[p.parts[k].destination_medium].push_back(k);
  std::vector<std::vector<std::uint32_t>> groups;
  for (auto& [dst, members] : by_destination) {
    if (members.size() < 2) continue;
    bool foreign = false;
    for (std::uint32_t k : members) foreign = foreign || p.parts[k].source_medium != dst;
    if (foreign) groups.push_back(members);
  }
  if (groups.empty()) return;

  std::vector<std::int64_t> group_of(p.parts.size(), -1);
  for (std::size_t g = 0; g < groups.size(); ++g)
    for (std::uint32_t k : groups[g]) group_of[k] = static_cast<std::int64_t>(g);

  plan out;
  std::vector<std::uint32_t> new_index(p.parts.size(), 0);
  for (std::uint32_t k = 0; k < p.parts.size(); ++k) {
    if (group_of[k] >= 0) continue;
    new_index[k] = static_cast<std::uint32_t>(out.parts.size());
    out.parts.push_back(p.parts[k]);
  }
  for (const plan_batch& b : p.batches) {
    if (group_of[b.part] >= 0) continue;
    plan_batch nb = b;
    nb.first_segment = static_cast<std::uint32_t>(out.segments.size());
    nb.part = new_index[b.part];
    out.segments.insert(out.segments.end(), p.segments.begin() + b.first_segment,
                        p.segments.begin() + b.first_segment + b.segment_count);
    out.batches.push_back(nb);
  }
  for (const auto& members : groups) {
    const plan_part& first = p.parts[members[0]];
    plan_part g;
    g.backend = "nvme-copy";
    g.block_bytes = first.block_bytes;
    g.destination_medium = first.destination_medium;
    g.limits = first.limits;
    std::vector<std::uint32_t> slot_of(p.parts.size(), 0);
    for (std::uint32_t k : members) {
      const plan_part& part = p.parts[k];
      auto it = std::find(g.gathered.begin(), g.gathered.end(), part.source_medium);
      if (it == g.gathered.end()) {
        g.gathered.push_back(part.source_medium);
        g.gathered_sources.push_back(part.source);
        g.gathered_segment_blocks.push_back(part.limits.max_segment_blocks);
        it = g.gathered.end() - 1;
      }
      const auto slot = static_cast<std::uint32_t>(it - g.gathered.begin());
      slot_of[k] = slot;
      std::uint32_t& mssrl = g.gathered_segment_blocks[slot];
      if (part.limits.max_segment_blocks != 0 && (mssrl == 0 || part.limits.max_segment_blocks < mssrl))
        mssrl = part.limits.max_segment_blocks;
      // The command limits are the destination's; tightened overrides may differ per pair.
      g.limits = g.limits.tightened(part.limits);
      g.bytes += part.bytes;
      g.ranges.insert(g.ranges.end(), part.ranges.begin(), part.ranges.end());
      if (part.source_medium != g.destination_medium && g.considered.empty()) g.considered = part.considered;
    }
    g.source_medium = g.gathered.front();
    g.source = g.gathered_sources.front();
    std::int64_t own = -1;
    for (std::size_t s = 0; s < g.gathered.size(); ++s)
      if (g.gathered[s] == g.destination_medium) own = static_cast<std::int64_t>(s);
    std::vector<plan_segment> items;
    for (const plan_batch& b : p.batches) {
      if (group_of[b.part] < 0 || std::find(members.begin(), members.end(), b.part) == members.end()) continue;
      for (std::uint32_t i = 0; i < b.segment_count; ++i) {
        plan_segment s = p.segments[b.first_segment + i];
        s.source = slot_of[b.part];
        items.push_back(s);
      }
    }
    const auto index = static_cast<std::uint32_t>(out.parts.size());
    pack_gather(std::move(items), g.gathered_segment_blocks, g.limits.max_segments_per_command,
                g.limits.max_command_blocks, own, index, out);
    // The smallest MSSRL is what one number can say; each medium's is in gathered_segment_blocks.
    std::uint32_t smallest = 0;
    for (std::uint32_t m : g.gathered_segment_blocks)
      if (m != 0 && (smallest == 0 || m < smallest)) smallest = m;
    g.limits.max_segment_blocks = smallest;
    out.parts.push_back(std::move(g));
  }
  p.parts = std::move(out.parts);
  p.segments = std::move(out.segments);
  p.batches = std::move(out.batches);
}

}  // namespace

result<plan> make_gather_plan(const request& req, const policy& pol) {
  auto t0 = std::chrono::steady_clock::now();
  if (!req.source || !req.destination)
    return status(errc::invalid_argument, "request needs a source and a destination");
  const std::size_t n = req.sources.size() + 1;
  for (std::size_t k = 1; k < n; ++k)
    if (!req.sources[k - 1]) return status(errc::invalid_argument, fmt::format("source {} is missing", k));
  auto source_of = [&](std::uint32_t k) -> device& { return k == 0 ? *req.source : *req.sources[k - 1]; };
  if (req.extents.empty())
    return status(errc::invalid_argument,
                  fmt::format("{} sources: the extents must say which one each reads (none given)", n));
  // Request-wide checks, numbered in request order: the source each names, its bounds on that
  // source; then the destination's bounds and two extents writing the same bytes, over every source.
  for (std::size_t i = 0; i < req.extents.size(); ++i) {
    const extent& e = req.extents[i];
    if (e.source >= n)
      return status(errc::invalid_argument,
                    fmt::format("extent {}: source {} does not exist (sources 0 to {})", i + 1, e.source, n - 1));
    const std::uint64_t size = source_of(e.source).caps().size_bytes;
    if (e.length_bytes != 0 && e.src_offset_bytes <= std::numeric_limits<std::uint64_t>::max() - e.length_bytes &&
        e.src_offset_bytes + e.length_bytes > size)
      return status(
          errc::out_of_range,
          fmt::format("extent {}: source {} bytes [{}, {}) are past the end of {} ({} bytes)", i + 1, e.source,
                      e.src_offset_bytes, e.src_offset_bytes + e.length_bytes, source_of(e.source).caps().path, size));
  }
  {
    std::vector<extent> all = req.extents;
    side_geometry sg, dg;
    sg.size_bytes = std::numeric_limits<std::uint64_t>::max();
    dg.size_bytes = req.destination->caps().size_bytes;
    dg.can_grow = req.destination->caps().kind == device_kind::regular_file;
    if (auto s = validate_extents(all, sg, dg); !s.ok()) return s;
  }
  if (auto s = check_cross_source(req); !s.ok()) return s;

  plan p;
  for (std::uint32_t k = 0; k < n; ++k) {
    request sub{k == 0 ? req.source : req.sources[k - 1], req.destination, {}, {}};
    for (const extent& e : req.extents)
      if (e.source == k) sub.extents.push_back({e.src_offset_bytes, e.dst_offset_bytes, e.length_bytes});
    if (sub.extents.empty()) continue;
    auto sp = make_single_source_plan(sub, pol);
    const std::string who = fmt::format("source {} ({})", k, sub.source->caps().path);
    if (!sp.ok()) return std::move(sp).error().prefix(who);
    plan& s = sp.value();
    if (s.parts.size() == 1 && s.parts[0].ranges.empty()) s.parts[0].ranges = sub.extents;
    const auto base = static_cast<std::uint32_t>(p.parts.size());
    for (plan_part& part : s.parts) {
      part.source = k;
      for (extent& r : part.ranges) r.source = k;
      if (!part.fallback_reason.empty()) part.fallback_reason = who + ": " + part.fallback_reason;
      p.parts.push_back(std::move(part));
    }
    const auto seg_base = static_cast<std::uint32_t>(p.segments.size());
    p.segments.insert(p.segments.end(), s.segments.begin(), s.segments.end());
    for (plan_batch b : s.batches) {
      b.first_segment += seg_base;
      b.part += base;
      p.batches.push_back(b);
    }
    p.time.probe_seconds += s.time.probe_seconds;
    p.ordered = p.ordered || s.ordered;
    p.same_medium = p.same_medium || s.same_medium;
  }
  merge_gathers(p);
  std::size_t main = 0;
  for (std::size_t k = 1; k < p.parts.size(); ++k)
    if (p.parts[k].bytes > p.parts[main].bytes) main = k;
  p.backend = p.parts[main].backend;
  p.considered = p.parts[main].considered;
  p.block_bytes = p.parts[main].block_bytes;
  p.limits = p.parts[main].limits;
  for (const plan_part& part : p.parts) {
    if (!part.fallback_reason.empty()) {
      p.fallback_reason = part.fallback_reason;
      break;
    }
  }
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  p.time.plan_seconds = std::max(0.0, total - p.time.probe_seconds);
  return p;
}

}  // namespace offcopy::detail
