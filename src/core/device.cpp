// Opening devices: classification only (kind, size, block sizes, partition, identity), through
// the system-call seam. Backend discovery runs later, on demand (discovery.cpp).
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <fmt/format.h>

#include "src/core/backend.hpp"
#include "src/core/device_state.hpp"
#include "src/core/resolve.hpp"
#include "src/core/sys.hpp"

namespace offcopy {
namespace detail {

device_state::~device_state() {
  if (fd >= 0) sys().close(fd);
}

namespace {

std::string basename_of(const std::string& p) {
  auto pos = p.find_last_of('/');
  return pos == std::string::npos ? p : p.substr(pos + 1);
}

std::string dirname_of(const std::string& p) {
  auto pos = p.find_last_of('/');
  if (pos == std::string::npos) return ".";
  return pos == 0 ? "/" : p.substr(0, pos);
}

/// Fills size, block sizes, read-only, partition and identity of a block device.
status describe_block(int fd, dev_t rdev, capabilities& caps) {
  std::uint64_t size = 0;
  if (sys().ioctl(fd, BLKGETSIZE64, &size) != 0) return errno_status(errno, "BLKGETSIZE64 " + caps.path);
  int lbs = 0;
  unsigned int pbs = 0;
  int ro = 0;
  if (sys().ioctl(fd, BLKSSZGET, &lbs) != 0) return errno_status(errno, "BLKSSZGET " + caps.path);
  if (sys().ioctl(fd, BLKPBSZGET, &pbs) != 0) pbs = static_cast<unsigned>(lbs);
  if (sys().ioctl(fd, BLKROGET, &ro) != 0) ro = 0;
  caps.size_bytes = size;
  caps.logical_block_bytes = static_cast<std::uint32_t>(lbs);
  caps.physical_block_bytes = pbs;
  caps.direct_io_align_bytes = static_cast<std::uint32_t>(lbs);
  caps.read_only = ro != 0;
  caps.block_path = caps.path;

  std::string sys_dir = fmt::format("/sys/dev/block/{}:{}", major(rdev), minor(rdev));
  // "partition" first: a whole disk has neither attribute, and each failed sysfs open costs
  // ~60 us in the emulated guest (offload-copy's fixed cost, issue 11).
  std::string start;
  if (!read_first_line(sys_dir + "/partition").empty()) start = read_first_line(sys_dir + "/start");
  if (!start.empty()) {
    caps.partition_start_bytes = std::strtoull(start.c_str(), nullptr, 10) * 512ULL;
    std::string parent_sys = resolved_path(sys_dir + "/..");
    std::string parent_dev = read_first_line(parent_sys + "/dev");
    caps.parent_path = "/dev/" + basename_of(parent_sys);
    unsigned pmaj = 0, pmin = 0;
    caps.identity = std::sscanf(parent_dev.c_str(), "%u:%u", &pmaj, &pmin) == 2 ? block_medium_identity(pmaj, pmin)
                                                                                : "blk:" + parent_dev;
    caps.identity_offset_bytes = caps.partition_start_bytes;
  } else {
    caps.identity = block_medium_identity(major(rdev), minor(rdev));
  }
  return {};
}

/// A char device (/dev/ngXnY, /dev/sgN) described by the block device of the same medium, from
/// sysfs: size, block sizes, read-only, block_path, identity. False when it has none.
bool describe_char_by_twin(dev_t rdev, device_kind kind, capabilities& caps) {
  const std::string sys_dir = fmt::format("/sys/dev/char/{}:{}", major(rdev), minor(rdev));
  std::string disk;
  if (kind == device_kind::nvme_char) {
    // The generic node mirrors the namespace's name: ng0n1 <-> nvme0n1.
    std::string node = basename_of(link_target(sys_dir));  // ../../devices/.../ng0n1
    if (node.rfind("ng", 0) == 0) disk = "nvme" + node.substr(2);
  } else {
    std::vector<std::string> names;
    if (sys().list_dir((sys_dir + "/device/block").c_str(), &names) == 0 && !names.empty()) {
      disk = names.front();
      for (const auto& n : names) disk = std::min(disk, n);
    }
  }
  if (disk.empty()) return false;
  const std::string blk = "/sys/class/block/" + disk;
  const std::string majmin = read_first_line(blk + "/dev");
  const std::string sectors = read_first_line(blk + "/size");
  const std::string lbs = read_first_line(blk + "/queue/logical_block_size");
  if (majmin.empty() || sectors.empty() || lbs.empty()) return false;
  caps.size_bytes = std::strtoull(sectors.c_str(), nullptr, 10) * 512ULL;
  caps.logical_block_bytes = static_cast<std::uint32_t>(std::strtoul(lbs.c_str(), nullptr, 10));
  std::string pbs = read_first_line(blk + "/queue/physical_block_size");
  caps.physical_block_bytes =
      pbs.empty() ? caps.logical_block_bytes : static_cast<std::uint32_t>(std::strtoul(pbs.c_str(), nullptr, 10));
  caps.direct_io_align_bytes = caps.logical_block_bytes;
  caps.read_only = read_first_line(blk + "/ro") == "1";
  unsigned tmaj = 0, tmin = 0;
  caps.identity =
      std::sscanf(majmin.c_str(), "%u:%u", &tmaj, &tmin) == 2 ? block_medium_identity(tmaj, tmin) : "blk:" + majmin;
  struct stat st {};
  const std::string dev_path = "/dev/" + disk;
  if (sys().stat(dev_path.c_str(), &st) == 0 && S_ISBLK(st.st_mode) &&
      fmt::format("{}:{}", major(st.st_rdev), minor(st.st_rdev)) == majmin)
    caps.block_path = dev_path;
  return caps.size_bytes > 0 && caps.logical_block_bytes > 0;
}

}  // namespace

result<std::shared_ptr<device>> open_device(const std::string& path, open_intent intent, bool exclusive) {
  if (path.empty()) return status(errc::invalid_argument, "empty device path");
  struct stat st {};
  if (sys().stat(path.c_str(), &st) != 0) {
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
    // The subsystem link's last component names the class ("../../../class/scsi_generic"):
    // one readlink, where realpath would walk each of the device path's ~12 components.
    std::string subsystem =
        basename_of(link_target(fmt::format("/sys/dev/char/{}:{}/subsystem", major(st.st_rdev), minor(st.st_rdev))));
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

  const bool rdwr = intent == open_intent::write;
  int flags = O_CLOEXEC | (rdwr ? O_RDWR : O_RDONLY);
  if (rdwr && exclusive && caps.kind == device_kind::block_device) flags |= O_EXCL;
  int fd = sys().open(path.c_str(), flags, 0);
  if (fd < 0) {
    int err = errno;
    if (err == EBUSY)
      return status(errc::busy, fmt::format("{}: device is busy (mounted or in use); --force overrides", path), err);
    if (rdwr && (err == EROFS || err == EACCES || err == EPERM))
      return status(errc::read_only, fmt::format("{}: cannot open for writing: {}", path, std::strerror(err)), err);
    return errno_status(err, "open " + path);
  }
  state->fd = fd;
  state->writable = intent != open_intent::read;
  state->rdwr = rdwr;

  if (caps.kind == device_kind::regular_file) {
    caps.size_bytes = static_cast<std::uint64_t>(st.st_size);
    caps.logical_block_bytes = 1;
    caps.physical_block_bytes = static_cast<std::uint32_t>(st.st_blksize);
    caps.direct_io_align_bytes = 512;
    caps.block_path = path;
    caps.identity = fmt::format("file:{}:{}:{}", major(st.st_dev), minor(st.st_dev), st.st_ino);
    if (sys().faccessat(AT_FDCWD, path.c_str(), W_OK, 0) != 0) caps.read_only = true;
    if (intent == open_intent::plan_write && sys().faccessat(AT_FDCWD, path.c_str(), W_OK, AT_EACCESS) != 0) {
      int err = errno;
      return status(errc::read_only, fmt::format("{}: cannot open for writing: {}", path, std::strerror(err)), err);
    }
  } else if (caps.kind == device_kind::block_device) {
    if (auto s = describe_block(fd, st.st_rdev, caps); !s.ok()) return s;
    if (intent != open_intent::read && caps.read_only)
      return status(errc::read_only, fmt::format("{}: block device is read-only", path), EROFS);
  } else {
    (void)describe_char_by_twin(st.st_rdev, caps.kind, caps);
  }

  discovery_key& key = state->key;
  key.kind = caps.kind;
  key.cacheable = true;
  if (caps.kind == device_kind::regular_file) {
    key.dev = st.st_dev;
    key.ino = st.st_ino;
    key.ctime_ns = static_cast<std::int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec;
  } else {
    key.dev = st.st_rdev;
  }
  key.size_bytes = caps.size_bytes;
  key.logical_block_bytes = caps.logical_block_bytes;

  // A char device without a block twin can only be described by its backend: ask it now.
  if ((caps.kind == device_kind::nvme_char || caps.kind == device_kind::scsi_generic) && caps.size_bytes == 0)
    (void)discover_all(*state);
  state->opened = caps;
  state->opened.offload.clear();
  return device_access::make(std::move(state));
}

result<std::shared_ptr<device>> planned_new_file(const std::string& path) {
  const std::string dir = dirname_of(path);
  int fd = sys().open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
  if (fd < 0) return errno_status(errno, "create " + path);
  if (sys().faccessat(fd, ".", W_OK, AT_EACCESS) != 0) {
    int err = errno;
    sys().close(fd);
    return errno_status(err, "create " + path);
  }
  auto state = std::make_unique<device_state>();
  state->fd = fd;  // the directory (O_PATH): checks see an open device; nothing reads or writes it
  state->writable = true;
  capabilities& caps = state->caps;
  caps.path = path;
  caps.kind = device_kind::regular_file;
  caps.logical_block_bytes = 1;
  caps.physical_block_bytes = 4096;
  caps.block_path = path;
  caps.identity = "new-file:" + path;
  state->key.kind = caps.kind;
  state->key.cacheable = false;
  state->opened = caps;
  return device_access::make(std::move(state));
}

}  // namespace detail

device::device(std::unique_ptr<detail::device_state> st) noexcept : state_(std::move(st)) {}
device::~device() = default;
const capabilities& device::caps() const noexcept { return state_->opened; }
const std::string& device::path() const noexcept { return state_->opened.path; }
int device::fd() const noexcept { return state_->fd; }

capabilities device::probe() const {
  auto res = detail::resolution_of(*state_);
  if (res.ok() && res.value()->stacked()) {
    // A stacked device: backends address its media, never the device itself (resolve.hpp).
    capabilities c;
    {
      std::lock_guard lock(state_->mu);
      c = state_->caps;
    }
    detail::describe_resolution(*res.value(), *state_, c, 1024);
    return c;
  }
  (void)detail::discover_all(*state_);
  std::lock_guard lock(state_->mu);
  capabilities c = state_->caps;
  c.pieces_total = 1;
  resolved_piece own;
  own.length_bytes = c.size_bytes;
  own.medium = c.path;
  if (!res.ok()) own.opaque = "resolution failed: " + res.error().message();
  c.pieces.push_back(std::move(own));
  return c;
}

result<std::shared_ptr<device>> device::open(const std::string& path, const open_options& options) noexcept {
  try {
    return detail::open_device(path, options.writable ? detail::open_intent::write : detail::open_intent::read,
                               options.exclusive);
  } catch (const std::exception& e) {
    return status(errc::internal, fmt::format("open {}: {}", path, e.what()));
  }
}

}  // namespace offcopy
