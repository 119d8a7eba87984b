// The NVMe Copy backend's per-device data and the pure pair check, exposed for tests.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "src/core/backend.hpp"
#include "src/nvme/identify.hpp"
#include "src/nvme/transport.hpp"

namespace offcopy::nvme {

/// Attached to a device by the probe (device_state data "nvme-copy").
struct nvme_device_data final : detail::backend_data {
  namespace_info info;
  bool identified = false;      ///< Identify succeeded
  namespace_location location;  ///< controller/subsystem, disk, char device, partition start
  std::shared_ptr<namespace_link> link;
  /// Host Behavior Support CDFE as the probe read it (only asked when OCFS offers 2h or 3h).
  std::optional<std::uint16_t> cdfe;
  std::string cdfe_error;  ///< why CDFE could not be read
};

/// Limits the planner is given instead of the device's when OFFCOPY_TEST_NVME_LIMITS is set:
/// "MSSRL:MCL:MSRC" (MSRC 0-based, as Identify says it). For guest tests of the controller's own
/// answers to over-limit commands (0x183 on a device that enforces what it advertises); never
/// set in normal use. Empty when unset or malformed.
[[nodiscard]] std::optional<copy_limits> test_limits_override();

/// The pair decision for two probed devices (pure; `has_sys_admin` injected for tests).
///
/// Same namespace: format 0h (1h for 32/64-bit guard PI). Two namespaces: both must be on one
/// controller, proven (the same controller sysfs node, or a multipath subsystem with a single
/// controller, plus the same serial number and controller ID from Identify Controller through each
/// device), with the same LBA format (data size, metadata size and placement, PI type and location,
/// PI format), OCFS offering format 2h (3h for 32/64-bit guard PI) and Host Behavior Support
/// readable. Limits: each segment ≤ the source namespace's MSSRL, each command ≤ the destination's
/// MCL and MSRC + 1 ranges.
[[nodiscard]] detail::pair_support check_pair(const nvme_device_data* src, const nvme_device_data* dst,
                                              const policy& pol, bool has_sys_admin);

/// True when the process has CAP_SYS_ADMIN in its effective set (NVMe passthrough on 6.1).
[[nodiscard]] bool has_cap_sys_admin() noexcept;

}  // namespace offcopy::nvme
