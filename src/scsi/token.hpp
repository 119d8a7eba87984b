// Token copy (ODX): POPULATE TOKEN → RECEIVE ROD TOKEN INFORMATION → WRITE USING TOKEN.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "offcopy/limits.hpp"
#include "offcopy/plan.hpp"
#include "src/scsi/lu.hpp"
#include "src/scsi/transport.hpp"
#include "src/scsi/wire.hpp"

namespace offcopy::detail {
class backend;
}

namespace offcopy::detail::scsi {

struct token_options {
  bool immed = false;                      ///< IMMED on POPULATE TOKEN and WRITE USING TOKEN, then poll
  std::uint32_t inactivity_timeout_s = 0;  ///< 0 = the device default
  unsigned max_polls = 100000;             ///< RRTI polls before giving up
  unsigned poll_floor_ms = 1;              ///< minimum wait between polls
};

/// Counters kept by a token copy (tests and the closing report read them).
struct token_stats {
  std::uint64_t populate_commands = 0;
  std::uint64_t write_commands = 0;
  std::uint64_t rrti_commands = 0;
  std::uint64_t partial_writes = 0;  ///< WRITE USING TOKEN that moved less than asked
  std::uint64_t repopulations = 0;   ///< token expired/invalid: populated again
};

struct token_capability {
  bool available = false;
  std::string reason;
  copy_limits limits;
};
/// From VPD 0x8F: ROD token limits descriptor and the supported commands. `force` pretends the
/// commands exist (to prove how a device without them answers).
[[nodiscard]] token_capability token_capability_of(const lu_info& lu, bool force);

/// Runs one token copy: ranges of `segments` gathered from src into a ROD, scattered over dst.
/// On failure `blocks_done` holds the blocks known written, a prefix in segment order.
[[nodiscard]] status token_copy(transport& src, transport& dst, std::span<const plan_segment> segments,
                                const token_options& opt, token_stats& stats, std::uint64_t& blocks_done,
                                std::uint64_t block_bytes = 512);

/// Writes zeros over `ranges` of dst with the block device zero ROD token (no POPULATE TOKEN).
/// `lu` is dst's discovery. Errors: not_supported, nothing sent, unless VPD 0x8F descriptor
/// 0x0108 lists ROD type 0xFFFF0001 with TOKEN_IN.
[[nodiscard]] status token_write_zeros(transport& dst, const lu_info& lu, std::span<const block_range> ranges,
                                       const token_options& opt, token_stats& stats, std::uint64_t& blocks_done);

[[nodiscard]] backend& token_backend_instance();

}  // namespace offcopy::detail::scsi
