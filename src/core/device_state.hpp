// Internal state of an open device, shared with the backends.
#pragma once

#include <array>
#include <memory>
#include <string>

#include "offcopy/device.hpp"

namespace offcopy::detail {

/// Backend-private data attached at probe time (e.g. the NVMe namespace id, the SCSI NAA).
struct backend_data {
  virtual ~backend_data() = default;
};

struct device_state {
  int fd = -1;
  bool writable = false;
  capabilities caps;
  /// Indexed by backend_kind; set by that backend's probe.
  std::array<std::shared_ptr<backend_data>, 5> data;

  template <class T>
  [[nodiscard]] T* get(backend_kind b) const noexcept {
    return dynamic_cast<T*>(data[static_cast<std::size_t>(b)].get());
  }
  void set(backend_kind b, std::shared_ptr<backend_data> d) { data[static_cast<std::size_t>(b)] = std::move(d); }
  ~device_state();
};

}  // namespace offcopy::detail
