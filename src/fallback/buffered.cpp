// The buffered copier: the reference path every other backend is checked against.
//
// Each command is cut into chunks (at most buffer_bytes). A chunk owns one buffer ("slot") and is
// read, then written; several slots are in flight at once so reads of later chunks overlap writes
// of earlier ones, across command boundaries too. I/O goes through io_uring with registered
// buffers, or through pread/pwrite of the syscall seam when io_uring is unavailable.
//
// O_DIRECT is used for a chunk side whose offset and length are multiples of that side's granule;
// the rest (unaligned heads and tails) goes through the page cache. On the destination the granule
// is at least a page, so a page-cache write and an O_DIRECT write never share a page: the kernel
// would otherwise be free to write back a stale copy of the page over the O_DIRECT data.
#include "src/fallback/buffered.hpp"

#include <fcntl.h>
#include <liburing.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <deque>
#include <list>
#include <map>
#include <mutex>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "src/core/sys.hpp"
#include "src/fallback/sparse.hpp"

namespace offcopy::detail {
namespace {

constexpr std::uint32_t page_bytes = 4096;
constexpr std::uint64_t command_bytes = 64ULL << 20;
constexpr unsigned max_buffers_in_flight = 256;
/// Resubmissions of one operation that made no progress (EINTR, EAGAIN, 0 bytes written,
/// O_DIRECT transfers shorter than a granule) before giving up.
constexpr unsigned max_stalled_retries = 64;
/// Buffer bytes never unmapped because the I/O on them could not be waited for (see ~buffered_session).
std::atomic<std::uint64_t> kept_buffer_bytes_total{0};

std::uint64_t align_up(std::uint64_t v, std::uint64_t a) { return (v + a - 1) / a * a; }

/// One side of the copy.
struct side {
  std::string path;    ///< for messages
  int cached_fd = -1;  ///< page-cache I/O
  bool own_cached_fd = false;
  int direct_fd = -1;                  ///< O_DIRECT, or -1
  bool direct_refused = false;         ///< the kernel refused an aligned O_DIRECT transfer: stop using it
  std::uint32_t granule = page_bytes;  ///< O_DIRECT needs offset and length multiples of this

  [[nodiscard]] bool direct() const noexcept { return direct_fd >= 0 && !direct_refused; }
  void close_all() noexcept {
    if (direct_fd >= 0) (void)sys().close(direct_fd);
    if (own_cached_fd && cached_fd >= 0) (void)sys().close(cached_fd);
    direct_fd = -1;
    cached_fd = -1;
  }
};

// ---- I/O drivers: io_uring, or synchronous pread/pwrite -------------------------------------

struct io_op {
  unsigned slot = 0;
  bool is_write = false;
  int fd = -1;
  std::byte* buf = nullptr;
  std::uint64_t offset = 0;
  std::uint32_t length = 0;
};

struct io_done {
  unsigned slot = 0;
  int res = 0;  ///< bytes, or -errno
};

class io_driver {
 public:
  virtual ~io_driver() = default;
  /// Queues one operation (at most one per slot is outstanding, so this cannot run out of room).
  virtual void queue(const io_op& op) = 0;
  /// Submits what is queued and waits until at least `min` completions arrived (min ≤ outstanding).
  [[nodiscard]] virtual status wait(unsigned min, std::vector<io_done>& out) = 0;
  [[nodiscard]] virtual bool is_uring() const noexcept { return false; }
  [[nodiscard]] virtual bool fixed_buffers() const noexcept { return false; }
};

/// Runs each operation at once through the seam; used when io_uring is not available.
class sync_driver final : public io_driver {
 public:
  void queue(const io_op& op) override {
    ssize_t r = op.is_write ? sys().pwrite(op.fd, op.buf, op.length, static_cast<off_t>(op.offset))
                            : sys().pread(op.fd, op.buf, op.length, static_cast<off_t>(op.offset));
    ready_.push_back({op.slot, r < 0 ? -errno : static_cast<int>(r)});
  }
  status wait(unsigned, std::vector<io_done>& out) override {
    out.insert(out.end(), ready_.begin(), ready_.end());
    ready_.clear();
    return {};
  }

 private:
  std::vector<io_done> ready_;
};

class uring_driver final : public io_driver {
 public:
  /// Sets up the ring; returns the negative errno of io_uring_queue_init on failure.
  int init(unsigned entries, std::byte* base, std::uint32_t buffer_bytes, unsigned buffers, bool register_buffers) {
    ops_.resize(buffers);
    int r = sys().uring_queue_init(entries, &ring_, IORING_SETUP_COOP_TASKRUN);
    if (r == -EINVAL) r = sys().uring_queue_init(entries, &ring_, 0);  // kernels before 5.19
    if (r < 0) return r;
    ready_ = true;
    if (register_buffers) {
      std::vector<iovec> iov(buffers);
      for (unsigned i = 0; i < buffers; ++i) {
        iov[i].iov_base = base + static_cast<std::size_t>(i) * buffer_bytes;
        iov[i].iov_len = buffer_bytes;
      }
      // Fails under a small RLIMIT_MEMLOCK on older kernels: unregistered buffers still work.
      fixed_ = io_uring_register_buffers(&ring_, iov.data(), buffers) == 0;
    }
    return 0;
  }
  ~uring_driver() override {
    if (ready_) io_uring_queue_exit(&ring_);
  }

  void queue(const io_op& op) override {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {  // cannot happen with entries ≥ slots; submit and retry to be safe
      (void)io_uring_submit(&ring_);
      sqe = io_uring_get_sqe(&ring_);
    }
    if (op.is_write) {
      if (fixed_)
        io_uring_prep_write_fixed(sqe, op.fd, op.buf, op.length, op.offset, static_cast<int>(op.slot));
      else
        io_uring_prep_write(sqe, op.fd, op.buf, op.length, op.offset);
    } else {
      if (fixed_)
        io_uring_prep_read_fixed(sqe, op.fd, op.buf, op.length, op.offset, static_cast<int>(op.slot));
      else
        io_uring_prep_read(sqe, op.fd, op.buf, op.length, op.offset);
    }
    io_uring_sqe_set_data64(sqe, op.slot);
    ops_[op.slot] = op;
  }

  status wait(unsigned min, std::vector<io_done>& out) override {
    int r;
    do {
      r = sys().uring_submit_and_wait(&ring_, min);
    } while (r == -EINTR || r == -EAGAIN || r == -EBUSY);
    if (r < 0) return errno_status(-r, "io_uring_submit_and_wait");
    io_uring_cqe* cqe = nullptr;
    unsigned head = 0;
    unsigned seen = 0;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      auto slot = static_cast<unsigned>(io_uring_cqe_get_data64(cqe));
      const io_op& op = ops_[slot];
      out.push_back({slot, sys().uring_result(op.is_write, op.fd, op.offset, op.length, cqe->res)});
      ++seen;
    }
    io_uring_cq_advance(&ring_, seen);
    return {};
  }
  bool is_uring() const noexcept override { return true; }
  bool fixed_buffers() const noexcept override { return fixed_; }

 private:
  io_uring ring_{};
  bool ready_ = false;
  bool fixed_ = false;
  std::vector<io_op> ops_;
};

// ---- the session ------------------------------------------------------------------------------

struct chunk {
  std::uint64_t src_offset = 0;
  std::uint64_t dst_offset = 0;
  std::uint32_t length = 0;
  std::uint64_t seq = 0;  ///< position within its command, in copy order (for the done prefix)
  bool read_direct = false;
  bool write_direct = false;
  bool zero = false;  ///< a hole of the source: nothing is read, the destination range is zeroed
  /// What is read: [read_offset, read_offset + read_length), the chunk's source bytes starting
  /// `skew` bytes in. A direct read of a source range off the granule reads the aligned range
  /// around it and moves the bytes down in the buffer (a move by a few bytes on a block device).
  std::uint64_t read_offset = 0;
  std::uint32_t read_length = 0;
  std::uint32_t skew = 0;
};

struct command_state {
  std::uint64_t tag = 0;
  std::uint64_t block_bytes = 1;
  copy_order order = copy_order::any;      ///< memmove commands: one segment, chunks cut in this order
  std::vector<plan_segment> segments;      ///< copied: the caller's span need not outlive submit()
  std::size_t segment_index = 0;           ///< where the next chunk starts
  std::uint64_t segment_offset_bytes = 0;  ///< bytes of the segment cut
  std::uint64_t next_seq = 0;
  bool all_issued = false;
  unsigned in_flight = 0;          ///< chunks of this command holding a slot
  status error;                    ///< first failure
  std::uint64_t prefix_bytes = 0;  ///< bytes of chunks 0..prefix_seq-1, all written
  std::uint64_t prefix_seq = 0;
  std::map<std::uint64_t, std::uint32_t> done_ahead;  ///< written chunks past the prefix
  // Memmove commands (one segment overlapping itself): a chunk is written only once no source byte
  // under its destination is still to be read -- neither in a chunk whose read is under way nor in
  // the part of the segment not cut yet. Descending commands are cut in windows of the slot pool's
  // size from the end, each window cut upward: the source is read forward inside a window (the
  // backing store's readahead keeps working) and the windows walk down.
  bool window_started = false;
  std::uint64_t window_lo = 0, window_hi = 0;                    ///< segment-relative bytes (descending)
  std::uint64_t cursor = 0;                                      ///< next chunk start in the window, segment-relative
  std::vector<std::pair<std::uint64_t, std::uint64_t>> reading;  ///< source ranges being read
  std::vector<unsigned> parked;                    ///< slots holding a read chunk that may not be written yet
  std::map<std::uint64_t, std::uint64_t> written;  ///< descending: written ranges, segment-relative
  std::list<command_state>::iterator self;
};

struct slot_state {
  command_state* cmd = nullptr;
  chunk c;
  std::byte* buf = nullptr;
  std::uint32_t done = 0;  ///< bytes of the current phase done
  bool writing = false;
  unsigned stalls = 0;
};

class buffered_session final : public copy_session {
 public:
  buffered_session() = default;
  buffered_session(const buffered_session&) = delete;
  buffered_session& operator=(const buffered_session&) = delete;

  ~buffered_session() override {
    // The engine may drop a session with I/O outstanding (after an error): the kernel still
    // owns the buffers until those complete. A wait that fails is tried again; when the ring
    // cannot deliver them at all, the ring and the buffers are kept (never unmapped under a
    // transfer the kernel may still be doing), only the descriptors are closed (each request
    // holds its own file reference).
    std::vector<io_done> done;
    unsigned failed_waits = 0;
    while (ops_in_flight_ > 0 && driver_ && failed_waits < max_stalled_retries) {
      done.clear();
      if (!driver_->wait(1, done).ok()) {
        ++failed_waits;
        continue;
      }
      ops_in_flight_ -= static_cast<unsigned>(std::min<std::size_t>(done.size(), ops_in_flight_));
    }
    if (ops_in_flight_ > 0 && driver_) {
      // Intentionally kept for the life of the process (reachable, so no leak report), with the buffers.
      static std::mutex kept_mu;
      static auto* kept = new std::vector<std::unique_ptr<io_driver>>;
      std::lock_guard lock(kept_mu);
      kept->push_back(std::move(driver_));
      kept_buffer_bytes_total += buffers_len_;
    } else {
      driver_.reset();
      if (buffers_ != nullptr) ::munmap(buffers_, buffers_len_);
    }
    src_.close_all();
    dst_.close_all();
  }

  status open(device_state& src, device_state& dst, const policy& pol, const buffered_tuning& tuning) {
    sync_ = pol.sync;
    cancel_ = pol.cancel;
    dst_is_file_ = dst.caps.kind == device_kind::regular_file;
    medium_delta_ = static_cast<std::int64_t>(dst.caps.identity_offset_bytes) -
                    static_cast<std::int64_t>(src.caps.identity_offset_bytes);
    const bool src_direct = want_direct(src, tuning);
    const bool dst_direct = want_direct(dst, tuning);
    if (auto s = open_side(src, false, src_direct, src_); !s.ok()) return s;
    if (auto s = open_side(dst, true, dst_direct, dst_); !s.ok()) return s;
    src_.granule = std::lcm<std::uint32_t>(std::max<std::uint32_t>(src.caps.direct_io_align_bytes, 512), 512);
    dst_.granule = std::lcm<std::uint32_t>(std::max<std::uint32_t>(dst.caps.direct_io_align_bytes, 512), page_bytes);
    // Holes of a file source are kept (file destination) or zeroed by the device (BLKZEROOUT),
    // except within one medium, where zeroing could hit bytes another extent still has to read.
    const bool one_medium = !src.caps.identity.empty() && src.caps.identity == dst.caps.identity;
    holes_ = data_map(src_.cached_fd, src.caps.kind == device_kind::regular_file && !one_medium);

    const bool cached = !src_.direct() && !dst_.direct();
    std::uint64_t want =
        pol.buffer_bytes != 0 ? pol.buffer_bytes : (cached ? default_cached_buffer_bytes : default_buffer_bytes);
    const std::uint64_t unit = std::lcm<std::uint64_t>(std::lcm<std::uint64_t>(src_.granule, dst_.granule), page_bytes);
    buffer_bytes_ = static_cast<std::uint32_t>(std::min<std::uint64_t>(align_up(want, unit), 1ULL << 30));
    // Room for the aligned range around a skewed source chunk (see chunk::skew).
    stride_bytes_ =
        buffer_bytes_ + (src_.direct() ? static_cast<std::uint32_t>(align_up(2ULL * src_.granule, page_bytes)) : 0);
    unsigned buffers = pol.buffers_in_flight != 0
                           ? pol.buffers_in_flight
                           : (cached ? default_cached_buffers_in_flight : default_buffers_in_flight);
    buffers = std::clamp(buffers, 1U, max_buffers_in_flight);

    if (tuning.use_io_uring) {
      auto d = std::make_unique<uring_driver>();
      buffers_len_ = static_cast<std::size_t>(buffers) * stride_bytes_;
      if (!allocate()) return status(errc::io_error, "cannot allocate copy buffers", errno);
      if (d->init(buffers, buffers_, stride_bytes_, buffers, tuning.register_buffers) == 0) driver_ = std::move(d);
    }
    if (!driver_) {
      // Synchronous I/O: one buffer is all it can use.
      if (buffers_ != nullptr) ::munmap(buffers_, buffers_len_);
      buffers_ = nullptr;
      buffers = 1;
      buffers_len_ = stride_bytes_;
      if (!allocate()) return status(errc::io_error, "cannot allocate copy buffers", errno);
      driver_ = std::make_unique<sync_driver>();
    }
    slots_.resize(buffers);
    for (unsigned i = 0; i < buffers; ++i) {
      slots_[i].buf = buffers_ + static_cast<std::size_t>(i) * stride_bytes_;
      free_slots_.push_back(buffers - 1 - i);
    }
    return {};
  }

  unsigned queue_depth() const noexcept override { return 64; }
  bool runs_memmove_order() const noexcept override { return true; }

  status submit(const command& cmd) override {
    if (!fatal_.ok()) return fatal_;
    std::uint64_t total = 0;
    for (const plan_segment& s : cmd.segments) total += s.blocks;
    if (total == 0) {
      completion c;
      c.tag = cmd.tag;
      ready_.push_back(std::move(c));
      return {};
    }
    command_state& st = commands_.emplace_back();
    st.self = std::prev(commands_.end());
    st.tag = cmd.tag;
    st.block_bytes = cmd.block_bytes == 0 ? 1 : cmd.block_bytes;
    st.order = cmd.segments.size() == 1 ? cmd.order : copy_order::any;
    st.segments.assign(cmd.segments.begin(), cmd.segments.end());
    pending_.push_back(&st);
    return pump(0);
  }

  status reap(unsigned min_completions, std::vector<completion>& out) override {
    status s = fatal_;
    if (s.ok() && min_completions == 0) s = pump(0);
    while (s.ok() && ready_.size() < min_completions && !commands_.empty()) s = pump(1);
    // Commands that completed before a failure are still handed over (the engine counts them).
    for (completion& c : ready_) out.push_back(std::move(c));
    ready_.clear();
    return s;
  }

  status finish() override {
    if (!fatal_.ok()) return fatal_;
    if (!sync_) return {};
    for (;;) {
      if (sys().fdatasync(dst_.cached_fd) == 0) return {};
      if (errno != EINTR) return errno_status(errno, "fdatasync " + dst_.path);
    }
  }

  buffered_session_info info() const {
    buffered_session_info i;
    i.io_uring = driver_ && driver_->is_uring();
    i.registered_buffers = driver_ && driver_->fixed_buffers();
    i.src_direct = src_.direct();
    i.dst_direct = dst_.direct();
    i.buffer_bytes = buffer_bytes_;
    i.buffers = static_cast<unsigned>(slots_.size());
    i.direct_ops = direct_ops_;
    i.cached_ops = cached_ops_;
    i.zeroed_bytes = zeroed_bytes_;
    i.skewed_reads = skewed_reads_;
    return i;
  }

 private:
  static bool want_direct(const device_state& dev, const buffered_tuning& tuning) {
    switch (tuning.direct) {
      case buffered_tuning::direct_io::never: return false;
      case buffered_tuning::direct_io::always: return true;
      case buffered_tuning::direct_io::automatic: break;
    }
    // Files: the page cache is usually warm and the kernel's writeback is good at files.
    return dev.caps.kind != device_kind::regular_file;
  }

  static status open_side(device_state& dev, bool write, bool direct, side& out) {
    const capabilities& caps = dev.caps;
    out.path = caps.block_path.empty() ? caps.path : caps.block_path;
    if (caps.block_path.empty() && caps.kind != device_kind::regular_file && caps.kind != device_kind::block_device) {
      return status(errc::not_supported, fmt::format("{}: no block device to read and write", caps.path));
    }
    if (out.path == caps.path && dev.fd >= 0) {
      out.cached_fd = dev.fd;
    } else {
      int fd = sys().open(out.path.c_str(), (write ? O_RDWR : O_RDONLY) | O_CLOEXEC, 0);
      if (fd < 0) return errno_status(errno, "open " + out.path);
      out.cached_fd = fd;
      out.own_cached_fd = true;
    }
    if (direct) {
      // Filesystems without O_DIRECT (tmpfs on older kernels) refuse it: page cache only then.
      int fd = sys().open(out.path.c_str(), (write ? O_WRONLY : O_RDONLY) | O_DIRECT | O_CLOEXEC, 0);
      out.direct_fd = fd >= 0 ? fd : -1;
    }
    return {};
  }

  bool allocate() {
    void* p = ::mmap(nullptr, buffers_len_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (p == MAP_FAILED) return false;
    buffers_ = static_cast<std::byte*>(p);
    return true;
  }

  /// Cuts the next chunk of `cmd`; false when the command is exhausted.
  bool next_chunk(command_state& cmd, chunk& out) {
    while (cmd.segment_index < cmd.segments.size()) {
      const plan_segment& seg = cmd.segments[cmd.segment_index];
      const std::uint64_t seg_bytes = seg.blocks * cmd.block_bytes;
      if (cmd.segment_offset_bytes >= seg_bytes) {
        ++cmd.segment_index;
        cmd.segment_offset_bytes = 0;
        continue;
      }
      const std::uint64_t rest = seg_bytes - cmd.segment_offset_bytes;
      std::uint64_t s = 0, d = 0, len = 0;
      bool zero = false;
      if (cmd.order == copy_order::descending) {
        const std::uint64_t s0 = seg.src_block * cmd.block_bytes, d0 = seg.dst_block * cmd.block_bytes;
        if (!cmd.window_started) {
          cmd.window_started = true;
          cmd.window_hi = seg_bytes;
          cmd.window_lo = cmd.cursor = window_start(s0, d0, seg_bytes);
        } else if (cmd.cursor >= cmd.window_hi) {
          if (cmd.window_lo == 0) {
            cmd.segment_offset_bytes = seg_bytes;  // every window cut
            continue;
          }
          cmd.window_hi = cmd.window_lo;
          cmd.window_lo = cmd.cursor = window_start(s0, d0, cmd.window_hi);
        }
        s = s0 + cmd.cursor;
        d = d0 + cmd.cursor;
        len = piece_length(s, d, cmd.window_hi - cmd.cursor);
        cmd.cursor += len;
        if (cmd.cursor >= cmd.window_hi && cmd.window_lo == 0) cmd.segment_offset_bytes = seg_bytes;
      } else {
        s = seg.src_block * cmd.block_bytes + cmd.segment_offset_bytes;
        d = seg.dst_block * cmd.block_bytes + cmd.segment_offset_bytes;
        const data_map::run r = holes_.at(s, s + rest);
        if (r.hole) {
          len = hole_length(d, r.end - s);
          zero = len != 0;
          if (!zero) len = piece_length(s, d, r.end - s);  // the unaligned head of a hole: copy its zeros
        } else {
          len = piece_length(s, d, r.end - s);
        }
      }
      out = chunk{};
      out.src_offset = s;
      out.dst_offset = d;
      out.length = static_cast<std::uint32_t>(len);
      out.seq = cmd.next_seq++;
      out.zero = zero;
      if (!zero) {
        out.write_direct = dst_.direct() && d % dst_.granule == 0 && len % dst_.granule == 0;
        out.read_direct = src_.direct();
        out.read_offset = s;
        out.read_length = out.length;
        if (out.read_direct && (s % src_.granule != 0 || len % src_.granule != 0)) {
          if (out.write_direct) {
            // Off the source's granule but on the destination's: read the aligned range around it.
            out.read_offset = s - s % src_.granule;
            out.read_length = static_cast<std::uint32_t>(align_up(s + len, src_.granule) - out.read_offset);
            out.skew = static_cast<std::uint32_t>(s - out.read_offset);
            ++skewed_reads_;
          } else {
            out.read_direct = false;  // an unaligned head or tail: small, through the page cache
          }
        }
      }
      if (cmd.order != copy_order::descending) cmd.segment_offset_bytes += len;
      if (cmd.order != copy_order::any) cmd.reading.emplace_back(s, s + len);
      return true;
    }
    return false;
  }

  /// Where the window of a descending memmove that ends at segment offset `hi` starts. A window
  /// holds at most as many chunks as there are slots (one less full buffer than slots, plus the
  /// piece its start's alignment adds), so every chunk of a window can be read before any of them
  /// must wait for a chunk not cut yet: with one slot, a window is one chunk cut from the end.
  std::uint64_t window_start(std::uint64_t s0, std::uint64_t d0, std::uint64_t hi) const {
    const std::uint64_t g = dst_.direct() ? dst_.granule : (src_.direct() ? src_.granule : 1);
    if (slots_.size() < 2) return hi - piece_length_back(s0 + hi, d0 + hi, hi);
    const std::uint64_t size = static_cast<std::uint64_t>(buffer_bytes_) * (slots_.size() - 1);
    if (hi <= size) return 0;
    std::uint64_t lo_abs = d0 + hi - size;
    lo_abs -= lo_abs % g;
    return lo_abs > d0 ? lo_abs - d0 : 0;
  }

  /// piece_length() for a chunk that ends at s_end / d_end: [end - length, end).
  std::uint64_t piece_length_back(std::uint64_t s_end, std::uint64_t d_end, std::uint64_t rest) const {
    const std::uint64_t cap = std::min<std::uint64_t>(rest, buffer_bytes_);
    std::uint64_t granule = 0;
    std::uint64_t key = 0;
    if (dst_.direct()) {
      granule = dst_.granule;
      key = d_end;
    } else if (src_.direct()) {
      granule = src_.granule;
      key = s_end;
    }
    if (granule == 0) return cap;
    if (key % granule != 0) return std::min(cap, key % granule);
    if (cap < granule) return cap;
    return cap - cap % granule;
  }

  /// Memmove commands: may this read chunk be written now (see command_state)?
  bool may_write(const command_state& cmd, const chunk& c) const {
    // The destination range in source offsets (partitions of one disk start at different places).
    const std::int64_t lo = static_cast<std::int64_t>(c.dst_offset) + medium_delta_;
    const std::int64_t hi = lo + c.length;
    auto overlaps = [&](std::uint64_t a, std::uint64_t b) {
      return a < b && static_cast<std::int64_t>(a) < hi && lo < static_cast<std::int64_t>(b);
    };
    for (auto [a, b] : cmd.reading)
      if (overlaps(a, b)) return false;
    if (cmd.segment_index >= cmd.segments.size()) return true;  // all cut, none being read
    const plan_segment& seg = cmd.segments[0];
    const std::uint64_t s0 = seg.src_block * cmd.block_bytes, end = s0 + seg.blocks * cmd.block_bytes;
    if (cmd.order == copy_order::descending) {
      if (!cmd.window_started) return false;
      return !overlaps(s0, s0 + cmd.window_lo) && !overlaps(s0 + cmd.cursor, s0 + cmd.window_hi);
    }
    return !overlaps(s0 + cmd.segment_offset_bytes, end);
  }

  /// Chunk boundaries fall on the destination's granule (or the source's when only it is direct),
  /// so an unaligned head and tail become small page-cache pieces and the middle goes direct.
  std::uint64_t piece_length(std::uint64_t s, std::uint64_t d, std::uint64_t rest) const {
    const std::uint64_t cap = std::min<std::uint64_t>(rest, buffer_bytes_);
    std::uint64_t granule = 0;
    std::uint64_t key = 0;
    if (dst_.direct()) {
      granule = dst_.granule;
      key = d;
    } else if (src_.direct()) {
      granule = src_.granule;
      key = s;
    }
    if (granule == 0) return cap;
    if (key % granule != 0) return std::min(cap, granule - key % granule);
    if (cap < granule) return cap;
    return cap - cap % granule;
  }

  /// How much of a source hole at destination offset d (hole_bytes long) is zeroed in one go: a
  /// file takes any range; a block device whole destination granules (pages at least, never
  /// shared with a page-cache write), so 0 when d is off the granule or the hole is shorter.
  std::uint64_t hole_length(std::uint64_t d, std::uint64_t hole_bytes) const {
    const std::uint64_t cap = std::min<std::uint64_t>(hole_bytes, command_bytes);
    if (dst_is_file_) return cap;
    const std::uint64_t g = dst_.granule;
    if (d % g != 0 || cap < g) return 0;
    return cap - cap % g;
  }

  void issue(unsigned index) {
    slot_state& sl = slots_[index];
    const bool w = sl.writing;
    const side& sd = w ? dst_ : src_;
    bool& direct = w ? sl.c.write_direct : sl.c.read_direct;
    if (direct && !sd.direct()) {
      direct = false;
      if (!w && sl.c.skew != 0) {  // O_DIRECT refused meanwhile: read just the chunk, cached
        sl.c.read_offset = sl.c.src_offset;
        sl.c.read_length = sl.c.length;
        sl.c.skew = 0;
        sl.done = 0;
      }
    }
    io_op op;
    op.slot = index;
    op.is_write = w;
    op.fd = direct ? sd.direct_fd : sd.cached_fd;
    op.buf = sl.buf + sl.done;
    op.offset = (w ? sl.c.dst_offset : sl.c.read_offset) + sl.done;
    op.length = (w ? sl.c.length : sl.c.read_length) - sl.done;
    if (w) max_write_end_ = std::max(max_write_end_, sl.c.dst_offset + sl.c.length);
    ++(direct ? direct_ops_ : cached_ops_);
    ++ops_in_flight_;
    driver_->queue(op);
  }

  /// Gives idle slots the next chunks, in command order.
  void start_idle_slots() {
    while (!pending_.empty()) {
      command_state* cmd = pending_.front();
      // Cancelled (by the caller, or by the engine when a table below changed): no new chunk is
      // cut; the chunks in flight finish and the command reports the prefix they completed
      // (issue 8.4). A memmove command runs to its end: stopped inside, it would leave bytes whose
      // source it already overwrote.
      if (cancel_ != nullptr && cmd->order == copy_order::any && cmd->error.ok() && cancel_->load())
        cmd->error = status(errc::cancelled, "cancelled by the caller");
      if (free_slots_.empty() && !cmd->error.ok()) {
        // Nothing more will be cut from a failed command: let it complete.
      } else if (free_slots_.empty()) {
        return;
      }
      chunk c;
      if (!cmd->error.ok() || !next_chunk(*cmd, c)) {
        cmd->all_issued = true;
        pending_.pop_front();
        maybe_complete(cmd);
        continue;
      }
      if (c.zero) {
        zero_chunk(*cmd, c);
        continue;
      }
      const unsigned index = free_slots_.back();
      free_slots_.pop_back();
      slot_state& sl = slots_[index];
      sl.cmd = cmd;
      sl.c = c;
      sl.done = 0;
      sl.writing = false;
      sl.stalls = 0;
      ++cmd->in_flight;
      issue(index);
      if (!cmd->parked.empty()) start_parked_writes(*cmd);
    }
  }

  /// A hole of the source: the destination range made zeros by the file system or the device,
  /// here and now (a metadata operation), without a buffer.
  void zero_chunk(command_state& cmd, const chunk& c) {
    status s;
    if (dst_is_file_) {
      s = zero_file_range(dst_.cached_fd, c.dst_offset, c.length, dst_.path);
      // A hole at the end leaves the file short: grow it, unless a write already issued reaches
      // further (growing must never cut off a write still in flight).
      const std::uint64_t end = c.dst_offset + c.length;
      if (s.ok() && end > max_write_end_) s = grow_file(dst_.cached_fd, end, dst_.path);
      max_write_end_ = std::max(max_write_end_, end);
    } else {
      s = zero_block_range(dst_.cached_fd, c.dst_offset, c.length, dst_.path);
    }
    if (!s.ok()) {
      if (cmd.error.ok()) cmd.error = std::move(s);
      return;
    }
    zeroed_bytes_ += c.length;
    chunk_done(cmd, c.seq, c.length);
  }

  status pump(unsigned min) {
    start_idle_slots();
    if (ops_in_flight_ == 0 && !commands_.empty() && ready_.empty() && min > 0) {
      // Nothing in flight and nothing can start: a memmove rule would wait forever. Never spin.
      fatal_ = status(errc::internal, "buffered copier stalled: no transfer can start");
      return fatal_;
    }
    if (ops_in_flight_ == 0) return {};
    results_.clear();
    if (auto s = driver_->wait(std::min(min, ops_in_flight_), results_); !s.ok()) {
      fatal_ = std::move(s);
      return fatal_;
    }
    for (const io_done& r : results_) {
      --ops_in_flight_;
      handle(r.slot, r.res);
    }
    start_idle_slots();
    return {};
  }

  void handle(unsigned index, int res) {
    slot_state& sl = slots_[index];
    const bool w = sl.writing;
    side& sd = w ? dst_ : src_;
    bool& direct = w ? sl.c.write_direct : sl.c.read_direct;
    const std::uint64_t offset = (w ? sl.c.dst_offset : sl.c.read_offset) + sl.done;
    const std::uint32_t phase_length = w ? sl.c.length : sl.c.read_length;
    const std::uint32_t needed = w ? sl.c.length : sl.c.skew + sl.c.length;
    const char* verb = w ? "write" : "read";

    if (res < 0) {
      const int err = -res;
      if ((err == EINTR || err == EAGAIN) && ++sl.stalls <= max_stalled_retries) {
        issue(index);
        return;
      }
      if (err == EINVAL && direct) {
        // The device wants a stricter O_DIRECT alignment than it told us: page cache from now on.
        // (Operations in flight on the O_DIRECT fd finish; issue() moves the rest over.)
        sd.direct_refused = true;
        direct = false;
        issue(index);
        return;
      }
      fail(index, errno_status(err, fmt::format("{} {} at offset {}", verb, sd.path, offset)));
      return;
    }
    auto n = static_cast<std::uint32_t>(res);
    if (n > phase_length - sl.done) n = phase_length - sl.done;  // never trust more than asked
    // A short O_DIRECT transfer: redo from the last granule boundary so the rest stays aligned
    // (a read that already holds every byte the chunk needs is complete).
    if (direct && sl.done + n < needed) n -= n % sd.granule;
    if (n == 0) {
      if (res == 0 && !w) {
        fail(index,
             status(errc::io_error,
                    fmt::format("short read: {} has no data at offset {} (end of device or file)", sd.path, offset)));
        return;
      }
      if (++sl.stalls > max_stalled_retries) {
        fail(index,
             status(errc::io_error, fmt::format("short {}: {} makes no progress at offset {}", verb, sd.path, offset)));
        return;
      }
      issue(index);
      return;
    }
    sl.stalls = 0;
    sl.done += n;
    if (sl.done < needed) {
      issue(index);
      return;
    }
    if (!w) {
      if (sl.c.skew != 0) std::memmove(sl.buf, sl.buf + sl.c.skew, sl.c.length);
      sl.writing = true;
      sl.done = 0;
      command_state* cmd = sl.cmd;
      if (cmd->order == copy_order::any) {
        issue(index);
        return;
      }
      auto it = std::find(cmd->reading.begin(), cmd->reading.end(),
                          std::pair<std::uint64_t, std::uint64_t>{sl.c.src_offset, sl.c.src_offset + sl.c.length});
      if (it != cmd->reading.end()) cmd->reading.erase(it);
      if (!cmd->error.ok()) {  // a failed memmove writes nothing more
        release(index);
        return;
      }
      cmd->parked.push_back(index);
      start_parked_writes(*cmd);
      return;
    }
    command_state* cmd = sl.cmd;
    chunk_done(*cmd, sl.c.seq, sl.c.length);
    if (cmd->order == copy_order::descending) {
      const std::uint64_t rel = sl.c.src_offset - cmd->segments[0].src_block * cmd->block_bytes;
      note_written(*cmd, rel, rel + sl.c.length);
    }
    release(index);
  }

  /// Descending memmove commands: adds [lo, hi) to the written ranges, merged.
  static void note_written(command_state& cmd, std::uint64_t lo, std::uint64_t hi) {
    auto next = cmd.written.lower_bound(lo);
    if (next != cmd.written.begin()) {
      auto prev = std::prev(next);
      if (prev->second >= lo) {
        lo = prev->first;
        hi = std::max(hi, prev->second);
        cmd.written.erase(prev);
      }
    }
    for (next = cmd.written.lower_bound(lo); next != cmd.written.end() && next->first <= hi;) {
      hi = std::max(hi, next->second);
      next = cmd.written.erase(next);
    }
    cmd.written.emplace(lo, hi);
  }

  /// Memmove commands: writes each parked chunk with no unread source byte under it.
  void start_parked_writes(command_state& cmd) {
    for (std::size_t i = 0; i < cmd.parked.size();) {
      const unsigned index = cmd.parked[i];
      if (may_write(cmd, slots_[index].c)) {
        cmd.parked[i] = cmd.parked.back();
        cmd.parked.pop_back();
        issue(index);
      } else {
        ++i;
      }
    }
  }

  static void chunk_done(command_state& cmd, std::uint64_t seq, std::uint32_t length) {
    if (cmd.prefix_seq == seq) {
      cmd.prefix_bytes += length;
      ++cmd.prefix_seq;
      for (auto it = cmd.done_ahead.begin(); it != cmd.done_ahead.end() && it->first == cmd.prefix_seq;
           it = cmd.done_ahead.erase(it)) {
        cmd.prefix_bytes += it->second;
        ++cmd.prefix_seq;
      }
    } else {
      cmd.done_ahead.emplace(seq, length);
    }
  }

  void fail(unsigned index, status s) {
    command_state* cmd = slots_[index].cmd;
    if (cmd->error.ok()) cmd->error = std::move(s);
    if (!cmd->all_issued) {
      cmd->all_issued = true;
      pending_.erase(std::find(pending_.begin(), pending_.end(), cmd));
    }
    // Chunks read but waiting to be written are dropped: nothing after a failure is written.
    std::vector<unsigned> parked;
    parked.swap(cmd->parked);
    for (unsigned p : parked) release(p);
    release(index);
  }

  void release(unsigned index) {
    slot_state& sl = slots_[index];
    command_state* cmd = sl.cmd;
    sl.cmd = nullptr;
    free_slots_.push_back(index);
    --cmd->in_flight;
    maybe_complete(cmd);
  }

  void maybe_complete(command_state* cmd) {
    if (!cmd->all_issued || cmd->in_flight != 0) return;
    completion c;
    c.tag = cmd->tag;
    c.result = std::move(cmd->error);
    std::uint64_t done_bytes = cmd->prefix_bytes;
    if (cmd->order == copy_order::descending) {
      // What is known moved, counted from the end (the copy order): the written run ending there.
      const std::uint64_t end = cmd->segments[0].blocks * cmd->block_bytes;
      done_bytes = 0;
      for (auto [lo, hi] : cmd->written)
        if (hi == end) done_bytes = hi - lo;
    }
    c.blocks_done = c.result.ok() ? 0 : done_bytes / cmd->block_bytes;
    ready_.push_back(std::move(c));
    commands_.erase(cmd->self);
  }

  side src_;
  side dst_;
  bool sync_ = true;
  const std::atomic<bool>* cancel_ = nullptr;  ///< policy::cancel, read before each new chunk
  bool dst_is_file_ = false;
  data_map holes_{-1, false};
  std::uint32_t buffer_bytes_ = 0;
  std::uint32_t stride_bytes_ = 0;  ///< buffer_bytes_ plus room for a skewed read
  std::byte* buffers_ = nullptr;
  std::size_t buffers_len_ = 0;
  std::unique_ptr<io_driver> driver_;
  std::vector<slot_state> slots_;
  std::vector<unsigned> free_slots_;
  std::list<command_state> commands_;
  std::deque<command_state*> pending_;  ///< commands with chunks not yet cut
  std::vector<completion> ready_;
  std::vector<io_done> results_;
  unsigned ops_in_flight_ = 0;
  std::uint64_t direct_ops_ = 0;
  std::uint64_t cached_ops_ = 0;
  std::uint64_t zeroed_bytes_ = 0;
  std::uint64_t skewed_reads_ = 0;
  std::uint64_t max_write_end_ = 0;  ///< end of the furthest destination write issued
  std::int64_t medium_delta_ = 0;    ///< destination start minus source start on a shared medium
  status fatal_;
};

bool has_io_path(const device_state& dev) {
  return !dev.caps.block_path.empty() || dev.caps.kind == device_kind::regular_file ||
         dev.caps.kind == device_kind::block_device;
}

class buffered_backend_impl final : public backend {
 public:
  void probe(device_state&) override {}

  pair_support check(const device_state& src, const device_state& dst, const policy&) const override {
    pair_support p;
    if (!has_io_path(src)) {
      p.reason = fmt::format("{}: no block device to read from", src.caps.path);
      return p;
    }
    if (!has_io_path(dst)) {
      p.reason = fmt::format("{}: no block device to write to", dst.caps.path);
      return p;
    }
    p.ok = true;
    p.block_bytes = 1;
    // Commands of at most 64 MiB: progress and cancellation between them, while the session
    // pipelines across command boundaries so the size costs no speed.
    p.limits.max_command_blocks = command_bytes;
    return p;
  }

  result<std::unique_ptr<copy_session>> open_session(device_state& src, device_state& dst, const policy& pol) override {
    return open_buffered_session(src, dst, pol, buffered_tuning{});
  }
};

}  // namespace

result<std::unique_ptr<copy_session>> open_buffered_session(device_state& src, device_state& dst, const policy& pol,
                                                            const buffered_tuning& tuning) {
  auto s = std::make_unique<buffered_session>();
  if (auto st = s->open(src, dst, pol, tuning); !st.ok()) return st;
  return std::unique_ptr<copy_session>(std::move(s));
}

std::uint64_t buffered_kept_buffer_bytes() noexcept { return kept_buffer_bytes_total.load(); }

buffered_session_info describe_buffered_session(const copy_session& s) {
  const auto* b = dynamic_cast<const buffered_session*>(&s);
  return b != nullptr ? b->info() : buffered_session_info{};
}

backend& buffered_backend() {
  static buffered_backend_impl b;
  return b;
}

}  // namespace offcopy::detail
