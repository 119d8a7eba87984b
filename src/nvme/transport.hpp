// The seams between the NVMe backend and a device. A `transport` carries I/O passthrough commands
// (one in, one completion out): Linux ioctl and io_uring implement it. A `namespace_link` is one
// namespace device as the backend sees it: where it sits, its NSID, admin commands (Identify,
// Get/Set Features) and the transports it can open. The Linux link works on /dev/nvmeXnY and
// /dev/ngXnY; tests/models/nvme_model installs a link factory so the whole backend (probe, pair
// check, transport choice, session) runs on the in-process controller model.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "offcopy/status.hpp"
#include "src/nvme/copy_encode.hpp"

namespace offcopy::detail {
struct device_state;
}

namespace offcopy::nvme {

/// One I/O command. `data` (host→controller) must stay valid until the command is reaped.
struct io_command {
  std::uint64_t user_tag = 0;
  std::uint8_t opcode = copy_opcode;
  std::uint32_t nsid = 0;
  copy_dwords dw;
  const void* data = nullptr;
  std::uint32_t data_bytes = 0;
  std::uint32_t timeout_ms = 0;  ///< 0 = the driver's default
};

/// Its outcome, in the kernel's convention converted once: `sys_errno` != 0 means the command did not
/// reach the device (or the kernel refused it); otherwise `raw_status` is the NVMe status field
/// without the phase bit (0 = success) and `dw0` completion dword 0.
struct io_completion {
  std::uint64_t user_tag = 0;
  int sys_errno = 0;
  std::uint16_t raw_status = 0;
  std::uint32_t dw0 = 0;
};

class transport {
 public:
  virtual ~transport() = default;
  /// Commands that may be outstanding at once (1 for synchronous transports).
  [[nodiscard]] virtual unsigned queue_depth() const noexcept = 0;
  /// "ioctl", "io_uring", "model".
  [[nodiscard]] virtual const char* name() const noexcept = 0;
  /// Queues a command. A synchronous transport executes it here. Errors: io_error (queue full or
  /// the submission itself failed); a command's own failure arrives as its completion.
  [[nodiscard]] virtual status submit(const io_command& cmd) = 0;
  /// Waits for at least `min_completions` completions (bounded by what is outstanding) and appends them.
  [[nodiscard]] virtual status reap(unsigned min_completions, std::vector<io_completion>& out) = 0;
};

/// One admin command, run synchronously. The direction of `data` follows the opcode as the kernel
/// decides it (bit 0 set: host→controller, e.g. Set Features 09h; bit 1: controller→host, e.g.
/// Identify 06h, Get Features 0Ah).
struct admin_command {
  std::uint8_t opcode = 0;
  std::uint32_t nsid = 0;
  std::uint32_t cdw10 = 0, cdw11 = 0, cdw12 = 0, cdw13 = 0, cdw14 = 0, cdw15 = 0;
  void* data = nullptr;
  std::uint32_t data_bytes = 0;
};

/// Runs admin commands: the completion's sys_errno / raw_status / dw0 as for I/O commands.
using admin_runner = std::function<io_completion(const admin_command&)>;

/// Where a namespace device sits. `controller` is the sysfs name of the device's parent: the
/// controller ("nvme0"), or with native multipath the subsystem ("nvme-subsys0"), in which case
/// `subsystem_controllers` counts the controllers that can carry its commands.
struct namespace_location {
  std::string controller;
  unsigned subsystem_controllers = 1;
  std::string disk_name;  ///< whole namespace block device name ("nvme0n1")
  std::string char_path;  ///< "/dev/ng0n1" when it exists
  bool is_char = false;   ///< the device opened is the char device itself
};

class namespace_link {
 public:
  virtual ~namespace_link() = default;
  [[nodiscard]] virtual const namespace_location& location() const noexcept = 0;
  /// The namespace ID (NVME_IOCTL_ID). Errors: the errno as a status.
  [[nodiscard]] virtual result<std::uint32_t> nsid() = 0;
  /// One admin command, synchronously (NVME_IOCTL_ADMIN_CMD on the device).
  [[nodiscard]] virtual io_completion admin(const admin_command& cmd) = 0;
  /// The synchronous transport (NVME_IOCTL_IO64_CMD on the device).
  [[nodiscard]] virtual std::unique_ptr<transport> open_sync() = 0;
  /// A queued transport with `depth` commands outstanding (io_uring on the char device). Errors:
  /// not_supported (no char device, kernel without uring_cmd), io_error.
  [[nodiscard]] virtual result<std::unique_ptr<transport>> open_async(unsigned depth) = 0;
  /// Whether passthrough needs CAP_SYS_ADMIN (Linux 6.1: yes; the model: no).
  [[nodiscard]] virtual bool needs_cap_sys_admin() const noexcept { return true; }
};

/// Makes the link for an open device, or nullptr when it is not an NVMe namespace. Tests replace
/// it (the controller model); the default is the Linux link for block and NVMe char devices.
using link_factory = std::function<std::unique_ptr<namespace_link>(const detail::device_state&)>;
void set_link_factory(link_factory factory);
[[nodiscard]] std::unique_ptr<namespace_link> open_link(const detail::device_state& dev);

/// The Linux link on an open namespace block device or NVMe char device (nullptr when sysfs does
/// not show an NVMe namespace, e.g. for a partition: the resolution stage resolves those). The device's fd stays owned
/// by `dev`.
[[nodiscard]] std::unique_ptr<namespace_link> make_linux_link(const detail::device_state& dev);

/// Synchronous NVME_IOCTL_IO64_CMD on `fd` (block device or char device; not owned).
[[nodiscard]] std::unique_ptr<transport> make_ioctl_transport(int fd);

/// io_uring IORING_OP_URING_CMD / NVME_URING_CMD_IO on a char device /dev/ngXnY (`fd` not owned),
/// ring of SQE128|CQE32 with `depth` entries. Errors: not_supported (kernel without uring_cmd),
/// io_error.
[[nodiscard]] result<std::unique_ptr<transport>> make_uring_transport(int char_fd, unsigned depth);

}  // namespace offcopy::nvme
