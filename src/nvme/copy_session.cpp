// NVMe Copy session: see copy_session.hpp.
#include "src/nvme/copy_session.hpp"

#include <cerrno>
#include <cstring>
#include <mutex>

#include <fmt/format.h>

#include "src/nvme/nvme_status.hpp"

namespace offcopy::nvme {

inline constexpr std::uint8_t prinfo_pract = 0x8;  // PRINFO bit 3: PRACT

status build_gather(const session_params& p, std::uint64_t sdlba, std::span<const gather_source> sources,
                    copy_dwords& dw, std::vector<std::uint8_t>& ranges, std::vector<std::uint32_t>& range_blocks) {
  if (sources.empty()) return status(errc::internal, "NVMe Copy command without sources");
  const bool cross_formats = p.descriptor_format == 2 || p.descriptor_format == 3;
  std::vector<source_range> list;
  range_blocks.clear();
  // Type 1 reference tags are the LBA's low bits: 32 for 8-byte PI, 48 for 16-byte PI (64-bit guard).
  const std::uint64_t tag_mask =
      p.reference_tag_bits >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << p.reference_tag_bits) - 1;
  for (const gather_source& g : sources) {
    if (g.blocks == 0) return status(errc::internal, "NVMe Copy source of 0 blocks");
    if (g.nsid != p.nsid && !cross_formats)
      return status(errc::internal,
                    fmt::format("NVMe Copy from namespace {} into {} needs descriptor format 2h/3h", g.nsid, p.nsid));
    // NLB is 16 bits: a longer source becomes several consecutive ranges.
    for (std::uint64_t done = 0; done < g.blocks;) {
      const auto n = static_cast<std::uint32_t>(std::min<std::uint64_t>(g.blocks - done, max_blocks_per_range));
      source_range r;
      r.slba = g.slba + done;
      r.blocks = n;
      r.snsid = cross_formats ? g.nsid : 0;
      if (p.pi_regenerate) r.eilbrt = r.slba & tag_mask;  // only checked if PRINFOR asks, which we do not
      list.push_back(r);
      range_blocks.push_back(n);
      done += n;
    }
  }
  if (list.size() > max_ranges_per_command)
    return status(errc::size_limit_exceeded, fmt::format("NVMe Copy of {} source ranges (at most 256)", list.size()));
  copy_fields f;
  f.sdlba = sdlba;
  f.ranges = static_cast<std::uint32_t>(list.size());
  f.format = p.descriptor_format;
  if (p.pi_regenerate) {
    // PRACT in both: no PRCHK bits, so the source's PI is not checked, and the controller writes
    // fresh PI for the destination (Type 1/2 reference tags from ILBRT). QEMU 7.2 refuses a Copy
    // whose PRINFOR.PRACT differs from PRINFOW.PRACT with Invalid Field (seen in the guest).
    f.prinfor = prinfo_pract;
    f.prinfow = prinfo_pract;
    f.ilbrt = f.sdlba & tag_mask;  // Type 1/2 reference tag of the first destination block (CDW14, CDW3)
  }
  std::string why;
  if (!encode_copy_dwords(f, dw, &why)) return status(errc::internal, why);
  if (!encode_ranges(p.descriptor_format, list, ranges, &why)) return status(errc::internal, why);
  return {};
}

status build_copy(const session_params& p, const detail::command& cmd, copy_dwords& dw,
                  std::vector<std::uint8_t>& ranges, std::vector<std::uint32_t>& range_blocks) {
  if (cmd.segments.empty()) return status(errc::internal, "NVMe Copy command without segments");
  const std::uint32_t source_nsid = p.source_nsid != 0 ? p.source_nsid : p.nsid;
  std::vector<gather_source> sources;
  sources.reserve(cmd.segments.size());
  std::uint64_t next_dst = cmd.segments[0].dst_block;
  for (const plan_segment& s : cmd.segments) {
    if (s.dst_block != next_dst)
      return status(errc::internal,
                    fmt::format("NVMe Copy writes one contiguous destination: segment at block {} after {}",
                                s.dst_block, next_dst));
    if (s.blocks == 0) return status(errc::internal, "NVMe Copy segment of 0 blocks");
    next_dst += s.blocks;
    std::uint32_t nsid = source_nsid;
    if (!p.source_nsids.empty()) {
      if (s.source >= p.source_nsids.size())
        return status(errc::internal,
                      fmt::format("NVMe Copy segment names source {} of {}", s.source, p.source_nsids.size()));
      nsid = p.source_nsids[s.source];
    }
    sources.push_back({nsid, s.src_block, s.blocks});
  }
  return build_gather(p, cmd.segments[0].dst_block, sources, dw, ranges, range_blocks);
}

status passthrough_errno_status(int err, const char* transport_name) {
  std::string what = fmt::format("NVMe Copy passthrough ({}): {}", transport_name, std::strerror(err));
  if (err == EACCES || err == EPERM) return status(errc::not_supported, what + " (needs CAP_SYS_ADMIN)", err);
  if (err == ENOTTY || err == EOPNOTSUPP || err == ENOTSUP) return status(errc::not_supported, what, err);
  return status(errc::io_error, what, err);
}

copy_session::copy_session(std::unique_ptr<transport> t, session_params p) : transport_(std::move(t)), params_(p) {}

namespace {
/// Range lists (and their transports) of commands whose completion never came back: kept, never
/// freed, because the controller may still read them.
struct kept_for_life {
  std::mutex mu;
  std::vector<std::unique_ptr<transport>> transports;
  std::vector<std::vector<std::uint8_t>> buffers;
};
kept_for_life& kept() {
  static auto* k = new kept_for_life;  // never destroyed: outlives every session
  return *k;
}
/// Reaps that may bring nothing back before the session stops waiting for a command.
constexpr unsigned max_idle_reaps = 8;
}  // namespace

copy_session::~copy_session() { wait_for_outstanding(); }

void copy_session::wait_for_outstanding() noexcept {
  try {
    std::vector<io_completion> done;
    unsigned idle = 0;
    while ((!in_flight_.empty() || flush_outstanding_) && idle < max_idle_reaps) {
      done.clear();
      const status s = transport_->reap(1, done);
      bool progress = false;
      for (const io_completion& c : done) {
        if (c.user_tag == flush_tag && flush_outstanding_) {
          flush_outstanding_ = false;
          progress = true;
        }
        progress = in_flight_.erase(c.user_tag) != 0 || progress;
      }
      idle = s.ok() && progress ? 0 : idle + 1;
    }
    if (in_flight_.empty() && !flush_outstanding_) return;
    kept_for_life& k = kept();
    std::lock_guard lock(k.mu);
    for (auto& [tag, f] : in_flight_) k.buffers.push_back(std::move(f.data));  // the heap block moves, unchanged
    k.transports.push_back(std::move(transport_));
    in_flight_.clear();
  } catch (...) {
    // Out of memory while keeping them: leak the whole session state instead of freeing it.
    (void)transport_.release();
    new std::unordered_map<std::uint64_t, in_flight>(std::move(in_flight_));
  }
}

status copy_session::send(std::uint64_t tag, status built, in_flight f) {
  if (!built.ok()) {
    if (built.code() != errc::size_limit_exceeded) return built;
    ready_.push_back(detail::completion{tag, std::move(built), 0});
    return {};
  }
  f.io.user_tag = tag;
  f.io.opcode = copy_opcode;
  f.io.nsid = params_.nsid;
  auto [it, inserted] = in_flight_.emplace(tag, std::move(f));
  if (!inserted) return status(errc::internal, fmt::format("NVMe Copy tag {} already in flight", tag));
  it->second.io.data = it->second.data.data();
  it->second.io.data_bytes = static_cast<std::uint32_t>(it->second.data.size());
  if (auto s = transport_->submit(it->second.io); !s.ok()) {
    in_flight_.erase(it);
    return s;
  }
  return {};
}

status copy_session::submit(const detail::command& cmd) {
  in_flight f;
  status built = build_copy(params_, cmd, f.io.dw, f.data, f.range_blocks);
  return send(cmd.tag, std::move(built), std::move(f));
}

status copy_session::submit_gather(std::uint64_t tag, std::uint64_t sdlba, std::span<const gather_source> sources) {
  in_flight f;
  status built = build_gather(params_, sdlba, sources, f.io.dw, f.data, f.range_blocks);
  return send(tag, std::move(built), std::move(f));
}

bool copy_session::should_resend(const io_completion& c, const in_flight& f) {
  if (c.sys_errno != 0 || f.resent || !params_.reenable_formats) return false;
  const std::uint8_t format = static_cast<std::uint8_t>((f.io.dw.cdw12 >> 8) & 0xf);  // CDW12 bits 11:8
  if (format != 2 && format != 3) return false;
  // Invalid Field before any range was copied (DW0 0): the format was not enabled.
  const std::uint8_t sct = (c.raw_status >> 8) & 7;
  const std::uint8_t sc = c.raw_status & 0xff;
  if (sct != sct_generic || sc != sc_invalid_field || c.dw0 != 0) return false;
  return params_.reenable_formats().ok();
}

bool copy_session::complete(const io_completion& c, std::vector<detail::completion>& out, unsigned& have,
                            bool& resent) {
  auto it = in_flight_.find(c.user_tag);
  if (it == in_flight_.end()) return false;
  detail::completion comp;
  comp.tag = c.user_tag;
  if (should_resend(c, it->second)) {
    it->second.resent = true;
    ++format_retries_;
    if (auto s = transport_->submit(it->second.io); s.ok()) {
      resent = true;
      return true;
    } else {
      // Not queued again: it completes here with the reason, nothing outstanding.
      comp.result = std::move(s);
    }
  } else if (c.sys_errno != 0) {
    // EINTR included: the driver cancelled the command (timeout, reset); it is never sent again.
    comp.result = passthrough_errno_status(c.sys_errno, transport_->name());
  } else if (c.raw_status != 0) {
    comp.result = copy_status(c.raw_status, c.dw0, "NVMe Copy");
    // CQE DW0 = index of the first source range not copied: the ranges before it are done.
    // A DW0 past the range count is not a range index: claim nothing rather than too much.
    const auto& rb = it->second.range_blocks;
    if (c.dw0 <= rb.size())
      for (std::size_t i = 0; i < c.dw0; ++i) comp.blocks_done += rb[i];
  }
  in_flight_.erase(it);
  out.push_back(std::move(comp));
  ++have;
  return true;
}

status copy_session::reap(unsigned min_completions, std::vector<detail::completion>& out) {
  unsigned have = static_cast<unsigned>(ready_.size());
  for (auto& c : ready_) out.push_back(std::move(c));
  ready_.clear();
  std::vector<io_completion> done;
  status first_error;
  while (!in_flight_.empty()) {
    done.clear();
    // Completions the transport delivered before an error are still turned into ours (and count).
    status got = transport_->reap(min_completions > have ? min_completions - have : 0, done);
    bool resent = false;
    for (const io_completion& c : done) {
      if (!complete(c, out, have, resent) && first_error.ok())
        first_error = status(errc::internal, fmt::format("NVMe completion for unknown tag {}", c.user_tag));
    }
    if (!got.ok() && first_error.ok()) first_error = std::move(got);
    if (!first_error.ok()) return first_error;
    // A resent command's completion is still owed: wait again unless enough came back.
    if (!resent || have >= min_completions) break;
  }
  return {};
}

status copy_session::finish() {
  if (!params_.flush_on_finish) return {};
  io_command io;
  io.user_tag = flush_tag;
  io.opcode = 0x00;  // Flush
  io.nsid = params_.nsid;
  if (auto s = transport_->submit(io); !s.ok()) return s;
  flush_outstanding_ = true;
  status result;
  status reap_error;
  std::vector<io_completion> done;
  unsigned idle = 0;
  // A reap that fails is tried again: the Flush must be reaped before the transport may go.
  while (flush_outstanding_ && idle < max_idle_reaps) {
    done.clear();
    status got = transport_->reap(1, done);
    bool progress = false;
    for (const io_completion& c : done) {
      if (c.user_tag != flush_tag) {
        progress = in_flight_.erase(c.user_tag) != 0 || progress;
        continue;
      }
      flush_outstanding_ = false;
      progress = true;
      if (c.sys_errno != 0) {
        result = errno_status(c.sys_errno, "NVMe Flush");
      } else if (c.raw_status != 0) {
        nvme_status_detail d = decode_status(c.raw_status, c.dw0);
        std::string msg = fmt::format("NVMe Flush: {}", d.name);
        result = status(errc::device_error, std::move(msg)).with_nvme(std::move(d));
      }
    }
    if (!got.ok() && reap_error.ok()) reap_error = std::move(got);
    idle = progress ? 0 : idle + 1;
  }
  if (flush_outstanding_) return reap_error.ok() ? status(errc::io_error, "NVMe Flush never completed") : reap_error;
  return result;
}

}  // namespace offcopy::nvme
