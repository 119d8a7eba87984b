// Host Behavior Support: see host_behavior.hpp.
#include "src/nvme/host_behavior.hpp"

#include <array>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "src/nvme/nvme_status.hpp"

namespace offcopy::nvme {
namespace {

/// An admin completion that failed → status (Get/Set Features of feature 16h).
status admin_failure(const io_completion& c, const char* what) {
  if (c.sys_errno != 0) {
    std::string msg = fmt::format("{} Host Behavior Support (feature 16h): {}", what, std::strerror(c.sys_errno));
    if (c.sys_errno == EACCES || c.sys_errno == EPERM)
      return status(errc::not_supported, msg + " (needs CAP_SYS_ADMIN)", c.sys_errno);
    if (c.sys_errno == ENOTTY || c.sys_errno == EOPNOTSUPP || c.sys_errno == EINVAL)
      return status(errc::not_supported, std::move(msg), c.sys_errno);
    return status(errc::io_error, std::move(msg), c.sys_errno);
  }
  nvme_status_detail d = decode_status(c.raw_status, c.dw0);
  // Invalid Field (the feature is unknown) and the like: this controller cannot enable 2h/3h.
  std::string msg = fmt::format("{} Host Behavior Support (feature 16h): NVMe status SCT {:#x} SC {:#04x} ({})", what,
                                d.sct, d.sc, d.name);
  return status(errc::not_supported, std::move(msg)).with_nvme(std::move(d));
}

result<std::array<std::uint8_t, host_behavior_bytes>> get_structure(const admin_runner& admin) {
  std::array<std::uint8_t, host_behavior_bytes> buf{};
  const io_completion c = admin(get_host_behavior_command(buf));
  if (c.sys_errno != 0 || c.raw_status != 0) return admin_failure(c, "Get Features");
  return buf;
}

}  // namespace

std::uint16_t cdfe_of(std::span<const std::uint8_t> hbs) noexcept {
  if (hbs.size() < cdfe_offset + 2) return 0;
  return static_cast<std::uint16_t>(hbs[cdfe_offset] | (hbs[cdfe_offset + 1] << 8));
}

void put_cdfe(std::span<std::uint8_t> hbs, std::uint16_t cdfe) noexcept {
  if (hbs.size() < cdfe_offset + 2) return;
  hbs[cdfe_offset] = static_cast<std::uint8_t>(cdfe);
  hbs[cdfe_offset + 1] = static_cast<std::uint8_t>(cdfe >> 8);
}

std::string cdfe_formats(std::uint16_t cdfe) {
  std::string out;
  for (unsigned f = 0; f < 16; ++f) {
    if ((cdfe & (1u << f)) == 0) continue;
    if (!out.empty()) out += ' ';
    out += fmt::format("{:x}h", f);
  }
  return out.empty() ? "none" : out;
}

admin_command get_host_behavior_command(std::span<std::uint8_t> buffer) noexcept {
  admin_command c;
  c.opcode = admin_get_features;
  c.cdw10 = feature_host_behavior;  // bits 7:0 FID, bits 10:8 SEL = 000b (current)
  c.data = buffer.data();
  c.data_bytes = static_cast<std::uint32_t>(std::min(buffer.size(), host_behavior_bytes));
  return c;
}

admin_command set_host_behavior_command(std::span<std::uint8_t> buffer) noexcept {
  admin_command c;
  c.opcode = admin_set_features;
  c.cdw10 = feature_host_behavior;  // bits 7:0 FID, bit 31 SV = 0 (not saved across resets)
  c.data = buffer.data();
  c.data_bytes = static_cast<std::uint32_t>(std::min(buffer.size(), host_behavior_bytes));
  return c;
}

result<std::uint16_t> read_cdfe(const admin_runner& admin) {
  auto r = get_structure(admin);
  if (!r.ok()) return std::move(r).error();
  return cdfe_of(r.value());
}

result<cdfe_update> enable_cdfe(const admin_runner& admin, std::uint16_t bits) {
  auto r = get_structure(admin);
  if (!r.ok()) return std::move(r).error();
  auto buf = r.value();
  cdfe_update u;
  u.before = cdfe_of(buf);
  u.after = u.before;
  if ((u.before & bits) == bits) return u;
  // Read-modify-write: the rest of the structure (ACRE, LBAFEE, ...) goes back as it came.
  put_cdfe(buf, static_cast<std::uint16_t>(u.before | bits));
  const io_completion c = admin(set_host_behavior_command(buf));
  if (c.sys_errno != 0 || c.raw_status != 0) return admin_failure(c, "Set Features");
  u.changed = true;
  auto back = get_structure(admin);
  if (!back.ok()) return std::move(back).error();
  u.after = cdfe_of(back.value());
  if ((u.after & bits) != bits)
    return status(
        errc::not_supported,
        fmt::format("Host Behavior Support: CDFE is {:#x} after setting {:#x} (the controller did not keep it)",
                    u.after, u.before | bits));
  return u;
}

}  // namespace offcopy::nvme
