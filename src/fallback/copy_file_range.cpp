// copy_file_range between regular files: the kernel copies (page cache to page cache, or a
// server-side copy where the filesystem offers one) and user space moves no data. Where the file
// system shares blocks (XFS with reflink, btrfs) whole blocks are cloned with FICLONERANGE and the
// report counts them as cloned_bytes; holes of the source stay holes (SEEK_DATA / SEEK_HOLE).
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <memory>

#include <fmt/format.h>

#include "src/core/backend.hpp"
#include "src/core/planner.hpp"
#include "src/core/sys.hpp"
#include "src/fallback/sparse.hpp"

namespace offcopy::detail {
namespace {

/// Errors with which the kernel says "not between these two files" rather than "I/O failed".
bool is_refusal(int err) noexcept { return err == EXDEV || err == EINVAL || err == EOPNOTSUPP || err == ENOSYS; }

/// A move within one medium by less than this goes to the buffered copier: copy_file_range
/// cannot copy a range onto itself, and pieces of the shift distance cost one call each
/// (make_plan already leaves such requests to the buffered copier; this is the backstop).
constexpr std::uint64_t min_memmove_piece_bytes = min_copy_file_range_shift_bytes;

class cfr_session final : public copy_session {
 public:
  cfr_session(device_state& src, device_state& dst, const policy& pol)
      : src_(src),
        dst_(dst),
        sync_(pol.sync),
        cancel_(pol.cancel),
        // Holes are found on the source and kept in the destination, except within one medium,
        // where a hole punched could be a range another extent still has to read.
        holes_(src.fd, src.caps.identity.empty() || src.caps.identity != dst.caps.identity),
        delta_(static_cast<std::int64_t>(dst.caps.identity_offset_bytes) -
               static_cast<std::int64_t>(src.caps.identity_offset_bytes)) {
    struct stat st {};
    if (sys().fstat(dst.fd, &st) == 0 && st.st_blksize > 0)
      clone_block_bytes_ = static_cast<std::uint64_t>(st.st_blksize);
    if (sys().fstat(src.fd, &st) == 0) src_size_ = static_cast<std::uint64_t>(st.st_size);
  }

  /// A memmove command is run here in pieces of the shift distance, or refused (not_supported:
  /// the engine hands it to the buffered copier) when the distance is under 1 MiB.
  bool runs_memmove_order() const noexcept override { return true; }

  status submit(const command& cmd) override {
    completion c;
    c.tag = cmd.tag;
    std::uint64_t done_bytes = 0, cloned_bytes = 0;
    const std::uint64_t bb = cmd.block_bytes == 0 ? 1 : cmd.block_bytes;
    if (cmd.order != copy_order::any && cmd.segments.size() == 1) {
      // Never stopped inside: a memmove stopped half-way leaves bytes whose source it overwrote.
      cancellable_ = false;
      c.result = move_onto_itself(cmd.segments[0], bb, cmd.order, done_bytes);
      cancellable_ = true;
    } else {
      for (const plan_segment& seg : cmd.segments) {
        status s = copy_segment(seg.src_block * bb, seg.dst_block * bb, seg.blocks * bb, done_bytes, cloned_bytes);
        if (!s.ok()) {
          c.result = std::move(s);
          break;
        }
      }
    }
    // A copy ending in a hole leaves the destination short of its size: grow it (only now, with
    // nothing else writing to it, so growing can never cut off data).
    if (c.result.ok() && grow_to_ > 0) c.result = grow_file(dst_.fd, grow_to_, dst_.caps.path);
    c.blocks_done = done_bytes / bb;
    c.cloned_blocks = cloned_bytes / bb;
    ready_.push_back(std::move(c));
    return {};
  }

  status reap(unsigned, std::vector<completion>& out) override {
    while (!ready_.empty()) {
      out.push_back(std::move(ready_.front()));
      ready_.pop_front();
    }
    return {};
  }

  status finish() override {
    if (!sync_) return {};
    for (;;) {
      if (sys().fdatasync(dst_.fd) == 0) return {};
      if (errno != EINTR) return errno_status(errno, "fdatasync " + dst_.caps.path);
    }
  }

 private:
  /// One segment: the block-aligned middle cloned where the file system shares blocks (XFS,
  /// btrfs: FICLONERANGE), the rest copied, holes of the source kept as holes.
  status copy_segment(std::uint64_t src_offset, std::uint64_t dst_offset, std::uint64_t length,
                      std::uint64_t& done_bytes, std::uint64_t& cloned_bytes) {
    const std::uint64_t end = src_offset + length;
    std::uint64_t pos = src_offset;
    auto dst_at = [&](std::uint64_t p) { return dst_offset + (p - src_offset); };
    std::uint64_t a = 0, e = 0;
    if (clonable(src_offset, dst_offset, length, a, e)) {
      if (auto s = copy_sparse(pos, dst_at(pos), a - pos, done_bytes); !s.ok()) return s;
      pos = a;
      if (clone(a, dst_at(a), e - a)) {
        done_bytes += e - a;
        cloned_bytes += e - a;
        pos = e;
      }
    }
    return copy_sparse(pos, dst_at(pos), end - pos, done_bytes);
  }

  /// The part [a, e) of a source range FICLONERANGE can share: whole file-system blocks at the
  /// same offset within a block on both sides (a partial last block only at the source's end).
  bool clonable(std::uint64_t src_offset, std::uint64_t dst_offset, std::uint64_t length, std::uint64_t& a,
                std::uint64_t& e) const noexcept {
    const std::uint64_t bs = clone_block_bytes_;
    if (!clone_enabled_ || bs == 0 || src_offset % bs != dst_offset % bs) return false;
    const std::uint64_t end = src_offset + length;
    a = (src_offset + bs - 1) / bs * bs;
    e = end == src_size_ ? end : end / bs * bs;
    return e > a;
  }

  /// True when the range now shares the source's blocks. A file system without reflink turns
  /// clones off for the session; any other refusal leaves the range to copy_file_range, which
  /// reports real errors itself.
  bool clone(std::uint64_t src_offset, std::uint64_t dst_offset, std::uint64_t length) {
    file_clone_range r{};
    r.src_fd = src_.fd;
    r.src_offset = src_offset;
    r.src_length = length;
    r.dest_offset = dst_offset;
    for (int tries = 0; tries < 8; ++tries) {
      if (sys().ioctl(dst_.fd, FICLONERANGE, &r) == 0) {
        copied_any_ = true;
        return true;
      }
      if (errno != EINTR && errno != EAGAIN) break;
    }
    if (errno == EOPNOTSUPP || errno == EXDEV || errno == ENOTTY || errno == ENOSYS || errno == EPERM ||
        errno == ETXTBSY || errno == EBADF)
      clone_enabled_ = false;
    return false;
  }

  /// Copies a range, its holes made holes in the destination (as cp does).
  status copy_sparse(std::uint64_t src_offset, std::uint64_t dst_offset, std::uint64_t length,
                     std::uint64_t& done_bytes) {
    while (length > 0) {
      const data_map::run r = holes_.at(src_offset, src_offset + length);
      const std::uint64_t n = r.end - src_offset;
      if (r.hole) {
        if (auto s = zero_file_range(dst_.fd, dst_offset, n, dst_.caps.path); !s.ok()) return s;
        copied_any_ = true;
        grow_to_ = std::max(grow_to_, dst_offset + n);
        done_bytes += n;
      } else if (auto s = copy_range(src_offset, dst_offset, n, done_bytes); !s.ok()) {
        return s;
      }
      src_offset += n;
      dst_offset += n;
      length -= n;
    }
    return {};
  }

  /// A segment overlapping itself, in memmove order: pieces of the shift distance, one after the
  /// other. `done_bytes` counts whole pieces only, in the copy order (from the end when moving up).
  status move_onto_itself(const plan_segment& seg, std::uint64_t bb, copy_order order, std::uint64_t& done_bytes) {
    const std::uint64_t piece_blocks = memmove_piece_blocks(seg, static_cast<std::uint32_t>(bb), delta_);
    if (piece_blocks * bb < min_memmove_piece_bytes)
      return status(errc::not_supported,
                    fmt::format("copy_file_range cannot copy a range onto itself: a move by {} bytes goes to the "
                                "buffered copier",
                                piece_blocks * bb));
    plan_segment rest = seg;
    while (rest.blocks > 0) {
      const plan_segment piece = take_memmove_piece(rest, order, piece_blocks);
      std::uint64_t piece_done = 0;
      if (auto s = copy_range(piece.src_block * bb, piece.dst_block * bb, piece.blocks * bb, piece_done); !s.ok())
        return s;
      done_bytes += piece.blocks * bb;
    }
    return {};
  }

  /// Copies one range, looping over short copies; adds what was copied to `done_bytes`.
  status copy_range(std::uint64_t src_offset, std::uint64_t dst_offset, std::uint64_t length,
                    std::uint64_t& done_bytes) {
    // One call moves at most ~2 GiB (MAX_RW_COUNT); ask for 8 MiB so a stop request is seen
    // within one call's time (issue 8.4: a few milliseconds, not the command's 256 MiB; 32 MiB
    // calls took 0.10-0.14 s from Ctrl-C to the stop on this loaded host, over the 0.1 s asked).
    constexpr std::uint64_t max_call_bytes = 8ULL << 20;
    while (length > 0) {
      if (cancellable_ && cancel_ != nullptr && cancel_->load())
        return status(errc::cancelled, "cancelled by the caller");
      auto in = static_cast<off_t>(src_offset);
      auto out = static_cast<off_t>(dst_offset);
      std::size_t ask = static_cast<std::size_t>(std::min(length, max_call_bytes));
      ssize_t n = sys().copy_file_range(src_.fd, &in, dst_.fd, &out, ask, 0);
      if (n < 0) {
        int err = errno;
        if (err == EINTR || err == EAGAIN) continue;
        if (!copied_any_ && is_refusal(err)) {
          return status(errc::not_supported,
                        fmt::format("copy_file_range {} -> {}: {}", src_.caps.path, dst_.caps.path, std::strerror(err)),
                        err);
        }
        // Data has moved: whatever the errno, this is no longer "cannot copy this pair".
        status s = errno_status(err, fmt::format("copy_file_range {} -> {} at source offset {}", src_.caps.path,
                                                 dst_.caps.path, src_offset));
        if (s.code() == errc::not_supported || s.code() == errc::invalid_argument) s.recode(errc::io_error);
        return s;
      }
      if (n == 0) {
        return status(errc::io_error, fmt::format("short read: {} ends before offset {}", src_.caps.path, src_offset),
                      0);
      }
      copied_any_ = true;
      auto moved = static_cast<std::uint64_t>(n);
      src_offset += moved;
      dst_offset += moved;
      length -= moved;
      done_bytes += moved;
    }
    return {};
  }

  device_state& src_;
  device_state& dst_;
  bool sync_;
  const std::atomic<bool>* cancel_ = nullptr;  ///< policy::cancel, polled before each call
  bool cancellable_ = true;                    ///< false while a memmove command runs
  bool copied_any_ = false;
  data_map holes_;
  std::int64_t delta_ = 0;  ///< destination minus source start on a shared medium
  bool clone_enabled_ = true;
  std::uint64_t clone_block_bytes_ = 0;
  std::uint64_t src_size_ = 0;
  std::uint64_t grow_to_ = 0;  ///< the destination must be at least this long (a trailing hole)
  std::deque<completion> ready_;
};

class cfr_backend final : public backend {
 public:
  void probe(device_state& dev) override {
    // Only files can use it; listing it as "unavailable" on every device would be noise.
    if (dev.caps.kind != device_kind::regular_file) return;
    offload_mechanism m;
    m.backend = "copy-file-range";
    m.available = true;
    dev.caps.offload.push_back(std::move(m));
  }

  pair_support check(const device_state& src, const device_state& dst, const policy&) const override {
    pair_support p;
    if (src.caps.kind != device_kind::regular_file || dst.caps.kind != device_kind::regular_file) {
      p.reason = "copy_file_range needs regular files on both sides";
      return p;
    }
    if (src.fd < 0 || dst.fd < 0) {
      p.reason = "device not open";
      return p;
    }
    p.ok = true;
    p.block_bytes = 1;
    // Commands of at most 256 MiB: progress and cancellation between them (one call each).
    p.limits.max_command_blocks = 256ULL << 20;
    return p;
  }

  result<std::unique_ptr<copy_session>> open_session(device_state& src, device_state& dst, const policy& pol) override {
    pair_support p = check(src, dst, pol);
    if (!p.ok) return status(errc::not_supported, p.reason);
    return std::unique_ptr<copy_session>(std::make_unique<cfr_session>(src, dst, pol));
  }
};

}  // namespace

backend& copy_file_range_backend() {
  static cfr_backend b;
  return b;
}

}  // namespace offcopy::detail
