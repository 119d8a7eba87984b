// Token copy: POPULATE TOKEN on the source, RECEIVE ROD TOKEN INFORMATION for the token, WRITE
// USING TOKEN on the destination (finishing what a partial write left), polling when IMMED is used.
#include "src/scsi/token.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <thread>

#include "src/core/backend.hpp"

namespace offcopy::detail::scsi {

namespace {

std::atomic<std::uint32_t> next_list_id{static_cast<std::uint32_t>(::getpid()) << 12};

constexpr std::uint32_t max_ranges_in_list = (65535 - write_using_token_header_bytes) / range_descriptor_bytes;

bool is_token_error(const status& s) {
  return s.scsi() && s.scsi()->sense_key == sense_key_illegal_request && s.scsi()->asc == 0x23;
}

/// Blocks an operation that ended without errors moved (WRITE USING TOKEN) or that its token
/// represents (POPULATE TOKEN), at most `asked`: the transfer count in its units, rounded down.
/// 01h (completed, no residual) with no usable count means all of it; 03h/04h with an unusable
/// count (reserved units) mean nothing we can prove.
std::uint64_t blocks_reported(const rod_token_information& info, std::uint64_t asked, std::uint32_t block_bytes) {
  const auto n = transfer_count_blocks(info.transfer_count_units, info.transfer_count, block_bytes);
  if (info.copy_status == copy_op_completed && (!n || *n == 0)) return asked;
  return std::min(n.value_or(0), asked);
}

status rrti(transport& t, std::uint32_t list_id, const token_options& opt, token_stats& stats,
            rod_token_information& out) {
  for (unsigned poll = 0; poll <= opt.max_polls; ++poll) {
    std::vector<std::uint8_t> buf(32 + 255 + 6 + rod_token_bytes + 64, 0);
    auto cdb = receive_rod_token_information_cdb(list_id, static_cast<std::uint32_t>(buf.size()));
    ++stats.rrti_commands;
    auto s = run_command(t, cdb, data_direction::from_device, buf, 60, "RECEIVE ROD TOKEN INFORMATION");
    if (!s.ok()) return s;
    auto info = parse_rod_token_information(buf);
    if (!info) return status(errc::device_error, "RECEIVE ROD TOKEN INFORMATION " + t.name() + ": malformed reply");
    if (!info->in_progress()) {
      out = std::move(*info);
      return {};
    }
    const unsigned ms =
        std::max<unsigned>(opt.poll_floor_ms, std::min<std::uint32_t>(info->status_update_delay_ms, 1000));
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  }
  return status(errc::device_error, "RECEIVE ROD TOKEN INFORMATION " + t.name() + ": copy still in progress");
}

/// The status a finished operation reported: ok for 01h/03h/04h (completed without errors; the
/// transfer count says how much), otherwise the error with its sense.
status operation_status(const rod_token_information& info, const std::string& what, const std::string& dev) {
  if (copy_op_without_errors(info.copy_status)) return {};
  char code[8];
  std::snprintf(code, sizeof code, "0x%02x", info.copy_status);
  if (info.sense.empty()) return status(errc::device_error, what + " " + dev + ": copy operation status " + code);
  scsi_reply r;
  r.sam_status = 0x02;
  r.sense = info.sense;
  return reply_status(r, what, dev);
}

/// POPULATE TOKEN for `ranges` (`asked` blocks in all) and its RRTI. `covered` = how many blocks
/// of the ranges, from the first, the token represents: the RRTI transfer count (units honoured),
/// which may be fewer than asked — the caller writes what the token covers and populates again.
status populate(transport& src, std::span<const block_range> ranges, std::uint64_t asked, std::uint32_t block_bytes,
                const token_options& opt, token_stats& stats, std::vector<std::uint8_t>& token,
                std::uint64_t& covered) {
  covered = 0;
  const std::uint32_t id = next_list_id.fetch_add(1);
  auto list = encode_populate_token(ranges, opt.immed, opt.inactivity_timeout_s);
  auto cdb = populate_token_cdb(id, static_cast<std::uint32_t>(list.size()));
  ++stats.populate_commands;
  if (auto s = run_command(src, cdb, data_direction::to_device, list, copy_timeout_seconds(asked * block_bytes),
                           "POPULATE TOKEN");
      !s.ok())
    return s;
  rod_token_information info;
  if (auto s = rrti(src, id, opt, stats, info); !s.ok()) return s;
  if (auto s = operation_status(info, "POPULATE TOKEN", src.name()); !s.ok()) return s;
  if (info.token.size() != rod_token_bytes)
    return status(errc::device_error, "RECEIVE ROD TOKEN INFORMATION " + src.name() + ": no ROD token returned");
  covered = blocks_reported(info, asked, block_bytes);
  if (covered == 0)
    return status(errc::device_error, "POPULATE TOKEN " + src.name() +
                                          ": the token represents no data (transfer "
                                          "count " +
                                          std::to_string(info.transfer_count) + ", units " +
                                          std::to_string(info.transfer_count_units) + ")");
  token = std::move(info.token);
  return {};
}

/// One WRITE USING TOKEN; `transferred` = blocks the device reports written (also on failure),
/// at most the blocks of `ranges`.
status write_once(transport& dst, std::span<const std::uint8_t> token, std::uint64_t offset,
                  std::span<const block_range> ranges, std::uint32_t block_bytes, bool delete_token,
                  const token_options& opt, token_stats& stats, std::uint64_t& transferred) {
  transferred = 0;
  std::uint64_t asked = 0;
  for (const auto& rg : ranges) asked += rg.blocks;
  const std::uint32_t id = next_list_id.fetch_add(1);
  auto list = encode_write_using_token(token, offset, ranges, opt.immed, delete_token);
  auto cdb = write_using_token_cdb(id, static_cast<std::uint32_t>(list.size()));
  ++stats.write_commands;
  auto s = run_command(dst, cdb, data_direction::to_device, list, copy_timeout_seconds(asked * block_bytes),
                       "WRITE USING TOKEN");
  if (!s.ok()) {
    if (s.code() != errc::not_supported) {
      // How far did it get? Best effort: the device may not keep status for a failed command.
      rod_token_information info;
      token_options once = opt;
      once.max_polls = 0;
      if (rrti(dst, id, once, stats, info).ok() && !info.in_progress()) {
        transferred = std::min(
            transfer_count_blocks(info.transfer_count_units, info.transfer_count, block_bytes).value_or(0), asked);
        // CHECK CONDITION with a copy operation that "completed without errors" (QNAP's LIO ODX
        // ends a short write with COPY ABORTED, COPY TARGET DEVICE DATA UNDERRUN and 03h): the
        // blocks moved are real progress, the caller writes the rest.
        if (copy_op_without_errors(info.copy_status) && transferred > 0) return {};
      }
    }
    return s;
  }
  rod_token_information info;
  if (auto r = rrti(dst, id, opt, stats, info); !r.ok()) {
    // No status available: a synchronous GOOD means everything was written.
    if (!opt.immed) {
      transferred = asked;
      return {};
    }
    return r;
  }
  if (auto st = operation_status(info, "WRITE USING TOKEN", dst.name()); !st.ok()) {
    transferred =
        std::min(transfer_count_blocks(info.transfer_count_units, info.transfer_count, block_bytes).value_or(0), asked);
    return st;
  }
  transferred = blocks_reported(info, asked, block_bytes);
  return {};
}

std::vector<block_range> remaining_ranges(std::span<const block_range> all, std::uint64_t skip_blocks) {
  std::vector<block_range> out;
  for (const auto& r : all) {
    if (skip_blocks >= r.blocks) {
      skip_blocks -= r.blocks;
      continue;
    }
    out.push_back({r.lba + skip_blocks, static_cast<std::uint32_t>(r.blocks - skip_blocks)});
    skip_blocks = 0;
  }
  return out;
}

/// The first `blocks` blocks of `all`, in order (the last range trimmed).
std::vector<block_range> leading_ranges(std::span<const block_range> all, std::uint64_t blocks) {
  std::vector<block_range> out;
  for (const auto& r : all) {
    if (blocks == 0) break;
    const auto n = static_cast<std::uint32_t>(std::min<std::uint64_t>(r.blocks, blocks));
    out.push_back({r.lba, n});
    blocks -= n;
  }
  return out;
}

/// Writes `ranges` — exactly the data the token holds from ROD offset 0 — with WRITE USING TOKEN,
/// resuming after a partial transfer with OFFSET INTO ROD = the blocks already written (the ROD is
/// the token's ranges concatenated, counted in the destination's blocks) and the ranges still to
/// write. `done` = blocks written, a prefix of `ranges`.
///
/// Every command asks for all the token still holds, so each is meant to be its last use: a real
/// token goes with DEL_TKN (the array frees it when the command ends, as CTL's
/// ctl_write_using_token does by zeroing its timeout); after a short write the array may already
/// have deleted it, and the next command's 23/xx makes the caller populate what is left. The zero
/// ROD token is no array resource: never DEL_TKN.
status write_token(transport& dst, std::span<const std::uint8_t> token, std::span<const block_range> ranges,
                   std::uint32_t block_bytes, bool real_token, const token_options& opt, token_stats& stats,
                   std::uint64_t& done) {
  std::uint64_t total = 0;
  for (const auto& r : ranges) total += r.blocks;
  done = 0;
  while (done < total) {
    auto rest = remaining_ranges(ranges, done);
    std::uint64_t moved = 0;
    auto s = write_once(dst, token, done, rest, block_bytes, real_token, opt, stats, moved);
    done += std::min(moved, total - done);
    if (!s.ok()) return s;
    if (moved == 0) return status(errc::device_error, "WRITE USING TOKEN " + dst.name() + ": no progress");
    if (done < total) ++stats.partial_writes;
  }
  return {};
}

}  // namespace

token_capability token_capability_of(const lu_info& lu, bool force) {
  token_capability c;
  copy_limits l;
  l.contiguous_destination = false;
  if (force && (!lu.tpc || !lu.tpc->rod_limits)) {
    // Nothing advertised: send anyway with modest limits (used to prove how a device refuses).
    l.max_segments_per_command = 16;
    l.max_segment_blocks = 0xFFFFFFFFu;
    l.max_command_blocks = 1u << 16;
    c.available = true;
    c.limits = l;
    return c;
  }
  if (lu.block_bytes() == 0) {
    c.reason = "READ CAPACITY(16) failed";
    return c;
  }
  if (!lu.tpc) {
    c.reason = "no third-party copy VPD page (0x8F): token copy not offered";
    return c;
  }
  if (!lu.tpc->rod_limits) {
    c.reason = "VPD 0x8F has no block device ROD token limits descriptor";
    return c;
  }
  if (!lu.tpc->commands.empty() && (!lu.tpc->supports(op_third_party_copy_out, sa_populate_token) ||
                                    !lu.tpc->supports(op_third_party_copy_out, sa_write_using_token) ||
                                    !lu.tpc->supports(op_third_party_copy_in, sa_receive_rod_token_information))) {
    c.reason = "VPD 0x8F does not list POPULATE TOKEN, WRITE USING TOKEN and RECEIVE ROD TOKEN INFORMATION";
    return c;
  }
  const auto& r = *lu.tpc->rod_limits;
  l.max_segments_per_command = r.max_range_descriptors == 0
                                   ? max_ranges_in_list
                                   : std::min<std::uint32_t>(r.max_range_descriptors, max_ranges_in_list);
  l.max_segment_blocks = 0xFFFFFFFFu;  // range descriptor: 32-bit number of blocks
  if (r.max_token_transfer_blocks != 0) {
    l.max_command_blocks = r.max_token_transfer_blocks;
    l.max_segment_blocks = std::min<std::uint64_t>(l.max_segment_blocks, r.max_token_transfer_blocks);
  }
  c.available = true;
  c.limits = l;
  return c;
}

status token_copy(transport& src, transport& dst, std::span<const plan_segment> segments, const token_options& opt,
                  token_stats& stats, std::uint64_t& blocks_done, std::uint64_t block_bytes) {
  blocks_done = 0;
  std::vector<block_range> src_ranges, dst_ranges;
  std::uint64_t total = 0;
  for (const auto& s : segments) {
    if (s.blocks == 0 || s.blocks > 0xFFFFFFFFu)
      return status(errc::size_limit_exceeded, "token copy: range longer than a range descriptor holds");
    src_ranges.push_back({s.src_block, static_cast<std::uint32_t>(s.blocks)});
    dst_ranges.push_back({s.dst_block, static_cast<std::uint32_t>(s.blocks)});
    total += s.blocks;
  }
  if (src_ranges.empty()) return {};
  if (src_ranges.size() > max_ranges_in_list)
    return status(errc::size_limit_exceeded, "token copy: too many ranges for one parameter list");
  const auto bb = static_cast<std::uint32_t>(block_bytes);
  unsigned fruitless_tokens = 0;  // token errors in a row that wrote nothing
  while (blocks_done < total) {
    // A token for what is left; it may represent only a prefix of it (RRTI transfer count).
    const auto src_rest = remaining_ranges(src_ranges, blocks_done);
    std::vector<std::uint8_t> token;
    std::uint64_t covered = 0;
    if (auto s = populate(src, src_rest, total - blocks_done, bb, opt, stats, token, covered); !s.ok()) return s;
    const auto dst_part = leading_ranges(remaining_ranges(dst_ranges, blocks_done), covered);
    std::uint64_t written = 0;
    auto s = write_token(dst, token, dst_part, bb, true, opt, stats, written);
    blocks_done += written;
    if (s.ok()) {
      fruitless_tokens = 0;
      continue;
    }
    // Token expired or cancelled (23/xx): populate again from where the writes stopped.
    if (!is_token_error(s)) return s;
    fruitless_tokens = written == 0 ? fruitless_tokens + 1 : 0;
    if (fruitless_tokens > 2) return s;
    ++stats.repopulations;
  }
  return {};
}

status token_write_zeros(transport& dst, const lu_info& lu, std::span<const block_range> ranges,
                         const token_options& opt, token_stats& stats, std::uint64_t& blocks_done) {
  blocks_done = 0;
  // SBC-3: the block device zero ROD token is an optional ROD type; a copy manager that takes it
  // lists ROD type FFFF0001h with TOKEN_IN in VPD 0x8F descriptor 0x0108 (CTL does).
  if (!lu.tpc || !lu.tpc->accepts_rod_token(rod_type_zero))
    return status(errc::not_supported, "WRITE USING TOKEN " + dst.name() +
                                           ": VPD 0x8F does not list ROD type 0xFFFF0001 (block device zero) as "
                                           "token input (descriptor 0x0108)");
  if (lu.block_bytes() == 0) return status(errc::not_supported, "READ CAPACITY(16) failed");
  auto zero = zero_rod_token();
  return write_token(dst, zero, ranges, lu.block_bytes(), false, opt, stats, blocks_done);
}

namespace {

bool force_token() {
  const char* e = std::getenv("OFFCOPY_SCSI_TOKEN_FORCE");
  return e != nullptr && e[0] == '1';
}

class token_session final : public copy_session {
 public:
  token_session(std::unique_ptr<transport> src, std::unique_ptr<transport> dst, std::uint32_t block_bytes)
      : src_(std::move(src)), dst_(std::move(dst)), block_bytes_(block_bytes) {}

  status submit(const command& cmd) override {
    completion c;
    c.tag = cmd.tag;
    std::uint64_t done = 0;
    c.result = token_copy(*src_, *dst_, cmd.segments, opt_, stats_, done, block_bytes_);
    c.blocks_done = done;
    done_.push_back(std::move(c));
    return {};
  }
  status reap(unsigned, std::vector<completion>& out) override {
    while (!done_.empty()) {
      out.push_back(std::move(done_.front()));
      done_.pop_front();
    }
    return {};
  }

 private:
  std::unique_ptr<transport> src_, dst_;
  std::uint32_t block_bytes_;
  token_options opt_;
  token_stats stats_;
  std::deque<completion> done_;
};

class token_backend final : public backend {
 public:
  void probe(device_state& dev) override {
    auto lu = probe_lu(dev);
    if (!lu) return;
    offload_mechanism m;
    m.backend = "scsi-token";
    auto cap = token_capability_of(*lu, force_token());
    m.available = cap.available;
    m.reason = cap.reason;
    m.limits = cap.limits;
    if (lu->tpc) {
      std::string types;
      char b[12];
      for (auto t : lu->tpc->descriptor_types) {
        std::snprintf(b, sizeof b, "0x%04x", t);
        types += (types.empty() ? "" : ",") + std::string(b);
      }
      m.details.emplace_back("vpd_8f_descriptors", types);
      m.details.emplace_back("zero_rod_token", lu->tpc->accepts_rod_token(rod_type_zero) ? "1" : "0");
      if (const auto& r = lu->tpc->rod_limits) {
        m.details.emplace_back("max_range_descriptors", std::to_string(r->max_range_descriptors));
        m.details.emplace_back("max_token_transfer_blocks", std::to_string(r->max_token_transfer_blocks));
        m.details.emplace_back("optimal_transfer_blocks", std::to_string(r->optimal_transfer_blocks));
        m.details.emplace_back("default_inactivity_timeout_s", std::to_string(r->default_inactivity_timeout_s));
      }
    } else {
      m.details.emplace_back("vpd_8f", "absent");
    }
    dev.caps.offload.push_back(std::move(m));
  }

  pair_support check(const device_state& src, const device_state& dst, const policy&) const override {
    pair_support ps;
    ps.offload = true;
    auto s = lu_of(src);
    auto d = lu_of(dst);
    if (!s || !d) {
      ps.reason = "not a SCSI logical unit";
      return ps;
    }
    const bool force = force_token();
    auto sc = token_capability_of(*s, force);
    auto dc = token_capability_of(*d, force);
    if (!sc.available || !dc.available) {
      ps.reason = !sc.available ? sc.reason : dc.reason;
      return ps;
    }
    if (s->block_bytes() != d->block_bytes()) {
      ps.reason = "logical block sizes differ (" + std::to_string(s->block_bytes()) + " vs " +
                  std::to_string(d->block_bytes()) + ")";
      return ps;
    }
    ps.ok = true;
    ps.block_bytes = s->block_bytes();
    ps.limits = sc.limits.tightened(dc.limits);
    ps.limits.contiguous_destination = false;
    return ps;
  }

  result<std::unique_ptr<copy_session>> open_session(device_state& src, device_state& dst, const policy& pol) override {
    auto ps = check(src, dst, pol);
    if (!ps.ok) return status(errc::not_supported, ps.reason);
    auto ts = open_transport(src);
    auto td = open_transport(dst);
    if (!ts || !td) return status(errc::not_supported, "no SCSI pass-through for this device");
    return std::unique_ptr<copy_session>(std::make_unique<token_session>(std::move(ts), std::move(td), ps.block_bytes));
  }
};

}  // namespace

backend& token_backend_instance() {
  static token_backend b;
  return b;
}

}  // namespace offcopy::detail::scsi

namespace offcopy::detail {
backend& scsi_token_backend() { return scsi::token_backend_instance(); }
}  // namespace offcopy::detail
