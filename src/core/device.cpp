// Opening devices: kind, size, block sizes, partitions, identity; then the backends probe.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <fstream>
#include <string>

#include <fmt/format.h>

#include "src/core/backend.hpp"
#include "src/core/device_state.hpp"

namespace offcopy {
namespace detail {

device_state::~device_state() {
  if (fd >= 0) ::close(fd);
}

namespace {

std::string read_sysfs(const std::string& path) {
  std::ifstream f(path);
  std::string s;
  if (f) std::getline(f, s);
  return s;
}

std::string basename_of(const std::string& p) {
  auto pos = p.find_last_of('/');
  return pos == std::string::npos ? p : p.substr(pos + 1);
}

std::string real_path(const std::string& p) {
  char buf[PATH_MAX];
  if (::realpath(p.c_str(), buf) == nullptr) return {};
  return buf;
}

/// Fills size, block sizes, read-only, partition and identity of a block device.
status describe_block(int fd, dev_t rdev, capabilities& caps) {
  std::uint64_t size = 0;
  if (::ioctl(fd, BLKGETSIZE64, &size) != 0) return errno_status(errno, "BLKGETSIZE64 " + caps.path);
  int lbs = 0;
  unsigned int pbs = 0;
  int ro = 0;
  if (::ioctl(fd, BLKSSZGET, &lbs) != 0) return errno_status(errno, "BLKSSZGET " + caps.path);
  if (::ioctl(fd, BLKPBSZGET, &pbs) != 0) pbs = static_cast<unsigned>(lbs);
  if (::ioctl(fd, BLKROGET, &ro) != 0) ro = 0;
  caps.size_bytes = size;
  caps.logical_block_bytes = static_cast<std::uint32_t>(lbs);
  caps.physical_block_bytes = pbs;
  caps.direct_io_align_bytes = static_cast<std::uint32_t>(lbs);
  caps.read_only = ro != 0;
  caps.block_path = caps.path;

  std::string sys = fmt::format("/sys/dev/block/{}:{}", major(rdev), minor(rdev));
  std::string start = read_sysfs(sys + "/start");
  if (!start.empty() && !read_sysfs(sys + "/partition").empty()) {
    caps.partition_start_bytes = std::strtoull(start.c_str(), nullptr, 10) * 512ULL;
    std::string parent_sys = real_path(sys + "/..");
    std::string parent_dev = read_sysfs(parent_sys + "/dev");
    caps.parent_path = "/dev/" + basename_of(parent_sys);
    caps.identity = "blk:" + parent_dev;
    caps.identity_offset_bytes = caps.partition_start_bytes;
  } else {
    caps.identity = fmt::format("blk:{}:{}", major(rdev), minor(rdev));
  }
  return {};
}

}  // namespace

void forget_discoveries() noexcept {}
}  // namespace detail

device::device(std::unique_ptr<detail::device_state> st) : state_(std::move(st)) {}
device::~device() = default;
const capabilities& device::caps() const noexcept { return state_->caps; }
const std::string& device::path() const noexcept { return state_->caps.path; }
int device::fd() const noexcept { return state_->fd; }

result<std::shared_ptr<device>> device::open(const std::string& path, const open_options& options) {
  using namespace detail;
  if (path.empty()) return status(errc::invalid_argument, "empty device path");
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    int err = errno;
    if (err == ENOENT) return status(errc::not_found, fmt::format("{}: no such file or device", path), err);
    return errno_status(err, "stat " + path);
  }
  auto state = std::make_unique<device_state>();
  capabilities& caps = state->caps;
  caps.path = path;

  if (S_ISDIR(st.st_mode)) return status(errc::invalid_argument, fmt::format("{}: is a directory", path));
  if (S_ISREG(st.st_mode)) {
    caps.kind = device_kind::regular_file;
  } else if (S_ISBLK(st.st_mode)) {
    caps.kind = device_kind::block_device;
  } else if (S_ISCHR(st.st_mode)) {
    std::string subsystem = basename_of(
        real_path(fmt::format("/sys/dev/char/{}:{}/subsystem", major(st.st_rdev), minor(st.st_rdev))));
    if (subsystem == "nvme-generic") {
      caps.kind = device_kind::nvme_char;
    } else if (subsystem == "scsi_generic") {
      caps.kind = device_kind::scsi_generic;
    } else {
      return status(errc::invalid_argument,
                    fmt::format("{}: character device is neither /dev/ngXnY nor /dev/sgN", path));
    }
  } else {
    return status(errc::invalid_argument, fmt::format("{}: not a file or a device", path));
  }

  int flags = O_CLOEXEC | (options.writable ? O_RDWR : O_RDONLY);
  if (options.exclusive && caps.kind == device_kind::block_device) flags |= O_EXCL;
  int fd = ::open(path.c_str(), flags);
  if (fd < 0) {
    int err = errno;
    if (err == EBUSY)
      return status(errc::busy, fmt::format("{}: device is busy (mounted or in use); --force overrides", path), err);
    if (options.writable && (err == EROFS || err == EACCES || err == EPERM))
      return status(errc::read_only, fmt::format("{}: cannot open for writing: {}", path, std::strerror(err)), err);
    return errno_status(err, "open " + path);
  }
  state->fd = fd;
  state->writable = options.writable;

  if (caps.kind == device_kind::regular_file) {
    caps.size_bytes = static_cast<std::uint64_t>(st.st_size);
    caps.logical_block_bytes = 1;
    caps.physical_block_bytes = static_cast<std::uint32_t>(st.st_blksize);
    caps.direct_io_align_bytes = 512;
    caps.block_path = path;
    caps.identity = fmt::format("file:{}:{}:{}", major(st.st_dev), minor(st.st_dev), st.st_ino);
    if (::access(path.c_str(), W_OK) != 0) caps.read_only = true;
  } else if (caps.kind == device_kind::block_device) {
    if (auto s = describe_block(fd, st.st_rdev, caps); !s.ok()) return s;
    if (options.writable && caps.read_only)
      return status(errc::read_only, fmt::format("{}: block device is read-only", path), EROFS);
  }

  if (options.probe) {
    for (const backend_row& row : registry()) {
      if ((row.discovers & kind_bit(caps.kind)) == 0) continue;
      std::size_t before = caps.offload.size();
      find_backend(row.name)->probe(*state);
      // The registry names the mechanisms a backend's discovery adds.
      for (std::size_t i = before; i < caps.offload.size(); ++i) caps.offload[i].backend = std::string(row.name);
    }
  }
  return std::make_shared<device>(std::move(state));
}

}  // namespace offcopy
