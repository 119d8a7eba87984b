// make_plan, step 3: the chosen backend's limits and the extents, packed into commands; and
// make_plan() itself, the three steps in order.
#include <algorithm>
#include <chrono>

#include <fmt/format.h>

#include "src/core/plan_steps.hpp"

namespace offcopy {
namespace detail {

void pack_plan(const request& req, const policy& pol, validated_request& v, const chosen_backend& chosen, plan& p) {
  const capabilities& sc = req.source->caps();
  const capabilities& dc = req.destination->caps();
  const pair_support& support = chosen.support;
  p.same_medium = !sc.identity.empty() && sc.identity == dc.identity;
  // Overrides are in logical blocks of the device: they apply to the offload backends.
  copy_limits limits = is_offload(chosen.name) ? support.limits.tightened(pol.limit_override) : support.limits;
  limits.contiguous_destination = support.limits.contiguous_destination;
  std::int64_t delta =
      static_cast<std::int64_t>(dc.identity_offset_bytes) - static_cast<std::int64_t>(sc.identity_offset_bytes);
  if (v.hazard && v.reordered) v.extents = req.extents;  // overlapping moves run in request order
  pack_extents(v.extents, support.block_bytes, limits, v.hazard, delta, p);
}

namespace {

result<plan> make_plan_unchecked(const request& req, const policy& pol) {
  auto t0 = std::chrono::steady_clock::now();
  validated_request v;
  if (auto s = validate_request(req, pol, v); !s.ok()) return s;
  plan p;
  auto chosen = choose_backend(req, pol, v, p);
  if (!chosen.ok()) return std::move(chosen).error();
  pack_plan(req, pol, v, chosen.value(), p);
  double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  p.time.plan_seconds = std::max(0.0, total - p.time.probe_seconds);
  return p;
}

}  // namespace
}  // namespace detail

namespace v0 {

result<plan> make_plan(const request& req, const policy& pol) noexcept {
  try {
    return detail::make_plan_unchecked(req, pol);
  } catch (const std::exception& e) {
    return status(errc::internal, fmt::format("make_plan: {}", e.what()));
  }
}

}  // namespace v0
}  // namespace offcopy
