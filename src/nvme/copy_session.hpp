// The NVMe Copy session: plan commands → Copy commands on a transport → completions.
// Separate from the Linux backend so the device model (tests/models/nvme_model) can drive it.
#pragma once

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "src/core/backend.hpp"
#include "src/nvme/copy_encode.hpp"
#include "src/nvme/transport.hpp"

namespace offcopy::nvme {

/// How plan blocks become Copy commands for one source/destination pair.
struct session_params {
  std::uint32_t nsid = 1;               ///< destination namespace (the command's NSID)
  std::uint32_t source_nsid = 0;        ///< formats 2h/3h only: source namespace
  std::uint8_t descriptor_format = 0;   ///< 0h..3h
  std::uint64_t src_offset_blocks = 0;  ///< partition start of the source, in namespace blocks
  std::uint64_t dst_offset_blocks = 0;  ///< partition start of the destination
  /// Protection information: regenerate the destination's PI (PRINFOR.PRACT = PRINFOW.PRACT = 1,
  /// no PRCHK bits) with reference tags starting at SDLBA; the source's PI is not checked.
  bool pi_regenerate = false;
  /// Width of the PI format's logical block reference tag (reference_tag_bits()): ILBRT and
  /// EILBRT are the LBA cut to it, as the Type 1 tag of that LBA is.
  std::uint8_t reference_tag_bits = 32;
  /// Flush (opcode 00h) the destination namespace in finish() when true.
  bool flush_on_finish = true;
};

/// Reference tag width of a PI format (Identify Namespace NVM ELBAF PIF), storage tag size 0:
/// 0 (16-bit guard, 8-byte PI) 32 bits; 2 (64-bit guard, 16-byte PI) 48 bits; 1 (32-bit guard)
/// 64 bits — the most ILBRT carries (CDW14 and CDW3; libnvme nvme_set_var_size_tags, QEMU 10
/// nvme_check_prinfo masks 48 bits when pif != 0).
[[nodiscard]] constexpr std::uint8_t reference_tag_bits(std::uint8_t pi_format) noexcept {
  return pi_format == 2 ? 48 : pi_format == 1 ? 64 : 32;
}

/// Builds the Copy command (dwords + range list) for one plan command. Errors: size_limit_exceeded
/// (more than 256 ranges after splitting segments at 65536 blocks), invalid_argument (segments whose
/// destinations are not back to back). `range_blocks` receives the blocks of each range, in order.
[[nodiscard]] status build_copy(const session_params& p, const detail::command& cmd, copy_dwords& dw,
                                std::vector<std::uint8_t>& ranges, std::vector<std::uint32_t>& range_blocks);

class copy_session final : public detail::copy_session {
 public:
  copy_session(std::unique_ptr<transport> t, session_params p);
  [[nodiscard]] unsigned queue_depth() const noexcept override { return transport_->queue_depth(); }
  [[nodiscard]] status submit(const detail::command& cmd) override;
  [[nodiscard]] status reap(unsigned min_completions, std::vector<detail::completion>& out) override;
  [[nodiscard]] status finish() override;
  [[nodiscard]] const char* transport_name() const noexcept { return transport_->name(); }

 private:
  struct in_flight {
    std::vector<std::uint8_t> data;
    std::vector<std::uint32_t> range_blocks;
  };
  std::unique_ptr<transport> transport_;
  session_params params_;
  std::unordered_map<std::uint64_t, in_flight> in_flight_;
  std::vector<detail::completion> ready_;  ///< refused before reaching the transport
};

/// errno from a passthrough that did not reach the device → status (EACCES/EPERM/ENOTTY/EOPNOTSUPP
/// are not_supported so the engine can fall back; the rest io_error).
[[nodiscard]] status passthrough_errno_status(int err, const char* transport_name);

}  // namespace offcopy::nvme
