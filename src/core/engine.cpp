// The engine: walks a plan, keeps commands in flight, retries smaller, falls back, reports.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>

#include <fmt/format.h>

#include "offcopy/copy.hpp"
#include "src/core/backend.hpp"
#include "src/core/observer.hpp"
#include "src/core/sys.hpp"
#include "src/core/verify.hpp"
#include "src/core/planner.hpp"

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
    segs.push_back({s.src_block + done, s.dst_block + done, s.blocks - done});
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
  segs.push_back({s.src_block, s.dst_block, s.blocks - std::min(done, s.blocks)});
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
  segs.push_back({s.src_block, s.dst_block, h});
  segs.push_back({s.src_block + h, s.dst_block + h, s.blocks - h});
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
  const bool same_node = src.key.kind == dst.key.kind && src.key.dev == dst.key.dev && src.key.ino == dst.key.ino;
  for (device_state* d : {&src, &dst}) {
    if (d == &dst && same_node) break;
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

class runner {
 public:
  runner(const request& req, const plan& p, const policy& pol, report& rep, completion_observer* observer)
      : req_(req),
        plan_(p),
        pol_(pol),
        rep_(rep),
        observer_(observer),
        segs_(p.segments),
        start_(std::chrono::steady_clock::now()) {
    for (const auto& b : p.batches) queue_.push_back({b.first_segment, b.segment_count, b.barrier, b.order});
    total_ = p.total_bytes();
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
    if (auto s = open_session(*planned, src, dst); s.ok()) {
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
      if (offload) timed_flush([&] { flush_before(src, dst); });
      if (!drive(*session, kind, offload)) {
        // Even a failed offload may have written blocks (bytes_copied says which): the destination's
        // cached pages over them are stale all the same (DESIGN §1 coherence).
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
    // Fallback for what is left.
    fall_back(src, dst);
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

  /// Runs the queue on one session. False when the copy must stop (rep_.result set).
  /// Returns true with work left in queue_ when the backend said "not supported" in auto mode.
  bool drive(copy_session& session, const std::string& kind, bool offload) {
    unsigned depth = std::max(1U, std::min(session.queue_depth(), std::max(1U, pol_.commands_in_flight)));
    std::vector<completion> done;
    std::vector<std::pair<std::uint64_t, work>> inflight;  // tag -> work
    std::uint64_t next_tag = 1;
    status first_error;
    bool fallback = false;
    auto& use = rep_.of(kind);

    while (true) {
      bool stop = !first_error.ok() || fallback;
      // Submit while there is room and no barrier needs the pipe drained.
      while (!stop && !queue_.empty() && inflight.size() < depth) {
        if (!callback_error_.ok()) {
          first_error = callback_error_;
          stop = true;
          break;
        }
        if (pol_.cancel && pol_.cancel->load()) {
          first_error = status(errc::cancelled, "cancelled by the caller");
          stop = true;
          break;
        }
        work w = queue_.front();
        if (w.barrier && !inflight.empty()) break;
        const bool cut = w.order != copy_order::any && !session.runs_memmove_order();
        if (cut) {
          w = cut_memmove_piece();
        } else {
          queue_.pop_front();
        }
        command cmd{next_tag, std::span<const plan_segment>(segs_.data() + w.first, w.count), plan_.block_bytes,
                    w.order};
        status s = observer_ ? observer_->before_submit(cmd.segments, cmd.block_bytes, cmd.order != copy_order::any)
                             : status();
        if (s.ok()) s = session.submit(cmd);
        if (!s.ok()) {
          if (cut) {
            uncut_memmove_piece(w);
          } else {
            queue_.push_front(w);
          }
          first_error = std::move(s);
          stop = true;
          break;
        }
        inflight.emplace_back(next_tag++, w);
        ++use.commands;
      }
      if (inflight.empty()) break;
      done.clear();
      if (auto s = session.reap(1, done); !s.ok()) {
        // Outcome of the in-flight commands is unknown: nothing more can be claimed.
        rep_.result = std::move(s);
        return false;
      }
      for (completion& c : done) {
        auto it = std::find_if(inflight.begin(), inflight.end(), [&](const auto& x) { return x.first == c.tag; });
        if (it == inflight.end()) continue;
        work w = it->second;
        inflight.erase(it);
        std::uint64_t blocks = blocks_of(segs_, w);
        use.cloned_bytes += c.cloned_blocks * plan_.block_bytes;
        observe(w, c.result.ok() ? blocks : std::min(c.blocks_done, blocks), first_error);
        if (c.result.ok()) {
          account(use, blocks);
          // A finished memmove piece: its segment is the last one (one piece runs at a time).
          if (w.piece && w.first + 1 == segs_.size()) segs_.pop_back();
          continue;
        }
        std::uint64_t partial = std::min(c.blocks_done, blocks);
        account(use, partial);
        work rest = w.order == copy_order::descending ? drop_suffix(segs_, w, partial) : drop_prefix(segs_, w, partial);
        errc code = c.result.code();
        if (code == errc::size_limit_exceeded && offload) {
          work a, b;
          if (split(segs_, rest, a, b)) {
            ++use.retries;
            queue_.push_front(b);
            queue_.push_front(a);
            continue;
          }
        }
        // A fallback refused before moving data (copy_file_range: EXDEV, EOPNOTSUPP, ...): the next
        // fallback in the registry takes over in every mode.
        if (code == errc::not_supported &&
            ((offload && pol_.mode == copy_mode::automatic) || (!offload && fallback_after(kind)))) {
          rep_.fallback_reasons.push_back(fmt::format("{}: {}", kind, c.result.to_string()));
          queue_.push_front(rest);
          fallback = true;
          continue;
        }
        if (first_error.ok()) {
          first_error = std::move(c.result);
          // "Not supported" after data moved is no longer "offload impossible, nothing written".
          if (code == errc::not_supported && rep_.bytes_copied > 0) first_error.recode(errc::device_error);
        }
      }
    }
    if (!first_error.ok()) {
      rep_.result = std::move(first_error);
      return false;
    }
    return true;
  }

  /// Tells the observer (the journal) what a completion is known to have done; its error becomes
  /// the copy's first error.
  void observe(const work& w, std::uint64_t blocks, status& first_error) {
    if (observer_ == nullptr || blocks == 0) return;
    status s = observer_->completed(std::span<const plan_segment>(segs_.data() + w.first, w.count), plan_.block_bytes,
                                    blocks, w.order == copy_order::descending);
    if (!s.ok() && first_error.ok()) first_error = std::move(s);
  }

  /// The next piece of the memmove work at the front of the queue, for a session that cannot copy
  /// a range onto itself: no longer than the shift distance, a barrier of its own. Cut as the copy
  /// runs, so a move by a tiny distance never materialises its millions of pieces; the rest of the
  /// work stays at the front of the queue.
  work cut_memmove_piece() {
    work& front = queue_.front();
    plan_segment rest = segs_[front.first];
    plan_segment piece =
        take_memmove_piece(rest, front.order, memmove_piece_blocks(rest, plan_.block_bytes, delta_));
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
    ++commands_done_;
    if (pol_.on_progress) {
      progress pr;
      pr.bytes_done = rep_.bytes_copied;
      pr.bytes_total = total_;
      pr.commands_done = commands_done_;
      pr.elapsed_seconds = seconds_since(start_);
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
  std::chrono::steady_clock::time_point start_;
  std::uint64_t total_ = 0;
  std::uint64_t commands_done_ = 0;
  double flush_seconds_ = 0;
  status callback_error_;
  std::int64_t delta_ = 0;  ///< destination minus source start on a shared medium (partitions)
};

}  // namespace

report execute_unchecked(const request& req, const plan& p, const policy& pol, completion_observer* observer) {
  report rep;
  auto t0 = std::chrono::steady_clock::now();
  rep.time = p.time;
  rep.bytes_requested = p.total_bytes();
  if (!p.fallback_reason.empty()) rep.fallback_reasons.push_back(p.fallback_reason);
  if (!req.source || !req.destination) {
    rep.result = status(errc::invalid_argument, "request needs a source and a destination");
    return rep;
  }
  runner r(req, p, pol, rep, observer);
  r.run();
  double run_seconds = seconds_since(t0);
  rep.elapsed_seconds = run_seconds;
  rep.time.flush_seconds = r.flush_seconds();
  rep.time.copy_seconds = std::max(0.0, run_seconds - r.flush_seconds());
  if (rep.result.ok() && pol.verify) {
    if (p.ordered) {
      // Cannot compare after an overlapping same-device move: the source no longer holds the
      // original bytes. Not a fallback reason (DESIGN §5: fallback_reason means a fallback happened).
      rep.verify_skipped = true;
    } else {
      auto tv = std::chrono::steady_clock::now();
      std::int64_t mismatch = -1;
      request vr = req;
      if (vr.extents.empty()) vr.extents.push_back({0, 0, req.source->caps().size_bytes});
      if (auto s = verify_extents(vr, mismatch, pol.cancel); !s.ok()) {
        rep.first_mismatch_offset = mismatch;
        rep.result = std::move(s);
      } else {
        rep.verified = true;
      }
      rep.time.verify_seconds = seconds_since(tv);
    }
  }
  return rep;
}

report execute_observed(const request& req, const plan& p, const policy& pol,
                        completion_observer* observer) noexcept {
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
