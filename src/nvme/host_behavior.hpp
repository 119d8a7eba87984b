// Host Behavior Support (Feature Identifier 16h): the 512-byte structure whose Copy Descriptor
// Formats Enable field (CDFE, bytes 5:4) must have bit n set before a controller accepts Copy
// descriptor format nh for n = 2, 3 (the cross-namespace formats). NVM Express Base Specification
// 2.1, Host Behavior Support; QEMU 10 hw/nvme/ctrl.c nvme_copy() checks `hbs.cdfe & (1 << format)`.
//
// Linux rewrites the whole structure at every controller init and reset (nvme_configure_host_options
// sends only ACRE/LBAFEE), which clears CDFE: the state must be checked before each cross-namespace
// copy and set again by read-modify-write, never by writing a structure of our own.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "offcopy/status.hpp"
#include "src/nvme/transport.hpp"

namespace offcopy::nvme {

inline constexpr std::uint8_t feature_host_behavior = 0x16;
inline constexpr std::size_t host_behavior_bytes = 512;
inline constexpr std::size_t cdfe_offset = 4;  ///< CDFE: bytes 5:4, little endian
inline constexpr std::uint8_t admin_get_features = 0x0a;
inline constexpr std::uint8_t admin_set_features = 0x09;

/// The CDFE bit that enables descriptor format `format` (bit n = format nh).
[[nodiscard]] constexpr std::uint16_t cdfe_bit(std::uint8_t format) noexcept {
  return static_cast<std::uint16_t>(1u << (format & 15));
}

/// CDFE of a Host Behavior Support structure (`hbs` holds at least 6 bytes).
[[nodiscard]] std::uint16_t cdfe_of(std::span<const std::uint8_t> hbs) noexcept;
/// Writes CDFE into bytes 5:4 of `hbs`, nothing else.
void put_cdfe(std::span<std::uint8_t> hbs, std::uint16_t cdfe) noexcept;
/// "2h 3h" for the formats a CDFE value enables, "none" for 0.
[[nodiscard]] std::string cdfe_formats(std::uint16_t cdfe);

/// Get Features 16h, current value (SEL 000b), into `buffer` (512 bytes, controller→host).
[[nodiscard]] admin_command get_host_behavior_command(std::span<std::uint8_t> buffer) noexcept;
/// Set Features 16h, not saved (SV 0), from `buffer` (512 bytes, host→controller).
[[nodiscard]] admin_command set_host_behavior_command(std::span<std::uint8_t> buffer) noexcept;

/// Reads CDFE through `admin`. Errors: not_supported (the controller rejects feature 16h, or the
/// kernel refuses the admin passthrough: no CAP_SYS_ADMIN), io_error.
[[nodiscard]] result<std::uint16_t> read_cdfe(const admin_runner& admin);

/// What enable_cdfe did.
struct cdfe_update {
  std::uint16_t before = 0;  ///< CDFE as read
  std::uint16_t after = 0;   ///< CDFE as read back (== before when nothing had to change)
  bool changed = false;      ///< a Set Features was sent
};

/// Makes sure CDFE has every bit of `bits`: Get Features; if a bit is missing, the same 512 bytes
/// with bytes 5:4 |= bits go back with Set Features, and a second Get checks the controller kept
/// them. Errors: as read_cdfe; not_supported when Set Features fails or the bits did not stick.
[[nodiscard]] result<cdfe_update> enable_cdfe(const admin_runner& admin, std::uint16_t bits);

}  // namespace offcopy::nvme
