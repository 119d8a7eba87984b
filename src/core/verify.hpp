// Reading a copy back and comparing it with its source (policy::verify).
#pragma once

#include <atomic>

#include "offcopy/plan.hpp"
#include "offcopy/report.hpp"
#include "offcopy/request.hpp"

namespace offcopy::detail {

/// The verify stage of a copy of `req` planned as `p`, reported like every other stage: through
/// `rep`. Does nothing when `rep.result` is already an error. After an ordered plan (an
/// overlapping move on one medium: the source no longer holds the original bytes) it only sets
/// `rep.verify_skipped`. Otherwise it reads every extent of `req` (none: the whole source to
/// offset 0; `extent::source` k from `req.sources[k - 1]`) back from both devices, O_DIRECT where
/// possible, compares, sets `rep.time.verify_seconds` and either `rep.verified`, or `rep.result`:
/// verify_mismatch with the first differing destination byte in `rep.first_mismatch_offset`;
/// io_error (or the errno's code) when an open or a read fails; cancelled when `cancel` is set
/// (polled before each read of at most 4 MiB); invalid_argument without a source or destination.
/// May throw std::bad_alloc (callers run it inside their exception guard).
void verify_copy(const request& req, const plan& p, const std::atomic<bool>* cancel, report& rep);

}  // namespace offcopy::detail
