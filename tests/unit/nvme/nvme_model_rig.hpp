// A namespace for the unit tests that drive the real engine and NVMe Copy session on the
// controller model (tests/models/nvme_model.hpp): a 4 MiB image in a temp file, its first MiB
// patterned, the model backend installed in place of "nvme-copy" for the rig's lifetime.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "offcopy/copy.hpp"
#include "src/core/backend.hpp"
#include "tests/models/nvme_model.hpp"

namespace offcopy::testing {

struct nvme_model_rig {
  static constexpr std::uint64_t image_bytes = 4 << 20;

  std::string path;
  int fd = -1;
  nvme_model model;
  nvme_model_backend backend;
  detail::backend* previous = nullptr;
  std::shared_ptr<device> dev;

  /// `cfg` with its block count set to the image's; byte i of the first MiB is pattern(i), the
  /// rest zero; `depth` commands in flight.
  nvme_model_rig(nvme_model_config cfg, unsigned depth, std::uint8_t (*pattern)(std::size_t))
      : path(make_file()),
        fd(::open(path.c_str(), O_RDWR | O_CLOEXEC)),
        model(with_blocks(cfg), fd),
        backend(model, depth) {
    std::vector<std::uint8_t> data(1 << 20);
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = pattern(i);
    model.write_blocks(0, data);
    previous = detail::replace_backend("nvme-copy", &backend);
    open_options o;
    o.writable = true;
    auto r = device::open(path, o);
    REQUIRE(r.ok());
    dev = r.value();
  }
  ~nvme_model_rig() {
    detail::replace_backend("nvme-copy", previous);
    if (fd >= 0) ::close(fd);
    ::unlink(path.c_str());
  }
  nvme_model_rig(const nvme_model_rig&) = delete;
  nvme_model_rig& operator=(const nvme_model_rig&) = delete;

  static nvme_model_config with_blocks(nvme_model_config c) {
    c.blocks = image_bytes / c.lba_bytes;
    return c;
  }
  static std::string make_file() {
    char name[] = "/tmp/offcopy-nvme-model-XXXXXX";
    const int f = ::mkstemp(name);
    REQUIRE(f >= 0);
    REQUIRE(::ftruncate(f, image_bytes) == 0);
    ::close(f);
    return name;
  }
};

}  // namespace offcopy::testing
