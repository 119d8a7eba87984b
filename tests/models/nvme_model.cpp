// NVMe controller model: see nvme_model.hpp.
#include "tests/models/nvme_model.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <random>
#include <stdexcept>

extern "C" {
#include <nvme/types.h>
}

#include "src/core/backend.hpp"
#include "src/core/device_state.hpp"
#include "src/nvme/host_behavior.hpp"
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

// Status codes the model answers with that the backend has no constant for.
constexpr std::uint8_t sc_invalid_namespace = 0x0b;  // SCT 0: Invalid Namespace or Format
constexpr std::uint8_t sc_invalid_format = 0x0a;     // SCT 1: Invalid Format (QEMU NVME_INVALID_FORMAT)
constexpr std::uint8_t sct_media = 0x2;              // Media and Data Integrity Errors
constexpr std::uint8_t sc_write_fault = 0x80;
constexpr std::uint8_t sc_unrecovered_read_error = 0x81;
constexpr std::uint32_t nsid_broadcast = 0xffffffffu;
constexpr std::uint32_t max_namespaces = 256;  // QEMU 10 NVME_MAX_NAMESPACES

/// PIF as QEMU's ns->pif: 0 for namespaces without protection information.
std::uint8_t effective_pif(const nvme_model_config& c) { return c.pi_type != 0 ? c.pi_format : 0; }

bool same_format(const nvme_model_config& a, const nvme_model_config& b) {
  return a.lba_bytes == b.lba_bytes && a.metadata_bytes == b.metadata_bytes && a.pi_type == b.pi_type &&
         effective_pif(a) == effective_pif(b);
}
}  // namespace

// A fresh model is a controller Linux has just initialised (Host Behavior Support rewritten).
nvme_model::nvme_model(nvme_model_config cfg) {
  add_namespace(cfg, -1);
  reset_controller();
}
nvme_model::nvme_model(nvme_model_config cfg, int fd) {
  add_namespace(cfg, fd);
  reset_controller();
}

nvme_model::~nvme_model() {
  if (factory_installed_) {
    detail::reset_discovered_kinds("nvme-copy");
    set_link_factory({});
  }
}

void nvme_model::add_namespace(nvme_model_config cfg, int fd) {
  if (find_ns(cfg.nsid) != nullptr) throw std::runtime_error("nvme_model: duplicate nsid");
  ns_state n;
  n.cfg = cfg;
  n.fd = fd;
  if (fd < 0) n.mem.assign(cfg.blocks * cfg.lba_bytes, 0);
  ns_.push_back(std::move(n));
}

nvme_model::ns_state* nvme_model::find_ns(std::uint32_t nsid) {
  for (auto& n : ns_)
    if (n.cfg.nsid == nsid) return &n;
  return nullptr;
}
const nvme_model::ns_state* nvme_model::find_ns(std::uint32_t nsid) const {
  for (const auto& n : ns_)
    if (n.cfg.nsid == nsid) return &n;
  return nullptr;
}
nvme_model::ns_state& nvme_model::ns_at(std::uint32_t nsid) {
  ns_state* n = find_ns(nsid);
  if (n == nullptr) throw std::runtime_error("nvme_model: no namespace " + std::to_string(nsid));
  return *n;
}

void nvme_model::write_blocks(std::uint32_t nsid, std::uint64_t lba, const std::vector<std::uint8_t>& data) {
  ns_state& n = ns_at(nsid);
  const std::uint64_t off = lba * n.cfg.lba_bytes;
  if (n.fd >= 0) {
    if (::pwrite(n.fd, data.data(), data.size(), static_cast<off_t>(off)) != static_cast<ssize_t>(data.size()))
      throw std::runtime_error("nvme_model: pwrite");
    return;
  }
  std::memcpy(n.mem.data() + off, data.data(), data.size());
}

std::vector<std::uint8_t> nvme_model::read_blocks(std::uint32_t nsid, std::uint64_t lba, std::uint64_t count) const {
  const ns_state* n = find_ns(nsid);
  if (n == nullptr) throw std::runtime_error("nvme_model: no namespace " + std::to_string(nsid));
  std::vector<std::uint8_t> out(count * n->cfg.lba_bytes);
  const std::uint64_t off = lba * n->cfg.lba_bytes;
  if (n->fd >= 0) {
    const ssize_t got = ::pread(n->fd, out.data(), out.size(), static_cast<off_t>(off));
    if (got < 0) throw std::runtime_error("nvme_model: pread");
    if (static_cast<std::size_t>(got) < out.size()) std::fill(out.begin() + got, out.end(), 0);  // sparse tail
    return out;
  }
  std::memcpy(out.data(), n->mem.data() + off, out.size());
  return out;
}

void nvme_model::reset_controller() {
  // Linux 6.1 nvme_configure_host_options(): a zeroed structure with ACRE/LBAFEE only (QEMU 10
  // reports CTRATT.ELBAS, so LBAFEE = 1; seen in the guest as bytes 00 00 01 00 00 00).
  hbs_.fill(0);
  hbs_[2] = 1;
}

std::uint16_t nvme_model::run_copy(ns_state& dst, const copy_fields& f, const std::vector<source_range>& ranges,
                                   std::uint32_t& dw0, std::optional<nvme_fault> fault) {
  // The order of QEMU 10's checks: the command as a whole in nvme_copy() (format, NR, PIF, MCL),
  // then each range in nvme_do_copy() before it is read and written. A range that fails leaves
  // DW0 = its index, the ranges before it copied.
  dw0 = 0;
  const nvme_model_config& d = dst.cfg;
  std::uint64_t total = 0;
  for (const auto& r : ranges) total += r.blocks;
  if (d.enforce_limits) {
    const std::uint32_t mcl = d.enforced_mcl ? d.enforced_mcl : d.mcl;
    if (total > mcl) return make_raw_status(sct_command_specific, sc_command_size_limit_exceeded, true);
  }
  const bool cross_formats = f.format == 2 || f.format == 3;
  std::uint64_t dlba = f.sdlba;
  for (std::size_t i = 0; i < ranges.size(); ++i) {
    dw0 = static_cast<std::uint32_t>(i);
    if (fault && i >= fault->ranges_done) return fault->raw_status;
    const source_range& r = ranges[i];
    ns_state* src = &dst;
    if (cross_formats && r.snsid != d.nsid) {
      // QEMU: an NSID that cannot exist (0, broadcast, over its 256) is Invalid Namespace; one
      // that could but is not attached, Invalid Field.
      if (r.snsid == 0 || r.snsid == nsid_broadcast || r.snsid > max_namespaces)
        return make_raw_status(sct_generic, sc_invalid_namespace, true);
      src = find_ns(r.snsid);
      if (src == nullptr) return make_raw_status(sct_generic, sc_invalid_field, true);
      if (!same_format(src->cfg, d))
        return make_raw_status(sct_command_specific, sc_incompatible_namespace_or_format, true);
    } else if (cross_formats) {
      // QEMU 10 checks overlap only here (formats 2h/3h, source = destination namespace), and only
      // whether the range's end falls inside the destination range.
      const std::uint64_t end = r.slba + r.blocks;
      if (end > f.sdlba && end < f.sdlba + total)
        return make_raw_status(sct_command_specific, sc_overlapping_io_range, true);
    }
    if (d.enforce_limits && r.blocks > src->cfg.mssrl)
      return make_raw_status(sct_command_specific, sc_command_size_limit_exceeded, true);
    if (r.slba + r.blocks > src->cfg.blocks || r.slba + r.blocks < r.slba)
      return make_raw_status(sct_generic, sc_lba_out_of_range, true);
    for (std::uint64_t b : src->bad_reads)
      if (b >= r.slba && b < r.slba + r.blocks) return make_raw_status(sct_media, sc_unrecovered_read_error, false);
    std::vector<std::uint8_t> data = read_blocks(src->cfg.nsid, r.slba, r.blocks);  // whole range, then write
    if (dlba + r.blocks > d.blocks) return make_raw_status(sct_generic, sc_lba_out_of_range, true);
    for (std::uint64_t b : dst.bad_writes)
      if (b >= dlba && b < dlba + r.blocks) return make_raw_status(sct_media, sc_write_fault, false);
    write_blocks(d.nsid, dlba, data);
    audit_.copy_blocks_written += r.blocks;
    dlba += r.blocks;
  }
  dw0 = 0;
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
  ns_state* dst = find_ns(cmd.nsid);
  if (dst == nullptr) return finish(make_raw_status(sct_generic, sc_invalid_namespace, true), 0);
  if (cmd.opcode == 0x00) return finish(0, 0);  // Flush
  if (cmd.opcode != opcode_copy || !config().copy_supported)
    return finish(make_raw_status(sct_generic, sc_invalid_opcode, true), 0);
  ++copies_;
  if (reset_before_.erase(copies_) != 0) reset_controller();
  rec.fields = model_decode_dwords(cmd.dw);
  const copy_fields& f = rec.fields;
  // Formats 2h/3h need their CDFE bit in Host Behavior Support (QEMU: Invalid Field, DNR).
  const std::uint16_t cdfe = static_cast<std::uint16_t>(hbs_[4] | (hbs_[5] << 8));
  if (f.format > 3 || (config().ocfs & (1u << f.format)) == 0 || (f.format >= 2 && (cdfe & (1u << f.format)) == 0))
    return finish(make_raw_status(sct_generic, sc_invalid_field, true), 0);
  if (dst->cfg.enforce_limits && f.ranges > std::uint32_t{dst->cfg.msrc_0based} + 1)
    return finish(make_raw_status(sct_command_specific, sc_command_size_limit_exceeded, true), 0);
  // Formats 0h/2h for namespaces without PI or with 16-bit guard PI, 1h/3h for 32/64-bit guards.
  if ((effective_pif(dst->cfg) == 0) != (f.format == 0 || f.format == 2))
    return finish(make_raw_status(sct_command_specific, sc_invalid_format, true), 0);
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
  const std::uint16_t st = run_copy(*dst, f, rec.ranges, dw0, fault);
  if (fault && fault->report_dw0 >= 0) dw0 = static_cast<std::uint32_t>(fault->report_dw0);
  return finish(st, st == 0 ? 0 : dw0);
}

io_completion nvme_model::admin(const admin_command& cmd) {
  nvme_model_record rec;
  rec.admin = true;
  rec.opcode = cmd.opcode;
  rec.nsid = cmd.nsid;
  rec.cdw10 = cmd.cdw10;
  io_completion done;
  auto finish = [&](std::uint16_t st) {
    rec.raw_status = st;
    done.raw_status = st;
    log_.push_back(rec);
    return done;
  };
  auto to_host = [&](const std::uint8_t* src, std::size_t len) {
    if (cmd.data != nullptr) std::memcpy(cmd.data, src, std::min<std::size_t>(len, cmd.data_bytes));
  };
  const std::uint16_t invalid_field = make_raw_status(sct_generic, sc_invalid_field, true);
  switch (cmd.opcode) {
    case 0x06: {  // Identify: CDW10 bits 7:0 CNS
      const std::uint8_t cns = cmd.cdw10 & 0xff;
      std::vector<std::uint8_t> page;
      if (cns == 0x01) {
        page = identify_ctrl();
      } else if (cns == 0x00 || cns == 0x05) {
        const ns_state* n = find_ns(cmd.nsid);
        if (n == nullptr) return finish(make_raw_status(sct_generic, sc_invalid_namespace, true));
        if (cns == 0x00) {
          page = identify_ns(cmd.nsid);
        } else {
          page.assign(4096, 0);
          auto& v = *reinterpret_cast<nvme_nvm_id_ns*>(page.data());
          v.elbaf[0] = std::uint32_t{effective_pif(n->cfg)} << 7;  // ELBAF bits 8:7 PIF
        }
      } else {
        return finish(invalid_field);
      }
      to_host(page.data(), page.size());
      return finish(0);
    }
    case admin_get_features:
    case admin_set_features: {
      if ((cmd.cdw10 & 0xff) != 0x16 || !config().host_behavior_support) return finish(invalid_field);
      if (cmd.data == nullptr || cmd.data_bytes < hbs_.size()) return finish(invalid_field);
      if (cmd.opcode == admin_get_features) {
        to_host(hbs_.data(), hbs_.size());
      } else {
        std::memcpy(hbs_.data(), cmd.data, hbs_.size());
      }
      return finish(0);
    }
    default: return finish(make_raw_status(sct_generic, sc_invalid_opcode, true));
  }
}

namespace {
class model_transport final : public transport {
 public:
  model_transport(nvme_model& m, unsigned depth, bool reverse, const char* name)
      : m_(m), depth_(depth), reverse_(reverse), name_(name), random_(m.script().seed) {}
  model_transport(const model_transport&) = delete;
  model_transport& operator=(const model_transport&) = delete;

  // The teardown check: whatever is still pending was never reaped. Its data buffer must still
  // hold what was submitted (read here: ASan reports a buffer the session freed meanwhile).
  ~model_transport() override {
    nvme_transport_audit& a = m_.audit();
    ++a.torn_down;
    for (const pending& p : pending_) {
      ++a.pending_at_teardown;
      const auto* now = static_cast<const std::uint8_t*>(p.cmd.data);
      if (p.cmd.data_bytes != p.submitted.size() ||
          (now != nullptr && !std::equal(p.submitted.begin(), p.submitted.end(), now)))
        ++a.buffers_changed;
    }
  }

  unsigned queue_depth() const noexcept override { return depth_; }
  const char* name() const noexcept override { return name_; }

  status submit(const io_command& c) override {
    const nvme_transport_script& s = m_.script();
    const std::uint64_t k = m_.next_submit();
    if (k == s.refuse_submit)
      return status(errc::io_error, "io_uring_submit: Resource temporarily unavailable (model)", EAGAIN);
    if (pending_.size() >= depth_) return status(errc::internal, "model transport: queue full");
    pending p;
    p.cmd = c;
    if (c.data != nullptr) {
      const auto* d = static_cast<const std::uint8_t*>(c.data);
      p.submitted.assign(d, d + c.data_bytes);
    }
    p.cancelled = k == s.cancel_command;
    pending_.push_back(std::move(p));
    return {};
  }

  status reap(unsigned min, std::vector<io_completion>& out) override {
    const nvme_transport_script& s = m_.script();
    const std::uint64_t n = m_.next_reap();
    if (n == s.fail_reap || (s.reaps_keep_failing && s.fail_reap != 0 && n > s.fail_reap))
      return status(errc::io_error, "io_uring_wait_cqe: Resource temporarily unavailable (model)", EAGAIN);
    if (n == s.unknown_tag_at_reap) out.push_back(io_completion{0xdead0000u + n, 0, 0, 0});
    if (reverse_) std::reverse(pending_.begin(), pending_.end());
    std::size_t count = pending_.size();
    if (s.seed != 0 && count > 0) {
      // A random number of them, at least what was asked (bounded by what is pending), in random order.
      std::shuffle(pending_.begin(), pending_.end(), random_);
      const std::size_t least = std::min<std::size_t>(std::max(min, 1u), count);
      count = least + random_() % (count - least + 1);
    }
    if (s.at_most_per_reap != 0)
      count = std::min<std::size_t>(count, std::max<std::size_t>(s.at_most_per_reap, std::max(min, 1u)));
    for (std::size_t i = 0; i < count; ++i) {
      const pending& p = pending_[i];
      if (p.cancelled) {
        io_completion c;
        c.user_tag = p.cmd.user_tag;
        c.sys_errno = EINTR;
        out.push_back(c);
      } else {
        out.push_back(m_.execute(p.cmd));
      }
    }
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(count));
    return {};
  }

 private:
  struct pending {
    io_command cmd;
    std::vector<std::uint8_t> submitted;  ///< the data as it was at submission
    bool cancelled = false;
  };
  nvme_model& m_;
  unsigned depth_;
  bool reverse_;
  const char* name_;
  std::mt19937 random_;
  std::deque<pending> pending_;
};

class model_link final : public namespace_link {
 public:
  model_link(nvme_model& m, std::uint32_t nsid, bool async) : m_(m), nsid_(nsid), async_(async) {
    loc_.controller = "model-ctrl";
    loc_.disk_name = "model-n" + std::to_string(nsid);
    if (async) loc_.char_path = "model-char-n" + std::to_string(nsid);
  }
  const namespace_location& location() const noexcept override { return loc_; }
  result<std::uint32_t> nsid() override { return nsid_; }
  io_completion admin(const admin_command& cmd) override { return m_.admin(cmd); }
  std::unique_ptr<transport> open_sync() override { return m_.make_transport(1, false, "model-sync"); }
  result<std::unique_ptr<transport>> open_async(unsigned depth) override {
    if (!async_)
      return status(errc::not_supported, "asynchronous NVMe Copy needs the char device of " + loc_.disk_name);
    return m_.make_transport(depth, false, "model-async");
  }
  bool needs_cap_sys_admin() const noexcept override { return false; }

 private:
  nvme_model& m_;
  std::uint32_t nsid_;
  bool async_;
  namespace_location loc_;
};
}  // namespace

std::unique_ptr<transport> nvme_model::make_transport(unsigned depth, bool reverse_completion, const char* name) {
  return std::make_unique<model_transport>(*this, depth ? depth : 1, reverse_completion, name);
}

std::unique_ptr<namespace_link> nvme_model::make_link(std::uint32_t nsid, bool async) {
  return std::make_unique<model_link>(*this, nsid, async);
}

void nvme_model::attach_path(const std::string& path, std::uint32_t nsid, bool async) {
  paths_[path] = {nsid, async};
  if (factory_installed_) return;
  factory_installed_ = true;
  // The model's namespaces are regular files: let the NVMe backend discover those too.
  detail::set_discovered_kinds("nvme-copy", detail::all_device_kinds);
  set_link_factory([this](const detail::device_state& dev) -> std::unique_ptr<namespace_link> {
    auto it = paths_.find(dev.caps.path);
    if (it == paths_.end()) return nullptr;
    return make_link(it->second.first, it->second.second);
  });
}

std::vector<std::uint8_t> nvme_model::identify_ctrl() const {
  std::vector<std::uint8_t> page(4096);
  auto& c = *reinterpret_cast<nvme_id_ctrl*>(page.data());
  c.oncs = config().copy_supported ? 0x15f : 0x5f;
  c.ocfs = config().ocfs;
  c.cntlid = 1;
  std::memcpy(c.sn, "MODEL               ", 20);
  std::memcpy(c.mn, "offcopy NVMe model                      ", 40);
  return page;
}

std::vector<std::uint8_t> nvme_model::identify_ns(std::uint32_t nsid) const {
  std::vector<std::uint8_t> page(4096);
  const ns_state* s = find_ns(nsid);
  if (s == nullptr) return page;
  const nvme_model_config& cfg = s->cfg;
  auto& n = *reinterpret_cast<nvme_id_ns*>(page.data());
  n.nsze = cfg.blocks;
  n.lbaf[0].ds = static_cast<std::uint8_t>(__builtin_ctz(cfg.lba_bytes));
  n.lbaf[0].ms = cfg.metadata_bytes;
  n.dps = cfg.pi_type & 7;
  n.mssrl = cfg.mssrl;
  n.mcl = cfg.mcl;
  n.msrc = cfg.msrc_0based;
  return page;
}

void nvme_model_backend::probe(detail::device_state& dev) {
  offload_mechanism m;
  m.backend = "nvme-copy";
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
