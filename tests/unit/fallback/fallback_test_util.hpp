// Shared helpers of the fallback tests: temporary files of random data and a reference model.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "offcopy/device.hpp"
#include "offcopy/plan.hpp"
#include "src/core/backend.hpp"
#include "tests/unit/test_files.hpp"

namespace offcopy::test {

using temp_dir = test_files::scratch_dir;
using test_files::read_file;
using test_files::write_file;

inline std::vector<std::uint8_t> random_bytes(std::size_t n, std::mt19937_64& rng) {
  std::vector<std::uint8_t> v(n);
  for (auto& b : v) b = static_cast<std::uint8_t>(rng());
  return v;
}

/// Opens a device through the library (a writable one for destinations).
inline std::shared_ptr<device> open_dev(const std::string& path, bool writable) {
  return test_files::open_device(path, writable);
}

/// Random segments in units of `block_bytes`: disjoint destinations, sources anywhere inside
/// `src_blocks`, sizes from tiny to several buffers, offsets unaligned when block_bytes is 1.
inline std::vector<plan_segment> random_segments(std::mt19937_64& rng, std::uint64_t src_blocks,
                                                 std::uint64_t dst_blocks, std::size_t count,
                                                 std::uint64_t max_blocks) {
  std::vector<plan_segment> out;
  std::uint64_t dst_cursor = 0;
  for (std::size_t i = 0; i < count; ++i) {
    std::uint64_t gap = rng() % 3 == 0 ? 0 : rng() % (max_blocks / 8 + 2);
    std::uint64_t len = 1 + rng() % max_blocks;
    if (rng() % 4 == 0) len = 1 + rng() % 16;  // tiny pieces too
    if (dst_cursor + gap + len > dst_blocks) break;
    if (len > src_blocks) len = src_blocks;
    std::uint64_t src = rng() % (src_blocks - len + 1);
    out.push_back({src, dst_cursor + gap, len});
    dst_cursor += gap + len;
  }
  std::shuffle(out.begin(), out.end(), rng);
  return out;
}

/// What the destination must hold after the segments are copied.
inline void apply_reference(const std::vector<std::uint8_t>& src, std::vector<std::uint8_t>& dst,
                            const std::vector<plan_segment>& segs, std::uint64_t block_bytes) {
  for (const auto& s : segs) {
    std::uint64_t end = (s.dst_block + s.blocks) * block_bytes;
    if (dst.size() < end) dst.resize(end, 0);
    std::copy_n(src.begin() + static_cast<std::ptrdiff_t>(s.src_block * block_bytes), s.blocks * block_bytes,
                dst.begin() + static_cast<std::ptrdiff_t>(s.dst_block * block_bytes));
  }
}

/// Submits `segs` as commands of up to `per_command` segments through one session, keeping up to
/// queue_depth() in flight, and returns every completion.
inline std::vector<detail::completion> run_commands(detail::copy_session& session,
                                                    const std::vector<plan_segment>& segs, std::uint32_t block_bytes,
                                                    std::size_t per_command) {
  std::vector<detail::completion> all;
  std::size_t in_flight = 0;
  std::uint64_t tag = 1;
  for (std::size_t i = 0; i < segs.size(); i += per_command) {
    std::size_t n = std::min(per_command, segs.size() - i);
    // A copy the session must not rely on: overwritten right after submit().
    std::vector<plan_segment> scratch(segs.begin() + static_cast<std::ptrdiff_t>(i),
                                      segs.begin() + static_cast<std::ptrdiff_t>(i + n));
    detail::command cmd{tag++, std::span<const plan_segment>(scratch), block_bytes};
    REQUIRE(session.submit(cmd).ok());
    std::fill(scratch.begin(), scratch.end(), plan_segment{~0ULL, ~0ULL, 1});
    ++in_flight;
    if (in_flight >= session.queue_depth()) {
      std::vector<detail::completion> got;
      REQUIRE(session.reap(1, got).ok());
      in_flight -= got.size();
      all.insert(all.end(), got.begin(), got.end());
    }
  }
  while (in_flight > 0) {
    std::vector<detail::completion> got;
    REQUIRE(session.reap(static_cast<unsigned>(in_flight), got).ok());
    REQUIRE(!got.empty());
    in_flight -= got.size();
    all.insert(all.end(), got.begin(), got.end());
  }
  return all;
}

}  // namespace offcopy::test
