// The EXTENDED COPY (LID1) backend: 0xE4 identification CSCDs + 0x02 block→block segments,
// sent to the LU that is the destination (or the source when only it has a copy manager).
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "src/core/backend.hpp"
#include "src/core/signal_guard.hpp"
#include "src/scsi/lu.hpp"
#include "src/scsi/xcopy.hpp"

namespace offcopy::detail::scsi {

namespace {

std::string hex16(unsigned v) {
  char b[8];
  std::snprintf(b, sizeof b, "0x%02x", v);
  return b;
}

}  // namespace

xcopy_capability xcopy_capability_of(const lu_info& lu) {
  xcopy_capability c;
  if (!lu.rcop) {
    c.reason = lu.rcop_error.empty() ? "no copy manager (RECEIVE COPY OPERATING PARAMETERS unsupported)"
                                     : "no copy manager: " + lu.rcop_error;
    return c;
  }
  const auto& p = *lu.rcop;
  if (!p.descriptor_codes.empty() && (!p.supports_descriptor(0x02) || !p.supports_descriptor(0xE4))) {
    c.reason = "copy manager lacks the 0x02 segment or 0xE4 CSCD descriptor";
    return c;
  }
  if (p.max_segment_descriptors == 0 || p.max_cscd_descriptors == 0) {
    c.reason = "copy manager accepts no segment or CSCD descriptors";
    return c;
  }
  if (lu.naa.empty()) {
    c.reason = "no NAA designator in VPD 0x83 (LIO: set wwn/vpd_unit_serial)";
    return c;
  }
  if (lu.block_bytes() == 0) {
    c.reason = "READ CAPACITY(16) failed";
    return c;
  }
  c.available = true;
  c.limits = xcopy_limits(p, lu.block_bytes(), p.max_cscd_descriptors >= 2 ? 2 : 1);
  return c;
}

copy_limits xcopy_limits(const copy_operating_parameters& p, std::uint32_t block_bytes, unsigned cscds) {
  copy_limits l;
  std::uint32_t segs = p.max_segment_descriptors;
  if (p.max_descriptor_list_bytes != 0) {
    const std::uint64_t room = p.max_descriptor_list_bytes > cscds * cscd_descriptor_bytes
                                   ? p.max_descriptor_list_bytes - cscds * cscd_descriptor_bytes
                                   : 0;
    segs = static_cast<std::uint32_t>(std::min<std::uint64_t>(segs, room / block_segment_bytes));
  }
  // The parameter list length must also fit our own buffers: 64 KiB is plenty.
  segs = std::min<std::uint32_t>(segs, (65536 - xcopy_header_bytes - 2 * cscd_descriptor_bytes) / block_segment_bytes);
  l.max_segments_per_command = std::max<std::uint32_t>(segs, 1);
  std::uint64_t seg_blocks = max_block_segment_blocks;
  if (p.max_segment_bytes != 0 && block_bytes != 0)
    seg_blocks = std::min<std::uint64_t>(seg_blocks, p.max_segment_bytes / block_bytes);
  l.max_segment_blocks = std::max<std::uint64_t>(seg_blocks, 1);
  l.max_command_blocks = 0;
  l.contiguous_destination = false;
  return l;
}

std::uint64_t lid1_blocks_known_done(const copy_status_lid1& status, std::span<const plan_segment> segments,
                                     std::uint32_t block_bytes) noexcept {
  const auto written = transfer_count_blocks(status.transfer_count_units, status.transfer_count, block_bytes);
  std::size_t whole = std::min<std::size_t>(status.segments_processed, segments.size());
  if (!written) whole = whole > 0 ? whole - 1 : 0;
  std::uint64_t done = 0;
  for (std::size_t i = 0; i < whole; ++i) {
    if (written && done + segments[i].blocks > *written) break;
    done += segments[i].blocks;
  }
  return done;
}

std::vector<std::uint8_t> build_xcopy_list(const xcopy_pair& pair, std::uint8_t list_id, list_id_usage usage,
                                           std::span<const plan_segment> segments) {
  std::vector<cscd_identification> cscds;
  cscds.push_back({pair.src_naa, pair.block_bytes, 0});
  const bool one = pair.single_cscd;
  if (!one) cscds.push_back({pair.dst_naa, pair.block_bytes, 0});
  std::vector<block_segment> segs;
  segs.reserve(segments.size());
  for (const auto& s : segments)
    segs.push_back(
        {0, static_cast<std::uint16_t>(one ? 0 : 1), static_cast<std::uint16_t>(s.blocks), s.src_block, s.dst_block});
  return encode_extended_copy_lid1(list_id, usage, cscds, segs);
}

namespace {

std::atomic<unsigned> next_list_id{static_cast<unsigned>(::getpid())};

/// Synchronous with depth 1 (LIO: one concurrent copy). With a copy manager that advertises more
/// concurrent copies, `depth` worker threads each keep one EXTENDED COPY outstanding (sg_pt is
/// synchronous; the transport is safe to use from several threads).
class xcopy_session final : public copy_session {
 public:
  xcopy_session(std::unique_ptr<transport> t, xcopy_pair pair, list_id_usage usage, copy_limits limits, unsigned depth)
      : t_(std::move(t)), pair_(std::move(pair)), usage_(usage), limits_(limits), depth_(std::max(depth, 1u)) {}

  ~xcopy_session() override {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& w : workers_) w.join();
  }

  unsigned queue_depth() const noexcept override { return depth_; }

  status submit(const command& cmd) override {
    if (depth_ == 1) {
      completion c;
      c.tag = cmd.tag;
      c.result = run(cmd.segments, c.blocks_done);
      std::lock_guard lock(mu_);
      done_.push_back(std::move(c));
      return {};
    }
    {
      std::lock_guard lock(mu_);
      if (workers_.empty()) {
        // The workers start with every asynchronous signal blocked (inherited): signals go to the
        // caller's threads, never interrupt a worker's command (src/core/signal_guard.hpp).
        signals_blocked quiet;
        for (unsigned i = 0; i < depth_; ++i) workers_.emplace_back([this] { work(); });
      }
      // The engine may reallocate its segment vector while we run: keep our own copy.
      queue_.push_back({cmd.tag, std::vector<plan_segment>(cmd.segments.begin(), cmd.segments.end())});
      ++outstanding_;
    }
    cv_.notify_all();
    return {};
  }

  status reap(unsigned min_completions, std::vector<completion>& out) override {
    std::unique_lock lock(mu_);
    done_cv_.wait(lock, [&] { return done_.size() >= min_completions || outstanding_ == 0; });
    while (!done_.empty()) {
      out.push_back(std::move(done_.front()));
      done_.pop_front();
    }
    return {};
  }

 private:
  struct queued {
    std::uint64_t tag;
    std::vector<plan_segment> segments;
  };

  void work() {
    for (;;) {
      queued q;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (stop_) return;  // the engine is done with us: queued commands are not sent
        q = std::move(queue_.front());
        queue_.pop_front();
      }
      completion c;
      c.tag = q.tag;
      c.result = run(q.segments, c.blocks_done);
      {
        std::lock_guard lock(mu_);
        done_.push_back(std::move(c));
        --outstanding_;
      }
      done_cv_.notify_all();
    }
  }

  status run(std::span<const plan_segment> segments, std::uint64_t& blocks_done) {
    blocks_done = 0;
    if (segments.empty()) return {};
    if (limits_.max_segments_per_command != 0 && segments.size() > limits_.max_segments_per_command)
      return status(errc::size_limit_exceeded, "EXTENDED COPY: more segments than the copy manager accepts");
    std::uint64_t bytes = 0;
    for (const auto& s : segments) {
      if (s.blocks == 0 || s.blocks > max_block_segment_blocks ||
          (limits_.max_segment_blocks != 0 && s.blocks > limits_.max_segment_blocks))
        return status(errc::size_limit_exceeded, "EXTENDED COPY: segment longer than the copy manager accepts");
      bytes += s.blocks * pair_.block_bytes;
    }
    // A busy list id (00/16, another copy holds it) is retried with the next id.
    for (int attempt = 0; attempt < 8; ++attempt) {
      const auto id = static_cast<std::uint8_t>(next_list_id.fetch_add(1));
      auto list = build_xcopy_list(pair_, id, usage_, segments);
      auto cdb = extended_copy_lid1_cdb(static_cast<std::uint32_t>(list.size()));
      auto s = run_command(*t_, cdb, data_direction::to_device, list, copy_timeout_seconds(bytes), "EXTENDED COPY");
      if (s.code() == errc::busy && usage_ != list_id_usage::none) continue;
      if (!s.ok() && s.code() != errc::busy && usage_ != list_id_usage::none)
        blocks_done = blocks_known_done(id, segments);
      if (s.code() == errc::busy) {
        status e(errc::device_error, s.message());
        if (s.scsi()) e.with_scsi(*s.scsi());
        return e;
      }
      return s;
    }
    return status(errc::device_error, "EXTENDED COPY: every list identifier tried was busy");
  }

  /// After a failed command that carried a list id: RECEIVE COPY STATUS(LID1); 0 when the device
  /// keeps no status (LIO).
  std::uint64_t blocks_known_done(std::uint8_t list_id, std::span<const plan_segment> segments) {
    std::vector<std::uint8_t> buf(32, 0);
    auto cdb = receive_copy_status_lid1_cdb(list_id, static_cast<std::uint32_t>(buf.size()));
    if (!run_command(*t_, cdb, data_direction::from_device, buf, 30, "RECEIVE COPY STATUS").ok()) return 0;
    auto st = parse_copy_status_lid1(buf);
    if (!st || st->copy_status != lid1_completed_with_errors) return 0;
    return lid1_blocks_known_done(*st, segments, pair_.block_bytes);
  }

  std::unique_ptr<transport> t_;
  xcopy_pair pair_;
  list_id_usage usage_;
  copy_limits limits_;
  unsigned depth_ = 1;
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  std::deque<queued> queue_;
  std::deque<completion> done_;
  std::vector<std::thread> workers_;
  unsigned outstanding_ = 0;
  bool stop_ = false;
};

class xcopy_backend final : public backend {
 public:
  void probe(device_state& dev) override {
    auto lu = probe_lu(dev);
    if (!lu) return;
    offload_mechanism m;
    m.backend = "scsi-xcopy";
    auto cap = xcopy_capability_of(*lu);
    m.available = cap.available;
    m.reason = cap.reason;
    m.limits = cap.limits;
    if (lu->inquiry) {
      m.details.emplace_back("vendor", lu->inquiry->vendor);
      m.details.emplace_back("product", lu->inquiry->product);
      m.details.emplace_back("3pc", lu->inquiry->third_party_copy ? "1" : "0");
    }
    if (!lu->naa.empty()) m.details.emplace_back("naa", lu->naa_hex());
    if (!lu->scsi_address.empty()) m.details.emplace_back("scsi_address", lu->scsi_address);
    if (!lu->sd_path.empty()) m.details.emplace_back("block_device", lu->sd_path);
    if (!lu->sg_path.empty()) m.details.emplace_back("sg_device", lu->sg_path);
    if (lu->rcop) {
      const auto& p = *lu->rcop;
      m.details.emplace_back("snlid", p.snlid ? "1" : "0");
      m.details.emplace_back("max_cscd_descriptors", std::to_string(p.max_cscd_descriptors));
      m.details.emplace_back("max_segment_descriptors", std::to_string(p.max_segment_descriptors));
      m.details.emplace_back("max_descriptor_list_bytes", std::to_string(p.max_descriptor_list_bytes));
      m.details.emplace_back("max_segment_bytes", std::to_string(p.max_segment_bytes));
      std::string codes;
      for (auto c : p.descriptor_codes) codes += (codes.empty() ? "" : ",") + hex16(c);
      m.details.emplace_back("descriptor_codes", codes);
    }
    dev.caps.offload.push_back(std::move(m));
  }

  pair_support check(const device_state& src, const device_state& dst, const policy& pol) const override {
    (void)pol;
    pair_support ps;
    auto s = lu_of(src);
    auto d = lu_of(dst);
    if (!s || !d) {
      ps.reason = "not a SCSI logical unit";
      return ps;
    }
    auto decided = decide_pair(*s, *d);
    ps.ok = decided.ok;
    ps.reason = decided.reason;
    ps.block_bytes = s->block_bytes();
    ps.limits = decided.limits;
    ps.offload = true;
    return ps;
  }

  result<std::unique_ptr<copy_session>> open_session(device_state& src, device_state& dst, const policy& pol) override {
    auto s = lu_of(src);
    auto d = lu_of(dst);
    if (!s || !d) return status(errc::not_supported, "not a SCSI logical unit");
    auto decided = decide_pair(*s, *d);
    if (!decided.ok) return status(errc::not_supported, decided.reason);
    auto t = open_transport(decided.send_to_destination ? dst : src);
    if (!t) return status(errc::not_supported, "no SCSI pass-through for this device");
    return std::unique_ptr<copy_session>(
        std::make_unique<xcopy_session>(std::move(t), decided.pair, decided.usage, decided.limits,
                                        std::min(decided.concurrent_copies, std::max(pol.commands_in_flight, 1u))));
  }
};

}  // namespace

pair_decision decide_pair(const lu_info& src, const lu_info& dst) {
  pair_decision r;
  auto sc = xcopy_capability_of(src);
  auto dc = xcopy_capability_of(dst);
  if (!dc.available && !sc.available) {
    r.reason = dc.reason;
    return r;
  }
  if (src.naa.empty() || dst.naa.empty()) {
    r.reason = "no NAA designator in VPD 0x83 (LIO: set wwn/vpd_unit_serial)";
    return r;
  }
  if (src.block_bytes() != dst.block_bytes()) {
    r.reason = "logical block sizes differ (" + std::to_string(src.block_bytes()) + " vs " +
               std::to_string(dst.block_bytes()) + "): XCOPY block→block needs equal sizes";
    return r;
  }
  const auto st = src.target_address(), dt = dst.target_address();
  if (!st.empty() && !dt.empty() && st != dt) {
    r.reason = "different SCSI targets (" + st + " vs " + dt + "): the copy manager may not reach the other LU";
    return r;
  }
  const lu_info& receiver = dc.available ? dst : src;
  r.send_to_destination = dc.available;
  r.pair.src_naa = src.naa;
  r.pair.dst_naa = dst.naa;
  r.pair.block_bytes = src.block_bytes();
  r.pair.single_cscd = src.naa == dst.naa;
  const auto& p = *receiver.rcop;
  r.limits = xcopy_limits(p, r.pair.block_bytes, r.pair.single_cscd ? 1 : 2);
  if (!r.pair.single_cscd && p.max_cscd_descriptors < 2) {
    r.reason = "copy manager accepts one CSCD descriptor: cross-LU copy impossible";
    return r;
  }
  r.usage = p.snlid ? list_id_usage::none : list_id_usage::discard;
  r.concurrent_copies = std::clamp<unsigned>(p.max_concurrent_copies, 1, 16);
  r.ok = true;
  return r;
}

backend& xcopy_backend_instance() {
  static xcopy_backend b;
  return b;
}

}  // namespace offcopy::detail::scsi

namespace offcopy::detail {
backend& scsi_xcopy_backend() { return scsi::xcopy_backend_instance(); }
}  // namespace offcopy::detail
