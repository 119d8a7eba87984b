// NVMe Copy backend: probe (Identify through libnvme), pair check, session on ioctl or io_uring.
#include "src/nvme/nvme_backend.hpp"

#include <fcntl.h>
#include <linux/capability.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

// libnvme 1.3 headers have no extern "C" guards.
extern "C" {
#include <nvme/ioctl.h>
#include <nvme/types.h>
}

#include <cerrno>
#include <climits>
#include <cstring>
#include <fstream>

#include <fmt/format.h>

#include "src/nvme/copy_session.hpp"
#include "src/nvme/transport.hpp"

namespace offcopy::nvme {
namespace {

std::string real_path(const std::string& p) {
  char buf[PATH_MAX];
  if (::realpath(p.c_str(), buf) == nullptr) return {};
  return buf;
}

std::string base_name(const std::string& p) {
  auto pos = p.find_last_of('/');
  return pos == std::string::npos ? p : p.substr(pos + 1);
}

std::string dir_name(const std::string& p) {
  auto pos = p.find_last_of('/');
  return pos == std::string::npos ? std::string() : p.substr(0, pos);
}

std::string read_line(const std::string& path) {
  std::ifstream f(path);
  std::string s;
  if (f) std::getline(f, s);
  return s;
}

bool is_char_device(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISCHR(st.st_mode);
}

/// "nvme0n1" → "ng0n1" (the generic char device mirrors the disk name).
std::string char_name_of(const std::string& disk) {
  return disk.rfind("nvme", 0) == 0 ? "ng" + disk.substr(4) : std::string();
}
/// "ng0n1" → "nvme0n1".
std::string disk_name_of(const std::string& chr) {
  return chr.rfind("ng", 0) == 0 ? "nvme" + chr.substr(2) : std::string();
}

class nvme_copy_backend final : public detail::backend {
 public:
  backend_kind kind() const noexcept override { return backend_kind::nvme_copy; }

  void probe(detail::device_state& dev) override {
    capabilities& caps = dev.caps;
    if (caps.kind != device_kind::block_device && caps.kind != device_kind::nvme_char) return;
    struct stat st {};
    if (::fstat(dev.fd, &st) != 0) return;
    auto data = std::make_shared<nvme_device_data>();
    const bool is_char = caps.kind == device_kind::nvme_char;
    // sysfs node of the namespace (a partition's parent for partitions); its parent directory is the
    // controller (or the multipath subsystem), the scope within which Copy can read.
    std::string sys = real_path(fmt::format("/sys/dev/{}/{}:{}", is_char ? "char" : "block", major(st.st_rdev),
                                            minor(st.st_rdev)));
    if (!is_char && !read_line(sys + "/partition").empty()) {
      sys = dir_name(sys);
      data->partition_start_bytes = caps.partition_start_bytes;
    }
    const std::string node = base_name(sys);
    data->controller = base_name(dir_name(sys));
    data->disk_name = is_char ? disk_name_of(node) : node;
    if (data->disk_name.rfind("nvme", 0) != 0) return;  // not an NVMe namespace: nothing to offer
    const std::string chr = "/dev/" + char_name_of(data->disk_name);
    if (is_char) {
      data->char_path = caps.path;
    } else if (is_char_device(chr)) {
      data->char_path = chr;
    }

    offload_mechanism m;
    m.backend = backend_kind::nvme_copy;
    __u32 nsid = 0;
    if (nvme_get_nsid(dev.fd, &nsid) != 0) {
      m.reason = fmt::format("NVME_IOCTL_ID failed: {}", std::strerror(errno));
      caps.offload.push_back(std::move(m));
      dev.set(backend_kind::nvme_copy, data);
      return;
    }
    data->info.nsid = nsid;
    std::vector<std::uint8_t> ctrl(identify_bytes), ns(identify_bytes), nvm(identify_bytes);
    int rc = nvme_identify_ctrl(dev.fd, reinterpret_cast<nvme_id_ctrl*>(ctrl.data()));
    if (rc == 0) rc = nvme_identify_ns(dev.fd, nsid, reinterpret_cast<nvme_id_ns*>(ns.data()));
    if (rc != 0) {
      const int err = errno;
      m.reason = rc < 0 ? fmt::format("Identify failed: {}{}", std::strerror(err),
                                      err == EACCES || err == EPERM ? " (needs CAP_SYS_ADMIN)" : "")
                        : fmt::format("Identify failed: NVMe status {:#x}", rc);
      m.details = {{"nsid", std::to_string(nsid)}};
      caps.offload.push_back(std::move(m));
      dev.set(backend_kind::nvme_copy, data);
      return;
    }
    std::span<const std::uint8_t> nvm_span;
    {
      // The NVM-specific Identify Namespace (CNS 05h) gives the PI format; only needed with PI.
      const auto* n = reinterpret_cast<const nvme_id_ns*>(ns.data());
      if ((n->dps & 7) != 0 && nvme_identify_ns_csi(dev.fd, nsid, 0, NVME_CSI_NVM, nvm.data()) == 0)
        nvm_span = nvm;
    }
    (void)parse_identify(ctrl, ns, nvm_span, nsid, data->info);
    data->identified = true;
    m = to_mechanism(data->info);
    if (data->info.copy_usable && data->partition_start_bytes % data->info.lba_bytes != 0) {
      m.available = false;
      m.reason = "partition start is not a multiple of the namespace block size";
      data->info.copy_usable = false;
      data->info.reason = m.reason;
    }
    if (!data->char_path.empty()) m.details.emplace_back("char_device", data->char_path);
    m.details.emplace_back("controller_node", data->controller);
    if (data->partition_start_bytes != 0)
      m.details.emplace_back("partition_start_lba", std::to_string(data->partition_start_bytes / data->info.lba_bytes));

    if (is_char) {
      // The core cannot describe a char device; the namespace can.
      caps.logical_block_bytes = data->info.lba_bytes;
      caps.physical_block_bytes = data->info.lba_bytes;
      caps.direct_io_align_bytes = data->info.lba_bytes;
      caps.size_bytes = data->info.nsze_blocks * data->info.lba_bytes;
      const std::string blk = "/dev/" + data->disk_name;
      struct stat bst {};
      if (::stat(blk.c_str(), &bst) == 0 && S_ISBLK(bst.st_mode)) {
        caps.block_path = blk;
        caps.identity = fmt::format("blk:{}:{}", major(bst.st_rdev), minor(bst.st_rdev));
      } else {
        caps.identity = fmt::format("nvme-ns:{}:{}:{}", data->controller, data->info.serial, nsid);
      }
    }
    caps.offload.push_back(std::move(m));
    dev.set(backend_kind::nvme_copy, data);
  }

  detail::pair_support check(const detail::device_state& src, const detail::device_state& dst,
                             const policy& pol) const override {
    return check_pair(src.get<nvme_device_data>(backend_kind::nvme_copy),
                      dst.get<nvme_device_data>(backend_kind::nvme_copy), pol, has_cap_sys_admin());
  }

  result<std::unique_ptr<detail::copy_session>> open_session(detail::device_state& src, detail::device_state& dst,
                                                             const policy& pol) override {
    const auto* s = src.get<nvme_device_data>(backend_kind::nvme_copy);
    const auto* d = dst.get<nvme_device_data>(backend_kind::nvme_copy);
    detail::pair_support ps = check_pair(s, d, pol, has_cap_sys_admin());
    if (!ps.ok) return status(errc::not_supported, ps.reason);
    session_params p;
    p.nsid = d->info.nsid;
    p.descriptor_format = d->info.descriptor_format;
    if (s->info.nsid != d->info.nsid) {
      p.source_nsid = s->info.nsid;
      p.descriptor_format = static_cast<std::uint8_t>(p.descriptor_format + 2);
    }
    p.src_offset_blocks = s->partition_start_bytes / s->info.lba_bytes;
    p.dst_offset_blocks = d->partition_start_bytes / d->info.lba_bytes;
    p.pi_regenerate = d->info.pi_type != 0;
    p.reference_tag_bits = reference_tag_bits(d->info.pi_format);
    p.flush_on_finish = pol.sync;

    std::unique_ptr<transport> t;
    if (pol.submit != submission::synchronous && !d->char_path.empty()) {
      // Async needs the char device; a namespace opened as its block device opens its twin.
      const bool own = dst.caps.kind != device_kind::nvme_char;
      int fd = own ? ::open(d->char_path.c_str(), O_RDWR | O_CLOEXEC) : dst.fd;
      if (fd >= 0) {
        auto r = make_uring_transport(fd, pol.commands_in_flight ? pol.commands_in_flight : 1);
        if (r.ok()) {
          t = std::make_unique<owning_transport>(std::move(r.value()), own ? fd : -1);
        } else {
          if (own) ::close(fd);
          if (pol.submit == submission::asynchronous) return std::move(r).error();
        }
      } else if (pol.submit == submission::asynchronous) {
        return errno_status(errno, "open " + d->char_path);
      }
    } else if (pol.submit == submission::asynchronous) {
      return status(errc::not_supported,
                    fmt::format("asynchronous NVMe Copy needs the char device of {}", dst.caps.path));
    }
    if (!t) t = make_ioctl_transport(dst.fd);
    return std::unique_ptr<detail::copy_session>(std::make_unique<copy_session>(std::move(t), p));
  }

 private:
  /// A transport that also closes the char device it was opened on.
  class owning_transport final : public transport {
   public:
    owning_transport(std::unique_ptr<transport> inner, int fd) : inner_(std::move(inner)), fd_(fd) {}
    ~owning_transport() override {
      inner_.reset();
      if (fd_ >= 0) ::close(fd_);
    }
    owning_transport(const owning_transport&) = delete;
    owning_transport& operator=(const owning_transport&) = delete;
    unsigned queue_depth() const noexcept override { return inner_->queue_depth(); }
    const char* name() const noexcept override { return inner_->name(); }
    status submit(const io_command& c) override { return inner_->submit(c); }
    status reap(unsigned n, std::vector<io_completion>& out) override { return inner_->reap(n, out); }

   private:
    std::unique_ptr<transport> inner_;
    int fd_;
  };
};

}  // namespace

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
    return {false,
            "destination: " + (dst->info.reason.empty() ? std::string("not identified") : dst->info.reason)};
  if (src->controller != dst->controller || src->info.serial != dst->info.serial)
    return {false, fmt::format("source and destination are on different NVMe controllers ({}, {})", src->controller,
                               dst->controller)};
  if (src->info.lba_bytes != dst->info.lba_bytes)
    return {false, fmt::format("NVMe Copy needs equal block sizes (source {} B, destination {} B)",
                               src->info.lba_bytes, dst->info.lba_bytes)};
  if (src->info.nsid != dst->info.nsid) {
    const std::uint8_t want = static_cast<std::uint8_t>(dst->info.descriptor_format + 2);
    if ((dst->info.ocfs & (1u << want)) == 0)
      return {false, fmt::format("cross-namespace copy needs descriptor format 2h/3h, controller OCFS={}",
                                 hex(dst->info.ocfs))};
    if (src->info.pi_type != dst->info.pi_type || src->info.metadata_bytes != dst->info.metadata_bytes)
      return {false, "cross-namespace copy between different metadata/PI formats"};
  }
  if (!has_sys_admin) return {false, "NVMe passthrough needs CAP_SYS_ADMIN"};
  (void)pol;
  ps.ok = true;
  ps.block_bytes = dst->info.lba_bytes;
  ps.limits.max_segments_per_command = std::uint32_t{dst->info.msrc_0based} + 1;
  ps.limits.max_segment_blocks = dst->info.mssrl_blocks;
  ps.limits.max_command_blocks = dst->info.mcl_blocks;
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
