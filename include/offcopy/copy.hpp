// offcopy/copy.hpp: plan and execute a request on open devices (the job API in job.hpp does the
// opening, option parsing and outcome classification for front ends).
#pragma once

#include "offcopy/export.h"
#include "offcopy/plan.hpp"
#include "offcopy/policy.hpp"
#include "offcopy/report.hpp"
#include "offcopy/request.hpp"

namespace offcopy {
inline namespace v0 {

/// Validates the request, runs the discovery it needs (backends in policy order, stopping at the
/// first that accepts the pair) and builds the plan; writes nothing.
/// Errors: invalid_argument, out_of_range, misaligned, zero_length, overlap, block_size_mismatch,
/// read_only, not_supported (mode offload and no backend can offload this pair), internal.
[[nodiscard]] OFFCOPY_API result<plan> make_plan(const request& req, const policy& pol = {}) noexcept;

/// Executes a plan made for `req` on the calling thread. The report's `result` holds the first
/// error, `bytes_copied` what is known done.
[[nodiscard]] OFFCOPY_API report execute(const request& req, const plan& p, const policy& pol = {}) noexcept;

/// make_plan + execute.
[[nodiscard]] OFFCOPY_API report copy(const request& req, const policy& pol = {}) noexcept;

}  // namespace v0
}  // namespace offcopy
