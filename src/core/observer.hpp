// The engine's hook for a journal of completed work (issue 8.8): told what each command is about
// to do and what it is known to have done, as completions are accounted. Internal.
#pragma once

#include <cstdint>
#include <span>

#include "offcopy/copy.hpp"
#include "offcopy/plan.hpp"
#include "offcopy/status.hpp"

namespace offcopy::detail {

/// What the engine tells an observer, on the thread that runs execute(). A status other than ok
/// from either call stops the copy with that error (as a device error would).
class completion_observer {
 public:
  virtual ~completion_observer() = default;
  /// Before a command is submitted. `memmove`: the session copies this one segment onto itself
  /// (copy_order not any), so an interruption inside it leaves bytes no re-run can recover.
  [[nodiscard]] virtual status before_submit(std::span<const plan_segment> segments, std::uint32_t block_bytes,
                                             bool memmove) = 0;
  /// The first `blocks` of `segments` (in segment order; the last ones when `from_end`: a
  /// descending memmove command) are known to be at the destination.
  [[nodiscard]] virtual status completed(std::span<const plan_segment> segments, std::uint32_t block_bytes,
                                         std::uint64_t blocks, bool from_end) = 0;
};

/// execute() with an observer (nullptr: none). Never throws.
[[nodiscard]] report execute_observed(const request& req, const plan& p, const policy& pol,
                                      completion_observer* observer) noexcept;

}  // namespace offcopy::detail
