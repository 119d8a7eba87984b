// The engine: walks a plan, keeps commands in flight, retries smaller, falls back, reports.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "offcopy/copy.hpp"
#include "src/core/backend.hpp"
#include "src/core/observer.hpp"
#include "src/core/planner.hpp"
#include "src/core/resolve.hpp"
#include "src/core/sys.hpp"
#include "src/core/verify.hpp"

namespace offcopy {
namespace detail {

namespace {

/// A unit of work: a run of segments in `segs` plus whether it must wait for all earlier work.
struct work {
  std::uint32_t first = 0;
  std::uint32_t count = 0;
  bool barrier = false;
  copy_order order = copy_order::any;  ///< memmove work: one segment (plan_batch::order)
  bool own_segment = false;            ///< memmove work whose segment the engine may shrink in place
  bool piece = false;                  ///< a memmove piece: its segment is dropped once done
};

std::uint64_t blocks_of(const std::vector<plan_segment>& segs, const work& w) {
  std::uint64_t n = 0;
  for (std::uint32_t i = 0; i < w.count; ++i) n += segs[w.first + i].blocks;
  return n;
}

/// Drops the first `done` blocks of w (a prefix in segment order), appending a trimmed segment if needed.
work drop_prefix(std::vector<plan_segment>& segs, work w, std::uint64_t done) {
  while (done > 0 && w.count > 0) {
    plan_segment s = segs[w.first];
    if (done >= s.blocks) {
      done -= s.blocks;
      ++w.first;
      --w.count;
      continue;
    }
    // Partial segment: replace the run by a fresh copy with the first one trimmed.
    std::uint32_t nf = static_cast<std::uint32_t>(segs.size());
    segs.push_back({s.src_block + done, s.dst_block + done, s.blocks - done, s.source});
    for (std::uint32_t i = 1; i < w.count; ++i) segs.push_back(segs[w.first + i]);
    return {nf, w.count, w.barrier, w.order};
  }
  return w;
}

/// Drops the last `done` blocks of a one-segment descending memmove work (copied from its end).
work drop_suffix(std::vector<plan_segment>& segs, work w, std::uint64_t done) {
  if (done == 0 || w.count != 1) return w;
  plan_segment s = segs[w.first];
  std::uint32_t nf = static_cast<std::uint32_t>(segs.size());
  segs.push_back({s.src_block, s.dst_block, s.blocks - std::min(done, s.blocks), s.source});
  return {nf, 1, w.barrier, w.order};
}

/// Splits w in two halves (by segments, or by blocks of a lone segment). False when it is one block.
bool split(std::vector<plan_segment>& segs, const work& w, work& a, work& b) {
  if (w.count > 1) {
    std::uint32_t h = w.count / 2;
    a = {w.first, h, w.barrier};
    b = {w.first + h, w.count - h, false};
    return true;
  }
  plan_segment s = segs[w.first];
  if (s.blocks < 2) return false;
  std::uint64_t h = s.blocks / 2;
  std::uint32_t nf = static_cast<std::uint32_t>(segs.size());
  segs.push_back({s.src_block, s.dst_block, h, s.source});
  segs.push_back({s.src_block + h, s.dst_block + h, s.blocks - h, s.source});
  a = {nf, 1, w.barrier};
  b = {nf + 1, 1, false};
  return true;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// Writes the dirty page-cache pages of `fd` to the device and waits for them. No device cache
/// flush (fsync's FLUSH / SYNCHRONIZE CACHE): the device copies through its own volatile cache, so
/// what reached it is what it reads. Falls back to fsync where the call is refused.
void write_back(int fd) {
  constexpr unsigned all = SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER;
  if (sys().sync_file_range(fd, 0, 0, all) != 0) (void)sys().fsync(fd);
}

void flush_before(device_state& src, device_state& dst) {
  // Dirty pages of either side must be on the medium before the device copies behind the cache.
  // A char device (/dev/ngXnY, /dev/sgN) has no page cache of its own: the cache that matters
  // is that of its block device, so write that one back. One node (one page cache) once.
  const bool same_node =
      &src == &dst || (src.key.kind == dst.key.kind && src.key.dev == dst.key.dev && src.key.ino == dst.key.ino);
  for (int side = 0; side < 2; ++side) {
    if (side == 1 && same_node) break;
    device_state* d = side == 0 ? &src : &dst;
    if (d->caps.kind == device_kind::regular_file || d->caps.kind == device_kind::block_device) {
      write_back(d->fd);
    } else if (!d->caps.block_path.empty()) {
      int fd = sys().open(d->caps.block_path.c_str(), O_RDONLY | O_CLOEXEC, 0);
      if (fd >= 0) {
        write_back(fd);
        sys().close(fd);
      }
    }
  }
}

void invalidate_after(device_state& dst, const std::vector<plan_segment>& segs, std::uint32_t unit) {
  // The destination's cached pages are stale now (DESIGN §1): drop them.
  if (dst.caps.kind == device_kind::block_device) {
    (void)sys().ioctl(dst.fd, BLKFLSBUF, nullptr);
  } else if (dst.caps.kind == device_kind::regular_file) {
    (void)sys().fdatasync(dst.fd);
    for (const auto& s : segs)
      (void)sys().posix_fadvise(dst.fd, static_cast<off_t>(s.dst_block * unit), static_cast<off_t>(s.blocks * unit),
                                POSIX_FADV_DONTNEED);
  } else if (!dst.caps.block_path.empty()) {
    int fd = sys().open(dst.caps.block_path.c_str(), O_RDONLY | O_CLOEXEC, 0);
    if (fd >= 0) {
      (void)sys().ioctl(fd, BLKFLSBUF, nullptr);
      sys().close(fd);
    }
  }
}

/// True when a fallback backend follows `name` in the registry.
bool fallback_after(std::string_view name) noexcept {
  bool seen = false;
  for (const backend_row& r : registry()) {
    if (seen && r.role == backend_role::fallback) return true;
    if (r.name == name) seen = true;
  }
  return false;
}

/// The observer of a part whose doors hold the request's bytes at a shift (a partition's disk, a
/// one-target dm device's medium): what it is told is moved back into the endpoints' offsets, in
/// bytes, so a journal records what a re-run of the same request names.
class shifted_observer final : public completion_observer {
 public:
  shifted_observer(completion_observer& inner, std::uint64_t src_shift, std::uint64_t dst_shift)
      : inner_(inner), src_shift_(src_shift), dst_shift_(dst_shift) {}
  status before_submit(std::span<const plan_segment> segments, std::uint32_t block_bytes, bool memmove) override {
    return inner_.before_submit(to_endpoints(segments, block_bytes), 1, memmove);
  }
  status completed(std::span<const plan_segment> segments, std::uint32_t block_bytes, std::uint64_t blocks,
                   bool from_end) override {
    return inner_.completed(to_endpoints(segments, block_bytes), 1, blocks * block_bytes, from_end);
  }

 private:
  std::span<const plan_segment> to_endpoints(std::span<const plan_segment> segments, std::uint32_t block_bytes) {
    bytes_.clear();
    for (const plan_segment& s : segments)
      bytes_.push_back(
          {s.src_block * block_bytes - src_shift_, s.dst_block * block_bytes - dst_shift_, s.blocks * block_bytes});
    return bytes_;
  }
  completion_observer& inner_;
  std::uint64_t src_shift_, dst_shift_;
  std::vector<plan_segment> bytes_;
};

/// What the runs of one execute() share: the progress totals.
struct run_context {
  std::uint64_t total_bytes = 0;
  std::uint64_t commands_done = 0;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
};

/// Runs one plan on one pair of devices (a part's media doors: execute() gives it one run of one
/// part at a time).
class runner {
 public:
  /// `gather`: a gathering part's source doors (plan_segment::source indexes them); empty otherwise.
  runner(const request& req, const plan& p, const policy& pol, report& rep, run_context& ctx,
         completion_observer* observer, std::vector<device_state*> gather = {})
      : req_(req),
        plan_(p),
        pol_(pol),
        rep_(rep),
        observer_(observer),
        segs_(p.segments),
        ctx_(ctx),
        gather_(std::move(gather)) {
    for (const auto& b : p.batches) queue_.push_back({b.first_segment, b.segment_count, b.barrier, b.order});
    delta_ = static_cast<std::int64_t>(req.destination->caps().identity_offset_bytes) -
             static_cast<std::int64_t>(req.source->caps().identity_offset_bytes);
  }

  void run() {
    device_state& src = state_of(*req_.source);
    device_state& dst = state_of(*req_.destination);
    const std::string& kind = plan_.backend;
    bool offload = is_offload(kind);
    std::unique_ptr<copy_session> session;
    backend* planned = find_backend(kind);
    if (planned == nullptr) {
      rep_.result = status(errc::invalid_argument, fmt::format("plan names an unknown backend '{}'", kind));
      return;
    }
    auto opened = gather_.empty() ? open_session(*planned, src, dst) : open_gather_session(*planned, dst);
    if (auto& s = opened; s.ok()) {
      session = std::move(s).value();
    } else if (offload && s.error().code() == errc::not_supported && pol_.mode == copy_mode::automatic) {
      rep_.fallback_reasons.push_back(fmt::format("{}: {}", kind, s.error().message()));
      offload = false;
    } else if (offload && s.error().code() == errc::not_supported) {
      rep_.result = status(errc::not_supported, s.error().message());
      return;
    } else {
      rep_.result = std::move(s).error();
      return;
    }
    if (session) {
      if (offload)
        timed_flush([&] {
          flush_before(src, dst);
          for (device_state* g : gather_)
            if (g != &src) flush_before(*g, dst);
        });
      if (!drive(*session, kind, offload)) {
        // Even a failed offload may have written blocks (bytes_copied says which): the destination's
        // cached pages over them are stale all the same (DESIGN §1 coherence). The session goes
        // first: it waits for anything still in flight, which may write too.
        session.reset();
        if (offload) timed_flush([&] { invalidate_after(dst, segs_, plan_.block_bytes); });
        return;
      }
      status fin;
      timed_flush([&] { fin = session->finish(); });
      if (offload) timed_flush([&] { invalidate_after(dst, segs_, plan_.block_bytes); });
      if (!fin.ok()) {
        rep_.result = std::move(fin);
        return;
      }
      if (!rep_.result.ok()) return;
      if (queue_.empty()) return;
    }
    // Fallback for what is left: a gathering part's rest source by source.
    if (gather_.empty()) {
      fall_back(src, dst);
      return;
    }
    std::deque<work> rest;
    rest.swap(queue_);
    for (std::uint32_t g = 0; g < gather_.size(); ++g) {
      for (const work& w : rest)
        for (std::uint32_t i = 0; i < w.count; ++i)
          if (segs_[w.first + i].source == g) queue_.push_back({w.first + i, 1, false});
      if (queue_.empty()) continue;
      fall_back(*gather_[g], dst);
      if (!rep_.result.ok()) return;
    }
  }

  /// Seconds spent flushing caches and syncing (the rest of the run is copying).
  [[nodiscard]] double flush_seconds() const noexcept { return flush_seconds_; }

 private:
  template <class F>
  void timed_flush(F&& f) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    flush_seconds_ += seconds_since(t0);
  }

  /// open_session with both devices' discovery state held still (another thread may be planning
  /// on the same device).
  result<std::unique_ptr<copy_session>> open_session(backend& b, device_state& src, device_state& dst) {
    std::scoped_lock lock(src.mu, dst.mu);
    return b.open_session(src, dst, pol_);
  }

  /// The same for a gathering part: every source door's state held too (each once).
  result<std::unique_ptr<copy_session>> open_gather_session(backend& b, device_state& dst) {
    std::vector<std::unique_lock<std::recursive_mutex>> locks;
    std::vector<device_state*> held;
    for (device_state* d : gather_)
      if (std::find(held.begin(), held.end(), d) == held.end()) held.push_back(d);
    if (std::find(held.begin(), held.end(), &dst) == held.end()) held.push_back(&dst);
    std::sort(held.begin(), held.end());  // one global order: no deadlock with another thread's
    for (device_state* d : held) locks.emplace_back(d->mu);
    return b.open_gather_session(gather_, dst, pol_);
  }

  /// Runs the queue on one session. False when the copy must stop (rep_.result set).
  /// Returns true with work left in queue_ when the backend said "not supported" in auto mode.
  ///
  /// Lifetimes (issue 8.5): it returns only once every command it submitted was reaped -- after
  /// an error, a cancel or a throwing callback too -- and counts every completion it reaps. The
  /// one exception is a session whose reaps keep failing without delivering anything
  /// (max_idle_reaps in a row): the outcome of what it still holds is unknown, nothing more is
  /// claimed, and the session's destructor waits for those commands (or keeps their buffers).
  bool drive(copy_session& session, const std::string& kind, bool offload) {
    drive_state st{std::max(1U, std::min(session.queue_depth(), std::max(1U, pol_.commands_in_flight)))};
    auto& use = rep_.of(kind);
    try {
      while (true) {
        submit_ready(session, st, use);
        if (st.inflight.empty()) break;
        st.done.clear();
        status reaped = session.reap(1, st.done);
        const bool progress = !st.done.empty();
        for (completion& c : st.done) handle_completion(c, st, use, offload, kind);
        if (!reaped.ok()) note_error(st, std::move(reaped));
        st.idle_reaps = progress ? 0 : st.idle_reaps + 1;
        if (st.idle_reaps >= max_idle_reaps) {
          if (st.first_error.ok())
            st.first_error =
                status(errc::internal, fmt::format("{}: {} command(s) never completed", kind, st.inflight.size()));
          break;
        }
      }
    } catch (const std::exception& e) {
      // Memory exhausted (or a bug) in the middle: stop here. What is in flight is waited for by
      // the session's destructor; what was counted stays counted.
      note_error(st, status(errc::internal, fmt::format("{}: {}", kind, e.what())));
    } catch (...) {
      note_error(st, status(errc::internal, fmt::format("{}: unknown exception", kind)));
    }
    if (!st.first_error.ok()) {
      // "Not supported" with data moved by commands still in flight when it came: no longer
      // "offload impossible, nothing written".
      if (st.first_error.code() == errc::not_supported && rep_.bytes_copied > 0)
        st.first_error.recode(errc::device_error);
      rep_.result = std::move(st.first_error);
      return false;
    }
    return true;
  }

  /// A session's reaps that may deliver nothing in a row before the engine stops waiting.
  static constexpr unsigned max_idle_reaps = 8;

  struct drive_state {
    unsigned depth = 1;
    std::vector<completion> done;
    std::vector<std::pair<std::uint64_t, work>> inflight;  // tag -> work
    std::uint64_t next_tag = 1;
    status first_error;
    bool fallback = false;
    unsigned idle_reaps = 0;
  };

  /// The first error wins, except that a failure reaped after a cancel (an I/O or device error,
  /// or a bug) replaces the cancel: the caller must learn that a command failed. A command that
  /// was merely too large or refused is no failure once nothing more will be sent.
  static void note_error(drive_state& st, status s) {
    if (st.first_error.ok()) {
      st.first_error = std::move(s);
      return;
    }
    const errc c = s.code();
    if (st.first_error.code() == errc::cancelled &&
        (c == errc::io_error || c == errc::device_error || c == errc::internal)) {
      s.prefix("after the copy was cancelled");
      st.first_error = std::move(s);
    }
  }

  /// Submits while there is room, no error, no cancel, and no barrier waiting for the pipe to drain.
  void submit_ready(copy_session& session, drive_state& st, backend_usage& use) {
    while (st.first_error.ok() && !st.fallback && !queue_.empty() && st.inflight.size() < st.depth) {
      if (!callback_error_.ok()) {
        note_error(st, callback_error_);
        return;
      }
      if (pol_.cancel && pol_.cancel->load()) {
        note_error(st, status(errc::cancelled, "cancelled by the caller"));
        return;
      }
      work w = queue_.front();
      if (w.barrier && !st.inflight.empty()) return;
      const bool cut = w.order != copy_order::any && !session.runs_memmove_order();
      if (cut) {
        w = cut_memmove_piece();
      } else {
        queue_.pop_front();
      }
      command cmd{st.next_tag, std::span<const plan_segment>(segs_.data() + w.first, w.count), plan_.block_bytes,
                  w.order};
      status s =
          observer_ ? observer_->before_submit(cmd.segments, cmd.block_bytes, cmd.order != copy_order::any) : status();
      if (s.ok()) s = session.submit(cmd);
      if (!s.ok()) {
        if (cut) {
          uncut_memmove_piece(w);
        } else {
          queue_.push_front(w);
        }
        note_error(st, std::move(s));
        return;
      }
      st.inflight.emplace_back(st.next_tag++, w);
      ++use.commands;
    }
  }

  /// Accounts one completion and decides what follows: done, split and re-queued, fallback, or error.
  void handle_completion(completion& c, drive_state& st, backend_usage& use, bool offload, const std::string& kind) {
    auto it = std::find_if(st.inflight.begin(), st.inflight.end(), [&](const auto& x) { return x.first == c.tag; });
    if (it == st.inflight.end()) return;
    work w = it->second;
    st.inflight.erase(it);
    std::uint64_t blocks = blocks_of(segs_, w);
    use.cloned_bytes += c.cloned_blocks * plan_.block_bytes;
    observe(w, c.result.ok() ? blocks : std::min(c.blocks_done, blocks), st);
    if (c.result.ok()) {
      account(use, blocks);
      // A finished memmove piece: its segment is the last one (one piece runs at a time).
      if (w.piece && w.first + 1 == segs_.size()) segs_.pop_back();
      return;
    }
    std::uint64_t partial = std::min(c.blocks_done, blocks);
    account(use, partial);
    work rest = w.order == copy_order::descending ? drop_suffix(segs_, w, partial) : drop_prefix(segs_, w, partial);
    errc code = c.result.code();
    // Everything done after all (NVMe: DW0 past the last range): nothing to re-send or hand on.
    const bool nothing_left = partial == blocks;
    if (nothing_left && (code == errc::size_limit_exceeded || code == errc::not_supported)) return;
    if (code == errc::size_limit_exceeded && offload && st.first_error.ok()) {
      work a, b;
      if (split(segs_, rest, a, b)) {
        ++use.retries;
        queue_.push_front(b);
        queue_.push_front(a);
        return;
      }
    }
    // A fallback refused before moving data (copy_file_range: EXDEV, EOPNOTSUPP, ...): the next
    // fallback in the registry takes over in every mode.
    if (code == errc::not_supported && st.first_error.ok() &&
        ((offload && pol_.mode == copy_mode::automatic) || (!offload && fallback_after(kind)))) {
      if (!st.fallback) rep_.fallback_reasons.push_back(fmt::format("{}: {}", kind, c.result.to_string()));
      queue_.push_front(rest);
      st.fallback = true;
      return;
    }
    // "Not supported" after data moved is no longer "offload impossible, nothing written".
    if (code == errc::not_supported && rep_.bytes_copied > 0) c.result.recode(errc::device_error);
    note_error(st, std::move(c.result));
  }

  /// Tells the observer (the journal) what a completion is known to have done; its error becomes
  /// the copy's first error.
  void observe(const work& w, std::uint64_t blocks, drive_state& st) {
    if (observer_ == nullptr || blocks == 0) return;
    status s = observer_->completed(std::span<const plan_segment>(segs_.data() + w.first, w.count), plan_.block_bytes,
                                    blocks, w.order == copy_order::descending);
    if (!s.ok() && st.first_error.ok()) st.first_error = std::move(s);
  }

  /// The next piece of the memmove work at the front of the queue, for a session that cannot copy
  /// a range onto itself: no longer than the shift distance, a barrier of its own. Cut as the copy
  /// runs, so a move by a tiny distance never materialises its millions of pieces; the rest of the
  /// work stays at the front of the queue.
  work cut_memmove_piece() {
    work& front = queue_.front();
    plan_segment rest = segs_[front.first];
    plan_segment piece = take_memmove_piece(rest, front.order, memmove_piece_blocks(rest, plan_.block_bytes, delta_));
    if (rest.blocks == 0) {
      queue_.pop_front();
    } else if (front.own_segment) {
      segs_[front.first] = rest;
    } else {
      // The plan's segment stays whole (invalidate_after walks segs_): the rest gets a copy.
      segs_.push_back(rest);
      front.first = static_cast<std::uint32_t>(segs_.size() - 1);
      front.own_segment = true;
    }
    segs_.push_back(piece);
    work w{static_cast<std::uint32_t>(segs_.size() - 1), 1, true};
    w.piece = true;
    return w;
  }

  /// Puts a piece that could not be submitted back in front of the rest of its work.
  void uncut_memmove_piece(const work& w) {
    work back = w;
    back.piece = false;  // no longer the last segment once others are appended
    queue_.push_front(back);
  }

  void fall_back(device_state& src, device_state& dst) {
    for (const backend_row& row : registry()) {
      if (row.role != backend_role::fallback || row.name == plan_.backend) continue;  // offload, or ran already
      std::string k(row.name);
      backend* b = find_backend(k);
      (void)ensure_discovered(src, row);
      (void)ensure_discovered(dst, row);
      pair_support s;
      {
        std::scoped_lock lock(src.mu, dst.mu);
        s = b->check(src, dst, pol_);
      }
      if (!s.ok) continue;
      auto sess = open_session(*b, src, dst);
      if (!sess.ok()) {
        if (sess.error().code() == errc::not_supported) continue;
        rep_.result = std::move(sess).error();
        return;
      }
      if (!drive(*sess.value(), k, false)) return;
      status f;
      timed_flush([&] { f = sess.value()->finish(); });
      if (!f.ok()) {
        rep_.result = std::move(f);
        return;
      }
      if (queue_.empty()) return;
    }
    rep_.result = status(errc::not_supported, "no fallback backend could finish the copy");
  }

  void account(backend_usage& use, std::uint64_t blocks) {
    std::uint64_t bytes = blocks * plan_.block_bytes;
    use.bytes += bytes;
    rep_.bytes_copied += bytes;
    ++ctx_.commands_done;
    if (pol_.on_progress) {
      progress pr;
      pr.bytes_done = rep_.bytes_copied;
      pr.bytes_total = ctx_.total_bytes;
      pr.commands_done = ctx_.commands_done;
      pr.elapsed_seconds = seconds_since(ctx_.start);
      // The callback is the caller's code: whatever it throws stops the copy, never unwinds the engine.
      try {
        if (callback_error_.ok()) pol_.on_progress(pr);
      } catch (const std::exception& e) {
        callback_error_ = status(errc::internal, fmt::format("progress callback threw: {}", e.what()));
      } catch (...) {
        callback_error_ = status(errc::internal, "progress callback threw");
      }
    }
  }

  const request& req_;
  const plan& plan_;
  const policy& pol_;
  report& rep_;
  completion_observer* observer_ = nullptr;
  std::vector<plan_segment> segs_;
  std::deque<work> queue_;
  run_context& ctx_;
  double flush_seconds_ = 0;
  status callback_error_;
  std::int64_t delta_ = 0;  ///< destination minus source start on a shared medium (partitions)
  std::vector<device_state*> gather_;
};

}  // namespace

namespace {

/// A stretch of the plan's batches run by one part's session: an ordered plan may go back and
/// forth between parts (memmove order across pieces); an unordered one runs each part once.
struct plan_run {
  std::uint32_t part = 0;
  std::size_t first_batch = 0;
  std::size_t batch_count = 0;
};

std::vector<plan_run> runs_of(const plan& p) {
  std::vector<plan_run> runs;
  for (std::size_t i = 0; i < p.batches.size(); ++i) {
    const std::uint32_t part = p.batches[i].part;
    if (runs.empty() || runs.back().part != part) runs.push_back({part, i, 0});
    ++runs.back().batch_count;
  }
  return runs;
}

/// The batches of one run as a plan of their own, in its part's unit.
plan sub_plan(const plan& p, const plan_run& r) {
  const plan_part& part = p.parts.at(r.part);
  plan sp;
  sp.backend = part.backend;
  sp.block_bytes = part.block_bytes;
  sp.limits = part.limits;
  sp.ordered = p.ordered;
  sp.same_medium = p.same_medium;
  for (std::size_t i = r.first_batch; i < r.first_batch + r.batch_count; ++i) {
    plan_batch b = p.batches[i];
    const auto first = static_cast<std::uint32_t>(sp.segments.size());
    sp.segments.insert(sp.segments.end(), p.segments.begin() + b.first_segment,
                       p.segments.begin() + b.first_segment + b.segment_count);
    b.first_segment = first;
    b.part = 0;
    sp.batches.push_back(b);
  }
  return sp;
}

/// One side of a request, resolved: the resolution the plan was made on and the device itself.
struct resolved_side {
  std::shared_ptr<device> self;
  std::shared_ptr<const resolution> res;

  /// The medium whose door is `path`, as a device, or nullptr.
  [[nodiscard]] std::shared_ptr<device> door(const std::string& path) const {
    for (const stack_medium& m : res->media)
      if (m.path == path && (m.door || m.node == 0)) return m.door ? m.door : self;
    return nullptr;
  }
};

/// The page caches above the media: every device of both stacks that maps onto lower devices
/// (the endpoints themselves, partitions, dm devices, loop devices), except a run's own doors.
/// Their cached pages are of the same bytes the backends read and write on the media: dirty ones
/// are written back before a run, and all are dropped after it (data written on a medium below a
/// partition or dm device is then what a buffered read of that device returns).
class upper_doors {
 public:
  void add(const resolved_side& side) {
    const resolution& r = *side.res;
    for (std::size_t i = 0; i < r.nodes.size(); ++i) {
      const stack_node& n = r.nodes[i];
      if (n.targets.empty() || n.devno == 0) continue;  // a medium, or a file
      if (std::find_if(doors_.begin(), doors_.end(), [&](const auto& d) { return d.devno == n.devno; }) != doors_.end())
        continue;
      doors_.push_back({n.path, n.devno, i == 0 ? state_of(*side.self).fd : -1});
    }
  }
  [[nodiscard]] bool empty() const noexcept { return doors_.empty(); }

  /// Before a run: dirty pages of every upper door reach the media.
  void write_back_all(const device_state& a, const device_state& b) const {
    for_each(a, b, [](int fd) { write_back(fd); });
  }
  /// After a run: the destination door's dirty pages reach its medium (a later reader of a loop
  /// device with direct I/O reads the file behind the page cache), then every upper door drops
  /// its cached pages.
  void drop_all(const device_state& a, device_state& dst) const {
    if (dst.caps.kind == device_kind::regular_file || dst.caps.kind == device_kind::block_device) write_back(dst.fd);
    for_each(a, dst, [](int fd) { (void)sys().ioctl(fd, BLKFLSBUF, nullptr); });
  }

 private:
  struct door {
    std::string path;
    dev_t devno = 0;
    int fd = -1;  ///< the request's own device: its descriptor
  };
  template <class F>
  void for_each(const device_state& a, const device_state& b, F&& f) const {
    for (const door& d : doors_) {
      // A run's own door (a dm device holding opaque targets) is the runner's to flush.
      if ((a.caps.kind == device_kind::block_device && a.key.dev == d.devno) ||
          (b.caps.kind == device_kind::block_device && b.key.dev == d.devno))
        continue;
      if (d.fd >= 0) {
        f(d.fd);
        continue;
      }
      const int fd = sys().open(d.path.c_str(), O_RDONLY | O_CLOEXEC, 0);
      if (fd < 0) continue;
      f(fd);
      sys().close(fd);
    }
  }
  std::vector<door> doors_;
};

/// Watches the device-mapper tables under a copy while it runs (every 50 ms, on a thread of its
/// own, only when there are any): a change sets the cancel flag the engine polls, so no command
/// is sent after it is seen; the caller's own cancel flag is passed on the same way.
class stack_watch {
 public:
  stack_watch(std::vector<std::shared_ptr<const resolution>> stacks, const std::atomic<bool>* user_cancel)
      : stacks_(std::move(stacks)), user_(user_cancel) {
    bool dm_nodes = false;
    for (const auto& r : stacks_)
      for (const stack_node& n : r->nodes) dm_nodes = dm_nodes || n.what == stack_node::kind::dm;
    if (dm_nodes) thread_ = std::jthread([this](std::stop_token st) { loop(st); });
  }
  ~stack_watch() {
    if (thread_.joinable()) {
      thread_.request_stop();
      cv_.notify_all();
    }
  }
  stack_watch(const stack_watch&) = delete;
  stack_watch& operator=(const stack_watch&) = delete;

  /// The flag the engine polls (the caller's own when nothing is watched).
  [[nodiscard]] const std::atomic<bool>* cancel_flag() const noexcept { return thread_.joinable() ? &stop_ : user_; }
  /// What changed, once seen (ok otherwise). Checks once more now.
  [[nodiscard]] status changed() {
    std::lock_guard lock(mu_);
    if (changed_.ok()) changed_ = check();
    return changed_;
  }

 private:
  status check() const {
    for (const auto& r : stacks_)
      if (auto s = check_unchanged(*r); !s.ok()) return s;
    return {};
  }
  void loop(std::stop_token st) {
    std::unique_lock lock(mu_);
    while (!st.stop_requested()) {
      if (user_ != nullptr && user_->load()) stop_ = true;
      if (changed_.ok()) {
        changed_ = check();
        if (!changed_.ok()) stop_ = true;
      }
      cv_.wait_for(lock, std::chrono::milliseconds(50), [&] { return st.stop_requested(); });
    }
  }
  std::vector<std::shared_ptr<const resolution>> stacks_;
  const std::atomic<bool>* user_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  status changed_;
  std::jthread thread_;  ///< last: joined before the members it uses go
};

}  // namespace

report execute_unchecked(const request& req, const plan& p, const policy& pol, completion_observer* observer) {
  report rep;
  auto t0 = std::chrono::steady_clock::now();
  rep.time = p.time;
  rep.bytes_requested = p.total_bytes();
  if (p.parts.size() > 1) {
    for (const plan_part& part : p.parts)
      if (!part.fallback_reason.empty() && std::find(rep.fallback_reasons.begin(), rep.fallback_reasons.end(),
                                                     part.fallback_reason) == rep.fallback_reasons.end())
        rep.fallback_reasons.push_back(part.fallback_reason);
  } else if (!p.fallback_reason.empty()) {
    rep.fallback_reasons.push_back(p.fallback_reason);
  }
  if (!req.source || !req.destination) {
    rep.result = status(errc::invalid_argument, "request needs a source and a destination");
    return rep;
  }
  run_context ctx;
  ctx.total_bytes = rep.bytes_requested;
  double flush_seconds = 0;
  if (p.parts.empty()) {
    // A plan made by hand, without resolution: the request's devices are the doors.
    runner r(req, p, pol, rep, ctx, observer);
    r.run();
    flush_seconds = r.flush_seconds();
  } else {
    // The devices must still be what the plan was made on: nothing is written otherwise.
    // sides: [0] the source, [1] the destination, [2..] the request's further sources.
    std::vector<resolved_side> sides(2 + req.sources.size());
    for (std::size_t k = 0; k < sides.size(); ++k) {
      sides[k].self = k == 0 ? req.source : k == 1 ? req.destination : req.sources[k - 2];
      if (!sides[k].self) {
        rep.result = status(errc::invalid_argument, fmt::format("request source {} is missing", k - 1));
        return rep;
      }
      device_state& st = state_of(*sides[k].self);
      std::shared_ptr<const resolution> res;
      {
        std::lock_guard lock(st.mu);
        res = st.resolved;
      }
      if (!res) {
        auto again = resolution_of(st);
        if (!again.ok()) {
          rep.result = std::move(again).error();
          return rep;
        }
        res = again.value();
      }
      if (auto s = check_unchanged(*res); !s.ok()) {
        rep.result = status(errc::busy, s.message() + ": nothing written; plan again");
        return rep;
      }
      sides[k].res = std::move(res);
    }
    upper_doors uppers;
    std::vector<std::shared_ptr<const resolution>> stacks;
    bool stacked = false;
    for (const resolved_side& side : sides) {
      stacks.push_back(side.res);
      stacked = stacked || side.res->stacked();
    }
    if (stacked)
      for (const resolved_side& side : sides) uppers.add(side);
    stack_watch watch(std::move(stacks), pol.cancel);
    // A medium path → its door: the destination's first (a source read through the destination's
    // door to the same medium, plan_resolve.cpp), then the sources'.
    auto door_of = [&](const std::string& path) -> std::shared_ptr<device> {
      if (auto d = sides[1].door(path)) return d;
      if (auto d = sides[0].door(path)) return d;
      for (std::size_t k = 2; k < sides.size(); ++k)
        if (auto d = sides[k].door(path)) return d;
      return nullptr;
    };
    for (const plan_part& part : p.parts)
      for (const std::string& g : part.gathered)
        if (std::find(rep.gathered_sources.begin(), rep.gathered_sources.end(), g) == rep.gathered_sources.end())
          rep.gathered_sources.push_back(g);
    policy run_pol = pol;
    run_pol.cancel = watch.cancel_flag();
    const std::vector<plan_run> runs = runs_of(p);
    for (const plan_run& r : runs) {
      const plan_part& part = p.parts.at(r.part);
      request doors{door_of(part.source_medium), sides[1].door(part.destination_medium), {}};
      std::vector<device_state*> gather;
      for (const std::string& g : part.gathered) {
        std::shared_ptr<device> d = door_of(g);
        if (!d) {
          doors.source = nullptr;
          break;
        }
        gather.push_back(&state_of(*d));
      }
      if (!doors.source || !doors.destination) {
        rep.result = status(errc::internal, fmt::format("plan names media the devices do not resolve to ({} -> {})",
                                                        part.source_medium, part.destination_medium));
        break;
      }
      device_state& src_door = state_of(*doors.source);
      device_state& dst_door = state_of(*doors.destination);
      if (const backend_row* row = find_row(part.backend)) {  // replayed from the plan's discovery
        (void)ensure_discovered(src_door, *row);
        (void)ensure_discovered(dst_door, *row);
        for (device_state* g : gather) (void)ensure_discovered(*g, *row);
      }
      const auto tf = std::chrono::steady_clock::now();
      if (!uppers.empty()) uppers.write_back_all(src_door, dst_door);
      flush_seconds += seconds_since(tf);
      if (runs.size() == 1) {
        // The journal (observer) records the endpoints' offsets; a part cut from several pieces
        // has no single shift back to them, and job.cpp refuses to journal such a plan.
        std::optional<shifted_observer> shifted;
        completion_observer* obs = observer;
        if (part.cut_from_pieces) obs = nullptr;
        if (obs != nullptr && (part.src_shift_bytes != 0 || part.dst_shift_bytes != 0))
          obs = &shifted.emplace(*observer, part.src_shift_bytes, part.dst_shift_bytes);
        runner run(doors, p, run_pol, rep, ctx, obs, gather);
        run.run();
        flush_seconds += run.flush_seconds();
      } else {
        const plan sp = sub_plan(p, r);
        runner run(doors, sp, run_pol, rep, ctx, nullptr, gather);
        run.run();
        flush_seconds += run.flush_seconds();
      }
      const auto ti = std::chrono::steady_clock::now();
      if (!uppers.empty()) uppers.drop_all(src_door, dst_door);
      flush_seconds += seconds_since(ti);
      if (!rep.result.ok()) break;
    }
    // A table changed or a device was suspended while the copy ran: what was written went where
    // the plan said, which may no longer be where the device maps it. Say so, with the bytes done.
    if (status ch = watch.changed(); !ch.ok()) {
      if (rep.result.ok() || rep.result.code() == errc::cancelled)
        rep.result = status(errc::busy, fmt::format("{} during the copy: {} bytes written as planned, the rest not",
                                                    ch.message(), rep.bytes_copied));
    }
  }
  double run_seconds = seconds_since(t0);
  rep.elapsed_seconds = run_seconds;
  rep.time.flush_seconds = flush_seconds;
  rep.time.copy_seconds = std::max(0.0, run_seconds - flush_seconds);
  if (pol.verify) verify_copy(req, p, pol.cancel, rep);
  return rep;
}

report execute_observed(const request& req, const plan& p, const policy& pol, completion_observer* observer) noexcept {
  try {
    return execute_unchecked(req, p, pol, observer);
  } catch (const std::exception& e) {
    report rep;
    rep.result = status(errc::internal, fmt::format("execute: {}", e.what()));
    return rep;
  }
}

}  // namespace detail

namespace v0 {

report execute(const request& req, const plan& p, const policy& pol) noexcept {
  return detail::execute_observed(req, p, pol, nullptr);
}

report copy(const request& req, const policy& pol) noexcept {
  auto p = make_plan(req, pol);
  if (!p.ok()) {
    report rep;
    rep.result = std::move(p).error();
    return rep;
  }
  return execute(req, p.value(), pol);
}

}  // namespace v0
}  // namespace offcopy
