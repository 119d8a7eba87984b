// offcopy/device.hpp: opening a device and what it can do.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "offcopy/limits.hpp"
#include "offcopy/status.hpp"

namespace offcopy {

namespace detail {
struct device_state;
}

enum class device_kind : std::uint8_t { regular_file, block_device, nvme_char, scsi_generic };

/// "regular-file", "block-device", "nvme-char", "scsi-generic".
[[nodiscard]] const char* to_string(device_kind kind) noexcept;

/// One copy mechanism a device offers (or not, and why).
struct offload_mechanism {
  std::string backend;  ///< the backend's registered name ("nvme-copy")
  bool available = false;
  std::string reason;  ///< why not available; empty when available
  copy_limits limits;  ///< in logical blocks of the device
  /// Backend facts shown by `probe` ("oncs", "0x0114"), in order.
  std::vector<std::pair<std::string, std::string>> details;
};

/// What a device is and can do, filled in at open time.
struct capabilities {
  std::string path;
  device_kind kind = device_kind::regular_file;
  std::uint64_t size_bytes = 0;
  std::uint32_t logical_block_bytes = 1;   ///< 1 for regular files (byte addressable)
  std::uint32_t physical_block_bytes = 1;
  std::uint32_t direct_io_align_bytes = 512;  ///< alignment O_DIRECT needs (offsets, lengths, buffers)
  bool read_only = false;
  /// Where the data can be read and written with read/pread (char devices: their block device;
  /// empty when there is none). For files and block devices: `path`.
  std::string block_path;
  /// Block partitions: the whole device and where the partition starts on it.
  std::string parent_path;
  std::uint64_t partition_start_bytes = 0;
  /// Names the underlying medium: equal identities mean the same bytes (overlap checks).
  std::string identity;
  std::uint64_t identity_offset_bytes = 0;  ///< where this device starts inside `identity`
  std::vector<offload_mechanism> offload;

  /// The mechanism of backend `name`, or nullptr.
  [[nodiscard]] const offload_mechanism* find(std::string_view name) const noexcept;
  /// The `offload-copy probe --json` object: path, kind, sizes, offload [{backend, available,
  /// reason, limits, details}].
  [[nodiscard]] std::string to_json() const;
};

/// How to open.
struct open_options {
  bool writable = false;
  /// Block devices: O_EXCL, so a mounted or otherwise claimed device is refused (errc::busy).
  bool exclusive = false;
  /// Skip backend probing (no Identify / INQUIRY).
  bool probe = true;
};

/// An open device: a file, a block device, /dev/ngXnY or /dev/sgN.
class device {
 public:
  /// Opens and probes. Errors: not_found, invalid_argument (directory, unsupported file type),
  /// read_only (writable requested), busy (exclusive refused), io_error.
  [[nodiscard]] static result<std::shared_ptr<device>> open(const std::string& path,
                                                            const open_options& options = {});
  ~device();
  device(const device&) = delete;
  device& operator=(const device&) = delete;

  [[nodiscard]] const capabilities& caps() const noexcept;
  [[nodiscard]] const std::string& path() const noexcept;
  [[nodiscard]] int fd() const noexcept;

  /// Internal state for backends (not part of the stable API).
  [[nodiscard]] detail::device_state& state() noexcept { return *state_; }
  [[nodiscard]] const detail::device_state& state() const noexcept { return *state_; }
  explicit device(std::unique_ptr<detail::device_state> st);

 private:
  std::unique_ptr<detail::device_state> state_;
};

}  // namespace offcopy
