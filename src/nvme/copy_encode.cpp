// NVMe Copy encoder: see copy_encode.hpp.
#include "src/nvme/copy_encode.hpp"

#include <cstring>

#include <fmt/format.h>

namespace offcopy::nvme {
namespace {

bool fail(std::string* why, std::string text) {
  if (why) *why = std::move(text);
  return false;
}

/// The 80-bit ELBST/EILBRT field of formats 1h/3h (bytes 35:26) is stored most-significant byte
/// first, unlike every other field of the entry: QEMU 10 reads the 48-bit reference tag as
/// sr[4] << 40 | ... | sr[9] (hw/nvme/ctrl.c nvme_copy_source_range_parse_format1_3) and libnvme
/// 1.7+ writes elbt[9 - i] = byte i of the tag (src/nvme/util.c nvme_init_copy_range_elbt). Bits
/// 79:64 (`high`) come first, bits 7:0 of `low` last.
void put_80bit(std::uint8_t (&dst)[10], std::uint64_t low, std::uint16_t high) {
  dst[0] = static_cast<std::uint8_t>(high >> 8);
  dst[1] = static_cast<std::uint8_t>(high);
  for (int i = 0; i < 8; ++i) dst[2 + i] = static_cast<std::uint8_t>(low >> (56 - 8 * i));
}

void get_80bit(const std::uint8_t (&src)[10], std::uint64_t& low, std::uint16_t& high) {
  high = static_cast<std::uint16_t>((src[0] << 8) | src[1]);
  low = 0;
  for (int i = 0; i < 8; ++i) low = (low << 8) | src[2 + i];
}

template <class Entry>
void append(std::vector<std::uint8_t>& out, const Entry& e) {
  const auto* p = reinterpret_cast<const std::uint8_t*>(&e);
  out.insert(out.end(), p, p + sizeof(Entry));
}

}  // namespace

bool encode_copy_dwords(const copy_fields& f, copy_dwords& out, std::string* why) {
  if (f.ranges < 1 || f.ranges > max_ranges_per_command)
    return fail(why, fmt::format("copy with {} source ranges (1..256)", f.ranges));
  if (f.format > 3) return fail(why, fmt::format("descriptor format {}h unknown", f.format));
  if (f.prinfor > 15 || f.prinfow > 15 || f.dtype > 15) return fail(why, "PRINFO/DTYPE field over 4 bits");
  copy_dwords d;
  d.cdw3 = static_cast<std::uint32_t>(f.ilbrt >> 32);
  d.cdw10 = static_cast<std::uint32_t>(f.sdlba);
  d.cdw11 = static_cast<std::uint32_t>(f.sdlba >> 32);
  d.cdw12 = (f.ranges - 1) & 0xffu;                   // bits 7:0 NR, 0-based
  d.cdw12 |= std::uint32_t{f.format} << 8;            // bits 11:8 descriptor format
  d.cdw12 |= std::uint32_t{f.prinfor} << 12;          // bits 15:12 PRINFOR
  d.cdw12 |= std::uint32_t{f.dtype} << 20;            // bits 23:20 DTYPE
  d.cdw12 |= std::uint32_t{f.stcw} << 24;             // bit 24 STCW
  d.cdw12 |= std::uint32_t{f.prinfow} << 26;          // bits 29:26 PRINFOW
  d.cdw12 |= std::uint32_t{f.fua} << 30;              // bit 30 FUA
  d.cdw12 |= std::uint32_t{f.limited_retry} << 31;    // bit 31 LR
  d.cdw13 = std::uint32_t{f.dspec} << 16;             // bits 31:16 DSPEC
  d.cdw14 = static_cast<std::uint32_t>(f.ilbrt);      // ILBRT bits 31:0
  d.cdw15 = f.lbat | (std::uint32_t{f.lbatm} << 16);  // LBAT 15:0, LBATM 31:16
  out = d;
  return true;
}

copy_fields decode_copy_dwords(const copy_dwords& d) noexcept {
  copy_fields f;
  f.sdlba = d.cdw10 | (std::uint64_t{d.cdw11} << 32);
  f.ranges = (d.cdw12 & 0xffu) + 1;
  f.format = static_cast<std::uint8_t>((d.cdw12 >> 8) & 0xf);
  f.prinfor = static_cast<std::uint8_t>((d.cdw12 >> 12) & 0xf);
  f.dtype = static_cast<std::uint8_t>((d.cdw12 >> 20) & 0xf);
  f.stcw = (d.cdw12 >> 24) & 1;
  f.prinfow = static_cast<std::uint8_t>((d.cdw12 >> 26) & 0xf);
  f.fua = (d.cdw12 >> 30) & 1;
  f.limited_retry = (d.cdw12 >> 31) & 1;
  f.dspec = static_cast<std::uint16_t>(d.cdw13 >> 16);
  f.ilbrt = d.cdw14 | (std::uint64_t{d.cdw3} << 32);
  f.lbat = static_cast<std::uint16_t>(d.cdw15);
  f.lbatm = static_cast<std::uint16_t>(d.cdw15 >> 16);
  return f;
}

bool encode_ranges(std::uint8_t format, std::span<const source_range> ranges, std::vector<std::uint8_t>& out,
                   std::string* why) {
  if (range_entry_bytes(format) == 0) return fail(why, fmt::format("descriptor format {}h unknown", format));
  if (ranges.empty() || ranges.size() > max_ranges_per_command)
    return fail(why, fmt::format("copy with {} source ranges (1..256)", ranges.size()));
  std::vector<std::uint8_t> bytes;
  bytes.reserve(ranges.size() * range_entry_bytes(format));
  for (std::size_t i = 0; i < ranges.size(); ++i) {
    const source_range& r = ranges[i];
    if (r.blocks < 1 || r.blocks > max_blocks_per_range)
      return fail(why, fmt::format("source range {} has {} blocks (1..65536)", i, r.blocks));
    const auto nlb = static_cast<std::uint16_t>(r.blocks - 1);  // 0-based
    switch (format) {
      case 0: {
        range_entry_f0 e{};
        e.slba = r.slba;
        e.nlb_0based = nlb;
        e.eilbrt = static_cast<std::uint32_t>(r.eilbrt);
        e.elbat = r.elbat;
        e.elbatm = r.elbatm;
        append(bytes, e);
        break;
      }
      case 1: {
        range_entry_f1 e{};
        e.slba = r.slba;
        e.nlb_0based = nlb;
        put_80bit(e.elbst_eilbrt, r.eilbrt, r.elbst_eilbrt_hi);
        e.elbat = r.elbat;
        e.elbatm = r.elbatm;
        append(bytes, e);
        break;
      }
      case 2: {
        range_entry_f2 e{};
        e.snsid = r.snsid;
        e.slba = r.slba;
        e.nlb_0based = nlb;
        e.sopt = r.sopt;
        e.eilbrt = static_cast<std::uint32_t>(r.eilbrt);
        e.elbat = r.elbat;
        e.elbatm = r.elbatm;
        append(bytes, e);
        break;
      }
      default: {
        range_entry_f3 e{};
        e.snsid = r.snsid;
        e.slba = r.slba;
        e.nlb_0based = nlb;
        e.sopt = r.sopt;
        put_80bit(e.elbst_eilbrt, r.eilbrt, r.elbst_eilbrt_hi);
        e.elbat = r.elbat;
        e.elbatm = r.elbatm;
        append(bytes, e);
        break;
      }
    }
  }
  out = std::move(bytes);
  return true;
}

bool decode_range(std::uint8_t format, std::span<const std::uint8_t> bytes, source_range& out) {
  const std::size_t n = range_entry_bytes(format);
  if (n == 0 || bytes.size() < n) return false;
  source_range r;
  switch (format) {
    case 0: {
      range_entry_f0 e;
      std::memcpy(&e, bytes.data(), sizeof e);
      r.slba = e.slba;
      r.blocks = e.nlb_0based + 1u;
      r.eilbrt = e.eilbrt;
      r.elbat = e.elbat;
      r.elbatm = e.elbatm;
      break;
    }
    case 1: {
      range_entry_f1 e;
      std::memcpy(&e, bytes.data(), sizeof e);
      r.slba = e.slba;
      r.blocks = e.nlb_0based + 1u;
      get_80bit(e.elbst_eilbrt, r.eilbrt, r.elbst_eilbrt_hi);
      r.elbat = e.elbat;
      r.elbatm = e.elbatm;
      break;
    }
    case 2: {
      range_entry_f2 e;
      std::memcpy(&e, bytes.data(), sizeof e);
      r.snsid = e.snsid;
      r.slba = e.slba;
      r.blocks = e.nlb_0based + 1u;
      r.sopt = e.sopt;
      r.eilbrt = e.eilbrt;
      r.elbat = e.elbat;
      r.elbatm = e.elbatm;
      break;
    }
    default: {
      range_entry_f3 e;
      std::memcpy(&e, bytes.data(), sizeof e);
      r.snsid = e.snsid;
      r.slba = e.slba;
      r.blocks = e.nlb_0based + 1u;
      r.sopt = e.sopt;
      get_80bit(e.elbst_eilbrt, r.eilbrt, r.elbst_eilbrt_hi);
      r.elbat = e.elbat;
      r.elbatm = e.elbatm;
      break;
    }
  }
  out = r;
  return true;
}

}  // namespace offcopy::nvme
