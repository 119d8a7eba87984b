// Reading a copy back and comparing it with its source (policy::verify).
#pragma once

#include <cstdint>

#include "offcopy/request.hpp"
#include "offcopy/status.hpp"

namespace offcopy::detail {

/// Reads `req.extents` (none: the whole source) back from both devices, O_DIRECT where possible,
/// and compares. verify_mismatch with the first differing destination byte in `first_mismatch`
/// (else -1); io_error when a read fails.
[[nodiscard]] status verify_extents(const request& req, std::int64_t& first_mismatch);

}  // namespace offcopy::detail
