// A scriptable offload backend for the engine tests: records every command, keeps a real queue of
// in-flight commands, completes them in a chosen order with scripted outcomes, and really copies the
// blocks it reports done (pread/pwrite between the two open files) so the bytes can be checked.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "offcopy/offcopy.hpp"
#include "src/core/backend.hpp"
#include "tests/unit/test_files.hpp"

namespace offcopy::core_test {

using test_files::open_device;
using test_files::read_file;
using test_files::scratch_dir;
using test_files::write_file;

inline std::vector<std::uint8_t> random_bytes(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::uint8_t> v(n);
  // Eight bytes per draw: a draw per byte was 87 % of a 64 MiB test's time under ASan (-O0).
  for (std::size_t i = 0; i < n; i += 8) {
    const std::uint64_t r = rng();
    std::memcpy(v.data() + i, &r, std::min<std::size_t>(8, n - i));
  }
  return v;
}

/// One command as the session received it.
struct recorded_command {
  std::uint64_t tag = 0;
  std::vector<plan_segment> segments;
  std::uint32_t block_bytes = 0;
  std::size_t in_flight_before = 0;  ///< commands outstanding when this one was submitted
  [[nodiscard]] std::uint64_t blocks() const {
    std::uint64_t n = 0;
    for (const auto& s : segments) n += s.blocks;
    return n;
  }
};

/// What the fake does; every field has a harmless default.
struct fake_config {
  std::uint32_t block_bytes = 512;
  copy_limits limits{};
  bool check_ok = true;
  std::string check_reason = "fake device refuses";
  unsigned queue_depth = 1;
  status open_error;  ///< returned by open_session when not ok
  /// Outcome of the n-th submitted command (0-based); the default completes it.
  std::function<detail::completion(std::size_t index, const recorded_command&)> outcome;
  bool complete_newest_first = false;       ///< out-of-order completion
  unsigned max_per_reap = 1;                ///< completions handed back per reap (at least min_completions)
  std::size_t reap_fails_after = SIZE_MAX;  ///< reap returns io_error once this many commands completed
  std::int64_t corrupt_dst_byte = -1;       ///< flips this destination byte after the copy (verify tests)
};

/// What the fake saw.
struct fake_log {
  std::vector<recorded_command> submitted;
  std::vector<std::uint64_t> completed;  ///< tags in completion order
  std::size_t max_in_flight = 0;
  std::uint64_t blocks_written = 0;  ///< blocks really copied
  unsigned sessions = 0;
  unsigned finishes = 0;
};

class fake_session final : public detail::copy_session {
 public:
  fake_session(const fake_config& cfg, fake_log& log, int src_fd, int dst_fd)
      : cfg_(cfg), log_(log), src_fd_(src_fd), dst_fd_(dst_fd) {}

  [[nodiscard]] unsigned queue_depth() const noexcept override { return cfg_.queue_depth; }

  [[nodiscard]] status submit(const detail::command& cmd) override {
    recorded_command r;
    r.tag = cmd.tag;
    r.segments.assign(cmd.segments.begin(), cmd.segments.end());
    r.block_bytes = cmd.block_bytes;
    r.in_flight_before = pending_.size();
    if (pending_.size() >= cfg_.queue_depth) return status(errc::internal, "fake: queue depth exceeded");
    pending_.push_back({log_.submitted.size(), r});
    log_.submitted.push_back(r);
    log_.max_in_flight = std::max(log_.max_in_flight, pending_.size());
    return {};
  }

  [[nodiscard]] status reap(unsigned min_completions, std::vector<detail::completion>& out) override {
    if (log_.completed.size() >= cfg_.reap_fails_after) return status(errc::io_error, "fake: reap failed", EIO);
    if (pending_.size() < min_completions) return status(errc::internal, "fake: waiting for more than is in flight");
    unsigned n = std::max(min_completions, cfg_.max_per_reap);
    while (n-- > 0 && !pending_.empty()) {
      entry e;
      if (cfg_.complete_newest_first) {
        e = pending_.back();
        pending_.pop_back();
      } else {
        e = pending_.front();
        pending_.pop_front();
      }
      detail::completion c;
      if (cfg_.outcome) c = cfg_.outcome(e.index, e.cmd);
      c.tag = e.cmd.tag;
      std::uint64_t blocks = c.result.ok() ? e.cmd.blocks() : std::min(c.blocks_done, e.cmd.blocks());
      if (auto s = copy_prefix(e.cmd, blocks); !s.ok()) return s;
      log_.completed.push_back(c.tag);
      out.push_back(std::move(c));
    }
    return {};
  }

  [[nodiscard]] status finish() override {
    ++log_.finishes;
    if (cfg_.corrupt_dst_byte >= 0) {
      std::uint8_t b = 0;
      if (::pread(dst_fd_, &b, 1, cfg_.corrupt_dst_byte) != 1) return status(errc::io_error, "fake: corrupt read");
      b = static_cast<std::uint8_t>(~b);
      if (::pwrite(dst_fd_, &b, 1, cfg_.corrupt_dst_byte) != 1) return status(errc::io_error, "fake: corrupt write");
    }
    return {};
  }

 private:
  struct entry {
    std::size_t index = 0;
    recorded_command cmd;
  };

  status copy_prefix(const recorded_command& cmd, std::uint64_t blocks) {
    const std::uint64_t bb = cmd.block_bytes;
    std::vector<std::uint8_t> buf;
    for (const plan_segment& s : cmd.segments) {
      if (blocks == 0) break;
      std::uint64_t n = std::min(blocks, s.blocks);
      buf.resize(n * bb);
      if (::pread(src_fd_, buf.data(), buf.size(), static_cast<off_t>(s.src_block * bb)) !=
          static_cast<ssize_t>(buf.size()))
        return status(errc::io_error, "fake: short read");
      if (::pwrite(dst_fd_, buf.data(), buf.size(), static_cast<off_t>(s.dst_block * bb)) !=
          static_cast<ssize_t>(buf.size()))
        return status(errc::io_error, "fake: short write");
      blocks -= n;
      log_.blocks_written += n;
    }
    return {};
  }

  const fake_config& cfg_;
  fake_log& log_;
  int src_fd_, dst_fd_;
  std::deque<entry> pending_;
};

/// Stands in for the NVMe Copy backend (first in the registry).
class fake_backend final : public detail::backend {
 public:
  fake_config cfg;
  fake_log log;
  void probe(detail::device_state& dev) override {
    offload_mechanism m;
    m.backend = "nvme-copy";
    m.available = cfg.check_ok;
    m.limits = cfg.limits;
    dev.caps.offload.push_back(m);
  }
  [[nodiscard]] detail::pair_support check(const detail::device_state&, const detail::device_state&,
                                           const policy&) const override {
    detail::pair_support p;
    p.ok = cfg.check_ok;
    if (!p.ok) p.reason = cfg.check_reason;
    p.block_bytes = cfg.block_bytes;
    p.limits = cfg.limits;
    p.offload = true;
    return p;
  }
  [[nodiscard]] result<std::unique_ptr<detail::copy_session>> open_session(detail::device_state& src,
                                                                           detail::device_state& dst,
                                                                           const policy&) override {
    ++log.sessions;
    if (!cfg.open_error.ok()) return cfg.open_error;
    return std::unique_ptr<detail::copy_session>(std::make_unique<fake_session>(cfg, log, src.fd, dst.fd));
  }
};

/// Installs a backend for the scope of a test and puts the original back, whatever happens.
class backend_swap {
 public:
  explicit backend_swap(detail::backend& b) : old_(detail::replace_backend("nvme-copy", &b)) {
    REQUIRE(old_ != nullptr);
  }
  ~backend_swap() { detail::replace_backend("nvme-copy", old_); }
  backend_swap(const backend_swap&) = delete;
  backend_swap& operator=(const backend_swap&) = delete;

 private:
  detail::backend* old_;
};

/// A source and a destination file of `bytes` random bytes each, opened through the library.
struct file_pair {
  scratch_dir dir;
  std::string src_path = dir.file("src.bin"), dst_path = dir.file("dst.bin");
  std::vector<std::uint8_t> src_data, dst_data;
  std::shared_ptr<device> src, dst;

  explicit file_pair(std::size_t bytes, std::uint64_t seed = 1) {
    src_data = random_bytes(bytes, seed);
    dst_data = random_bytes(bytes, seed + 100);
    write_file(src_path, src_data);
    write_file(dst_path, dst_data);
    src = open_device(src_path, false);
    dst = open_device(dst_path, true);
  }
  /// The destination bytes after copying `extents` (bytes) from the source.
  [[nodiscard]] std::vector<std::uint8_t> expected(const std::vector<extent>& extents) const {
    std::vector<std::uint8_t> out = dst_data;
    for (const extent& e : extents)
      std::copy_n(src_data.begin() + static_cast<std::ptrdiff_t>(e.src_offset_bytes), e.length_bytes,
                  out.begin() + static_cast<std::ptrdiff_t>(e.dst_offset_bytes));
    return out;
  }
};

}  // namespace offcopy::core_test
