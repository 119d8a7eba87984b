// make_plan: validation, backend choice, packing.
#include <algorithm>

#include <fmt/format.h>

#include "offcopy/copy.hpp"
#include "src/core/backend.hpp"
#include "src/core/planner.hpp"

namespace offcopy {
namespace detail {

bool is_offload(backend_kind b) noexcept {
  return b == backend_kind::nvme_copy || b == backend_kind::scsi_xcopy || b == backend_kind::scsi_token;
}

side_geometry geometry_of(const capabilities& c, bool destination) {
  side_geometry g;
  g.size_bytes = c.size_bytes;
  g.can_grow = destination && c.kind == device_kind::regular_file;
  g.identity = c.identity;
  g.identity_offset_bytes = c.identity_offset_bytes;
  return g;
}

std::vector<backend_kind> candidate_order(const policy& pol) {
  std::vector<backend_kind> order = pol.backends;
  if (order.empty())
    for (backend* b : backends()) order.push_back(b->kind());
  return order;
}

}  // namespace detail

result<plan> make_plan(const request& req, const policy& pol) {
  using namespace detail;
  if (!req.source || !req.destination) return status(errc::invalid_argument, "request needs a source and a destination");
  const capabilities& sc = req.source->caps();
  const capabilities& dc = req.destination->caps();
  if (!req.destination->state().writable)
    return status(errc::read_only, fmt::format("{}: destination is not open for writing", dc.path));
  if (dc.read_only) return status(errc::read_only, fmt::format("{}: destination is read-only", dc.path));

  // One sort by destination serves validation (overlaps are neighbours) and packing. Request
  // order is only needed for error messages (extent numbers) and for overlapping same-device
  // moves, and both re-read req.extents.
  std::vector<extent> extents = req.extents;
  auto by_dst = [](const extent& a, const extent& b) { return a.dst_offset_bytes < b.dst_offset_bytes; };
  bool reordered = !std::is_sorted(extents.begin(), extents.end(), by_dst);
  if (reordered) std::sort(extents.begin(), extents.end(), by_dst);
  side_geometry sg = geometry_of(sc, false), dg = geometry_of(dc, true);
  if (auto s = validate_extents(extents, sg, dg); !s.ok()) {
    if (!reordered) return s;
    std::vector<extent> in_request_order = req.extents;
    if (auto again = validate_extents(in_request_order, sg, dg); !again.ok()) return again;
    return s;
  }
  // Extent numbers in messages count in request order.
  auto first_misaligned_in_request = [&](std::uint32_t unit) -> std::pair<std::int64_t, extent> {
    const std::vector<extent>& order = req.extents.empty() ? extents : req.extents;
    std::int64_t i = first_misaligned(order, unit);
    return {i, i >= 0 ? order[static_cast<std::size_t>(i)] : extent{}};
  };

  bool same_medium = !sc.identity.empty() && sc.identity == dc.identity;
  bool hazard = has_overlap_hazard(extents, sg, dg);
  if (hazard && !pol.allow_overlap)
    return status(errc::overlap, "source and destination ranges overlap on the same device (overlap not allowed)");

  if (pol.mode == copy_mode::offload) {
    bool blocky = sc.kind != device_kind::regular_file && dc.kind != device_kind::regular_file;
    if (blocky && sc.logical_block_bytes != dc.logical_block_bytes)
      return status(errc::block_size_mismatch,
                    fmt::format("offload needs equal logical block sizes: {} has {} bytes, {} has {} bytes", sc.path,
                                sc.logical_block_bytes, dc.path, dc.logical_block_bytes));
    // Offload addresses whole logical blocks: a misaligned extent is bad input (exit 2) whether or
    // not some backend could offload this pair, so say so before "offload impossible" (exit 3).
    std::uint32_t unit = std::max(sc.logical_block_bytes, dc.logical_block_bytes);
    if (auto [i, e] = first_misaligned_in_request(unit); i >= 0)
      return status(errc::misaligned,
                    fmt::format("extent {} ({}:{}:{}) is not a multiple of the {}-byte logical block", i + 1,
                                e.src_offset_bytes, e.dst_offset_bytes, e.length_bytes, unit));
  }

  std::int64_t delta = static_cast<std::int64_t>(dc.identity_offset_bytes) - static_cast<std::int64_t>(sc.identity_offset_bytes);
  // A move within one file by a shift copy_file_range would have to take in tiny pieces.
  const std::uint64_t tiny_shift = hazard ? smallest_self_overlap_shift(extents, delta) : 0;

  plan p;
  p.same_medium = same_medium;
  const pair_support* chosen = nullptr;
  pair_support support;
  std::string first_offload_reason;
  bool offload_reason_recognised = false;
  for (backend_kind k : candidate_order(pol)) {
    backend* b = find_backend(k);
    if (b == nullptr) continue;
    if (pol.mode == copy_mode::fallback && is_offload(k)) {
      p.considered.push_back({k, false, "mode fallback: offload disabled"});
      continue;
    }
    if (pol.mode == copy_mode::offload && !is_offload(k)) continue;
    pair_support s = b->check(req.source->state(), req.destination->state(), pol);
    if (s.ok && k == backend_kind::copy_file_range && tiny_shift != 0 && tiny_shift < min_copy_file_range_shift_bytes) {
      s.ok = false;
      s.reason = fmt::format("cannot copy a range onto itself: a move by {} bytes is the buffered copier's", tiny_shift);
    }
    if (s.ok && s.block_bytes > 1) {
      if (auto [i, e] = first_misaligned_in_request(s.block_bytes); i >= 0) {
        if (pol.mode == copy_mode::offload)
          return status(errc::misaligned,
                        fmt::format("extent {} ({}:{}:{}) is not a multiple of the {}-byte logical block", i + 1,
                                    e.src_offset_bytes, e.dst_offset_bytes, e.length_bytes, s.block_bytes));
        s.ok = false;
        s.reason = fmt::format("extent {} is not aligned to {}-byte blocks", i + 1, s.block_bytes);
      }
    }
    p.considered.push_back({k, s.ok, s.ok ? std::string() : s.reason});
    if (!s.ok) {
      // The reason worth reporting comes from a backend that recognised one of the devices
      // (probe listed its mechanism), not from "nvme-copy: not an NVMe namespace" on a SCSI pair.
      bool recognised = sc.find(k) != nullptr || dc.find(k) != nullptr;
      if (is_offload(k) && (first_offload_reason.empty() || (recognised && !offload_reason_recognised))) {
        first_offload_reason = fmt::format("{}: {}", to_string(k), s.reason);
        offload_reason_recognised = recognised;
      }
      continue;
    }
    support = s;
    chosen = &support;
    p.backend = k;
    p.considered.back().chosen = true;
    break;
  }
  if (chosen == nullptr) {
    std::string why;
    for (const auto& c : p.considered) why += fmt::format("{}{}: {}", why.empty() ? "" : "; ", to_string(c.backend), c.reason);
    if (pol.mode == copy_mode::offload)
      return status(errc::not_supported, "offload impossible: " + (why.empty() ? "no offload backend" : why));
    return status(errc::not_supported, "no backend can copy this pair: " + why);
  }
  bool devices = sc.kind != device_kind::regular_file || dc.kind != device_kind::regular_file;
  if (!is_offload(p.backend) && pol.mode != copy_mode::fallback && devices && !first_offload_reason.empty())
    p.fallback_reason = first_offload_reason;

  // Overrides are in logical blocks of the device: they apply to the offload backends.
  copy_limits limits = is_offload(p.backend) ? support.limits.tightened(pol.limit_override) : support.limits;
  limits.contiguous_destination = support.limits.contiguous_destination;
  if (hazard && reordered) extents = req.extents;  // overlapping moves run in request order
  pack_extents(extents, support.block_bytes, limits, hazard, delta, p);
  return p;
}

}  // namespace offcopy
