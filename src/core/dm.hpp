// Device-mapper tables, read with libdevmapper (the resolution stage's only way in to dm devices).
//
// libdevmapper is loaded on first use (dlopen), so a process that never meets a device-mapper
// device does not load it and the libraries it pulls in (libselinux, libudev, libpcre2): that is
// offload-copy's fixed cost (docs/benchmarks.md). Tests replace the reader (set_dm_source).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "offcopy/status.hpp"

namespace offcopy::detail {

/// One line of a table (or of its status): sectors of 512 bytes, the target type and its
/// parameters as the kernel prints them (devices as MAJOR:MINOR).
struct dm_line {
  std::uint64_t start_sectors = 0;
  std::uint64_t length_sectors = 0;
  std::string type;
  std::string params;
  [[nodiscard]] bool operator==(const dm_line&) const = default;
};

/// What the kernel says of one device-mapper device now.
struct dm_table {
  std::string name;  ///< "vg-lv"
  std::string uuid;
  bool suspended = false;
  bool live_table = false;
  bool read_only = false;
  std::uint32_t event_nr = 0;   ///< bumped by target events (a path failing, a thin pool filling up)
  std::vector<dm_line> table;   ///< DM_DEVICE_TABLE
  std::vector<dm_line> status;  ///< DM_DEVICE_STATUS (multipath: which paths are active)
  std::vector<dev_t> deps;      ///< DM_DEVICE_DEPS: every device the table uses
};

/// Where tables come from: the kernel through libdevmapper, or a test's fake.
struct dm_source {
  /// True when `dev` is a device-mapper block device.
  bool (*is_dm)(dev_t dev);
  /// The device's table, status and dependencies. Errors: not_supported (libdevmapper cannot be
  /// loaded), io_error (the ioctl failed), not_found (the device went away).
  result<dm_table> (*read)(dev_t dev);
};

/// The source in use (libdevmapper unless a test installed another).
[[nodiscard]] const dm_source& dm() noexcept;
/// Tests: installs `s` (nullptr: libdevmapper again). Not thread safe.
void set_dm_source(const dm_source* s) noexcept;

/// Parses "MAJOR:MINOR"; false when it is not one.
[[nodiscard]] bool parse_devno(const std::string& text, dev_t& out) noexcept;

/// Splits a parameter string on blanks.
[[nodiscard]] std::vector<std::string> split_words(const std::string& text);

/// A `linear` target's parameters: "<device> <offset in sectors>".
struct dm_linear {
  dev_t device = 0;
  std::uint64_t offset_sectors = 0;
};
[[nodiscard]] bool parse_linear(const std::string& params, dm_linear& out);

/// A `striped` target's parameters: "<#stripes> <chunk sectors> <device> <offset> ...".
struct dm_striped {
  std::uint64_t chunk_sectors = 0;
  std::vector<dm_linear> stripes;
};
[[nodiscard]] bool parse_striped(const std::string& params, dm_striped& out);

/// A `multipath` target's table parameters (drivers/md/dm-mpath.c, multipath_status
/// STATUSTYPE_TABLE): "<#features> <features...> <#handler args> <handler...> <#groups>
/// <next group> { <selector> <#selector args> <args...> <#paths> <#path args>
/// { <device> <path args...> } }". The paths of every group, in table order.
[[nodiscard]] bool parse_multipath_paths(const std::string& params, std::vector<dev_t>& out);

/// The paths a multipath status line (STATUSTYPE_INFO) reports active ("A" after the device).
[[nodiscard]] std::vector<dev_t> multipath_active_paths(const std::string& status_params);

}  // namespace offcopy::detail
