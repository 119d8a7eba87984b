// The NVMe Copy session: plan commands → Copy commands on a transport → completions.
// Separate from the Linux backend so the device model (tests/models/nvme_model) can drive it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <unordered_map>
#include <vector>

#include "src/core/backend.hpp"
#include "src/nvme/copy_encode.hpp"
#include "src/nvme/transport.hpp"

namespace offcopy::nvme {

/// How plan blocks become Copy commands for one source/destination pair.
struct session_params {
  std::uint32_t nsid = 1;         ///< destination namespace (the command's NSID)
  std::uint32_t source_nsid = 0;  ///< formats 2h/3h only: source namespace
  /// Formats 2h/3h, a gathering session: the namespace of each plan_segment::source (overrides
  /// source_nsid). Empty: every segment reads source_nsid (or the destination namespace).
  std::vector<std::uint32_t> source_nsids;
  std::uint8_t descriptor_format = 0;  ///< 0h..3h
  /// Protection information: regenerate the destination's PI (PRINFOR.PRACT = PRINFOW.PRACT = 1,
  /// no PRCHK bits) with reference tags starting at SDLBA; the source's PI is not checked.
  bool pi_regenerate = false;
  /// Width of the PI format's logical block reference tag (reference_tag_bits()): ILBRT and
  /// EILBRT are the LBA cut to it, as the Type 1 tag of that LBA is.
  std::uint8_t reference_tag_bits = 32;
  /// Flush (opcode 00h) the destination namespace in finish() when true.
  bool flush_on_finish = true;
  /// Formats 2h/3h: called when the controller answers Invalid Field to such a command, which is
  /// what it does once something (a controller reset: Linux rewrites Host Behavior Support) cleared
  /// CDFE. Sets CDFE again; when it succeeds the command is sent once more. Empty: no retry.
  std::function<status()> reenable_formats;
};

/// Reference tag width of a PI format (Identify Namespace NVM ELBAF PIF), storage tag size 0:
/// 0 (16-bit guard, 8-byte PI) 32 bits; 2 (64-bit guard, 16-byte PI) 48 bits; 1 (32-bit guard)
/// 64 bits — the most ILBRT carries (CDW14 and CDW3; libnvme nvme_set_var_size_tags, QEMU 10
/// nvme_check_prinfo masks 48 bits when pif != 0).
[[nodiscard]] constexpr std::uint8_t reference_tag_bits(std::uint8_t pi_format) noexcept {
  return pi_format == 2 ? 48 : pi_format == 1 ? 64 : 32;
}

/// One source of a gathering Copy: `blocks` blocks from `slba` of namespace `nsid`
/// (namespace-absolute; any length, split into ranges of at most 65,536 blocks).
struct gather_source {
  std::uint32_t nsid = 0;
  std::uint64_t slba = 0;
  std::uint64_t blocks = 0;
};

/// Builds one Copy that reads `sources` in order and writes them back to back from `sdlba` of
/// namespace p.nsid: the dwords, the range list and the blocks of each range. With formats 2h/3h
/// every range names its source namespace (the destination's own too); formats 0h/1h can only
/// read the destination namespace. Errors: size_limit_exceeded (more than 256 ranges), internal
/// (empty, zero-length source, another namespace without format 2h/3h).
[[nodiscard]] status build_gather(const session_params& p, std::uint64_t sdlba, std::span<const gather_source> sources,
                                  copy_dwords& dw, std::vector<std::uint8_t>& ranges,
                                  std::vector<std::uint32_t>& range_blocks);

/// Builds the Copy command (dwords + range list) for one plan command: its segments (namespace
/// LBAs: the resolution stage gives the backend namespaces, never partitions), each from
/// p.source_nsids[segment.source] when set, else p.source_nsid (formats 2h/3h) or the destination
/// namespace. Errors: as build_gather; internal for segments whose destinations are not back to
/// back or whose source index has no namespace.
[[nodiscard]] status build_copy(const session_params& p, const detail::command& cmd, copy_dwords& dw,
                                std::vector<std::uint8_t>& ranges, std::vector<std::uint32_t>& range_blocks);

/// Lifetimes: every command's range list lives in the session until the command was reaped. A
/// session destroyed with commands outstanding (the engine stopped on an error) waits for them
/// first; when its transport cannot deliver them any more (a broken ring), their range lists and
/// the transport are kept for the life of the process rather than freed under the controller.
class copy_session final : public detail::copy_session {
 public:
  copy_session(std::unique_ptr<transport> t, session_params p);
  ~copy_session() override;
  copy_session(const copy_session&) = delete;
  copy_session& operator=(const copy_session&) = delete;
  [[nodiscard]] unsigned queue_depth() const noexcept override { return transport_->queue_depth(); }
  [[nodiscard]] status submit(const detail::command& cmd) override;
  [[nodiscard]] status reap(unsigned min_completions, std::vector<detail::completion>& out) override;
  [[nodiscard]] status finish() override;
  [[nodiscard]] const char* transport_name() const noexcept { return transport_->name(); }
  /// Sends one Copy gathering `sources` (possibly from several namespaces, formats 2h/3h) to
  /// `sdlba`; its completion comes back through reap() under `tag`. Errors: as submit().
  [[nodiscard]] status submit_gather(std::uint64_t tag, std::uint64_t sdlba, std::span<const gather_source> sources);
  /// Commands sent again after CDFE was set again (formats 2h/3h, Invalid Field).
  [[nodiscard]] unsigned format_retries() const noexcept { return format_retries_; }

 private:
  struct in_flight {
    io_command io;
    std::vector<std::uint8_t> data;
    std::vector<std::uint32_t> range_blocks;
    bool resent = false;
  };
  [[nodiscard]] status send(std::uint64_t tag, status built, in_flight f);
  /// Turns one transport completion into an engine completion (or resends it); false when its
  /// tag is not in flight.
  bool complete(const io_completion& c, std::vector<detail::completion>& out, unsigned& have, bool& resent);
  /// Reaps until nothing is in flight, or keeps what cannot be reaped (see the class comment).
  void wait_for_outstanding() noexcept;
  /// True when `c` is an Invalid Field for a 2h/3h command that has not been resent yet and CDFE
  /// could be set again: the caller sends it once more instead of completing it.
  [[nodiscard]] bool should_resend(const io_completion& c, const in_flight& f);
  std::unique_ptr<transport> transport_;
  session_params params_;
  std::unordered_map<std::uint64_t, in_flight> in_flight_;
  std::vector<detail::completion> ready_;  ///< refused before reaching the transport
  unsigned format_retries_ = 0;
  static constexpr std::uint64_t flush_tag = ~std::uint64_t{0};
  bool flush_outstanding_ = false;  ///< finish()'s Flush was submitted and not reaped yet
};

/// errno from a passthrough that did not reach the device → status (EACCES/EPERM/ENOTTY/EOPNOTSUPP
/// are not_supported so the engine can fall back; the rest io_error).
[[nodiscard]] status passthrough_errno_status(int err, const char* transport_name);

}  // namespace offcopy::nvme
