// NVMe completion status → offcopy::status. Pure.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "offcopy/status.hpp"

namespace offcopy::nvme {

/// Status code types and the codes the Copy path cares about (NVM Command Set spec, Copy command).
inline constexpr std::uint8_t sct_generic = 0;
inline constexpr std::uint8_t sct_command_specific = 1;
inline constexpr std::uint8_t sc_invalid_opcode = 0x01;
inline constexpr std::uint8_t sc_invalid_field = 0x02;
inline constexpr std::uint8_t sc_internal_error = 0x06;
inline constexpr std::uint8_t sc_lba_out_of_range = 0x80;
inline constexpr std::uint8_t sc_invalid_format = 0x0a;  ///< SCT 1: the descriptor format does not fit the namespace
inline constexpr std::uint8_t sc_write_to_read_only_range = 0x82;
inline constexpr std::uint8_t sc_command_size_limit_exceeded = 0x83;
inline constexpr std::uint8_t sc_incompatible_namespace_or_format = 0x85;
inline constexpr std::uint8_t sc_fast_copy_not_possible = 0x86;
inline constexpr std::uint8_t sc_overlapping_io_range = 0x87;
inline constexpr std::uint8_t sc_insufficient_resources = 0x89;

/// Builds the kernel's passthrough status value (status field without the phase bit):
/// DNR bit 14, MORE bit 13, SCT bits 10:8, SC bits 7:0.
[[nodiscard]] constexpr std::uint16_t make_raw_status(std::uint8_t sct, std::uint8_t sc, bool dnr = false) noexcept {
  return static_cast<std::uint16_t>((dnr ? 0x4000 : 0) | ((sct & 7u) << 8) | sc);
}

/// Name of a Copy status (our own table for the command-specific codes; libnvme's for the rest).
[[nodiscard]] std::string copy_status_name(std::uint16_t raw_status);

/// Splits a raw status into the detail struct (name included).
[[nodiscard]] nvme_status_detail decode_status(std::uint16_t raw_status, std::uint32_t dw0);

/// The portable code of a Copy completion: 0x83 → size_limit_exceeded; Invalid Opcode, Invalid
/// Field, Invalid Format (SCT 1 0Ah), Incompatible Namespace or Format, Fast Copy Not Possible,
/// Overlapping I/O Range → not_supported (the controller will not do it, a fallback can: the
/// engine falls back or, with --mode offload, refuses); else device_error (media errors included).
[[nodiscard]] errc copy_errc(std::uint16_t raw_status) noexcept;

/// A failed Copy completion as a status with the NVMe detail; ok when raw_status == 0.
[[nodiscard]] status copy_status(std::uint16_t raw_status, std::uint32_t dw0, std::string_view context);

}  // namespace offcopy::nvme
