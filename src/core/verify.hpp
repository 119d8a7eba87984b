// Reading a copy back and comparing it with its source (policy::verify).
#pragma once

#include <atomic>
#include <cstdint>

#include "offcopy/request.hpp"
#include "offcopy/status.hpp"

namespace offcopy::detail {

/// Reads `req.extents` (none: the whole source) back from both devices, O_DIRECT where possible,
/// and compares. verify_mismatch with the first differing destination byte in `first_mismatch`
/// (else -1); io_error when a read fails; cancelled when `cancel` is set (polled before each read
/// of at most 4 MiB).
[[nodiscard]] status verify_extents(const request& req, std::int64_t& first_mismatch,
                                    const std::atomic<bool>* cancel = nullptr);

}  // namespace offcopy::detail
