// The CLI's catch-all (issue 11.4): whatever escapes a command is exit 1 with a message, never an
// abort. A function of its own so tests can drive it with any exception (tests/unit/cli).
#pragma once

#include <unistd.h>

#include <string_view>
#include <utility>

#include "offcopy/job.hpp"

namespace offcopy::cli {

/// Writes all of `text` to `fd`; false when it cannot (EPIPE, ENOSPC, EBADF...): output is best
/// effort, never a reason to crash or to change the exit status.
bool write_all(int fd, std::string_view text) noexcept;

/// Where the catch-all reports, and for which command line.
struct guard_output {
  operation op = operation::copy;  ///< the JSON object's "operation"
  bool json = false;               ///< --json: one JSON object on out_fd too
  int out_fd = STDOUT_FILENO;
  int err_fd = STDERR_FILENO;
};

/// Reports the exception being handled (call it only from a catch block) and returns 1: one line
/// "offload-copy: internal: unexpected error: WHAT" on err_fd (terminal-safe: what() is untrusted
/// bytes), and with `json` one JSON object on out_fd (docs/offload-copy.schema.json: status
/// "error", error code "internal", outcome "device-error", exit_status 1). WHAT is what() of a
/// std::exception, "out of memory (std::bad_alloc)", or "unknown exception (not a std::exception)".
/// When memory is too short even for that, fixed text of the same shape, WHAT left out.
[[nodiscard]] int report_unexpected(const guard_output& out) noexcept;

/// Runs `body` (returning the exit status); whatever it throws becomes report_unexpected()'s exit 1.
template <class Body>
[[nodiscard]] int run_guarded(Body&& body, const guard_output& out) noexcept {
  try {
    return std::forward<Body>(body)();
  } catch (...) {
    return report_unexpected(out);
  }
}

}  // namespace offcopy::cli
