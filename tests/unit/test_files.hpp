// Temporary files and devices for the unit tests of every folder.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "offcopy/device.hpp"

namespace offcopy::test_files {

/// A directory removed at scope exit, on the build's temp file system (O_DIRECT capable).
class scratch_dir {
 public:
  scratch_dir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "offcopy-test-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path_ = tmpl;
  }
  ~scratch_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  scratch_dir(const scratch_dir&) = delete;
  scratch_dir& operator=(const scratch_dir&) = delete;
  [[nodiscard]] std::string file(const std::string& name) const { return (path_ / name).string(); }
  [[nodiscard]] std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

inline void write_file(const std::string& path, const std::vector<std::uint8_t>& data) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
  REQUIRE(f.good());
}

/// The whole file (empty when it cannot be opened), read(2) in 1 MiB pieces: a byte-at-a-time
/// istreambuf_iterator was most of the slowest tests' time under ASan (-O0).
inline std::vector<std::uint8_t> read_file(const std::string& path) {
  std::vector<std::uint8_t> out;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  std::size_t used = 0;
  for (;;) {
    out.resize(used + (1 << 20));
    const ssize_t n = ::read(fd, out.data() + used, out.size() - used);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    used += static_cast<std::size_t>(n);
  }
  ::close(fd);
  out.resize(used);
  return out;
}

/// Opens a device through the library (a writable one for destinations).
inline std::shared_ptr<device> open_device(const std::string& path, bool writable) {
  open_options o;
  o.writable = writable;
  auto d = device::open(path, o);
  REQUIRE_MESSAGE(d.ok(), (d.ok() ? std::string() : d.error().to_string()));
  return d.value();
}

}  // namespace offcopy::test_files
