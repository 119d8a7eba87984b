// The NVMe Copy backend's per-device data and the pure pair check, exposed for tests.
#pragma once

#include <cstdint>
#include <string>

#include "src/core/backend.hpp"
#include "src/nvme/identify.hpp"

namespace offcopy::nvme {

/// Attached to a device by the probe (device_state data "nvme-copy").
struct nvme_device_data final : detail::backend_data {
  namespace_info info;
  bool identified = false;          ///< Identify succeeded
  std::string controller;           ///< sysfs name of the controller or subsystem ("nvme0")
  std::string disk_name;            ///< whole namespace block device name ("nvme0n1")
  std::string char_path;            ///< "/dev/ng0n1" when it exists
  std::uint64_t partition_start_bytes = 0;
};

/// The pair decision for two probed devices (pure; `has_sys_admin` injected for tests).
[[nodiscard]] detail::pair_support check_pair(const nvme_device_data* src, const nvme_device_data* dst,
                                              const policy& pol, bool has_sys_admin);

/// True when the process has CAP_SYS_ADMIN in its effective set (NVMe passthrough on 6.1).
[[nodiscard]] bool has_cap_sys_admin() noexcept;

}  // namespace offcopy::nvme
