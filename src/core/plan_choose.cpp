// make_plan, step 2: the backend. Candidates are asked in order; each one's discovery runs on both
// devices just before it is asked (and only then), and the first that accepts the pair wins.
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

}  // namespace

result<chosen_backend> choose_backend(const request& req, const policy& pol, const validated_request& v, plan& p) {
  device_state& src = state_of(*req.source);
  device_state& dst = state_of(*req.destination);
  const capabilities& sc = req.source->caps();
  const capabilities& dc = req.destination->caps();
  std::string first_offload_reason;
  bool offload_reason_recognised = false;
  // A move within one file by a shift copy_file_range would have to take in tiny pieces.
  const std::int64_t delta =
      static_cast<std::int64_t>(dc.identity_offset_bytes) - static_cast<std::int64_t>(sc.identity_offset_bytes);
  const std::uint64_t tiny_shift = v.hazard ? smallest_self_overlap_shift(v.extents, delta) : 0;
  for (const std::string& k : v.candidates) {
    const backend_row* row = find_row(k);
    backend* b = find_backend(k);
    if (row == nullptr || b == nullptr) continue;
    if (pol.mode == copy_mode::fallback && is_offload(k)) {
      p.considered.push_back({k, false, "mode fallback: offload disabled"});
      continue;
    }
    if (pol.mode == copy_mode::offload && !is_offload(k)) continue;
    p.time.probe_seconds += ensure_discovered(src, *row);
    p.time.probe_seconds += ensure_discovered(dst, *row);
    pair_support s;
    {
      std::scoped_lock lock(src.mu, dst.mu);
      s = b->check(src, dst, pol);
    }
    if (s.ok && k == "copy-file-range" && tiny_shift != 0 && tiny_shift < min_copy_file_range_shift_bytes) {
      s.ok = false;
      s.reason = fmt::format("cannot copy a range onto itself: a move by {} bytes is the buffered copier's", tiny_shift);
    }
    if (s.ok && s.block_bytes > 1) {
      if (auto [i, e] = first_misaligned_in_request(req, v, s.block_bytes); i >= 0) {
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
      // (its discovery listed a mechanism), not from "nvme-copy: not an NVMe namespace" on a SCSI pair.
      bool recognised = has_mechanism(src, k) || has_mechanism(dst, k);
      if (is_offload(k) && (first_offload_reason.empty() || (recognised && !offload_reason_recognised))) {
        first_offload_reason = fmt::format("{}: {}", k, s.reason);
        offload_reason_recognised = recognised;
      }
      continue;
    }
    p.backend = k;
    p.considered.back().chosen = true;
    bool devices = sc.kind != device_kind::regular_file || dc.kind != device_kind::regular_file;
    if (!is_offload(k) && pol.mode != copy_mode::fallback && devices && !first_offload_reason.empty())
      p.fallback_reason = first_offload_reason;
    return chosen_backend{k, s};
  }
  std::string why;
  for (const auto& c : p.considered) why += fmt::format("{}{}: {}", why.empty() ? "" : "; ", c.backend, c.reason);
  if (pol.mode == copy_mode::offload)
    return status(errc::not_supported, "offload impossible: " + (why.empty() ? "no offload backend" : why));
  return status(errc::not_supported, "no backend can copy this pair: " + why);
}

}  // namespace offcopy::detail
