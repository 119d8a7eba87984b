// The seam between the Copy session and the device: one NVMe I/O passthrough command in, one
// completion out. Linux ioctl and io_uring implement it; tests/models/nvme_model implements it on
// memory.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "offcopy/status.hpp"
#include "src/nvme/copy_encode.hpp"

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

/// Synchronous NVME_IOCTL_IO64_CMD on `fd` (block device, partition or char device; not owned).
[[nodiscard]] std::unique_ptr<transport> make_ioctl_transport(int fd);

/// io_uring IORING_OP_URING_CMD / NVME_URING_CMD_IO on a char device /dev/ngXnY (`fd` not owned),
/// ring of SQE128|CQE32 with `depth` entries. Errors: not_supported (kernel without uring_cmd),
/// io_error.
[[nodiscard]] result<std::unique_ptr<transport>> make_uring_transport(int char_fd, unsigned depth);

}  // namespace offcopy::nvme
