// Internal state of an open device, shared with the backends, and the discovery on demand.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "offcopy/device.hpp"

namespace offcopy::detail {

/// Backend-private data attached at discovery (e.g. the NVMe namespace id, the SCSI NAA).
struct backend_data {
  virtual ~backend_data() = default;
};

/// What names a device node for the discovery cache: the same node, size and block size give the
/// same answers. Regular files add their change time (an inode number is reused after a delete).
struct discovery_key {
  device_kind kind = device_kind::regular_file;
  dev_t dev = 0;              ///< st_dev (files) or st_rdev (devices)
  ino_t ino = 0;              ///< files only
  std::int64_t ctime_ns = 0;  ///< files only
  std::uint64_t size_bytes = 0;
  std::uint32_t logical_block_bytes = 0;
  bool cacheable = false;  ///< false: never shared (a destination that does not exist yet)
  [[nodiscard]] auto operator<=>(const discovery_key&) const = default;
};

struct resolution;  // src/core/resolve.hpp

struct device_state {
  int fd = -1;
  /// The caller may write it: opened O_RDWR for a copy, or checked writable for a plan.
  bool writable = false;
  /// Opened O_RDWR (a copy's destination): its media are opened for writing too.
  bool rdwr = false;
  /// The resolution stage's result (resolve.hpp: resolution_of), made on first need. Guarded by `mu`.
  std::shared_ptr<const resolution> resolved;
  /// The working capabilities: open()'s classification, then what discovery adds (backends push
  /// their offload_mechanism here; for char devices they may also fill sizes). Guarded by `mu`
  /// once the device is shared.
  capabilities caps;
  /// open()'s classification, immutable afterwards: device::caps(), and what validation reads.
  capabilities opened;
  discovery_key key;
  /// Backends whose discovery has run on (or been replayed into) this device.
  std::vector<std::string> discovered;
  /// Serialises discovery, checks and session set-up on this device (recursive: a check may run
  /// while discovery of the same device holds it).
  mutable std::recursive_mutex mu;
  /// Backend data by key (a backend's own name, by convention), set by its discovery.
  std::vector<std::pair<std::string, std::shared_ptr<backend_data>>> data;

  [[nodiscard]] std::shared_ptr<backend_data> data_of(std::string_view key_name) const noexcept {
    for (const auto& [k, d] : data)
      if (k == key_name) return d;
    return nullptr;
  }
  template <class T>
  [[nodiscard]] T* get(std::string_view key_name) const noexcept {
    for (const auto& [k, d] : data)
      if (k == key_name) return dynamic_cast<T*>(d.get());
    return nullptr;
  }
  void set(std::string_view key_name, std::shared_ptr<backend_data> d) {
    for (auto& [k, v] : data) {
      if (k == key_name) {
        v = std::move(d);
        return;
      }
    }
    data.emplace_back(std::string(key_name), std::move(d));
  }
  ~device_state();
};

/// The library's way in to a device's state (device.hpp keeps it private).
struct device_access {
  [[nodiscard]] static device_state& state(const device& d) noexcept { return *d.state_; }
  [[nodiscard]] static std::shared_ptr<device> make(std::unique_ptr<device_state> st) {
    return std::shared_ptr<device>(new device(std::move(st)));
  }
};

[[nodiscard]] inline device_state& state_of(const device& d) noexcept { return device_access::state(d); }

struct backend_row;

/// Runs `row`'s discovery on `dev` unless it already ran there, reusing what an earlier device of
/// the same node found (the process-wide cache). Skips kinds the row does not discover. Returns
/// the seconds spent asking the device (0 when nothing was asked). Thread-safe.
double ensure_discovered(device_state& dev, const backend_row& row);

/// Every row's discovery (device::probe()). Returns the seconds spent asking the device.
double discover_all(device_state& dev);

/// Drops the process-wide discovery cache (tests that replace a backend).
void forget_discoveries() noexcept;

/// Opens a device as device::open does, with the library's own intents.
enum class open_intent : std::uint8_t {
  read,        ///< a source or a probed device
  plan_write,  ///< a plan's destination: opened read-only, checked writable, never modified
  write,       ///< a copy's destination: O_RDWR (and O_EXCL for block devices when exclusive)
};
[[nodiscard]] result<std::shared_ptr<device>> open_device(const std::string& path, open_intent intent, bool exclusive);

/// A plan's destination that does not exist yet: a new, empty regular file in an existing,
/// writable directory. Nothing is created. Errors: not_found (no such directory), read_only.
[[nodiscard]] result<std::shared_ptr<device>> planned_new_file(const std::string& path);

}  // namespace offcopy::detail
