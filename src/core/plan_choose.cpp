// make_plan, step 3: a backend for each pair of media. Candidates are asked in order; each one's
// discovery runs on both doors just before it is asked (and only then), and the first that accepts
// the pair wins. Pairs with an opaque side (a dm target nothing resolves) go to a fallback.
#include <mutex>

#include <fmt/format.h>

#include "src/core/device_state.hpp"
#include "src/core/plan_steps.hpp"

namespace offcopy::detail {
namespace {

bool has_mechanism(const device_state& d, std::string_view name) {
  std::lock_guard lock(d.mu);
  return d.caps.find(name) != nullptr;
}

/// The request's extents in its own order (the whole source when it names none).
std::vector<extent> request_order(const request& req) {
  if (!req.extents.empty()) return req.extents;
  return {extent{0, 0, req.source->caps().size_bytes}};
}

/// The first extent (request order, 0-based) whose bytes of this pair are not on `unit` boundaries
/// of the doors, or -1.
std::int64_t first_misaligned_of_pair(const request& req, const validated_request& v, const media_pair& mp,
                                      std::uint32_t unit) {
  if (unit <= 1) return -1;
  auto misaligned = [unit](std::uint64_t src, std::uint64_t dst, std::uint64_t length) {
    return src % unit != 0 || dst % unit != 0 || length % unit != 0;
  };
  if (mp.whole) {
    // The request shifted onto the doors (by where the pieces start on them).
    const std::vector<extent> order = request_order(req);
    for (std::size_t k = 0; k < order.size(); ++k) {
      const extent& e = order[k];
      if (misaligned(e.src_offset_bytes + mp.src_shift_bytes, e.dst_offset_bytes + mp.dst_shift_bytes, e.length_bytes))
        return static_cast<std::int64_t>(k);
    }
    return -1;
  }
  std::int64_t best = -1;
  auto consider = [&](const extent& d, std::uint32_t number) {
    if (misaligned(d.src_offset_bytes, d.dst_offset_bytes, d.length_bytes) && (best < 0 || number < best))
      best = number;
  };
  if (!v.sequence.empty()) {
    for (const auto& st : v.sequence)
      if (&v.pairs[st.pair] == &mp) consider(st.e, st.extent_number);
    return best;
  }
  for (std::size_t k = 0; k < mp.extents.size(); ++k) consider(mp.extents[k], mp.extent_numbers[k]);
  return best;
}

/// The smallest shift by which one of the pair's pieces moves onto itself, or 0.
std::uint64_t tiny_shift_of(const validated_request& v, const media_pair& mp) {
  if (!v.hazard || !mp.same_medium) return 0;
  if (v.sequence.empty()) return smallest_self_overlap_shift(mp.extents, mp.delta_bytes);
  std::vector<extent> steps;
  for (const auto& st : v.sequence)
    if (&v.pairs[st.pair] == &mp) steps.push_back(st.e);
  return smallest_self_overlap_shift(steps, mp.delta_bytes);
}

std::string describe_pair(const validated_request& v, const media_pair& mp) {
  return fmt::format("{} -> {}", v.src_res->media[mp.src_medium].path, v.dst_res->media[mp.dst_medium].path);
}

}  // namespace

status choose_backends(const request& req, const policy& pol, validated_request& v, plan& p) {
  const capabilities& sc = req.source->caps();
  const capabilities& dc = req.destination->caps();
  const bool devices = sc.kind != device_kind::regular_file || dc.kind != device_kind::regular_file;
  const bool several = v.pairs.size() > 1;
  const std::vector<extent> order = request_order(req);
  for (media_pair& mp : v.pairs) {
    device_state& src = *mp.src;
    device_state& dst = *mp.dst;
    plan_part part;
    part.source_medium = src.caps.path;  // the door used: the destination's when they share a medium
    part.destination_medium = dst.caps.path;
    part.bytes = mp.bytes;
    if (several) part.ranges = mp.ranges;
    if (mp.whole) {
      part.src_shift_bytes = mp.src_shift_bytes;
      part.dst_shift_bytes = mp.dst_shift_bytes;
    } else {
      part.cut_from_pieces = true;
    }
    const std::string where = several ? describe_pair(v, mp) + ": " : std::string();
    std::string first_offload_reason;
    bool offload_reason_recognised = false;
    const std::uint64_t tiny_shift = tiny_shift_of(v, mp);
    bool chosen = false;
    for (const std::string& k : v.candidates) {
      const backend_row* row = find_row(k);
      backend* b = find_backend(k);
      if (row == nullptr || b == nullptr) continue;
      if (pol.mode == copy_mode::fallback && is_offload(k)) {
        part.considered.push_back({k, false, "mode fallback: offload disabled"});
        continue;
      }
      if (pol.mode == copy_mode::offload && !is_offload(k)) continue;
      if (!mp.opaque.empty() && is_offload(k)) {
        // Its bytes are only reachable through the device: no backend addresses them.
        part.considered.push_back({k, false, mp.opaque});
        if (first_offload_reason.empty()) first_offload_reason = mp.opaque;
        offload_reason_recognised = true;
        continue;
      }
      p.time.probe_seconds += ensure_discovered(src, *row);
      p.time.probe_seconds += ensure_discovered(dst, *row);
      pair_support s;
      {
        std::scoped_lock lock(src.mu, dst.mu);
        s = b->check(src, dst, pol);
      }
      if (s.ok && k == "copy-file-range" && tiny_shift != 0 && tiny_shift < min_copy_file_range_shift_bytes) {
        s.ok = false;
        s.reason =
            fmt::format("cannot copy a range onto itself: a move by {} bytes is the buffered copier's", tiny_shift);
      }
      if (s.ok && s.block_bytes > 1) {
        if (const std::int64_t i = first_misaligned_of_pair(req, v, mp, s.block_bytes); i >= 0) {
          const extent e = static_cast<std::size_t>(i) < order.size() ? order[static_cast<std::size_t>(i)] : extent{};
          if (pol.mode == copy_mode::offload)
            return status(errc::misaligned,
                          fmt::format("{}extent {} ({}:{}:{}) is not a multiple of the {}-byte logical block{}", where,
                                      i + 1, e.src_offset_bytes, e.dst_offset_bytes, e.length_bytes, s.block_bytes,
                                      v.src_res->stacked() || v.dst_res->stacked() ? " on its medium" : ""));
          s.ok = false;
          s.reason = fmt::format("extent {} is not aligned to {}-byte blocks", i + 1, s.block_bytes);
        }
      }
      part.considered.push_back({k, s.ok, s.ok ? std::string() : s.reason});
      if (!s.ok) {
        // The reason worth reporting comes from a backend that recognised one of the devices
        // (its discovery listed a mechanism), not from "nvme-copy: not an NVMe namespace" on a SCSI pair.
        const bool recognised = has_mechanism(src, k) || has_mechanism(dst, k);
        if (is_offload(k) && (first_offload_reason.empty() || (recognised && !offload_reason_recognised))) {
          first_offload_reason = fmt::format("{}: {}", k, s.reason);
          offload_reason_recognised = recognised;
        }
        continue;
      }
      part.backend = k;
      part.considered.back().chosen = true;
      part.block_bytes = s.block_bytes;
      if (!is_offload(k) && pol.mode != copy_mode::fallback && devices && !first_offload_reason.empty())
        part.fallback_reason = where + first_offload_reason;
      mp.chosen = chosen_backend{k, s};
      chosen = true;
      break;
    }
    if (!chosen) {
      std::string why;
      for (const auto& c : part.considered)
        why += fmt::format("{}{}: {}", why.empty() ? "" : "; ", c.backend, c.reason);
      if (pol.mode == copy_mode::offload)
        return status(errc::not_supported, "offload impossible: " + where + (why.empty() ? "no offload backend" : why));
      return status(errc::not_supported,
                    "no backend can copy " + (several ? describe_pair(v, mp) : "this pair") + ": " + why);
    }
    p.parts.push_back(std::move(part));
  }
  // The plan's own fields describe the part carrying the most bytes (all of them with one part).
  std::size_t main = 0;
  for (std::size_t k = 1; k < p.parts.size(); ++k)
    if (p.parts[k].bytes > p.parts[main].bytes) main = k;
  p.backend = p.parts[main].backend;
  p.considered = p.parts[main].considered;
  for (const plan_part& part : p.parts) {
    if (!part.fallback_reason.empty()) {
      p.fallback_reason = part.fallback_reason;
      break;
    }
  }
  return {};
}

}  // namespace offcopy::detail
