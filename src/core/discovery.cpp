// Discovery on demand: a backend asks a device what it can do only when a plan (or `probe`) needs
// the answer, once per device, and the answer is kept for the life of the process per device node
// (discovery_key), so a long-running caller, or a second open of the same node, does not pay again.
#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>

#include "src/core/backend.hpp"
#include "src/core/device_state.hpp"

namespace offcopy::detail {
namespace {

/// What one backend's discovery left on a device.
struct discovered_record {
  std::string backend;
  std::vector<offload_mechanism> mechanisms;
  std::vector<std::pair<std::string, std::shared_ptr<backend_data>>> data;
  capabilities caps;  ///< after discovery (char devices: backends may fill sizes and block_path)
};

struct cache_entry {
  std::mutex mu;  ///< held while a backend asks the device: a second asker waits and reuses
  std::vector<discovered_record> records;
};

std::mutex cache_mu;
std::map<discovery_key, std::shared_ptr<cache_entry>>& cache() {
  static std::map<discovery_key, std::shared_ptr<cache_entry>> m;
  return m;
}

std::shared_ptr<cache_entry> entry_for(const discovery_key& key) {
  std::lock_guard lock(cache_mu);
  auto& e = cache()[key];
  if (!e) e = std::make_shared<cache_entry>();
  return e;
}

void replay(device_state& dev, const discovered_record& r) {
  for (const auto& m : r.mechanisms) dev.caps.offload.push_back(m);
  for (const auto& [k, d] : r.data)
    if (dev.data_of(k) == nullptr) dev.set(k, d);
  if (dev.caps.kind == device_kind::nvme_char || dev.caps.kind == device_kind::scsi_generic) {
    dev.caps.size_bytes = r.caps.size_bytes;
    dev.caps.logical_block_bytes = r.caps.logical_block_bytes;
    dev.caps.physical_block_bytes = r.caps.physical_block_bytes;
    dev.caps.direct_io_align_bytes = r.caps.direct_io_align_bytes;
    dev.caps.block_path = r.caps.block_path;
    dev.caps.identity = r.caps.identity;
  }
}

/// Runs the backend's discovery on `dev` and records what it added.
discovered_record run_discovery(device_state& dev, const backend_row& row) {
  const std::size_t before = dev.caps.offload.size();
  find_backend(row.name)->probe(dev);
  discovered_record r;
  r.backend = std::string(row.name);
  for (std::size_t i = before; i < dev.caps.offload.size(); ++i) {
    dev.caps.offload[i].backend = r.backend;  // the registry names what a backend found
    r.mechanisms.push_back(dev.caps.offload[i]);
  }
  r.data = dev.data;
  r.caps = dev.caps;
  r.caps.offload.clear();
  return r;
}

}  // namespace

double ensure_discovered(device_state& dev, const backend_row& row) {
  std::lock_guard dev_lock(dev.mu);
  if (std::find(dev.discovered.begin(), dev.discovered.end(), row.name) != dev.discovered.end()) return 0;
  double seconds = 0;
  if ((row.discovers & kind_bit(dev.caps.kind)) != 0) {
    if (!dev.key.cacheable) {
      auto t0 = std::chrono::steady_clock::now();
      (void)run_discovery(dev, row);
      seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    } else {
      std::shared_ptr<cache_entry> entry = entry_for(dev.key);
      std::lock_guard entry_lock(entry->mu);
      auto it = std::find_if(entry->records.begin(), entry->records.end(),
                             [&](const discovered_record& r) { return r.backend == row.name; });
      if (it != entry->records.end()) {
        replay(dev, *it);
      } else {
        auto t0 = std::chrono::steady_clock::now();
        entry->records.push_back(run_discovery(dev, row));
        seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      }
    }
  }
  dev.discovered.emplace_back(row.name);
  return seconds;
}

double discover_all(device_state& dev) {
  double seconds = 0;
  for (const backend_row& row : registry()) seconds += ensure_discovered(dev, row);
  return seconds;
}

void forget_discoveries() noexcept {
  std::lock_guard lock(cache_mu);
  cache().clear();
}

}  // namespace offcopy::detail
