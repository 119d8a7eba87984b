// Discovery of a SCSI logical unit: INQUIRY, VPD pages, READ CAPACITY(16), copy operating
// parameters; and the /dev/sdX <-> /dev/sgN mapping through sysfs.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <optional>
#include <vector>

#include "src/core/resolve.hpp"
#include "src/core/sys.hpp"
#include "src/scsi/lu.hpp"

namespace offcopy::detail::scsi {

namespace {

constexpr unsigned probe_timeout_s = 20;

/// The path components of a sysfs link target.
std::vector<std::string> components(const std::string& p) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= p.size()) {
    const std::size_t slash = p.find('/', start);
    const std::size_t end = slash == std::string::npos ? p.size() : slash;
    if (end > start) out.push_back(p.substr(start, end - start));
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return out;
}

std::string base_name(const std::string& p) {
  auto pos = p.find_last_of('/');
  return pos == std::string::npos ? p : p.substr(pos + 1);
}

/// First entry of a sysfs directory (e.g. device/scsi_generic/sg3 -> "sg3").
std::string first_entry(const std::string& dir) {
  std::vector<std::string> names;
  if (sys().list_dir(dir.c_str(), &names) != 0 || names.empty()) return {};
  return *std::min_element(names.begin(), names.end());
}

/// Where an open device sits in sysfs: its /sys/dev/{block,char}/M:m link, read once (one fstat,
/// one readlink). A disk's link ends in ".../H:C:T:L/block/sda" (a partition's in
/// ".../block/sda/sda1"), an sg node's in ".../H:C:T:L/scsi_generic/sg3".
struct sysfs_place {
  bool block = false;
  std::string sys;                 ///< /sys/dev/block/8:0
  std::vector<std::string> parts;  ///< the link's components
  std::size_t at = 0;              ///< index of "block" / "scsi_generic" in parts (parts.size(): none)
  bool partition = false;
};

std::optional<sysfs_place> place_of(const device_state& dev) {
  struct stat st {};
  if (dev.fd < 0 || sys().fstat(dev.fd, &st) != 0) return std::nullopt;
  sysfs_place p;
  p.block = S_ISBLK(st.st_mode);
  if (!p.block && !S_ISCHR(st.st_mode)) return std::nullopt;
  p.sys = std::string(p.block ? "/sys/dev/block/" : "/sys/dev/char/") + std::to_string(major(st.st_rdev)) + ":" +
          std::to_string(minor(st.st_rdev));
  p.parts = components(link_target(p.sys));  // "../../devices/.../2:0:0:0/block/sda/sda1": one readlink
  const std::string kind_dir = p.block ? "block" : "scsi_generic";
  p.at = p.parts.size();
  for (std::size_t i = p.parts.size(); i-- > 0;) {
    if (p.parts[i] == kind_dir) {
      p.at = i;
      break;
    }
  }
  if (p.block) {
    // block/sda/sda1; a block device whose link has no "block" component (nvme0n1p1) asks sysfs.
    p.partition = p.at < p.parts.size() ? p.at + 2 < p.parts.size()
                                        : sys().faccessat(AT_FDCWD, (p.sys + "/partition").c_str(), F_OK, 0) == 0;
  }
  return p;
}

/// The SCSI device's sysfs directory (the kernel's copies of its INQUIRY data and VPD pages), or
/// empty when the device is not a SCSI disk or sg node.
std::string scsi_device_dir(const sysfs_place& p) {
  if (p.at == p.parts.size() || p.at == 0 || p.partition) return {};
  return p.sys + "/device";
}

/// Fills the sysfs facts of a device: its SCSI address, sd and sg names. A disk's sg node is what
/// its scsi_device's "generic" link names (one readlink); an sg node's disk is the one entry of
/// its device/block directory.
void fill_sysfs(const sysfs_place& p, const std::string& known_sd, lu_info& lu) {
  if (p.at == p.parts.size() || p.at + 1 >= p.parts.size()) return;
  if (p.at > 0) lu.scsi_address = p.parts[p.at - 1];
  if (p.block) {
    lu.sd_path = "/dev/" + p.parts[p.at + 1];
    const std::vector<std::string> generic = components(link_target(p.sys + "/device/generic"));
    if (!generic.empty() && generic.back().starts_with("sg")) lu.sg_path = "/dev/" + generic.back();
  } else {
    lu.sg_path = "/dev/" + p.parts[p.at + 1];
    if (!known_sd.empty()) {
      lu.sd_path = known_sd;  // found (and checked against /dev) when the node was opened
    } else if (std::string sd = first_entry(p.sys + "/device/block"); !sd.empty()) {
      lu.sd_path = "/dev/" + sd;
    }
  }
}

/// The kernel's copy of a VPD page (sysfs "vpd_pg83" etc., read at scan time), when it is there
/// and well formed. `dir`: the scsi_device directory, opened once.
std::optional<std::vector<std::uint8_t>> sysfs_vpd(int dir, std::uint8_t page) {
  char name[16];
  std::snprintf(name, sizeof name, "vpd_pg%x", page);
  auto b = read_small_binary_at(dir, name, 4096);
  if (!b || b->size() < 4 || (*b)[1] != page) return std::nullopt;
  const std::size_t len = 4 + ((std::size_t{(*b)[2]} << 8) | (*b)[3]);
  if (len < b->size()) b->resize(len);
  return b;
}

/// A directory opened for openat() (O_PATH), closed at the end of its scope.
struct dir_fd {
  explicit dir_fd(const std::string& path)
      : fd(path.empty() ? -1 : sys().open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC, 0)) {}
  ~dir_fd() {
    if (fd >= 0) sys().close(fd);
  }
  dir_fd(const dir_fd&) = delete;
  dir_fd& operator=(const dir_fd&) = delete;
  int fd;
};

}  // namespace

std::string lu_info::naa_hex() const {
  // By hand, not snprintf per byte: this runs in every SCSI probe (a per-invocation cost).
  static constexpr char digits[] = "0123456789abcdef";
  std::string s;
  s.reserve(naa.size() * 2);
  for (auto v : naa) {
    s += digits[v >> 4];
    s += digits[v & 0x0f];
  }
  return s;
}

std::string lu_info::target_address() const {
  auto pos = scsi_address.find_last_of(':');
  if (pos == std::string::npos) return {};
  return scsi_address.substr(0, pos);
}

unsigned copy_timeout_seconds(std::uint64_t bytes) noexcept {
  const std::uint64_t s = 60 + bytes / (8ULL << 20);  // 8 MiB/s worst case under TCG
  return static_cast<unsigned>(std::min<std::uint64_t>(s, 3600));
}

status run_command(transport& t, std::span<const std::uint8_t> cdb, data_direction dir, std::span<std::uint8_t> data,
                   unsigned timeout_seconds, const std::string& what, std::uint32_t* resid_bytes) {
  for (int attempt = 0;; ++attempt) {
    scsi_reply r = t.execute(cdb, dir, data, timeout_seconds);
    if (resid_bytes != nullptr) *resid_bytes = r.data_resid_bytes;
    if (r.os_errno == 0 && !r.timed_out && !r.transport_error && r.sam_status == 0x02 && attempt < 3) {
      if (auto f = parse_sense(r.sense); f && classify_sense(*f) == sense_meaning::retry) continue;
    }
    return reply_status(r, what, t.name());
  }
}

result<std::shared_ptr<lu_info>> discover(transport& t, std::optional<read_capacity16> known_capacity,
                                          const std::string& sysfs_dir) {
  auto lu = std::make_shared<lu_info>();
  // The standard INQUIRY data and VPD pages 00h and 83h: the kernel's copies when it has them
  // (it read them when it scanned the LU), else the commands. Device data either way: parsed
  // defensively, and a malformed copy is asked of the device instead.
  const dir_fd sysfs(sysfs_dir);
  if (sysfs.fd >= 0) {
    if (auto b = read_small_binary_at(sysfs.fd, "inquiry", 255)) lu->inquiry = parse_standard_inquiry(*b);
    lu->from_sysfs = lu->inquiry.has_value();
  }
  std::vector<std::uint8_t> buf(252);
  if (!lu->inquiry) {
    auto cdb = inquiry_cdb(false, 0, static_cast<std::uint16_t>(buf.size()));
    if (auto s = run_command(t, cdb, data_direction::from_device, buf, probe_timeout_s, "INQUIRY"); !s.ok()) return s;
    lu->inquiry = parse_standard_inquiry(buf);
    if (!lu->inquiry) return status(errc::device_error, "INQUIRY " + t.name() + ": short reply");
  }
  auto vpd = [&](std::uint8_t page, std::vector<std::uint8_t>& out) -> bool {
    if (lu->from_sysfs && (page == 0x00 || page == 0x83)) {
      if (auto b = sysfs_vpd(sysfs.fd, page)) {
        out = std::move(*b);
        return true;
      }
    }
    out.assign(1024, 0);
    auto cdb = inquiry_cdb(true, page, static_cast<std::uint16_t>(out.size()));
    std::uint32_t resid = 0;
    if (!run_command(t, cdb, data_direction::from_device, out, probe_timeout_s, "INQUIRY VPD", &resid).ok())
      return false;
    if (resid < out.size()) out.resize(out.size() - resid);
    return out.size() >= 4 && out[1] == page;
  };
  std::vector<std::uint8_t> page;
  if (vpd(0x00, page)) lu->vpd_pages = parse_supported_vpd_pages(page);
  const auto listed = [&](std::uint8_t p) {
    return lu->vpd_pages.empty() || std::find(lu->vpd_pages.begin(), lu->vpd_pages.end(), p) != lu->vpd_pages.end();
  };
  if (listed(0x83) && vpd(0x83, page)) {
    if (auto naa = parse_vpd83_lu_naa(page)) lu->naa = *naa;
  }
  // VPD 0x8F only when listed: asking for an unlisted page is an error on some devices.
  if (!lu->vpd_pages.empty() && listed(0x8F) && vpd(0x8F, page)) lu->tpc = parse_vpd8f(page);
  if (known_capacity) {
    lu->capacity = known_capacity;
  } else {
    std::vector<std::uint8_t> cap(32, 0);
    auto cdb = read_capacity16_cdb(static_cast<std::uint32_t>(cap.size()));
    if (run_command(t, cdb, data_direction::from_device, cap, probe_timeout_s, "READ CAPACITY(16)").ok())
      lu->capacity = parse_read_capacity16(cap);
  }
  {
    std::vector<std::uint8_t> rcop(1024, 0);
    auto cdb = receive_copy_operating_parameters_cdb(static_cast<std::uint32_t>(rcop.size()));
    auto s =
        run_command(t, cdb, data_direction::from_device, rcop, probe_timeout_s, "RECEIVE COPY OPERATING PARAMETERS");
    if (s.ok()) {
      lu->rcop = parse_copy_operating_parameters(rcop);
      if (!lu->rcop) lu->rcop_error = "RECEIVE COPY OPERATING PARAMETERS: malformed reply";
    } else {
      lu->rcop_error = s.message();
    }
  }
  return lu;
}

std::shared_ptr<lu_info> lu_of(const device_state& dev) {
  for (const char* b : {"scsi-xcopy", "scsi-token"}) {
    if (dev.get<lu_info>(b) != nullptr) return std::static_pointer_cast<lu_info>(dev.data_of(b));
  }
  return nullptr;
}

std::shared_ptr<lu_info> probe_lu(device_state& dev) {
  if (auto lu = lu_of(dev)) return lu;
  const std::optional<sysfs_place> place = place_of(dev);
  if (place && place->partition) return nullptr;
  auto t = open_transport(dev);
  if (!t) return nullptr;
  // A disk's block device already knows its capacity (BLKGETSIZE64, BLKSSZGET, BLKPBSZGET at
  // open), and so does an sg node whose disk was found at open (its sysfs size and queue block
  // sizes): one SCSI command fewer per device (issue 11 fixed cost). An sg node without a disk
  // asks the device.
  std::optional<read_capacity16> known;
  const capabilities& c = dev.caps;
  const bool sized_disk = c.kind == device_kind::block_device && c.parent_path.empty();
  const bool sized_sg = c.kind == device_kind::scsi_generic && !c.block_path.empty();
  if ((sized_disk || sized_sg) && c.logical_block_bytes >= 512 && c.size_bytes >= c.logical_block_bytes) {
    std::uint8_t log2 = 0;
    while (log2 < 15 && (std::uint64_t{c.logical_block_bytes} << (log2 + 1)) <= c.physical_block_bytes) ++log2;
    known = read_capacity16{c.size_bytes / c.logical_block_bytes - 1, c.logical_block_bytes, log2};
  }
  auto found = discover(*t, known, place ? scsi_device_dir(*place) : std::string());
  if (!found.ok()) return nullptr;
  auto lu = std::move(found).value();
  // Only direct-access block devices (peripheral type 0) copy blocks.
  if (lu->inquiry->peripheral_qualifier != 0 || lu->inquiry->peripheral_type != 0) return nullptr;
  const std::string known_sd = dev.caps.kind == device_kind::scsi_generic ? dev.caps.block_path : std::string();
  if (place) fill_sysfs(*place, known_sd, *lu);
  if (dev.caps.kind == device_kind::scsi_generic) {
    // The core cannot size a char device: we do, and map it to its block device.
    if (lu->capacity) {
      dev.caps.size_bytes = lu->capacity->size_bytes();
      dev.caps.logical_block_bytes = lu->capacity->block_bytes;
      dev.caps.physical_block_bytes = lu->capacity->block_bytes << lu->capacity->physical_per_logical_log2;
      dev.caps.direct_io_align_bytes = lu->capacity->block_bytes;
    }
    if (known_sd.empty() && !lu->sd_path.empty()) {  // a disk found at open is already the identity
      dev.caps.block_path = lu->sd_path;
      std::string majmin = read_first_line("/sys/block/" + base_name(lu->sd_path) + "/dev");
      unsigned ma = 0, mi = 0;
      if (std::sscanf(majmin.c_str(), "%u:%u", &ma, &mi) == 2) dev.caps.identity = block_medium_identity(ma, mi);
    }
  }
  dev.set("scsi-xcopy", lu);
  dev.set("scsi-token", lu);
  return lu;
}

}  // namespace offcopy::detail::scsi
