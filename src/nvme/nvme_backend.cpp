// NVMe Copy backend: probe (Identify and Host Behavior Support through the namespace link), pair
// check, session on the transport the policy asks for.
#include "src/nvme/nvme_backend.hpp"

#include <linux/capability.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "src/nvme/copy_session.hpp"
#include "src/nvme/host_behavior.hpp"
#include "src/nvme/nvme_status.hpp"

namespace offcopy::nvme {
namespace {

inline constexpr std::uint8_t admin_identify = 0x06;
inline constexpr std::uint8_t cns_namespace = 0x00;
inline constexpr std::uint8_t cns_controller = 0x01;
inline constexpr std::uint8_t cns_csi_namespace = 0x05;  // I/O Command Set specific Identify Namespace
inline constexpr std::uint8_t csi_nvm = 0x00;

/// Identify through the link: CDW10 bits 7:0 CNS, CDW11 bits 31:24 CSI.
io_completion identify(namespace_link& link, std::uint8_t cns, std::uint32_t nsid, std::vector<std::uint8_t>& page,
                       std::uint8_t csi = 0) {
  admin_command c;
  c.opcode = admin_identify;
  c.nsid = nsid;
  c.cdw10 = cns;
  c.cdw11 = std::uint32_t{csi} << 24;
  c.data = page.data();
  c.data_bytes = static_cast<std::uint32_t>(page.size());
  return link.admin(c);
}

std::string identify_failure(const io_completion& c) {
  if (c.sys_errno != 0)
    return fmt::format("Identify failed: {}{}", std::strerror(c.sys_errno),
                       c.sys_errno == EACCES || c.sys_errno == EPERM ? " (needs CAP_SYS_ADMIN)" : "");
  return fmt::format("Identify failed: NVMe status {:#x} ({})", c.raw_status, copy_status_name(c.raw_status));
}

/// Formats 2h/3h the controller offers (OCFS bits 2, 3).
bool offers_cross_namespace(const namespace_info& info) noexcept { return (info.ocfs & 0xc) != 0; }

/// The first difference between two namespaces' LBA formats that Copy across them cannot bridge
/// (QEMU 10 answers 0x185 for these; other controllers may reformat, we do not ask them to).
std::string format_mismatch(const namespace_info& s, const namespace_info& d) {
  static const char* const pi_names[] = {"none", "Type 1", "Type 2", "Type 3"};
  static const char* const pif_names[] = {"16-bit guard", "32-bit guard", "64-bit guard", "reserved"};
  if (s.lba_bytes != d.lba_bytes) return fmt::format("LBA data size {} B vs {} B", s.lba_bytes, d.lba_bytes);
  if (s.metadata_bytes != d.metadata_bytes)
    return fmt::format("metadata size {} B vs {} B", s.metadata_bytes, d.metadata_bytes);
  if (s.metadata_bytes != 0 && s.metadata_extended != d.metadata_extended)
    return fmt::format("metadata {} vs {}", s.metadata_extended ? "extended LBA" : "separate buffer",
                       d.metadata_extended ? "extended LBA" : "separate buffer");
  if (s.pi_type != d.pi_type)
    return fmt::format("protection information {} vs {}", pi_names[s.pi_type & 3], pi_names[d.pi_type & 3]);
  if (s.pi_type != 0 && s.pi_format != d.pi_format)
    return fmt::format("PI format {} vs {}", pif_names[s.pi_format & 3], pif_names[d.pi_format & 3]);
  if (s.pi_type != 0 && s.pi_first != d.pi_first)
    return fmt::format("PI {} vs {} of the metadata", s.pi_first ? "first" : "last", d.pi_first ? "first" : "last");
  return {};
}

class nvme_copy_backend final : public detail::backend {
 public:
  void probe(detail::device_state& dev) override {
    capabilities& caps = dev.caps;
    std::shared_ptr<namespace_link> link = open_link(dev);
    if (!link) return;  // not an NVMe namespace: nothing to offer
    auto data = std::make_shared<nvme_device_data>();
    data->link = link;
    data->location = link->location();
    const bool is_char = data->location.is_char;

    offload_mechanism m;
    m.backend = "nvme-copy";
    auto nsid = link->nsid();
    if (!nsid.ok()) {
      m.reason = fmt::format("NVME_IOCTL_ID failed: {}", nsid.error().message());
      caps.offload.push_back(std::move(m));
      dev.set("nvme-copy", data);
      return;
    }
    data->info.nsid = nsid.value();
    std::vector<std::uint8_t> ctrl(identify_bytes), ns(identify_bytes), nvm(identify_bytes);
    io_completion c = identify(*link, cns_controller, 0, ctrl);
    if (c.sys_errno == 0 && c.raw_status == 0) c = identify(*link, cns_namespace, data->info.nsid, ns);
    if (c.sys_errno != 0 || c.raw_status != 0) {
      m.reason = identify_failure(c);
      m.details = {{"nsid", std::to_string(data->info.nsid)}};
      caps.offload.push_back(std::move(m));
      dev.set("nvme-copy", data);
      return;
    }
    std::span<const std::uint8_t> nvm_span;
    // The NVM-specific Identify Namespace (CNS 05h) gives the PI format; only needed with PI
    // (Identify Namespace byte 29 DPS, bits 2:0 the PI type).
    if ((ns[29] & 7) != 0) {
      const io_completion v = identify(*link, cns_csi_namespace, data->info.nsid, nvm, csi_nvm);
      if (v.sys_errno == 0 && v.raw_status == 0) nvm_span = nvm;
    }
    (void)parse_identify(ctrl, ns, nvm_span, data->info.nsid, data->info);
    data->identified = true;
    m = to_mechanism(data->info);
    const namespace_location& loc = data->location;
    if (offers_cross_namespace(data->info)) {
      auto cdfe = read_cdfe([&](const admin_command& a) { return link->admin(a); });
      if (cdfe.ok()) {
        data->cdfe = cdfe.value();
        m.details.emplace_back("cdfe", fmt::format("{} (enabled: {})", hex(cdfe.value()), cdfe_formats(cdfe.value())));
      } else {
        data->cdfe_error = cdfe.error().message();
        m.details.emplace_back("cdfe", "unknown: " + data->cdfe_error);
      }
    }
    if (!loc.char_path.empty()) m.details.emplace_back("char_device", loc.char_path);
    m.details.emplace_back("controller_node", loc.controller);
    if (loc.controller.rfind("nvme-subsys", 0) == 0)
      m.details.emplace_back("subsystem_controllers", std::to_string(loc.subsystem_controllers));
    if (auto t = test_limits_override())
      m.details.emplace_back("test_limits_override",
                             fmt::format("OFFCOPY_TEST_NVME_LIMITS: MSSRL {} MCL {} MSRC {}", t->max_segment_blocks,
                                         t->max_command_blocks, t->max_segments_per_command - 1));

    if (is_char) {
      // The core cannot describe a char device; the namespace can.
      caps.logical_block_bytes = data->info.lba_bytes;
      caps.physical_block_bytes = data->info.lba_bytes;
      caps.direct_io_align_bytes = data->info.lba_bytes;
      caps.size_bytes = data->info.nsze_blocks * data->info.lba_bytes;
      const std::string blk = "/dev/" + loc.disk_name;
      struct stat bst {};
      if (::stat(blk.c_str(), &bst) == 0 && S_ISBLK(bst.st_mode)) {
        caps.block_path = blk;
        caps.identity = fmt::format("blk:{}:{}", major(bst.st_rdev), minor(bst.st_rdev));
      } else {
        caps.identity = fmt::format("nvme-ns:{}:{}:{}", loc.controller, data->info.serial, data->info.nsid);
      }
    }
    caps.offload.push_back(std::move(m));
    dev.set("nvme-copy", data);
  }

  detail::pair_support check(const detail::device_state& src, const detail::device_state& dst,
                             const policy& pol) const override {
    const auto* d = dst.get<nvme_device_data>("nvme-copy");
    const bool needs_cap = d == nullptr || !d->link || d->link->needs_cap_sys_admin();
    detail::pair_support ps =
        check_pair(src.get<nvme_device_data>("nvme-copy"), d, pol, !needs_cap || has_cap_sys_admin());
    if (ps.ok) {
      if (auto t = test_limits_override()) ps.limits = *t;
    }
    return ps;
  }

  result<std::unique_ptr<detail::copy_session>> open_session(detail::device_state& src, detail::device_state& dst,
                                                             const policy& pol) override {
    const auto* s = src.get<nvme_device_data>("nvme-copy");
    detail::pair_support ps = check(src, dst, pol);
    if (!ps.ok) return status(errc::not_supported, ps.reason);
    return make_session(dst, pol, {s->info.nsid}, false);
  }

  result<std::unique_ptr<detail::copy_session>> open_gather_session(std::span<detail::device_state* const> sources,
                                                                    detail::device_state& dst,
                                                                    const policy& pol) override {
    // Every source passed the pair check (one controller proven, compatible formats, format
    // 2h/3h offered): one command may name each of them per range.
    std::vector<std::uint32_t> nsids;
    for (detail::device_state* src : sources) {
      detail::pair_support ps = check(*src, dst, pol);
      if (!ps.ok) return status(errc::not_supported, src->caps.path + ": " + ps.reason);
      nsids.push_back(src->get<nvme_device_data>("nvme-copy")->info.nsid);
    }
    if (nsids.empty()) return status(errc::internal, "NVMe gather without sources");
    return make_session(dst, pol, std::move(nsids), true);
  }

 private:
  /// The session for `dst` reading namespaces `nsids` (one: a plain copy; several: a gather,
  /// plan_segment::source indexes them). Formats 2h/3h when any is another namespace, or always
  /// for a gather.
  result<std::unique_ptr<detail::copy_session>> make_session(detail::device_state& dst, const policy& pol,
                                                             std::vector<std::uint32_t> nsids, bool gather) {
    const auto* d = dst.get<nvme_device_data>("nvme-copy");
    session_params p;
    p.nsid = d->info.nsid;
    p.descriptor_format = d->info.descriptor_format;
    std::shared_ptr<namespace_link> link = d->link;
    const bool cross = gather || nsids.front() != d->info.nsid;
    if (cross) {
      if (gather) {
        p.source_nsids = std::move(nsids);
      } else {
        p.source_nsid = nsids.front();
      }
      p.descriptor_format = static_cast<std::uint8_t>(p.descriptor_format + 2);
      // Before each cross-namespace copy: the format must be enabled now (a controller reset since
      // the probe clears CDFE), and again whenever the controller says it is not.
      const std::uint16_t bit = cdfe_bit(p.descriptor_format);
      auto enable = [link, bit]() -> status {
        auto u = enable_cdfe([&](const admin_command& a) { return link->admin(a); }, bit);
        if (!u.ok()) return std::move(u).error();
        return {};
      };
      if (auto e = enable(); !e.ok())
        return status(errc::not_supported,
                      fmt::format("cannot enable Copy descriptor format {}h: {}", p.descriptor_format, e.message()));
      p.reenable_formats = enable;
    }
    p.pi_regenerate = d->info.pi_type != 0;
    p.reference_tag_bits = reference_tag_bits(d->info.pi_format);
    p.flush_on_finish = pol.sync;

    std::unique_ptr<transport> t;
    if (pol.submit != submission::synchronous) {
      auto r = link->open_async(pol.commands_in_flight ? pol.commands_in_flight : 1);
      if (r.ok()) {
        t = std::move(r.value());
      } else if (pol.submit == submission::asynchronous) {
        return std::move(r).error();
      }
    }
    if (!t) t = link->open_sync();
    return std::unique_ptr<detail::copy_session>(std::make_unique<copy_session>(std::move(t), std::move(p)));
  }
};

}  // namespace

std::optional<copy_limits> test_limits_override() {
  const char* v = std::getenv("OFFCOPY_TEST_NVME_LIMITS");
  if (v == nullptr || *v == '\0') return std::nullopt;
  unsigned long mssrl = 0, mcl = 0, msrc = 0;
  char tail = 0;
  if (std::sscanf(v, "%lu:%lu:%lu%c", &mssrl, &mcl, &msrc, &tail) != 3) return std::nullopt;
  if (mssrl == 0 || mcl == 0 || msrc > 255 || mssrl > 65536 || mcl > 0xffffffffUL) return std::nullopt;
  copy_limits l;
  l.max_segments_per_command = static_cast<std::uint32_t>(msrc + 1);
  l.max_segment_blocks = static_cast<std::uint32_t>(mssrl);
  l.max_command_blocks = static_cast<std::uint32_t>(mcl);
  l.contiguous_destination = true;
  return l;
}

bool has_cap_sys_admin() noexcept {
  __user_cap_header_struct hdr{};
  hdr.version = _LINUX_CAPABILITY_VERSION_3;
  hdr.pid = 0;
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3]{};
  if (::syscall(SYS_capget, &hdr, data) != 0) return ::geteuid() == 0;
  return (data[CAP_SYS_ADMIN / 32].effective & (1u << (CAP_SYS_ADMIN % 32))) != 0;
}

detail::pair_support check_pair(const nvme_device_data* src, const nvme_device_data* dst, const policy& pol,
                                bool has_sys_admin) {
  detail::pair_support ps;
  if (src == nullptr) return {false, "source is not an NVMe namespace"};
  if (dst == nullptr) return {false, "destination is not an NVMe namespace"};
  if (!src->identified || !src->info.copy_usable)
    return {false, "source: " + (src->info.reason.empty() ? std::string("not identified") : src->info.reason)};
  if (!dst->identified || !dst->info.copy_usable)
    return {false, "destination: " + (dst->info.reason.empty() ? std::string("not identified") : dst->info.reason)};
  const namespace_info& s = src->info;
  const namespace_info& d = dst->info;
  const namespace_location& sl = src->location;
  const namespace_location& dl = dst->location;
  // One controller, proven: the sysfs parent (controller, or a subsystem that has only one), and
  // Identify Controller read through each device names the same serial number and controller ID.
  if (sl.controller != dl.controller || s.serial != d.serial || s.cntlid != d.cntlid)
    return {false, fmt::format("source and destination are on different NVMe controllers ({} {} cntlid {}, {} {} "
                               "cntlid {})",
                               sl.controller, s.serial, s.cntlid, dl.controller, d.serial, d.cntlid)};
  if (s.nsid != d.nsid) {
    if (dl.subsystem_controllers != 1)
      return {false, fmt::format("cross-namespace copy: {} has {} controllers, which one runs the command is the "
                                 "kernel's choice, so one controller for both namespaces is not proven",
                                 dl.controller, dl.subsystem_controllers)};
    if (auto why = format_mismatch(s, d); !why.empty())
      return {false, fmt::format("cross-namespace copy between incompatible formats (namespace {} vs {}: {})", s.nsid,
                                 d.nsid, why)};
    const std::uint8_t want = static_cast<std::uint8_t>(d.descriptor_format + 2);
    if ((d.ocfs & (1u << want)) == 0)
      return {false,
              fmt::format("cross-namespace copy needs descriptor format {}h, controller OCFS={}", want, hex(d.ocfs))};
    if (!dst->cdfe.has_value())
      return {false, "cross-namespace copy needs Host Behavior Support to enable format " + std::to_string(want) +
                         "h: " + (dst->cdfe_error.empty() ? std::string("not read") : dst->cdfe_error)};
  } else if (s.lba_bytes != d.lba_bytes) {
    return {false,
            fmt::format("NVMe Copy needs equal block sizes (source {} B, destination {} B)", s.lba_bytes, d.lba_bytes)};
  }
  if (!has_sys_admin) return {false, "NVMe passthrough needs CAP_SYS_ADMIN"};
  (void)pol;
  ps.ok = true;
  ps.block_bytes = d.lba_bytes;
  // Each source range is bounded by its own namespace's MSSRL; the command by the destination's
  // MSRC + 1 ranges and MCL blocks (QEMU 10 checks exactly these; NVM Command Set, Copy command).
  ps.limits.max_segments_per_command = std::uint32_t{d.msrc_0based} + 1;
  ps.limits.max_segment_blocks = s.mssrl_blocks;
  ps.limits.max_command_blocks = d.mcl_blocks;
  ps.limits.contiguous_destination = true;
  ps.offload = true;
  return ps;
}

}  // namespace offcopy::nvme

namespace offcopy::detail {
backend& nvme_backend() {
  static offcopy::nvme::nvme_copy_backend b;
  return b;
}
}  // namespace offcopy::detail
