#include "src/core/sys.hpp"

#include <fcntl.h>
#include <liburing.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <atomic>

namespace offcopy::detail {
namespace {

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
    [](unsigned entries, struct io_uring* ring, unsigned flags) {
      return ::io_uring_queue_init(entries, ring, flags);
    },
    [](bool, int, std::uint64_t, std::uint32_t, int res) { return res; },
    [](int fd, off_t offset, int whence) { return ::lseek(fd, offset, whence); },
    [](int fd, int mode, off_t offset, off_t length) { return ::fallocate(fd, mode, offset, length); },
    [](int fd, off_t length) { return ::ftruncate(fd, length); },
};

std::atomic<const sys_table*> current{&real_table};

}  // namespace

const sys_table& sys() noexcept { return *current.load(std::memory_order_acquire); }
const sys_table& real_sys() noexcept { return real_table; }

scoped_sys_override::scoped_sys_override(const sys_table& table) noexcept
    : table_(table), previous_(current.load(std::memory_order_acquire)) {
  current.store(&table_, std::memory_order_release);
}

scoped_sys_override::~scoped_sys_override() { current.store(previous_, std::memory_order_release); }

}  // namespace offcopy::detail
