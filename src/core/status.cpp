#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "offcopy/device.hpp"
#include "offcopy/limits.hpp"
#include "offcopy/report.hpp"
#include "offcopy/status.hpp"
#include "offcopy/version.hpp"
#include "src/core/text.hpp"

namespace offcopy::v0 {

const char* to_string(errc code) noexcept {
  switch (code) {
    case errc::ok: return "ok";
    case errc::invalid_argument: return "invalid-argument";
    case errc::not_found: return "not-found";
    case errc::out_of_range: return "out-of-range";
    case errc::misaligned: return "misaligned";
    case errc::zero_length: return "zero-length";
    case errc::overlap: return "overlap";
    case errc::block_size_mismatch: return "block-size-mismatch";
    case errc::read_only: return "read-only";
    case errc::busy: return "busy";
    case errc::not_supported: return "not-supported";
    case errc::size_limit_exceeded: return "size-limit-exceeded";
    case errc::io_error: return "io-error";
    case errc::device_error: return "device-error";
    case errc::cancelled: return "cancelled";
    case errc::verify_mismatch: return "verify-mismatch";
    case errc::internal: return "internal";
  }
  return "unknown";
}

std::string status::to_string() const {
  if (ok()) return "ok";
  std::string s = fmt::format("{}: {}", v0::to_string(code_), message_);
  if (nvme_) {
    s += fmt::format(" [NVMe SCT {:#x} SC {:#04x}{}{}, DW0 {}]", nvme_->sct, nvme_->sc, nvme_->dnr ? " DNR" : "",
                     nvme_->name.empty() ? "" : " " + nvme_->name, nvme_->dw0);
  }
  if (scsi_) {
    s += fmt::format(" [SCSI status {:#04x} sense key {:#x} ASC/ASCQ {:02x}/{:02x}{}{}]", scsi_->status,
                     scsi_->sense_key, scsi_->asc, scsi_->ascq, scsi_->text.empty() ? "" : " " + scsi_->text,
                     scsi_->information_valid ? fmt::format(" info {}", scsi_->information) : "");
  }
  // Paths, device names and sense text are untrusted bytes: nothing a terminal would act on, and
  // one line (a newline in a path or an exception's text would otherwise split it).
  std::string safe = detail::terminal_safe(s);
  for (std::size_t at = safe.find('\n'); at != std::string::npos; at = safe.find('\n', at + 4))
    safe.replace(at, 1, "\\x0a");
  return safe;
}

status errno_status(int err, const std::string& context) {
  errc code = errc::io_error;
  switch (err) {
    case ENOENT:
    case ENODEV:
    case ENXIO: code = errc::not_found; break;
    case EROFS:
    case EACCES:
    case EPERM: code = errc::read_only; break;
    case EBUSY: code = errc::busy; break;
    // A path that cannot name anything (a component not a directory, too long, a symlink loop, a
    // directory where a file is needed): bad input, like a missing path.
    case EINVAL:
    case ENOTDIR:
    case ENAMETOOLONG:
    case ELOOP:
    case EISDIR: code = errc::invalid_argument; break;
    case EOPNOTSUPP:
    case ENOTTY:
    case ENOSYS: code = errc::not_supported; break;
    case ECANCELED: code = errc::cancelled; break;
    default: break;
  }
  return status(code, fmt::format("{}: {}", context, std::strerror(err)), err);
}

const char* to_string(device_kind kind) noexcept {
  switch (kind) {
    case device_kind::regular_file: return "regular-file";
    case device_kind::block_device: return "block-device";
    case device_kind::nvme_char: return "nvme-char";
    case device_kind::scsi_generic: return "scsi-generic";
  }
  return "unknown";
}

namespace {
template <class T>
T tighter(T a, T b) {
  if (a == 0) return b;
  if (b == 0) return a;
  return a < b ? a : b;
}
}  // namespace

copy_limits copy_limits::tightened(const copy_limits& other) const noexcept {
  copy_limits r;
  r.max_segments_per_command = tighter(max_segments_per_command, other.max_segments_per_command);
  r.max_segment_blocks = tighter(max_segment_blocks, other.max_segment_blocks);
  r.max_command_blocks = tighter(max_command_blocks, other.max_command_blocks);
  r.contiguous_destination = contiguous_destination || other.contiguous_destination;
  return r;
}

const offload_mechanism* capabilities::find(std::string_view name) const noexcept {
  for (const auto& m : offload)
    if (m.backend == name) return &m;
  return nullptr;
}

backend_usage& report::of(std::string_view name) {
  for (auto& [n, u] : usage)
    if (n == name) return u;
  return usage.emplace_back(std::string(name), backend_usage{}).second;
}

const backend_usage& report::of(std::string_view name) const noexcept {
  static const backend_usage none{};
  for (const auto& [n, u] : usage)
    if (n == name) return u;
  return none;
}

const char* version() noexcept { return OFFCOPY_VERSION; }

}  // namespace offcopy::v0
