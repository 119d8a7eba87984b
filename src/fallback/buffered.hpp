// The buffered copier's knobs that are not in the public policy (tests and benchmarks).
#pragma once

#include <cstdint>
#include <memory>

#include "src/core/backend.hpp"

namespace offcopy::detail {

struct buffered_tuning {
  enum class direct_io : std::uint8_t {
    automatic,  ///< O_DIRECT for block devices, page cache for regular files
    always,     ///< O_DIRECT wherever a chunk is aligned (files too)
    never,      ///< page cache only
  };
  direct_io direct = direct_io::automatic;
  /// false: plain pread/pwrite through the seam (also used when io_uring cannot be set up).
  bool use_io_uring = true;
  /// Register the buffers with io_uring (READ_FIXED/WRITE_FIXED).
  bool register_buffers = true;
};

/// Defaults of the buffered path when the policy leaves them 0: with O_DIRECT on either side,
/// large transfers and a deep queue keep the device busy; through the page cache on both sides
/// every transfer is a memory copy, and buffers that stay in the CPU cache make the second copy
/// (buffer -> page cache) cheap. Measured on a 1 GiB move by 1 byte in one ext4 file, page cache
/// warm, 5 interleaved runs: 4 x 256 KiB 0.32-0.87 s (median 0.45 s, as the non-overlapping
/// copy_file_range copy: 0.45 s), 16 x 1 MiB 0.41-0.97 s (median 0.80 s).
inline constexpr std::uint32_t default_buffer_bytes = 1U << 20;
inline constexpr unsigned default_buffers_in_flight = 16;
inline constexpr std::uint32_t default_cached_buffer_bytes = 256U << 10;
inline constexpr unsigned default_cached_buffers_in_flight = 4;

/// What buffered_backend().open_session() does, with explicit tuning.
[[nodiscard]] result<std::unique_ptr<copy_session>> open_buffered_session(device_state& src, device_state& dst,
                                                                          const policy& pol,
                                                                          const buffered_tuning& tuning);

/// Facts about an open buffered session (tests): whether io_uring and O_DIRECT are in use.
struct buffered_session_info {
  bool io_uring = false;
  bool registered_buffers = false;
  bool src_direct = false;
  bool dst_direct = false;
  std::uint32_t buffer_bytes = 0;
  unsigned buffers = 0;
  std::uint64_t direct_ops = 0;    ///< reads+writes issued with O_DIRECT so far
  std::uint64_t cached_ops = 0;    ///< reads+writes issued through the page cache so far
  std::uint64_t zeroed_bytes = 0;  ///< destination bytes zeroed for holes of the source
  std::uint64_t skewed_reads = 0;  ///< chunks read direct around a source range off the granule
};
[[nodiscard]] buffered_session_info describe_buffered_session(const copy_session& s);

/// Buffer bytes of sessions destroyed while I/O on them could not be waited for: never unmapped
/// (the kernel may still transfer into them), kept for the life of the process. Tests.
[[nodiscard]] std::uint64_t buffered_kept_buffer_bytes() noexcept;

}  // namespace offcopy::detail
