// The seam between the SCSI backend and a device: execute() sends one CDB and waits for its
// answer. Several threads may each have a command outstanding on the same transport (the XCOPY
// session keeps as many in flight as the copy manager's MAXIMUM CONCURRENT COPIES allows): the
// sg_pt implementation builds a fresh pass-through object per call and shares no state, the
// model serialises calls with its own mutex. The real transport is libsgutils2's sg_pt; tests
// plug in the copy-manager model.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "offcopy/status.hpp"

namespace offcopy::detail {
struct device_state;
}

namespace offcopy::detail::scsi {

enum class data_direction : std::uint8_t { none, from_device, to_device };

/// What came back from one command, before any interpretation.
struct scsi_reply {
  int os_errno = 0;              ///< the pass-through itself failed (EPERM, ENOTTY, EIO, ...)
  bool transport_error = false;  ///< host/driver status said the command did not reach the LU
  bool timed_out = false;
  std::uint8_t sam_status = 0;  ///< 0x00 GOOD, 0x02 CHECK CONDITION, 0x08 BUSY, ...
  std::vector<std::uint8_t> sense;
  std::uint32_t data_resid_bytes = 0;  ///< data-in bytes not transferred
};

class transport {
 public:
  virtual ~transport() = default;
  /// Sends one CDB and waits for its status. `data` is read (to_device) or filled (from_device).
  /// Safe to call from several threads at once. Never throws.
  virtual scsi_reply execute(std::span<const std::uint8_t> cdb, data_direction dir, std::span<std::uint8_t> data,
                             unsigned timeout_seconds) = 0;
  /// Path shown in messages.
  [[nodiscard]] virtual std::string name() const = 0;
};

/// sg_pt over an open file descriptor (/dev/sdX or /dev/sgN). The fd stays owned by the caller.
[[nodiscard]] std::unique_ptr<transport> make_sg_pt_transport(int fd, std::string name);

/// Converts a reply to our status: ok for GOOD; otherwise the code DESIGN §3 assigns (invalid
/// opcode → not_supported, 26/08 → size_limit_exceeded, COPY ABORTED → device_error ...) with the
/// decoded sense attached. `what` names the command ("EXTENDED COPY").
[[nodiscard]] status reply_status(const scsi_reply& reply, const std::string& what, const std::string& device);

/// Decodes sense into the public detail (key, ASC/ASCQ, information, libsgutils2 text).
[[nodiscard]] scsi_status_detail decode_sense(std::uint8_t sam_status, std::span<const std::uint8_t> sense);

/// How a transport is made for an open device. Replaced by tests (the model); the default returns
/// the sg_pt transport for block devices and sg nodes (an sg node with a disk behind it sends
/// through the disk, whose SG_IO wait no signal interrupts), nullptr for anything else.
/// open_transport() wraps whatever it gets so that the calling thread's asynchronous signals are
/// blocked while a THIRD-PARTY COPY OUT command (83h) runs (src/core/signal_guard.hpp): a signal
/// never orphans a copy on the device nor makes the kernel send it again.
using transport_factory = std::function<std::unique_ptr<transport>(const device_state&)>;
void set_transport_factory(transport_factory factory);
[[nodiscard]] std::unique_ptr<transport> open_transport(const device_state& dev);

}  // namespace offcopy::detail::scsi
