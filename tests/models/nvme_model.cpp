// NVMe controller model: see nvme_model.hpp.
#include "tests/models/nvme_model.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <stdexcept>

extern "C" {
#include <nvme/types.h>
}

#include "src/nvme/nvme_status.hpp"

namespace offcopy::testing {

using namespace offcopy::nvme;

namespace {

// ---- The model's own decoding of a Copy command -----------------------------------------------
// An oracle must not share our code (STYLE.md, principle 14): the command dwords and the source
// range entries are decoded here with hand-written offsets, never with src/nvme/copy_encode.*.
// Offsets from QEMU 10 hw/nvme (include/block/nvme.h NvmeCopyCmd, NvmeCopySourceRangeFormat0_2,
// NvmeCopySourceRangeFormat1_3; ctrl.c nvme_copy, nvme_copy_source_range_parse_format*) and
// libnvme (src/nvme/types.h struct nvme_copy_range, _f1, _f2, _f3; ioctl.c nvme_copy).

constexpr std::uint8_t opcode_copy = 0x19;

std::uint64_t le(const std::uint8_t* p, int n) {
  std::uint64_t v = 0;
  for (int i = 0; i < n; ++i) v |= std::uint64_t{p[i]} << (8 * i);
  return v;
}

/// NvmeCopyCmd: CDW10/11 SDLBA; CDW12 byte 0 NR (0-based), control[0] = bits 15:8 (format 3:0,
/// PRINFOR 7:4), control[1] = bits 23:16 (DTYPE 7:4), control[2] = bits 31:24 (STCW bit 0,
/// PRINFOW 5:2, FUA bit 6, LR bit 7); CDW13 bits 31:16 DSPEC; CDW14 reference tag, CDW3 its upper
/// bits (ctrl.c: iocb->reftag = cdw14 | cdw3 << 32); CDW15 apptag 15:0, appmask 31:16.
copy_fields model_decode_dwords(const copy_dwords& d) {
  copy_fields f;
  f.sdlba = (std::uint64_t{d.cdw11} << 32) | d.cdw10;
  const auto b0 = static_cast<std::uint8_t>(d.cdw12), b1 = static_cast<std::uint8_t>(d.cdw12 >> 8);
  const auto b2 = static_cast<std::uint8_t>(d.cdw12 >> 16), b3 = static_cast<std::uint8_t>(d.cdw12 >> 24);
  f.ranges = b0 + 1u;
  f.format = b1 & 0x0f;
  f.prinfor = b1 >> 4;
  f.dtype = b2 >> 4;
  f.stcw = b3 & 0x01;
  f.prinfow = (b3 >> 2) & 0x0f;
  f.fua = (b3 >> 6) & 1;
  f.limited_retry = (b3 >> 7) & 1;
  f.dspec = static_cast<std::uint16_t>(d.cdw13 >> 16);
  f.ilbrt = (std::uint64_t{d.cdw3} << 32) | d.cdw14;
  f.lbat = static_cast<std::uint16_t>(d.cdw15);
  f.lbatm = static_cast<std::uint16_t>(d.cdw15 >> 16);
  return f;
}

/// Bytes of one source range entry: 32 for formats 0h/2h, 40 for 1h/3h (0 unknown).
std::size_t model_entry_bytes(std::uint8_t format) {
  return format == 0 || format == 2 ? 32 : format == 1 || format == 3 ? 40 : 0;
}

/// One entry. All formats: 0-3 SNSID (2h/3h), 8-15 SLBA, 16-17 NLB 0-based, 22-23 SOPT (2h/3h).
/// 0h/2h: 24-27 EILBRT, 28-29 ELBAT, 30-31 ELBATM. 1h/3h: 26-35 the 80-bit ELBST/EILBRT field
/// most-significant byte first (QEMU reads the 48-bit reference tag from sr[4..9] as
/// sr[4] << 40 | ... | sr[9]; libnvme writes elbt[9 - i] = byte i of the tag), 36-37 ELBAT,
/// 38-39 ELBATM.
source_range model_decode_entry(std::uint8_t format, const std::uint8_t* e) {
  source_range r;
  r.slba = le(e + 8, 8);
  r.blocks = static_cast<std::uint32_t>(le(e + 16, 2)) + 1;
  if (format == 2 || format == 3) {
    r.snsid = static_cast<std::uint32_t>(le(e, 4));
    r.sopt = static_cast<std::uint16_t>(le(e + 22, 2));
  }
  if (format == 0 || format == 2) {
    r.eilbrt = le(e + 24, 4);
    r.elbat = static_cast<std::uint16_t>(le(e + 28, 2));
    r.elbatm = static_cast<std::uint16_t>(le(e + 30, 2));
  } else {
    r.elbst_eilbrt_hi = static_cast<std::uint16_t>((e[26] << 8) | e[27]);
    std::uint64_t low = 0;
    for (int i = 28; i <= 35; ++i) low = (low << 8) | e[i];
    r.eilbrt = low;
    r.elbat = static_cast<std::uint16_t>(le(e + 36, 2));
    r.elbatm = static_cast<std::uint16_t>(le(e + 38, 2));
  }
  return r;
}

}  // namespace

nvme_model::nvme_model(nvme_model_config cfg) : cfg_(cfg), mem_(cfg.blocks * cfg.lba_bytes) {}
nvme_model::nvme_model(nvme_model_config cfg, int fd) : cfg_(cfg), fd_(fd) {}

void nvme_model::write_blocks(std::uint64_t lba, const std::vector<std::uint8_t>& data) {
  const std::uint64_t off = lba * cfg_.lba_bytes;
  if (fd_ >= 0) {
    if (::pwrite(fd_, data.data(), data.size(), static_cast<off_t>(off)) != static_cast<ssize_t>(data.size()))
      throw std::runtime_error("nvme_model: pwrite");
    return;
  }
  std::memcpy(mem_.data() + off, data.data(), data.size());
}

std::vector<std::uint8_t> nvme_model::read_blocks(std::uint64_t lba, std::uint64_t count) const {
  std::vector<std::uint8_t> out(count * cfg_.lba_bytes);
  const std::uint64_t off = lba * cfg_.lba_bytes;
  if (fd_ >= 0) {
    const ssize_t n = ::pread(fd_, out.data(), out.size(), static_cast<off_t>(off));
    if (n < 0) throw std::runtime_error("nvme_model: pread");
    if (static_cast<std::size_t>(n) < out.size()) std::fill(out.begin() + n, out.end(), 0);  // sparse tail
    return out;
  }
  std::memcpy(out.data(), mem_.data() + off, out.size());
  return out;
}

std::uint16_t nvme_model::run_copy(const copy_fields& f, const std::vector<source_range>& ranges,
                                   std::uint32_t& dw0, std::optional<nvme_fault> fault) {
  dw0 = 0;
  if (cfg_.enforce_limits) {
    std::uint64_t total = 0;
    for (const auto& r : ranges) total += r.blocks;
    const std::uint32_t mcl = cfg_.enforced_mcl ? cfg_.enforced_mcl : cfg_.mcl;
    if (ranges.size() > std::size_t{cfg_.msrc_0based} + 1 || total > mcl)
      return make_raw_status(sct_command_specific, sc_command_size_limit_exceeded, true);
    for (std::size_t i = 0; i < ranges.size(); ++i)
      if (ranges[i].blocks > cfg_.mssrl) return make_raw_status(sct_command_specific, sc_command_size_limit_exceeded, true);
  }
  std::uint64_t dst = f.sdlba;
  for (std::size_t i = 0; i < ranges.size(); ++i) {
    if (fault && i >= fault->ranges_done) {
      dw0 = static_cast<std::uint32_t>(i);
      return fault->raw_status;
    }
    const auto& r = ranges[i];
    if (r.slba + r.blocks > cfg_.blocks || dst + r.blocks > cfg_.blocks || r.slba + r.blocks < r.slba) {
      dw0 = static_cast<std::uint32_t>(i);
      return make_raw_status(sct_generic, sc_lba_out_of_range, true);
    }
    write_blocks(dst, read_blocks(r.slba, r.blocks));  // read whole range, then write: per-range memmove
    dst += r.blocks;
  }
  if (fault) {
    dw0 = static_cast<std::uint32_t>(ranges.size());
    return fault->raw_status;
  }
  return 0;
}

io_completion nvme_model::execute(const io_command& cmd) {
  nvme_model_record rec;
  rec.opcode = cmd.opcode;
  rec.nsid = cmd.nsid;
  io_completion done;
  done.user_tag = cmd.user_tag;
  auto finish = [&](std::uint16_t st, std::uint32_t dw0) {
    rec.raw_status = st;
    rec.dw0 = dw0;
    done.raw_status = st;
    done.dw0 = dw0;
    log_.push_back(std::move(rec));
    return done;
  };
  if (cmd.nsid != cfg_.nsid) return finish(make_raw_status(sct_generic, 0x0b, true), 0);  // Invalid Namespace
  if (cmd.opcode == 0x00) return finish(0, 0);                                            // Flush
  if (cmd.opcode != opcode_copy || !cfg_.copy_supported)
    return finish(make_raw_status(sct_generic, sc_invalid_opcode, true), 0);
  ++copies_;
  rec.fields = model_decode_dwords(cmd.dw);
  const copy_fields& f = rec.fields;
  if (f.format > 3 || (cfg_.ocfs & (1u << f.format)) == 0)
    return finish(make_raw_status(sct_generic, sc_invalid_field, true), 0);
  const std::size_t n = model_entry_bytes(f.format);
  if (cmd.data == nullptr || cmd.data_bytes < f.ranges * n)
    return finish(make_raw_status(sct_generic, sc_invalid_field, true), 0);
  const auto* p = static_cast<const std::uint8_t*>(cmd.data);
  for (std::uint32_t i = 0; i < f.ranges; ++i) rec.ranges.push_back(model_decode_entry(f.format, p + i * n));
  std::optional<nvme_fault> fault;
  for (auto it = faults_.begin(); it != faults_.end(); ++it) {
    if (it->at_command == copies_) {
      fault = *it;
      faults_.erase(it);
      break;
    }
  }
  std::uint32_t dw0 = 0;
  const std::uint16_t st = run_copy(f, rec.ranges, dw0, fault);
  if (fault && fault->report_dw0 >= 0) dw0 = static_cast<std::uint32_t>(fault->report_dw0);
  return finish(st, dw0);
}

namespace {
class model_transport final : public transport {
 public:
  model_transport(nvme_model& m, unsigned depth, bool reverse) : m_(m), depth_(depth), reverse_(reverse) {}
  unsigned queue_depth() const noexcept override { return depth_; }
  const char* name() const noexcept override { return "model"; }
  status submit(const io_command& c) override {
    if (pending_.size() >= depth_) return status(errc::internal, "model transport: queue full");
    pending_.push_back(c);
    return {};
  }
  status reap(unsigned, std::vector<io_completion>& out) override {
    if (reverse_) std::reverse(pending_.begin(), pending_.end());
    for (const auto& c : pending_) out.push_back(m_.execute(c));
    pending_.clear();
    return {};
  }

 private:
  nvme_model& m_;
  unsigned depth_;
  bool reverse_;
  std::deque<io_command> pending_;
};
}  // namespace

std::unique_ptr<transport> nvme_model::make_transport(unsigned depth, bool reverse_completion) {
  return std::make_unique<model_transport>(*this, depth ? depth : 1, reverse_completion);
}

std::vector<std::uint8_t> nvme_model::identify_ctrl() const {
  std::vector<std::uint8_t> page(4096);
  auto& c = *reinterpret_cast<nvme_id_ctrl*>(page.data());
  c.oncs = cfg_.copy_supported ? 0x15f : 0x5f;
  c.ocfs = cfg_.ocfs;
  std::memcpy(c.sn, "MODEL               ", 20);
  return page;
}

std::vector<std::uint8_t> nvme_model::identify_ns() const {
  std::vector<std::uint8_t> page(4096);
  auto& n = *reinterpret_cast<nvme_id_ns*>(page.data());
  n.nsze = cfg_.blocks;
  n.lbaf[0].ds = static_cast<std::uint8_t>(__builtin_ctz(cfg_.lba_bytes));
  n.mssrl = cfg_.mssrl;
  n.mcl = cfg_.mcl;
  n.msrc = cfg_.msrc_0based;
  return page;
}

void nvme_model_backend::probe(detail::device_state& dev) {
  offload_mechanism m;
  m.backend = backend_kind::nvme_copy;
  m.available = true;
  m.limits = {std::uint32_t{model_.config().msrc_0based} + 1, model_.config().mssrl, model_.config().mcl, true};
  m.details = {{"model", "nvme"}};
  dev.caps.offload.push_back(std::move(m));
}

detail::pair_support nvme_model_backend::check(const detail::device_state&, const detail::device_state&,
                                               const policy&) const {
  detail::pair_support ps;
  ps.ok = true;
  ps.block_bytes = model_.config().lba_bytes;
  ps.limits = {std::uint32_t{model_.config().msrc_0based} + 1, model_.config().mssrl, model_.config().mcl, true};
  ps.offload = true;
  return ps;
}

result<std::unique_ptr<detail::copy_session>> nvme_model_backend::open_session(detail::device_state&,
                                                                               detail::device_state&,
                                                                               const policy& pol) {
  ++sessions_opened;
  session_params p;
  p.nsid = model_.config().nsid;
  p.flush_on_finish = pol.sync;
  const unsigned depth = std::min(depth_, pol.commands_in_flight ? pol.commands_in_flight : 1u);
  return std::unique_ptr<detail::copy_session>(
      std::make_unique<nvme::copy_session>(model_.make_transport(depth, reverse_), p));
}

}  // namespace offcopy::testing
