// make_plan() in three steps, each in its own file: validate (plan_validate.cpp), choose the
// backend (plan_choose.cpp), pack the extents into commands (plan_pack.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "offcopy/copy.hpp"
#include "src/core/backend.hpp"
#include "src/core/planner.hpp"

namespace offcopy::detail {

/// What validation established about a request.
struct validated_request {
  std::vector<extent> extents;  ///< the request's (or the whole source), sorted by destination
  bool reordered = false;       ///< the sort changed the request's order
  bool hazard = false;          ///< a source shares bytes with a destination on the same medium
  side_geometry src, dst;
  std::vector<std::string> candidates;  ///< backends to try, in order
};

/// The first extent (numbered from 1 in messages, counted in request order) not a multiple of
/// `unit` bytes: its index and value, or -1.
[[nodiscard]] std::pair<std::int64_t, extent> first_misaligned_in_request(const request& req,
                                                                          const validated_request& v,
                                                                          std::uint32_t unit);

/// Validate: devices present, destination writable, backend names known, extents in bounds and
/// not writing the same bytes twice, overlap allowed; in mode offload, equal block sizes and
/// block-aligned extents. Writes nothing, asks no backend.
[[nodiscard]] status validate_request(const request& req, const policy& pol, validated_request& out);

/// The backend chosen for a validated request.
struct chosen_backend {
  std::string name;
  pair_support support;
};

/// Choose: asks the candidates in order (running each one's discovery on both devices first,
/// stopping at the first that accepts) and records every answer in p.considered, the fallback
/// reason in p.fallback_reason and the discovery time in p.time.probe_seconds.
/// Errors: misaligned (mode offload), not_supported (no backend accepts).
[[nodiscard]] result<chosen_backend> choose_backend(const request& req, const policy& pol, const validated_request& v,
                                                    plan& p);

/// Pack: the chosen backend's limits (tightened by the policy's overrides for offload backends)
/// and the extents into p.segments / p.batches.
void pack_plan(const request& req, const policy& pol, validated_request& v, const chosen_backend& chosen, plan& p);

}  // namespace offcopy::detail
