// Internal state of an open device, shared with the backends.
#pragma once

#include <memory>
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

struct device_state {
  int fd = -1;
  bool writable = false;
  capabilities caps;
  /// Backend data by key (a backend's own name, by convention), set by its discovery.
  std::vector<std::pair<std::string, std::shared_ptr<backend_data>>> data;

  [[nodiscard]] std::shared_ptr<backend_data> data_of(std::string_view key) const noexcept {
    for (const auto& [k, d] : data)
      if (k == key) return d;
    return nullptr;
  }
  template <class T>
  [[nodiscard]] T* get(std::string_view key) const noexcept {
    for (const auto& [k, d] : data)
      if (k == key) return dynamic_cast<T*>(d.get());
    return nullptr;
  }
  void set(std::string_view key, std::shared_ptr<backend_data> d) {
    for (auto& [k, v] : data) {
      if (k == key) {
        v = std::move(d);
        return;
      }
    }
    data.emplace_back(std::string(key), std::move(d));
  }
  ~device_state();
};

}  // namespace offcopy::detail
