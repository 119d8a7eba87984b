// The system-call seam. Every system call of src/core (opening, classifying and flushing devices,
// sysfs reads, creating a missing destination, verify's read-back) and of the fallback copiers goes
// through sys(), so tests can script EINTR, short reads and writes, EIO, ENOENT, EXDEV/EOPNOTSUPP
// without hardware (STYLE principle 6). Not covered: the NVMe and SCSI pass-through commands,
// which go through their transports (src/nvme/transport.hpp, src/scsi/transport.hpp) and are
// scripted with the device models instead.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

struct io_uring;

namespace offcopy::detail {

/// The system calls, as function pointers with the libc convention: -1 and errno on failure
/// (the io_uring entries follow liburing's: -errno returned; posix_fadvise returns the error).
/// New entries go at the end, so tests that copy real_sys() and replace a few keep compiling.
struct sys_table {
  int (*open)(const char* path, int flags, mode_t mode);
  int (*close)(int fd);
  ssize_t (*pread)(int fd, void* buf, size_t count, off_t offset);
  ssize_t (*pwrite)(int fd, const void* buf, size_t count, off_t offset);
  int (*ioctl)(int fd, unsigned long request, void* arg);
  int (*fsync)(int fd);
  int (*fdatasync)(int fd);
  ssize_t (*copy_file_range)(int fd_in, off_t* off_in, int fd_out, off_t* off_out, size_t length, unsigned flags);
  int (*fstat)(int fd, struct stat* st);

  /// io_uring_queue_init; a test returning -ENOSYS forces the pread/pwrite path.
  int (*uring_queue_init)(unsigned entries, struct io_uring* ring, unsigned flags);
  /// Sees every io_uring read/write completion before the caller does and returns the result
  /// to use (bytes, or -errno). The real one returns `res`; tests shorten or fail completions.
  int (*uring_result)(bool is_write, int fd, std::uint64_t offset, std::uint32_t length, int res);

  int (*stat)(const char* path, struct stat* st);
  int (*faccessat)(int dirfd, const char* path, int mode, int flags);
  int (*unlink)(const char* path);
  /// Returns 0 or an error number (posix_fadvise's own convention).
  int (*posix_fadvise)(int fd, off_t offset, off_t len, int advice);
  /// realpath(3) into `resolved` (PATH_MAX bytes); nullptr and errno on failure.
  char* (*realpath)(const char* path, char* resolved);
  /// The names in a directory, "." and ".." left out; -1 and errno on failure.
  int (*list_dir)(const char* path, std::vector<std::string>* names);
  int (*sync_file_range)(int fd, off_t offset, off_t nbytes, unsigned flags);
  // Sparse copies (SEEK_DATA / SEEK_HOLE, hole punching, growing the destination to its size).
  off_t (*lseek)(int fd, off_t offset, int whence);
  int (*fallocate)(int fd, int mode, off_t offset, off_t length);
  int (*ftruncate)(int fd, off_t length);
  /// io_uring_submit_and_wait (the buffered copier's one wait): -errno on failure.
  int (*uring_submit_and_wait)(struct io_uring* ring, unsigned wait_nr);
  /// openat(2): sysfs attributes read relative to a directory opened once (a full sysfs path
  /// walks its symlinks again on every open: ~200 us against ~75 us in the emulated guest).
  int (*openat)(int dirfd, const char* path, int flags, mode_t mode);
  /// readlink(2): a sysfs link's target in one call, where realpath walks every component.
  ssize_t (*readlink)(const char* path, char* buf, size_t size);
};

/// The table in use (the real system calls unless a scoped_sys_override is active).
[[nodiscard]] const sys_table& sys() noexcept;

/// The real system calls (to delegate to from a test's fake).
[[nodiscard]] const sys_table& real_sys() noexcept;

/// Reads a small text file (sysfs attribute) through the seam: its first line, trailing
/// whitespace removed; empty when it cannot be read.
[[nodiscard]] std::string read_first_line(const std::string& path);

/// Reads a small binary file (a sysfs binary attribute such as a SCSI device's `inquiry`) through
/// the seam: at most `max_bytes`; nullopt when it cannot be opened or read.
[[nodiscard]] std::optional<std::vector<std::uint8_t>> read_small_binary(const std::string& path,
                                                                         std::size_t max_bytes);
/// The same, `name` relative to the directory `dirfd` (opened with O_PATH | O_DIRECTORY).
[[nodiscard]] std::optional<std::vector<std::uint8_t>> read_small_binary_at(int dirfd, const std::string& name,
                                                                            std::size_t max_bytes);

/// realpath() through the seam; empty when it fails.
[[nodiscard]] std::string resolved_path(const std::string& path);

/// readlink() through the seam: the link's target as written (often relative); empty when it
/// fails or is not a link.
[[nodiscard]] std::string link_target(const std::string& path);

/// Installs `table` for its lifetime, then restores the previous table. Not thread safe:
/// tests install it before starting any copy.
class scoped_sys_override {
 public:
  explicit scoped_sys_override(const sys_table& table) noexcept;
  ~scoped_sys_override();
  scoped_sys_override(const scoped_sys_override&) = delete;
  scoped_sys_override& operator=(const scoped_sys_override&) = delete;

 private:
  sys_table table_;
  const sys_table* previous_;
};

}  // namespace offcopy::detail
