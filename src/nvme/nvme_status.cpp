// NVMe status decoding: see nvme_status.hpp.
#include "src/nvme/nvme_status.hpp"

// libnvme 1.3 headers have no extern "C" guards.
extern "C" {
#include <nvme/util.h>
}

#include <fmt/format.h>

namespace offcopy::nvme {

std::string copy_status_name(std::uint16_t raw_status) {
  const std::uint8_t sct = (raw_status >> 8) & 7;
  const std::uint8_t sc = raw_status & 0xff;
  if (sct == sct_command_specific) {
    // Codes 80h-8Fh of SCT 1 mean different things per command; these are the Copy command's.
    switch (sc) {
      case sc_write_to_read_only_range: return "Attempted Write to Read Only Range";
      case sc_command_size_limit_exceeded: return "Command Size Limit Exceeded";
      case sc_incompatible_namespace_or_format: return "Incompatible Namespace or Format";
      case sc_fast_copy_not_possible: return "Fast Copy Not Possible";
      case sc_overlapping_io_range: return "Overlapping I/O Range";
      case sc_insufficient_resources: return "Insufficient Resources";
      case sc_invalid_format: return "Invalid Format";
      default: break;
    }
  }
  if (sct == sct_generic) {
    switch (sc) {
      case 0x00: return "Successful Completion";
      case sc_invalid_opcode: return "Invalid Command Opcode";
      case sc_invalid_field: return "Invalid Field in Command";
      case sc_internal_error: return "Internal Error";
      case sc_lba_out_of_range: return "LBA Out of Range";
      default: break;
    }
  }
  const char* s = nvme_status_to_string(raw_status, false);
  return s ? std::string(s) : fmt::format("status 0x{:04x}", raw_status);
}

nvme_status_detail decode_status(std::uint16_t raw_status, std::uint32_t dw0) {
  nvme_status_detail d;
  d.raw_status = raw_status;
  d.sct = static_cast<std::uint8_t>((raw_status >> 8) & 7);
  d.sc = static_cast<std::uint8_t>(raw_status & 0xff);
  d.dnr = (raw_status & 0x4000) != 0;
  d.dw0 = dw0;
  d.name = copy_status_name(raw_status);
  return d;
}

errc copy_errc(std::uint16_t raw_status) noexcept {
  const std::uint8_t sct = (raw_status >> 8) & 7;
  const std::uint8_t sc = raw_status & 0xff;
  if (sct == sct_generic && sc == 0) return errc::ok;
  if (sct == sct_command_specific && sc == sc_command_size_limit_exceeded) return errc::size_limit_exceeded;
  if (sct == sct_generic && (sc == sc_invalid_opcode || sc == sc_invalid_field)) return errc::not_supported;
  if (sct == sct_command_specific && (sc == sc_incompatible_namespace_or_format || sc == sc_fast_copy_not_possible ||
                                      sc == sc_overlapping_io_range || sc == sc_invalid_format))
    return errc::not_supported;
  return errc::device_error;
}

status copy_status(std::uint16_t raw_status, std::uint32_t dw0, std::string_view context) {
  const errc code = copy_errc(raw_status);
  if (code == errc::ok) return {};
  nvme_status_detail d = decode_status(raw_status, dw0);
  std::string msg = fmt::format("{}: NVMe status SCT {:#x} SC {:#04x}{} ({}), DW0 {}", context, d.sct, d.sc,
                                d.dnr ? " DNR" : "", d.name, dw0);
  return status(code, std::move(msg)).with_nvme(std::move(d));
}

}  // namespace offcopy::nvme
