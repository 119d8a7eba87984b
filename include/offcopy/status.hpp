// offcopy/status.hpp: the one error type of the library.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>

#include "offcopy/export.h"

namespace offcopy {
inline namespace v0 {

/// Portable error codes. The device's own codes travel beside them in status::nvme()/scsi().
enum class errc : std::uint8_t {
  ok = 0,
  invalid_argument,     ///< malformed request (bad number, no device, ...)
  not_found,            ///< path does not exist
  out_of_range,         ///< extent outside a device
  misaligned,           ///< offset or length not a multiple of the logical block size
  zero_length,          ///< an extent of length 0
  overlap,              ///< two extents write the same destination bytes (or overlap refused)
  block_size_mismatch,  ///< offload needs equal logical block sizes
  read_only,            ///< destination cannot be written
  busy,                 ///< destination is mounted or held exclusively
  not_supported,        ///< the device/backend cannot do this (offload impossible)
  size_limit_exceeded,  ///< the device refused a command as too large (retried smaller)
  io_error,             ///< a system call failed
  device_error,         ///< the device completed a command with an error status
  cancelled,            ///< stopped by the caller
  verify_mismatch,      ///< read-back differs from the source
  internal,             ///< a bug in offcopy (or memory exhausted)
};

/// Short stable name of a code ("out-of-range").
[[nodiscard]] OFFCOPY_API const char* to_string(errc code) noexcept;

/// NVMe completion detail, as the controller reported it. Thread safety: a plain value.
struct nvme_status_detail {
  std::uint16_t raw_status = 0;  ///< status field without phase bit: DNR<<14 | MORE<<13 | SCT<<8 | SC
  std::uint8_t sct = 0;          ///< status code type
  std::uint8_t sc = 0;           ///< status code
  bool dnr = false;              ///< do not retry
  std::uint32_t dw0 = 0;         ///< completion dword 0 (Copy: index of the first range not copied)
  std::string name;              ///< "Command Size Limit Exceeded", ...
};

/// SCSI command outcome detail. Thread safety: a plain value.
struct scsi_status_detail {
  std::uint8_t status = 0;  ///< SAM status byte (0x02 CHECK CONDITION, ...)
  std::uint8_t sense_key = 0;
  std::uint8_t asc = 0;
  std::uint8_t ascq = 0;
  bool information_valid = false;
  std::uint64_t information = 0;  ///< sense INFORMATION field when valid
  std::string text;               ///< decoded sense ("Copy aborted: copy target device not reachable")
};

/// Result of an operation: a code, errno, message, the device detail. The library's one error
/// channel: every failure of every call arrives as a status (in a result<T>, a report or a
/// job_result). Strings are raw bytes (paths, device text): front ends print them through
/// to_string(), JSON through the library's to_json() functions, which make them valid UTF-8.
/// Thread safety: a plain value (const use from many threads is safe).
class [[nodiscard]] OFFCOPY_API status {
 public:
  status() = default;
  status(errc code, std::string message, int sys_errno = 0) noexcept
      : code_(code), sys_errno_(sys_errno), message_(std::move(message)) {}

  [[nodiscard]] bool ok() const noexcept { return code_ == errc::ok; }
  [[nodiscard]] errc code() const noexcept { return code_; }
  [[nodiscard]] int sys_errno() const noexcept { return sys_errno_; }
  [[nodiscard]] const std::string& message() const noexcept { return message_; }
  [[nodiscard]] const std::optional<nvme_status_detail>& nvme() const noexcept { return nvme_; }
  [[nodiscard]] const std::optional<scsi_status_detail>& scsi() const noexcept { return scsi_; }

  status& with_nvme(nvme_status_detail d) & noexcept {
    nvme_ = std::move(d);
    return *this;
  }
  status&& with_nvme(nvme_status_detail d) && noexcept {
    nvme_ = std::move(d);
    return std::move(*this);
  }
  status& with_scsi(scsi_status_detail d) & noexcept {
    scsi_ = std::move(d);
    return *this;
  }
  status&& with_scsi(scsi_status_detail d) && noexcept {
    scsi_ = std::move(d);
    return std::move(*this);
  }
  /// Changes the portable code, keeping message and device detail.
  status& recode(errc code) & noexcept {
    code_ = code;
    return *this;
  }
  status& prefix(const std::string& context) & {
    message_ = context + ": " + message_;
    return *this;
  }
  status&& prefix(const std::string& context) && {
    message_ = context + ": " + message_;
    return std::move(*this);
  }

  /// One line, safe for a terminal (invalid UTF-8 and control characters escaped):
  /// "io-error: pwrite /dev/x: Input/output error" plus the device detail when present.
  [[nodiscard]] std::string to_string() const;

 private:
  errc code_ = errc::ok;
  int sys_errno_ = 0;
  std::string message_;
  std::optional<nvme_status_detail> nvme_;
  std::optional<scsi_status_detail> scsi_;
};

/// Builds a status from errno with a context string ("open /dev/x").
[[nodiscard]] OFFCOPY_API status errno_status(int err, const std::string& context);

/// A value or a status; C++20 has no std::expected. Thread safety: a plain value.
template <class T>
class [[nodiscard]] result {
 public:
  result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  result(status st) : v_(std::move(st)) {}   // NOLINT
  [[nodiscard]] bool ok() const noexcept { return v_.index() == 0; }
  [[nodiscard]] T& value() & { return std::get<0>(v_); }
  [[nodiscard]] const T& value() const& { return std::get<0>(v_); }
  [[nodiscard]] T&& value() && { return std::get<0>(std::move(v_)); }
  [[nodiscard]] const status& error() const& { return std::get<1>(v_); }
  [[nodiscard]] status&& error() && { return std::get<1>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }

 private:
  std::variant<T, status> v_;
};

}  // namespace v0
}  // namespace offcopy
