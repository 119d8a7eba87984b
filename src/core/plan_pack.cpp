// make_plan, step 4: each pair's backend limits and extents, packed into commands; and make_plan()
// itself, the four steps in order.
#include <algorithm>
#include <chrono>

#include <fmt/format.h>

#include "src/core/plan_steps.hpp"

namespace offcopy {
namespace detail {
namespace {

copy_limits limits_of(const media_pair& mp, const policy& pol) {
  const pair_support& support = mp.chosen.support;
  // Overrides are in logical blocks of the device: they apply to the offload backends.
  copy_limits limits = is_offload(mp.chosen.name) ? support.limits.tightened(pol.limit_override) : support.limits;
  limits.contiguous_destination = support.limits.contiguous_destination;
  return limits;
}

/// Appends a packed sub-plan as part `part` of `p`.
void append(plan& p, const plan& sub, std::uint32_t part) {
  const auto base = static_cast<std::uint32_t>(p.segments.size());
  p.segments.insert(p.segments.end(), sub.segments.begin(), sub.segments.end());
  for (plan_batch b : sub.batches) {
    b.first_segment += base;
    b.part = part;
    p.batches.push_back(b);
  }
}

}  // namespace

void pack_plan(const request& req, const policy& pol, validated_request& v, plan& p) {
  (void)req;
  p.ordered = v.hazard;
  p.same_medium = false;
  for (std::uint32_t k = 0; k < v.pairs.size(); ++k) {
    media_pair& mp = v.pairs[k];
    p.parts[k].limits = limits_of(mp, pol);
    p.same_medium = p.same_medium || mp.same_medium;
  }
  if (v.pairs.size() == 1 && v.sequence.empty()) {
    // One pair (every plan on devices that are their own media): packed in place, as before there
    // were pieces.
    media_pair& mp = v.pairs[0];
    pack_extents(mp.extents, mp.chosen.support.block_bytes, p.parts[0].limits, v.hazard, mp.delta_bytes, p);
  } else if (v.sequence.empty()) {
    for (std::uint32_t k = 0; k < v.pairs.size(); ++k) {
      media_pair& mp = v.pairs[k];
      plan sub;
      pack_extents(mp.extents, mp.chosen.support.block_bytes, p.parts[k].limits, false, mp.delta_bytes, sub);
      append(p, sub, k);
    }
  } else {
    // Ordered across pieces: each step behind a barrier of its own, in the order resolution found.
    plan sub;
    for (const auto& st : v.sequence) {
      media_pair& mp = v.pairs[st.pair];
      std::vector<extent> one{st.e};
      pack_extents(one, mp.chosen.support.block_bytes, p.parts[st.pair].limits, true, mp.delta_bytes, sub);
      append(p, sub, st.pair);
    }
  }
  p.ordered = v.hazard;
  // The plan's own unit and limits are those of the part it names (the one with the most bytes).
  for (const plan_part& part : p.parts) {
    if (part.backend == p.backend) {
      p.block_bytes = part.block_bytes;
      p.limits = part.limits;
      break;
    }
  }
}

result<plan> make_single_source_plan(const request& req, const policy& pol) {
  auto t0 = std::chrono::steady_clock::now();
  validated_request v;
  if (auto s = validate_request(req, pol, v); !s.ok()) return s;
  if (auto s = resolve_request(req, pol, v); !s.ok()) return s;
  plan p;
  if (auto s = choose_backends(req, pol, v, p); !s.ok()) return s;
  pack_plan(req, pol, v, p);
  double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  p.time.plan_seconds = std::max(0.0, total - p.time.probe_seconds);
  return p;
}

}  // namespace detail

namespace v0 {

result<plan> make_plan(const request& req, const policy& pol) noexcept {
  try {
    if (!req.sources.empty()) return detail::make_gather_plan(req, pol);
    return detail::make_single_source_plan(req, pol);
  } catch (const std::exception& e) {
    return status(errc::internal, fmt::format("make_plan: {}", e.what()));
  }
}

}  // namespace v0
}  // namespace offcopy
