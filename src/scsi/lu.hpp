// What the SCSI backends learn about a logical unit at probe time, shared by XCOPY and token copy.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "offcopy/status.hpp"
#include "src/core/device_state.hpp"
#include "src/scsi/transport.hpp"
#include "src/scsi/wire.hpp"

namespace offcopy::detail::scsi {

struct lu_info final : backend_data {
  std::optional<standard_inquiry> inquiry;
  std::vector<std::uint8_t> vpd_pages;  ///< from VPD 0x00
  std::vector<std::uint8_t> naa;        ///< LU NAA designator (VPD 0x83); empty when none
  std::optional<read_capacity16> capacity;
  std::optional<copy_operating_parameters> rcop;
  std::string rcop_error;                   ///< why RECEIVE COPY OPERATING PARAMETERS gave nothing
  std::optional<third_party_copy_vpd> tpc;  ///< VPD 0x8F
  std::string sd_path;                      ///< /dev/sdX (empty when unknown)
  std::string sg_path;                      ///< /dev/sgN (empty when unknown)
  std::string scsi_address;                 ///< "H:C:T:L" from sysfs (empty when unknown)
  /// The INQUIRY data (and VPD 00h/83h where the kernel kept them) came from sysfs, not commands.
  bool from_sysfs = false;

  [[nodiscard]] std::string naa_hex() const;
  /// "H:C:T" — LUs behind the same target port (empty when unknown).
  [[nodiscard]] std::string target_address() const;
  [[nodiscard]] std::uint32_t block_bytes() const noexcept { return capacity ? capacity->block_bytes : 0; }
};

/// Sends INQUIRY, VPD 0x00/0x83/0x8F, READ CAPACITY(16) and RECEIVE COPY OPERATING PARAMETERS.
/// nullopt-like failure (a status) only when the standard INQUIRY itself fails. `known_capacity`:
/// what the kernel already reports for a disk's block device (the same READ CAPACITY it sent at
/// scan time), so the command is not sent again. `sysfs_dir`: the LU's scsi_device directory in
/// sysfs (/sys/dev/block/8:0/device); the kernel's copies of the standard INQUIRY data and VPD
/// pages 00h and 83h there (attributes `inquiry`, `vpd_pg0`, `vpd_pg83`, read when it scanned the
/// LU) replace those three commands when present and well formed (issue 11: each command costs
/// ~0.5 ms through tcm_loop in the emulated guest).
[[nodiscard]] result<std::shared_ptr<lu_info>> discover(transport& t,
                                                        std::optional<read_capacity16> known_capacity = std::nullopt,
                                                        const std::string& sysfs_dir = {});

/// Probe helper for both backends: discovers once per device (cached in both backend slots),
/// fills caps of /dev/sgN nodes (size, block size, block_path, identity). nullptr when the device
/// is not a SCSI logical unit.
[[nodiscard]] std::shared_ptr<lu_info> probe_lu(device_state& dev);

/// The cached lu_info of an open device, or nullptr.
[[nodiscard]] std::shared_ptr<lu_info> lu_of(const device_state& dev);

/// A sane timeout for a copy command moving `bytes` (the emulated guest is slow).
[[nodiscard]] unsigned copy_timeout_seconds(std::uint64_t bytes) noexcept;

/// Sends `cdb` and converts the reply; retries a UNIT ATTENTION a few times.
[[nodiscard]] status run_command(transport& t, std::span<const std::uint8_t> cdb, data_direction dir,
                                 std::span<std::uint8_t> data, unsigned timeout_seconds, const std::string& what,
                                 std::uint32_t* resid_bytes = nullptr);

}  // namespace offcopy::detail::scsi
