// NVMe Copy session: see copy_session.hpp.
#include "src/nvme/copy_session.hpp"

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "src/nvme/nvme_status.hpp"

namespace offcopy::nvme {

inline constexpr std::uint8_t prinfo_pract = 0x8;  // PRINFO bit 3: PRACT

status build_copy(const session_params& p, const detail::command& cmd, copy_dwords& dw,
                  std::vector<std::uint8_t>& ranges, std::vector<std::uint32_t>& range_blocks) {
  if (cmd.segments.empty()) return status(errc::internal, "NVMe Copy command without segments");
  std::vector<source_range> list;
  range_blocks.clear();
  // Type 1 reference tags are the LBA's low bits: 32 for 8-byte PI, 48 for 16-byte PI (64-bit guard).
  const std::uint64_t tag_mask =
      p.reference_tag_bits >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << p.reference_tag_bits) - 1;
  std::uint64_t next_dst = cmd.segments[0].dst_block;
  for (const plan_segment& s : cmd.segments) {
    if (s.dst_block != next_dst)
      return status(errc::internal,
                    fmt::format("NVMe Copy writes one contiguous destination: segment at block {} after {}",
                                s.dst_block, next_dst));
    if (s.blocks == 0) return status(errc::internal, "NVMe Copy segment of 0 blocks");
    next_dst += s.blocks;
    // NLB is 16 bits: a longer segment becomes several consecutive ranges.
    for (std::uint64_t done = 0; done < s.blocks;) {
      const auto n = static_cast<std::uint32_t>(std::min<std::uint64_t>(s.blocks - done, max_blocks_per_range));
      source_range r;
      r.slba = p.src_offset_blocks + s.src_block + done;
      r.blocks = n;
      r.snsid = p.source_nsid;
      if (p.pi_regenerate) r.eilbrt = r.slba & tag_mask;  // only checked if PRINFOR asks, which we do not
      list.push_back(r);
      range_blocks.push_back(n);
      done += n;
    }
  }
  if (list.size() > max_ranges_per_command)
    return status(errc::size_limit_exceeded,
                  fmt::format("NVMe Copy of {} source ranges (at most 256)", list.size()));
  copy_fields f;
  f.sdlba = p.dst_offset_blocks + cmd.segments[0].dst_block;
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

status passthrough_errno_status(int err, const char* transport_name) {
  std::string what = fmt::format("NVMe Copy passthrough ({}): {}", transport_name, std::strerror(err));
  if (err == EACCES || err == EPERM) return status(errc::not_supported, what + " (needs CAP_SYS_ADMIN)", err);
  if (err == ENOTTY || err == EOPNOTSUPP || err == ENOTSUP) return status(errc::not_supported, what, err);
  return status(errc::io_error, what, err);
}

copy_session::copy_session(std::unique_ptr<transport> t, session_params p)
    : transport_(std::move(t)), params_(p) {}

status copy_session::submit(const detail::command& cmd) {
  in_flight f;
  io_command io;
  io.user_tag = cmd.tag;
  io.opcode = copy_opcode;
  io.nsid = params_.nsid;
  if (auto s = build_copy(params_, cmd, io.dw, f.data, f.range_blocks); !s.ok()) {
    if (s.code() != errc::size_limit_exceeded) return s;
    ready_.push_back(detail::completion{cmd.tag, std::move(s), 0});
    return {};
  }
  auto [it, inserted] = in_flight_.emplace(cmd.tag, std::move(f));
  if (!inserted) return status(errc::internal, fmt::format("NVMe Copy tag {} already in flight", cmd.tag));
  io.data = it->second.data.data();
  io.data_bytes = static_cast<std::uint32_t>(it->second.data.size());
  if (auto s = transport_->submit(io); !s.ok()) {
    in_flight_.erase(it);
    return s;
  }
  return {};
}

status copy_session::reap(unsigned min_completions, std::vector<detail::completion>& out) {
  unsigned have = static_cast<unsigned>(ready_.size());
  for (auto& c : ready_) out.push_back(std::move(c));
  ready_.clear();
  if (in_flight_.empty()) return {};
  std::vector<io_completion> done;
  if (auto s = transport_->reap(min_completions > have ? min_completions - have : 0, done); !s.ok()) return s;
  for (const io_completion& c : done) {
    auto it = in_flight_.find(c.user_tag);
    if (it == in_flight_.end()) return status(errc::internal, fmt::format("NVMe completion for unknown tag {}", c.user_tag));
    detail::completion comp;
    comp.tag = c.user_tag;
    if (c.sys_errno != 0) {
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
  }
  return {};
}

status copy_session::finish() {
  if (!params_.flush_on_finish) return {};
  io_command io;
  io.user_tag = ~std::uint64_t{0};
  io.opcode = 0x00;  // Flush
  io.nsid = params_.nsid;
  if (auto s = transport_->submit(io); !s.ok()) return s;
  std::vector<io_completion> done;
  if (auto s = transport_->reap(1, done); !s.ok()) return s;
  for (const io_completion& c : done) {
    if (c.user_tag != io.user_tag) continue;
    if (c.sys_errno != 0) return errno_status(c.sys_errno, "NVMe Flush");
    if (c.raw_status != 0) {
      nvme_status_detail d = decode_status(c.raw_status, c.dw0);
      std::string msg = fmt::format("NVMe Flush: {}", d.name);
      return status(errc::device_error, std::move(msg)).with_nvme(std::move(d));
    }
  }
  return {};
}

}  // namespace offcopy::nvme
