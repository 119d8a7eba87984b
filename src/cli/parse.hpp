// Parsing of the CLI's numbers and extents (pure, unit-tested).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <istream>
#include <string>
#include <string_view>
#include <vector>

#include "offcopy/request.hpp"
#include "offcopy/status.hpp"

namespace offcopy::cli {

/// "4096", "4K", "1M", "2G", "1T" (powers of 1024), "8s" (512-byte sectors), "0x1000".
/// Errors: invalid_argument for empty, negative, malformed, unknown suffix or overflow.
[[nodiscard]] result<std::uint64_t> parse_size(std::string_view text);

/// "[SOURCE@]SRC_OFFSET:DST_OFFSET:LENGTH", each a size; SOURCE (extent::source, default 0) a
/// decimal number: 0 the positional source, k the k-th --source.
[[nodiscard]] result<extent> parse_extent(std::string_view text);

/// One extent per line; blank lines and lines starting with '#' are skipped.
[[nodiscard]] result<std::vector<extent>> parse_extents(std::istream& in, const std::string& name);

/// What an extents file may be (issue 8.3: /dev/zero, a FIFO nobody writes to, an enormous file
/// each get a clear error at once, in bounded memory).
struct extents_file_limits {
  std::size_t max_line_bytes = 4096;      ///< a longer line is an error
  std::size_t max_lines = 1U << 20;       ///< lines of any kind, comments and blank ones included
  std::uint64_t max_bytes = 64ULL << 20;  ///< a larger regular file is refused before it is read
  /// A pipe, FIFO, socket or character device (not a terminal) that sends nothing for this long
  /// is an error; 0: wait for ever.
  std::chrono::milliseconds idle_timeout{30000};
};

/// Reads extents (as parse_extents) from `fd`, at most `limits`, polling `cancel` (errc::cancelled)
/// at least every 100 ms while it waits for data. Errors name `name` and the line: a directory,
/// a line too long, too many lines or bytes, no data for idle_timeout, a read error, a line that
/// is not an extent. Quoted input in messages is cut to 64 bytes.
[[nodiscard]] result<std::vector<extent>> read_extents(int fd, const std::string& name, const std::atomic<bool>* cancel,
                                                       const extents_file_limits& limits = {});

/// At most 64 bytes of untrusted input for an error message ("...(N bytes)" when cut).
[[nodiscard]] std::string quoted(std::string_view text);

}  // namespace offcopy::cli
