// make_plan, step 2: resolution. Both endpoints become pieces on media (resolve.hpp); the extents
// are cut where pieces end, grouped by pair of media, and overlap is decided on the media: two
// doors to the same bytes (a partition and its disk, a loop device and its file, two LVs on one
// namespace) are one medium.
#include <algorithm>
#include <map>
#include <queue>

#include <fmt/format.h>

#include "src/core/device_state.hpp"
#include "src/core/plan_steps.hpp"

namespace offcopy::detail {
namespace {

/// A byte range on a medium, by identity (the two endpoints' resolutions number media apart).
struct medium_range {
  const std::string* identity = nullptr;
  std::uint64_t start = 0;
  std::uint64_t end = 0;
  std::uint32_t owner = 0;  ///< the piece it belongs to
};

bool before(const medium_range& a, const medium_range& b) {
  const int c = a.identity->compare(*b.identity);
  return c != 0 ? c < 0 : a.start < b.start;
}

/// The ranges of `sorted` (by identity, then start) overlapping `r`; calls f(index) for each.
template <class F>
void for_each_overlap(const std::vector<medium_range>& sorted, const medium_range& r, F&& f) {
  auto it = std::lower_bound(sorted.begin(), sorted.end(), r, [](const medium_range& a, const medium_range& b) {
    const int c = a.identity->compare(*b.identity);
    return c != 0 ? c < 0 : a.end <= b.start;
  });
  // Ranges of one medium do not overlap each other often; walk back over any that end after r starts.
  while (it != sorted.begin() && *std::prev(it)->identity == *r.identity && std::prev(it)->end > r.start) --it;
  for (; it != sorted.end() && *it->identity == *r.identity && it->start < r.end; ++it)
    if (it->end > r.start) f(static_cast<std::size_t>(it - sorted.begin()));
}

/// One piece of one extent: the bytes between one source medium and one destination medium.
struct cut {
  std::uint32_t extent = 0;  ///< request order, 0-based
  std::uint32_t pair = 0;
  std::uint64_t src_upper = 0, dst_upper = 0, length = 0;
  std::uint64_t src_door = 0, dst_door = 0;  ///< offsets on the doors
};

bool single_piece(const resolution& r, std::uint64_t size, mapped_piece& out) {
  if (r.nodes.size() == 1 && !r.media.empty()) {
    out = {0, size, 0, 0};
    return true;
  }
  auto pieces = pieces_of(r, 0, size);
  if (pieces.size() != 1 || pieces[0].length_bytes != size) return false;
  out = pieces[0];
  return true;
}

std::string medium_name(const resolution& r, std::uint32_t m) { return r.media[m].path; }

/// Opaque targets may read or write bytes of media at offsets nothing here knows: refused when
/// the other side reaches those bytes directly (the copy order could not be decided).
status check_touches(const resolution& opaque_side, const std::vector<medium_range>& direct, bool source_is_opaque) {
  if (opaque_side.touches.empty() || direct.empty()) return {};
  for (const opaque_touch& t : opaque_side.touches) {
    medium_range r{&t.identity, t.start_bytes, t.end_bytes, 0};
    status found;
    for_each_overlap(direct, r, [&](std::size_t) {
      if (found.ok())
        found = status(
            errc::overlap,
            fmt::format("the {} goes through {}, which uses bytes [{}, {}) of {} that the {} {} directly: "
                        "the order of the copy cannot be decided on the medium",
                        source_is_opaque ? "source" : "destination", t.reason, t.start_bytes, t.end_bytes, t.identity,
                        source_is_opaque ? "destination" : "source", source_is_opaque ? "writes" : "reads"));
    });
    if (!found.ok()) return found;
  }
  return {};
}

}  // namespace

status resolve_request(const request& req, const policy& pol, validated_request& v) {
  device_state& src_state = state_of(*req.source);
  device_state& dst_state = state_of(*req.destination);
  auto sr = resolution_of(src_state);
  if (!sr.ok()) return std::move(sr).error();
  auto dr = resolution_of(dst_state);
  if (!dr.ok()) return std::move(dr).error();
  v.src_res = sr.value();
  v.dst_res = dr.value();
  const resolution& S = *v.src_res;
  const resolution& D = *v.dst_res;
  const capabilities& sc = req.source->caps();
  const capabilities& dc = req.destination->caps();

  auto make_pair = [&](std::uint32_t sm, std::uint32_t dm) {
    media_pair mp;
    mp.src_medium = sm;
    mp.dst_medium = dm;
    mp.src = &S.door(sm, src_state);
    mp.dst = &D.door(dm, dst_state);
    if (!S.media[sm].opaque.empty())
      mp.opaque = fmt::format("{}: {} is not resolved further", sc.path, S.media[sm].opaque);
    if (!D.media[dm].opaque.empty())
      mp.opaque = fmt::format("{}: {} is not resolved further", dc.path, D.media[dm].opaque);
    mp.same_medium = !S.media[sm].identity.empty() && S.media[sm].identity == D.media[dm].identity;
    mp.delta_bytes = static_cast<std::int64_t>(D.media[dm].identity_offset_bytes) -
                     static_cast<std::int64_t>(S.media[sm].identity_offset_bytes);
    if (mp.same_medium && mp.src != mp.dst && mp.delta_bytes == 0) {
      // One medium, one door: two doors to the same bytes (two paths to one logical unit, a char
      // device and its block device, two names of one file) have page caches of their own, and
      // bytes written through one would be read stale through the other. Both sides use the
      // destination's (it is open for writing; reading through it is the same bytes).
      mp.src = mp.dst;
    }
    return mp;
  };

  // One piece on each side (a plain device, a file, a partition, a one-target LV): the request
  // moves as a whole, only shifted onto the doors.
  mapped_piece sp, dp;
  const bool src_single = single_piece(S, sc.size_bytes, sp);
  const bool dst_single = single_piece(D, dc.size_bytes, dp);  // a file is one piece at any size
  if (src_single && dst_single) {
    media_pair mp = make_pair(sp.medium, dp.medium);
    side_geometry sg = v.src, dg = v.dst;
    sg.identity = S.media[sp.medium].identity;
    sg.identity_offset_bytes = S.media[sp.medium].identity_offset_bytes + sp.medium_offset_bytes;
    dg.identity = D.media[dp.medium].identity;
    dg.identity_offset_bytes = D.media[dp.medium].identity_offset_bytes + dp.medium_offset_bytes;
    v.hazard = has_overlap_hazard(v.extents, sg, dg);
    if (v.hazard && !pol.allow_overlap)
      return status(errc::overlap, "source and destination ranges overlap on the same medium (overlap not allowed)");
    {
      std::vector<medium_range> srcs, dsts;
      if (!S.touches.empty() || !D.touches.empty()) {
        for (const extent& e : v.extents) {
          if (S.media[sp.medium].opaque.empty())
            srcs.push_back({&sg.identity, e.src_offset_bytes + sg.identity_offset_bytes,
                            e.src_offset_bytes + sg.identity_offset_bytes + e.length_bytes, 0});
          if (D.media[dp.medium].opaque.empty())
            dsts.push_back({&dg.identity, e.dst_offset_bytes + dg.identity_offset_bytes,
                            e.dst_offset_bytes + dg.identity_offset_bytes + e.length_bytes, 0});
        }
        std::sort(srcs.begin(), srcs.end(), before);
        std::sort(dsts.begin(), dsts.end(), before);
      }
      if (auto s = check_touches(S, dsts, true); !s.ok()) return s;
      if (auto s = check_touches(D, srcs, false); !s.ok()) return s;
    }
    if (v.hazard && v.reordered) v.extents = req.extents;  // overlapping moves run in request order
    mp.whole = true;
    mp.src_shift_bytes = sp.medium_offset_bytes;
    mp.dst_shift_bytes = dp.medium_offset_bytes;
    for (extent& e : v.extents) {
      e.src_offset_bytes += sp.medium_offset_bytes;
      e.dst_offset_bytes += dp.medium_offset_bytes;
      mp.bytes += e.length_bytes;
    }
    mp.extents = std::move(v.extents);
    v.extents.clear();
    v.pairs.push_back(std::move(mp));
    return {};
  }

  // Several pieces: cut every extent where a piece ends on either side.
  const std::vector<extent>& in_order = req.extents.empty() ? v.extents : req.extents;
  std::vector<cut> cuts;
  std::map<std::pair<std::uint32_t, std::uint32_t>, std::uint32_t> pair_of;
  for (std::uint32_t i = 0; i < in_order.size(); ++i) {
    const extent& e = in_order[i];
    const auto s = pieces_of(S, e.src_offset_bytes, e.length_bytes);
    const auto d = pieces_of(D, e.dst_offset_bytes, e.length_bytes);
    std::size_t a = 0, b = 0;
    std::uint64_t a_used = 0, b_used = 0, done = 0;
    while (done < e.length_bytes) {
      if (a >= s.size() || b >= d.size())
        return status(errc::internal, fmt::format("extent {}: the resolution does not cover it ({} of {} bytes)", i + 1,
                                                  done, e.length_bytes));
      const std::uint64_t n = std::min(s[a].length_bytes - a_used, d[b].length_bytes - b_used);
      auto key = std::make_pair(s[a].medium, d[b].medium);
      auto [it, fresh] = pair_of.emplace(key, static_cast<std::uint32_t>(v.pairs.size()));
      if (fresh) v.pairs.push_back(make_pair(key.first, key.second));
      cuts.push_back({i, it->second, e.src_offset_bytes + done, e.dst_offset_bytes + done, n,
                      s[a].medium_offset_bytes + a_used, d[b].medium_offset_bytes + b_used});
      done += n;
      a_used += n;
      b_used += n;
      if (a_used == s[a].length_bytes) {
        ++a;
        a_used = 0;
      }
      if (b_used == d[b].length_bytes) {
        ++b;
        b_used = 0;
      }
    }
  }

  // Overlap on the media: the sources and destinations of all cuts, by medium identity.
  auto range_of = [&](const cut& c, bool src) -> medium_range {
    const media_pair& mp = v.pairs[c.pair];
    const stack_medium& m = src ? S.media[mp.src_medium] : D.media[mp.dst_medium];
    const std::uint64_t start = (src ? c.src_door : c.dst_door) + m.identity_offset_bytes;
    return {&m.identity, start, start + c.length, 0};
  };
  std::vector<medium_range> dsts, srcs;
  dsts.reserve(cuts.size());
  for (std::uint32_t k = 0; k < cuts.size(); ++k) {
    medium_range r = range_of(cuts[k], false);
    r.owner = k;
    if (!r.identity->empty()) dsts.push_back(r);
  }
  std::sort(dsts.begin(), dsts.end(), before);
  for (std::uint32_t k = 0; k < cuts.size() && !v.hazard; ++k) {
    medium_range r = range_of(cuts[k], true);
    if (r.identity->empty()) continue;
    for_each_overlap(dsts, r, [&](std::size_t) { v.hazard = true; });
  }
  if (v.hazard && !pol.allow_overlap)
    return status(errc::overlap, "source and destination ranges overlap on the same medium (overlap not allowed)");
  if (!S.touches.empty() || !D.touches.empty()) {
    std::vector<medium_range> direct_src, direct_dst;
    for (const cut& c : cuts) {
      const media_pair& mp = v.pairs[c.pair];
      if (S.media[mp.src_medium].opaque.empty()) direct_src.push_back(range_of(c, true));
      if (D.media[mp.dst_medium].opaque.empty()) direct_dst.push_back(range_of(c, false));
    }
    std::sort(direct_src.begin(), direct_src.end(), before);
    std::sort(direct_dst.begin(), direct_dst.end(), before);
    if (auto s = check_touches(S, direct_dst, true); !s.ok()) return s;
    if (auto s = check_touches(D, direct_src, false); !s.ok()) return s;
  }

  for (const cut& c : cuts) v.pairs[c.pair].bytes += c.length;
  auto door_extent = [](const cut& c) { return extent{c.src_door, c.dst_door, c.length}; };
  if (!v.hazard) {
    for (const cut& c : cuts) {
      media_pair& mp = v.pairs[c.pair];
      mp.extents.push_back(door_extent(c));
      mp.extent_numbers.push_back(c.extent);
      extent up{c.src_upper, c.dst_upper, c.length};
      if (!mp.ranges.empty() &&
          mp.ranges.back().src_offset_bytes + mp.ranges.back().length_bytes == up.src_offset_bytes &&
          mp.ranges.back().dst_offset_bytes + mp.ranges.back().length_bytes == up.dst_offset_bytes) {
        mp.ranges.back().length_bytes += up.length_bytes;
      } else {
        mp.ranges.push_back(up);
      }
    }
    return {};
  }

  // Ordered: the extents in request order; within one, its cuts in an order where no cut reads
  // bytes another cut of the extent has already written (cut i before cut j when i's source
  // shares bytes with j's destination). A cut overlapping itself is moved in memmove order by the
  // packer. A cycle (the mapping exchanges bytes) has no such order: refused.
  std::size_t first = 0;
  while (first < cuts.size()) {
    std::size_t last = first;
    while (last < cuts.size() && cuts[last].extent == cuts[first].extent) ++last;
    const std::size_t n = last - first;
    std::vector<std::vector<std::uint32_t>> after(n);
    std::vector<std::uint32_t> waiting(n, 0);
    std::vector<medium_range> ext_dsts;
    for (std::size_t k = first; k < last; ++k) {
      medium_range r = range_of(cuts[k], false);
      r.owner = static_cast<std::uint32_t>(k - first);
      if (!r.identity->empty()) ext_dsts.push_back(r);
    }
    std::sort(ext_dsts.begin(), ext_dsts.end(), before);
    for (std::size_t k = first; k < last; ++k) {
      medium_range r = range_of(cuts[k], true);
      if (r.identity->empty()) continue;
      const auto i = static_cast<std::uint32_t>(k - first);
      for_each_overlap(ext_dsts, r, [&](std::size_t j) {
        const std::uint32_t w = ext_dsts[j].owner;
        if (w == i) return;
        after[i].push_back(w);  // w writes what i reads: w waits for i
        ++waiting[w];
      });
    }
    std::priority_queue<std::uint32_t, std::vector<std::uint32_t>, std::greater<>> ready;
    for (std::uint32_t i = 0; i < n; ++i)
      if (waiting[i] == 0) ready.push(i);
    std::size_t placed = 0;
    while (!ready.empty()) {
      const std::uint32_t i = ready.top();
      ready.pop();
      const cut& c = cuts[first + i];
      v.sequence.push_back({c.pair, c.extent, door_extent(c)});
      media_pair& mp = v.pairs[c.pair];
      mp.ranges.push_back({c.src_upper, c.dst_upper, c.length});
      ++placed;
      for (std::uint32_t w : after[i])
        if (--waiting[w] == 0) ready.push(w);
    }
    if (placed != n) {
      const cut& c = cuts[first];
      return status(
          errc::overlap,
          fmt::format("extent {}: its pieces exchange bytes on {} (the mapping puts each one's source "
                      "under another's destination): no copy order gives memmove's result; copy it in two steps",
                      c.extent + 1, medium_name(S, v.pairs[c.pair].src_medium)));
    }
    first = last;
  }
  return {};
}

}  // namespace offcopy::detail
