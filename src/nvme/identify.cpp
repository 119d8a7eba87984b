// Identify parsing: see identify.hpp.
#include "src/nvme/identify.hpp"

#include <nvme/types.h>

#include <cstring>

#include <fmt/format.h>

namespace offcopy::nvme {
namespace {

std::string trimmed(const char* p, std::size_t n) {
  std::string s(p, strnlen(p, n));
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.pop_back();
  return s;
}

}  // namespace

std::string hex(std::uint32_t v) { return fmt::format("{:#x}", v); }

bool parse_identify(std::span<const std::uint8_t> id_ctrl, std::span<const std::uint8_t> id_ns,
                    std::span<const std::uint8_t> nvm_id_ns, std::uint32_t nsid, namespace_info& out) {
  namespace_info info;
  info.nsid = nsid;
  if (id_ctrl.size() < sizeof(nvme_id_ctrl) || id_ns.size() < sizeof(nvme_id_ns)) {
    info.reason = "Identify data too short";
    out = std::move(info);
    return false;
  }
  static_assert(sizeof(nvme_id_ctrl) == identify_bytes && sizeof(nvme_id_ns) == identify_bytes);
  static_assert(offsetof(nvme_id_ctrl, oncs) == 520 && offsetof(nvme_id_ctrl, ocfs) == 534);
  static_assert(offsetof(nvme_id_ns, mssrl) == 74 && offsetof(nvme_id_ns, mcl) == 76 &&
                offsetof(nvme_id_ns, msrc) == 80);
  nvme_id_ctrl c;
  std::memcpy(&c, id_ctrl.data(), sizeof c);
  nvme_id_ns n;
  std::memcpy(&n, id_ns.data(), sizeof n);

  info.oncs = c.oncs;  // little-endian host (static_assert in copy_encode.hpp)
  info.ocfs = c.ocfs;
  info.cntlid = c.cntlid;
  info.serial = trimmed(c.sn, sizeof c.sn);
  info.model = trimmed(c.mn, sizeof c.mn);

  info.nsze_blocks = n.nsze;
  info.mssrl_blocks = n.mssrl;
  info.mcl_blocks = n.mcl;
  info.msrc_0based = n.msrc;
  // FLBAS bits 3:0 are the low index bits, bits 6:5 the high ones (more than 16 formats).
  info.lba_format_index = static_cast<std::uint8_t>((n.flbas & 0x0f) | ((n.flbas & 0x60) >> 1));
  const std::uint8_t idx = info.lba_format_index < 64 ? info.lba_format_index : 0;
  const std::uint8_t ds = n.lbaf[idx].ds;
  info.lba_bytes = (ds >= 9 && ds < 32) ? (1u << ds) : 0;
  info.metadata_bytes = n.lbaf[idx].ms;
  info.metadata_extended = (n.flbas & 0x10) != 0;
  info.pi_type = n.dps & 7;
  info.pi_first = (n.dps & 8) != 0;
  if (info.pi_type != 0 && nvm_id_ns.size() >= sizeof(nvme_nvm_id_ns)) {
    nvme_nvm_id_ns v;
    std::memcpy(&v, nvm_id_ns.data(), sizeof v);
    info.pi_format = static_cast<std::uint8_t>((v.elbaf[idx] >> 7) & 3);
  }
  evaluate(info);
  out = std::move(info);
  return true;
}

void evaluate(namespace_info& info) {
  info.copy_usable = false;
  info.descriptor_format = (info.pi_type != 0 && info.pi_format != 0) ? 1 : 0;
  if ((info.oncs & (1u << 8)) == 0) {
    info.reason = fmt::format("controller does not support Copy (ONCS={} has bit 8 clear)", hex(info.oncs));
  } else if ((info.ocfs & (1u << info.descriptor_format)) == 0) {
    info.reason =
        fmt::format("controller lacks Copy descriptor format {}h (OCFS={})", info.descriptor_format, hex(info.ocfs));
  } else if (info.mssrl_blocks == 0 || info.mcl_blocks == 0) {
    info.reason = fmt::format("namespace {} reports no usable Copy limits (MSSRL={}, MCL={}, MSRC={})", info.nsid,
                              info.mssrl_blocks, info.mcl_blocks, info.msrc_0based);
  } else if (info.lba_bytes == 0) {
    info.reason = "namespace LBA format has an invalid data size";
  } else if (info.pi_type > 3 || info.pi_format > 2) {
    info.reason = fmt::format("unknown protection information type {} / format {}", info.pi_type, info.pi_format);
  } else {
    info.copy_usable = true;
    info.reason.clear();
  }
}

offload_mechanism to_mechanism(const namespace_info& info) {
  offload_mechanism m;
  m.backend = "nvme-copy";
  m.available = info.copy_usable;
  m.reason = info.reason;
  if (info.copy_usable) {
    m.limits.max_segments_per_command = std::uint32_t{info.msrc_0based} + 1;
    m.limits.max_segment_blocks = info.mssrl_blocks;
    m.limits.max_command_blocks = info.mcl_blocks;
    m.limits.contiguous_destination = true;
  }
  static const char* const pi_names[] = {"none", "type1", "type2", "type3"};
  static const char* const pif_names[] = {"16b-guard", "32b-guard", "64b-guard", "reserved"};
  m.details = {
      {"nsid", std::to_string(info.nsid)},
      {"oncs", hex(info.oncs)},
      {"ocfs", hex(info.ocfs)},
      {"mssrl", std::to_string(info.mssrl_blocks)},
      {"mcl", std::to_string(info.mcl_blocks)},
      {"msrc_0based", std::to_string(info.msrc_0based)},
      {"lba_bytes", std::to_string(info.lba_bytes)},
      {"metadata_bytes", std::to_string(info.metadata_bytes)},
      {"pi", pi_names[info.pi_type & 3]},
  };
  if (info.pi_type != 0) m.details.emplace_back("pif", pif_names[info.pi_format & 3]);
  m.details.emplace_back("descriptor_format", fmt::format("{}h", info.descriptor_format));
  m.details.emplace_back("controller", fmt::format("{} cntlid {}", info.serial, info.cntlid));
  return m;
}

}  // namespace offcopy::nvme
