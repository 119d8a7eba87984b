#include "src/core/sys.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <liburing.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <memory>

namespace offcopy::detail {
namespace {

int list_dir_real(const char* path, std::vector<std::string>* names) {
  DIR* d = ::opendir(path);
  if (d == nullptr) return -1;
  names->clear();
  while (const dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names->push_back(std::move(n));
  }
  ::closedir(d);
  return 0;
}

const sys_table real_table = {
    [](const char* path, int flags, mode_t mode) { return ::open(path, flags, mode); },
    [](int fd) { return ::close(fd); },
    [](int fd, void* buf, size_t count, off_t offset) { return ::pread(fd, buf, count, offset); },
    [](int fd, const void* buf, size_t count, off_t offset) { return ::pwrite(fd, buf, count, offset); },
    [](int fd, unsigned long request, void* arg) { return ::ioctl(fd, request, arg); },
    [](int fd) { return ::fsync(fd); },
    [](int fd) { return ::fdatasync(fd); },
    [](int fd_in, off_t* off_in, int fd_out, off_t* off_out, size_t length, unsigned flags) {
      return ::copy_file_range(fd_in, off_in, fd_out, off_out, length, flags);
    },
    [](int fd, struct stat* st) { return ::fstat(fd, st); },
    [](unsigned entries, struct io_uring* ring, unsigned flags) { return ::io_uring_queue_init(entries, ring, flags); },
    [](bool, int, std::uint64_t, std::uint32_t, int res) { return res; },
    [](const char* path, struct stat* st) { return ::stat(path, st); },
    [](int dirfd, const char* path, int mode, int flags) { return ::faccessat(dirfd, path, mode, flags); },
    [](const char* path) { return ::unlink(path); },
    [](int fd, off_t offset, off_t len, int advice) { return ::posix_fadvise(fd, offset, len, advice); },
    [](const char* path, char* resolved) { return ::realpath(path, resolved); },
    &list_dir_real,
    [](int fd, off_t offset, off_t nbytes, unsigned flags) { return ::sync_file_range(fd, offset, nbytes, flags); },
    [](int fd, off_t offset, int whence) { return ::lseek(fd, offset, whence); },
    [](int fd, int mode, off_t offset, off_t length) { return ::fallocate(fd, mode, offset, length); },
    [](int fd, off_t length) { return ::ftruncate(fd, length); },
    [](struct io_uring* ring, unsigned wait_nr) { return ::io_uring_submit_and_wait(ring, wait_nr); },
    [](int dirfd, const char* path, int flags, mode_t mode) { return ::openat(dirfd, path, flags, mode); },
    [](const char* path, char* buf, size_t size) { return ::readlink(path, buf, size); },
};

std::atomic<const sys_table*> current{&real_table};

}  // namespace

const sys_table& sys() noexcept { return *current.load(std::memory_order_acquire); }
const sys_table& real_sys() noexcept { return real_table; }

std::string read_first_line(const std::string& path) {
  int fd = sys().open(path.c_str(), O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) return {};
  std::string s;
  char buf[512];
  for (;;) {
    ssize_t n = sys().pread(fd, buf, sizeof buf, static_cast<off_t>(s.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    s.append(buf, static_cast<std::size_t>(n));
    if (s.find('\n') != std::string::npos || s.size() > 4096) break;
  }
  sys().close(fd);
  if (auto nl = s.find('\n'); nl != std::string::npos) s.resize(nl);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\r' || s.back() == '\t')) s.pop_back();
  return s;
}

namespace {

std::optional<std::vector<std::uint8_t>> read_all_and_close(int fd, std::size_t max_bytes) {
  if (fd < 0) return std::nullopt;
  // Read into uninitialised memory: zeroing max_bytes (4 KiB for a VPD page) byte by byte cost
  // more than the read in the emulated guest (offload-copy's fixed cost, docs/benchmarks.md).
  std::unique_ptr<std::uint8_t[]> buf(new std::uint8_t[max_bytes]);
  std::size_t got = 0;
  bool failed = false;
  while (got < max_bytes) {
    ssize_t n = sys().pread(fd, buf.get() + got, max_bytes - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) failed = true;
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  sys().close(fd);
  if (failed) return std::nullopt;
  return std::vector<std::uint8_t>(buf.get(), buf.get() + got);
}

}  // namespace

std::optional<std::vector<std::uint8_t>> read_small_binary(const std::string& path, std::size_t max_bytes) {
  return read_all_and_close(sys().open(path.c_str(), O_RDONLY | O_CLOEXEC, 0), max_bytes);
}

std::optional<std::vector<std::uint8_t>> read_small_binary_at(int dirfd, const std::string& name,
                                                              std::size_t max_bytes) {
  return read_all_and_close(sys().openat(dirfd, name.c_str(), O_RDONLY | O_CLOEXEC, 0), max_bytes);
}

std::string resolved_path(const std::string& path) {
  char buf[PATH_MAX];
  if (sys().realpath(path.c_str(), buf) == nullptr) return {};
  return buf;
}

std::string link_target(const std::string& path) {
  char buf[PATH_MAX];
  const ssize_t n = sys().readlink(path.c_str(), buf, sizeof buf);
  if (n <= 0 || static_cast<std::size_t>(n) >= sizeof buf) return {};
  return std::string(buf, static_cast<std::size_t>(n));
}

scoped_sys_override::scoped_sys_override(const sys_table& table) noexcept
    : table_(table), previous_(current.load(std::memory_order_acquire)) {
  current.store(&table_, std::memory_order_release);
}

scoped_sys_override::~scoped_sys_override() { current.store(previous_, std::memory_order_release); }

}  // namespace offcopy::detail
