// offcopy/device.hpp: opening a device and what it can do.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "offcopy/export.h"
#include "offcopy/limits.hpp"
#include "offcopy/status.hpp"

namespace offcopy::detail {
struct device_state;   // src/core/device_state.hpp
struct device_access;  // how the library reaches it
}  // namespace offcopy::detail

namespace offcopy {
inline namespace v0 {

enum class device_kind : std::uint8_t { regular_file, block_device, nvme_char, scsi_generic };

/// "regular-file", "block-device", "nvme-char", "scsi-generic".
[[nodiscard]] OFFCOPY_API const char* to_string(device_kind kind) noexcept;

/// One copy mechanism a device offers (or not, and why). Thread safety: a plain value.
struct offload_mechanism {
  std::string backend;  ///< the backend's registered name ("nvme-copy")
  bool available = false;
  std::string reason;  ///< why not available; empty when available
  copy_limits limits;  ///< in logical blocks of the device
  /// Backend facts shown by `probe` ("oncs", "0x0114"), in order. Raw device text: print through
  /// capabilities::to_json() or a terminal-safe function.
  std::vector<std::pair<std::string, std::string>> details;
};

/// One piece of a resolved device: `length_bytes` from `offset_bytes` of the device are the bytes
/// from `medium_offset_bytes` of `medium`, the device a backend addresses (an NVMe namespace, a SCSI
/// logical unit, a file, or a block device nothing resolves further). Thread safety: a plain value.
struct resolved_piece {
  std::uint64_t offset_bytes = 0;
  std::uint64_t length_bytes = 0;
  std::string medium;  ///< the medium's device node or file
  std::uint64_t medium_offset_bytes = 0;
  /// The layers crossed, top down ("dm linear /dev/mapper/vg-lv > partition 1 of /dev/nvme0n1");
  /// empty: the device is its own medium.
  std::string via;
  /// Not resolved further, and why ("dm crypt"): a fallback copies these bytes through the device.
  std::string opaque;
};

/// What a device is and can do. Thread safety: a plain value.
struct OFFCOPY_API capabilities {
  std::string path;
  device_kind kind = device_kind::regular_file;
  std::uint64_t size_bytes = 0;
  std::uint32_t logical_block_bytes = 1;  ///< 1 for regular files (byte addressable)
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
  /// What each backend's discovery found, in registry order. Empty in device::caps() (open does not
  /// discover); complete in device::probe().
  std::vector<offload_mechanism> offload;
  /// The resolution (device::probe() only): the device's pieces in order, at most 1024 listed of
  /// `pieces_total`; one piece on the device itself when it is its own medium.
  std::vector<resolved_piece> pieces;
  std::uint64_t pieces_total = 0;
  /// device::probe() of a stacked device: each medium under it, discovered (its `offload`).
  std::vector<capabilities> media;

  /// The mechanism of backend `name`, or nullptr.
  [[nodiscard]] const offload_mechanism* find(std::string_view name) const noexcept;
  /// The `offload-copy probe --json` object: path, kind, sizes, offload [{backend, available,
  /// reason, limits, details}]. Always valid UTF-8 (device and path bytes are sanitised).
  [[nodiscard]] std::string to_json() const;
  /// The `offload-copy probe` text, safe for a terminal.
  [[nodiscard]] std::string to_text() const;
};

/// How to open. Thread safety: a plain value.
struct open_options {
  bool writable = false;
  /// Block devices: O_EXCL, so a mounted or otherwise claimed device is refused (errc::busy).
  bool exclusive = false;
};

/// An open device: a file, a block device, /dev/ngXnY or /dev/sgN.
///
/// Thread safety: a device may be shared by threads. caps(), path() and fd() never change after
/// open(); discovery (probe(), and the planning of a copy) is serialised per device, and its
/// results are cached for the life of the process per device node (a second open of the same node
/// does not ask the device again).
class OFFCOPY_API device {
 public:
  /// Opens and classifies: kind, size, block sizes, partition, identity. No backend talks to the
  /// device here; discovery runs on demand (probe(), make_plan()).
  /// Errors: not_found, invalid_argument (directory, unsupported file type), read_only (writable
  /// requested), busy (exclusive refused), io_error.
  [[nodiscard]] static result<std::shared_ptr<device>> open(const std::string& path,
                                                            const open_options& options = {}) noexcept;
  ~device();
  device(const device&) = delete;
  device& operator=(const device&) = delete;

  /// What open() found (offload empty).
  [[nodiscard]] const capabilities& caps() const noexcept;
  /// Runs every backend's discovery not yet run on this device (in registry order) and returns
  /// the capabilities with `offload` filled in.
  [[nodiscard]] capabilities probe() const;
  [[nodiscard]] const std::string& path() const noexcept;
  [[nodiscard]] int fd() const noexcept;

 private:
  friend struct detail::device_access;
  OFFCOPY_HIDDEN explicit device(std::unique_ptr<detail::device_state> st) noexcept;
  std::unique_ptr<detail::device_state> state_;
};

}  // namespace v0
}  // namespace offcopy
