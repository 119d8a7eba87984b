// make_plan, step 1: validation. Writes nothing and asks no backend.
#include <algorithm>

#include <fmt/format.h>

#include "src/core/device_state.hpp"
#include "src/core/plan_steps.hpp"

namespace offcopy::detail {
namespace {

side_geometry geometry_of(const capabilities& c, bool destination) {
  side_geometry g;
  g.size_bytes = c.size_bytes;
  g.can_grow = destination && c.kind == device_kind::regular_file;
  g.identity = c.identity;
  g.identity_offset_bytes = c.identity_offset_bytes;
  return g;
}

/// The backends to try, in order: the policy's (each must be registered) or the registry's.
status candidate_order(const policy& pol, std::vector<std::string>& order) {
  for (const std::string& name : pol.backends) {
    if (find_row(name) == nullptr) {
      std::string known;
      for (const backend_row& r : registry()) known += fmt::format("{}{}", known.empty() ? "" : ", ", r.name);
      return status(errc::invalid_argument, fmt::format("backend '{}': unknown (known: {})", name, known));
    }
    order.push_back(name);
  }
  if (order.empty())
    for (const backend_row& r : registry()) order.emplace_back(r.name);
  return {};
}

}  // namespace

std::pair<std::int64_t, extent> first_misaligned_in_request(const request& req, const validated_request& v,
                                                            std::uint32_t unit) {
  const std::vector<extent>& order = req.extents.empty() ? v.extents : req.extents;
  std::int64_t i = first_misaligned(order, unit);
  return {i, i >= 0 ? order[static_cast<std::size_t>(i)] : extent{}};
}

status validate_request(const request& req, const policy& pol, validated_request& v) {
  if (!req.source || !req.destination)
    return status(errc::invalid_argument, "request needs a source and a destination");
  if (auto s = candidate_order(pol, v.candidates); !s.ok()) return s;
  for (std::size_t i = 0; i < req.extents.size(); ++i)
    if (req.extents[i].source != 0)
      return status(errc::invalid_argument,
                    fmt::format("extent {}: source {} does not exist (the request has one source)", i + 1,
                                req.extents[i].source));
  // open()'s classification: immutable, so no lock while another thread discovers.
  const capabilities& sc = req.source->caps();
  const capabilities& dc = req.destination->caps();
  if (!state_of(*req.destination).writable)
    return status(errc::read_only, fmt::format("{}: destination is not open for writing", dc.path));
  if (dc.read_only) return status(errc::read_only, fmt::format("{}: destination is read-only", dc.path));

  // One sort by destination serves validation (overlaps are neighbours) and packing. Request
  // order is only needed for error messages (extent numbers) and for overlapping same-device
  // moves, and both re-read req.extents.
  v.extents = req.extents;
  auto by_dst = [](const extent& a, const extent& b) { return a.dst_offset_bytes < b.dst_offset_bytes; };
  v.reordered = !std::is_sorted(v.extents.begin(), v.extents.end(), by_dst);
  if (v.reordered) std::sort(v.extents.begin(), v.extents.end(), by_dst);
  v.src = geometry_of(sc, false);
  v.dst = geometry_of(dc, true);
  if (auto s = validate_extents(v.extents, v.src, v.dst); !s.ok()) {
    if (!v.reordered) return s;
    std::vector<extent> in_request_order = req.extents;
    if (auto again = validate_extents(in_request_order, v.src, v.dst); !again.ok()) return again;
    return s;
  }

  if (pol.mode == copy_mode::offload) {
    bool blocky = sc.kind != device_kind::regular_file && dc.kind != device_kind::regular_file;
    if (blocky && sc.logical_block_bytes != dc.logical_block_bytes)
      return status(errc::block_size_mismatch,
                    fmt::format("offload needs equal logical block sizes: {} has {} bytes, {} has {} bytes", sc.path,
                                sc.logical_block_bytes, dc.path, dc.logical_block_bytes));
    // Offload addresses whole logical blocks: a misaligned extent is bad input (exit 2) whether or
    // not some backend could offload this pair, so say so before "offload impossible" (exit 3).
    std::uint32_t unit = std::max(sc.logical_block_bytes, dc.logical_block_bytes);
    if (auto [i, e] = first_misaligned_in_request(req, v, unit); i >= 0)
      return status(errc::misaligned, fmt::format("extent {} ({}:{}:{}) is not a multiple of the {}-byte logical block",
                                                  i + 1, e.src_offset_bytes, e.dst_offset_bytes, e.length_bytes, unit));
  }
  return {};
}

}  // namespace offcopy::detail
