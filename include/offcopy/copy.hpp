// offcopy/copy.hpp: plan, execute, copy.
#pragma once

#include "offcopy/plan.hpp"
#include "offcopy/policy.hpp"
#include "offcopy/report.hpp"
#include "offcopy/request.hpp"

namespace offcopy {

/// Validates the request and builds the plan; writes nothing.
/// Errors: invalid_argument, out_of_range, misaligned, zero_length, overlap, block_size_mismatch,
/// read_only, not_supported (mode offload and no backend can offload this pair).
[[nodiscard]] result<plan> make_plan(const request& req, const policy& pol = {});

/// Executes a plan made for `req`. The report's `result` holds the first error.
[[nodiscard]] report execute(const request& req, const plan& p, const policy& pol = {});

/// make_plan + execute.
[[nodiscard]] report copy(const request& req, const policy& pol = {});

/// Reads `extents` back from both devices with O_DIRECT where possible and compares.
/// Returns verify_mismatch with the first differing destination offset in `first_mismatch`.
[[nodiscard]] status verify(const request& req, std::int64_t& first_mismatch);

}  // namespace offcopy
