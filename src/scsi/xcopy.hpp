// EXTENDED COPY (LID1) decisions, kept apart from I/O so tests can check them directly.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "offcopy/limits.hpp"
#include "offcopy/plan.hpp"
#include "src/scsi/lu.hpp"
#include "src/scsi/wire.hpp"

namespace offcopy {
namespace detail {
class backend;
}
}  // namespace offcopy

namespace offcopy::detail::scsi {

/// Whether one LU's copy manager can run LID1 block→block copies, and its per-command limits.
struct xcopy_capability {
  bool available = false;
  std::string reason;
  copy_limits limits;
};
[[nodiscard]] xcopy_capability xcopy_capability_of(const lu_info& lu);

/// Planner limits from RECEIVE COPY OPERATING PARAMETERS: segments ≤ max segment descriptors and
/// ≤ (max descriptor list length − CSCDs) / 28; blocks per segment ≤ min(65535, max segment length).
[[nodiscard]] copy_limits xcopy_limits(const copy_operating_parameters& p, std::uint32_t block_bytes, unsigned cscds);

/// The two ends of a copy as the CSCD descriptors name them.
struct xcopy_pair {
  std::vector<std::uint8_t> src_naa;
  std::vector<std::uint8_t> dst_naa;
  std::uint32_t block_bytes = 512;
  bool single_cscd = false;  ///< same LU: one CSCD, index 0 for both ends
};

struct pair_decision {
  bool ok = false;
  std::string reason;
  bool send_to_destination = true;
  xcopy_pair pair;
  list_id_usage usage = list_id_usage::none;
  copy_limits limits;
  unsigned concurrent_copies = 1;  ///< RCOP MAXIMUM CONCURRENT COPIES (LIO: 1), at most 16
};
/// Can src → dst run as XCOPY, sent to which LU, with which list-id usage and limits.
[[nodiscard]] pair_decision decide_pair(const lu_info& src, const lu_info& dst);

/// The parameter list for one command of the plan.
[[nodiscard]] std::vector<std::uint8_t> build_xcopy_list(const xcopy_pair& pair, std::uint8_t list_id,
                                                         list_id_usage usage, std::span<const plan_segment> segments);

/// Blocks of `segments` known copied after a command ended with errors, from its RECEIVE COPY
/// STATUS(LID1) reply: whole segments from the first, never more than the reply proves.
///
/// SEGMENTS PROCESSED counts the segments completed, the failing one not included: that is how
/// FreeBSD CTL (ctl_tpc.c, the open copy manager that answers this command; LIO does not) reports
/// it — its curseg, the index of the failing segment, which it also puts in the sense data's
/// COMMAND-SPECIFIC INFORMATION. An array that counts the failing segment too would make that an
/// over-claim by one, so the claim is also bounded by the TRANSFER COUNT (units honoured: the
/// bytes written so far): only segments the count covers entirely. With reserved units the count
/// proves nothing and SEGMENTS PROCESSED − 1 is claimed, an over-claim under neither reading.
[[nodiscard]] std::uint64_t lid1_blocks_known_done(const copy_status_lid1& status,
                                                   std::span<const plan_segment> segments,
                                                   std::uint32_t block_bytes) noexcept;

[[nodiscard]] backend& xcopy_backend_instance();

}  // namespace offcopy::detail::scsi
