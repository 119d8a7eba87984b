// Holes: where a source file has none of its bytes stored (SEEK_DATA / SEEK_HOLE), and how a
// destination is given zeros without writing buffers of them (hole punching in a file,
// BLKZEROOUT on a block device, which the kernel sends as Write Zeroes / WRITE SAME).
#pragma once

#include <cstdint>
#include <string>

#include "offcopy/status.hpp"

namespace offcopy::detail {

/// The data and hole runs of one source file, found with SEEK_DATA / SEEK_HOLE and remembered,
/// so a file without holes costs two lseek calls per session whatever the number of extents.
class data_map {
 public:
  /// `enabled` false (a block device, a copy within one medium): everything is data.
  data_map(int fd, bool enabled) noexcept : fd_(fd), enabled_(enabled) {}

  struct run {
    bool hole = false;
    std::uint64_t end = 0;  ///< where the run ends, at most the limit asked for
  };
  /// The run at `offset`, cut at `limit`. Past the end of the file it says data, so that the read
  /// reports the short file rather than inventing zeros; any lseek failure also says data.
  [[nodiscard]] run at(std::uint64_t offset, std::uint64_t limit) noexcept;
  [[nodiscard]] bool enabled() const noexcept { return enabled_; }

 private:
  int fd_;
  bool enabled_;
  std::uint64_t data_start_ = 0, data_end_ = 0;  ///< the last data run seen (empty: none)
  std::uint64_t hole_start_ = 0, hole_end_ = 0;  ///< the last hole seen
};

/// Makes [offset, offset + length) of a regular file read as zeros: punches a hole (the blocks
/// are freed, as `cp` leaves them), or writes zeros where the file system cannot punch.
[[nodiscard]] status zero_file_range(int fd, std::uint64_t offset, std::uint64_t length, const std::string& path);

/// Makes [offset, offset + length) of a block device zeros with BLKZEROOUT (offset and length
/// multiples of 512), or writes zeros where the ioctl is refused.
[[nodiscard]] status zero_block_range(int fd, std::uint64_t offset, std::uint64_t length, const std::string& path);

/// Grows a regular file to `size_bytes` when it is shorter (a copy that ends in a hole); never shrinks.
[[nodiscard]] status grow_file(int fd, std::uint64_t size_bytes, const std::string& path);

}  // namespace offcopy::detail
