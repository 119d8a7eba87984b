#include "src/fallback/sparse.hpp"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>

#include <fmt/format.h>

#include "src/core/sys.hpp"

namespace offcopy::detail {
namespace {

/// A failure while zeroing is an I/O error of a copy under way, never "cannot copy this pair".
status zero_error(int err, const std::string& what) {
  status s = errno_status(err, what);
  if (s.code() == errc::not_supported || s.code() == errc::invalid_argument) s.recode(errc::io_error);
  return s;
}

/// Writes zeros with pwrite, for file systems and devices that offer nothing better.
status write_zeros(int fd, std::uint64_t offset, std::uint64_t length, const std::string& path) {
  static const std::byte zeros[1U << 16] = {};
  unsigned stalls = 0;
  while (length > 0) {
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(length, sizeof zeros));
    ssize_t w = sys().pwrite(fd, zeros, n, static_cast<off_t>(offset));
    if (w < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (w < 0) return zero_error(errno, fmt::format("write zeros to {} at offset {}", path, offset));
    if (w == 0 && ++stalls > 64) return status(errc::io_error, fmt::format("write zeros to {}: no progress", path));
    offset += static_cast<std::uint64_t>(w);
    length -= static_cast<std::uint64_t>(w);
  }
  return {};
}

}  // namespace

data_map::run data_map::at(std::uint64_t offset, std::uint64_t limit) noexcept {
  if (!enabled_) return {false, limit};
  if (offset >= data_start_ && offset < data_end_) return {false, std::min(limit, data_end_)};
  if (offset >= hole_start_ && offset < hole_end_) return {true, std::min(limit, hole_end_)};
  off_t data = sys().lseek(fd_, static_cast<off_t>(offset), SEEK_DATA);
  if (data < 0) {
    struct stat st {};
    if (errno == ENXIO && sys().fstat(fd_, &st) == 0 && offset < static_cast<std::uint64_t>(st.st_size)) {
      // No data from here to the end of the file: one hole.
      hole_start_ = offset;
      hole_end_ = static_cast<std::uint64_t>(st.st_size);
      return {true, std::min(limit, hole_end_)};
    }
    if (errno != ENXIO) enabled_ = false;  // SEEK_DATA not understood here: all data
    return {false, limit};
  }
  if (static_cast<std::uint64_t>(data) > offset) {
    hole_start_ = offset;
    hole_end_ = static_cast<std::uint64_t>(data);
    return {true, std::min(limit, hole_end_)};
  }
  off_t hole = sys().lseek(fd_, static_cast<off_t>(offset), SEEK_HOLE);
  if (hole < 0 || static_cast<std::uint64_t>(hole) <= offset) {
    enabled_ = false;
    return {false, limit};
  }
  data_start_ = offset;
  data_end_ = static_cast<std::uint64_t>(hole);
  return {false, std::min(limit, data_end_)};
}

status zero_file_range(int fd, std::uint64_t offset, std::uint64_t length, const std::string& path) {
  if (length == 0) return {};
  struct stat st {};
  if (sys().fstat(fd, &st) != 0) return zero_error(errno, "fstat " + path);
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (offset >= size) return {};  // past the end it reads as zeros already: grow_file() sets the size
  const std::uint64_t n = std::min(length, size - offset);
  for (;;) {
    if (sys().fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                        static_cast<off_t>(n)) == 0)
      return {};
    if (errno == EINTR) continue;
    if (errno == EOPNOTSUPP || errno == ENOSYS || errno == EINVAL) return write_zeros(fd, offset, n, path);
    return zero_error(errno, fmt::format("punch a hole in {} at offset {}", path, offset));
  }
}

status zero_block_range(int fd, std::uint64_t offset, std::uint64_t length, const std::string& path) {
  if (length == 0) return {};
  std::uint64_t range[2] = {offset, length};
  for (;;) {
    if (sys().ioctl(fd, BLKZEROOUT, range) == 0) return {};
    if (errno == EINTR) continue;
    if (errno == EOPNOTSUPP || errno == ENOTTY || errno == EINVAL) return write_zeros(fd, offset, length, path);
    return zero_error(errno, fmt::format("BLKZEROOUT {} at offset {}", path, offset));
  }
}

status grow_file(int fd, std::uint64_t size_bytes, const std::string& path) {
  struct stat st {};
  if (sys().fstat(fd, &st) != 0) return zero_error(errno, "fstat " + path);
  if (static_cast<std::uint64_t>(st.st_size) >= size_bytes) return {};
  while (sys().ftruncate(fd, static_cast<off_t>(size_bytes)) != 0) {
    if (errno != EINTR) return zero_error(errno, fmt::format("extend {} to {} bytes", path, size_bytes));
  }
  return {};
}

}  // namespace offcopy::detail
