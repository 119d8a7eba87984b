// NVMe Copy (opcode 19h) wire format: source range entries (formats 0h-3h) and command dwords.
// Pure functions, no I/O. Offsets follow NVM Command Set spec 1.0 §3.2.2 (see DESIGN.md §2).
// libnvme 1.3's copy helpers are not used: they swap the application-tag fields, truncate the
// 64-bit reference tag and wrap nr = 0 to 256.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace offcopy::nvme {

inline constexpr std::uint8_t copy_opcode = 0x19;
inline constexpr std::uint32_t max_ranges_per_command = 256;  // NR is 8 bits, 0-based
inline constexpr std::uint32_t max_blocks_per_range = 65536;  // NLB is 16 bits, 0-based

static_assert(std::endian::native == std::endian::little, "the packed wire structs below assume a little-endian host");

#pragma pack(push, 1)
/// Source Range Entry, descriptor format 0h (32 bytes).
struct range_entry_f0 {
  std::uint8_t reserved0[8];
  std::uint64_t slba;        ///< bytes 15:08
  std::uint16_t nlb_0based;  ///< bytes 17:16, 0-based
  std::uint8_t reserved18[6];
  std::uint32_t eilbrt;  ///< bytes 27:24
  std::uint16_t elbat;   ///< bytes 29:28
  std::uint16_t elbatm;  ///< bytes 31:30
};
/// Source Range Entry, descriptor format 1h (40 bytes): 80-bit ELBST/EILBRT for 32/64-bit guard PI.
struct range_entry_f1 {
  std::uint8_t reserved0[8];
  std::uint64_t slba;        ///< bytes 15:08
  std::uint16_t nlb_0based;  ///< bytes 17:16, 0-based
  std::uint8_t reserved18[8];
  std::uint8_t elbst_eilbrt[10];  ///< bytes 35:26, most-significant byte first (QEMU, libnvme)
  std::uint16_t elbat;            ///< bytes 37:36
  std::uint16_t elbatm;           ///< bytes 39:38
};
/// Source Range Entry, descriptor format 2h (32 bytes): 0h plus source namespace and options.
struct range_entry_f2 {
  std::uint32_t snsid;  ///< bytes 03:00
  std::uint8_t reserved4[4];
  std::uint64_t slba;        ///< bytes 15:08
  std::uint16_t nlb_0based;  ///< bytes 17:16
  std::uint8_t reserved18[4];
  std::uint16_t sopt;    ///< bytes 23:22
  std::uint32_t eilbrt;  ///< bytes 27:24
  std::uint16_t elbat;   ///< bytes 29:28
  std::uint16_t elbatm;  ///< bytes 31:30
};
/// Source Range Entry, descriptor format 3h (40 bytes): 1h plus source namespace and options.
struct range_entry_f3 {
  std::uint32_t snsid;  ///< bytes 03:00
  std::uint8_t reserved4[4];
  std::uint64_t slba;        ///< bytes 15:08
  std::uint16_t nlb_0based;  ///< bytes 17:16
  std::uint8_t reserved18[4];
  std::uint16_t sopt;  ///< bytes 23:22
  std::uint8_t reserved24[2];
  std::uint8_t elbst_eilbrt[10];  ///< bytes 35:26, most-significant byte first (QEMU, libnvme)
  std::uint16_t elbat;            ///< bytes 37:36
  std::uint16_t elbatm;           ///< bytes 39:38
};
#pragma pack(pop)

static_assert(sizeof(range_entry_f0) == 32 && offsetof(range_entry_f0, slba) == 8 &&
              offsetof(range_entry_f0, nlb_0based) == 16 && offsetof(range_entry_f0, eilbrt) == 24 &&
              offsetof(range_entry_f0, elbat) == 28 && offsetof(range_entry_f0, elbatm) == 30);
static_assert(sizeof(range_entry_f1) == 40 && offsetof(range_entry_f1, slba) == 8 &&
              offsetof(range_entry_f1, nlb_0based) == 16 && offsetof(range_entry_f1, elbst_eilbrt) == 26 &&
              offsetof(range_entry_f1, elbat) == 36 && offsetof(range_entry_f1, elbatm) == 38);
static_assert(sizeof(range_entry_f2) == 32 && offsetof(range_entry_f2, snsid) == 0 &&
              offsetof(range_entry_f2, slba) == 8 && offsetof(range_entry_f2, nlb_0based) == 16 &&
              offsetof(range_entry_f2, sopt) == 22 && offsetof(range_entry_f2, eilbrt) == 24 &&
              offsetof(range_entry_f2, elbat) == 28 && offsetof(range_entry_f2, elbatm) == 30);
static_assert(sizeof(range_entry_f3) == 40 && offsetof(range_entry_f3, snsid) == 0 &&
              offsetof(range_entry_f3, slba) == 8 && offsetof(range_entry_f3, nlb_0based) == 16 &&
              offsetof(range_entry_f3, sopt) == 22 && offsetof(range_entry_f3, elbst_eilbrt) == 26 &&
              offsetof(range_entry_f3, elbat) == 36 && offsetof(range_entry_f3, elbatm) == 38);

/// Size in bytes of one source range entry of descriptor format `format` (0 for unknown formats).
[[nodiscard]] constexpr std::size_t range_entry_bytes(std::uint8_t format) noexcept {
  return format == 0 || format == 2 ? 32 : format == 1 || format == 3 ? 40 : 0;
}

/// One source range, in host terms (blocks is the real count, 1..65536).
struct source_range {
  std::uint64_t slba = 0;
  std::uint32_t blocks = 0;
  std::uint32_t snsid = 0;            ///< formats 2h/3h
  std::uint16_t sopt = 0;             ///< formats 2h/3h
  std::uint64_t eilbrt = 0;           ///< bits 63:0 of ELBST/EILBRT (formats 0h/2h: the 32-bit EILBRT)
  std::uint16_t elbst_eilbrt_hi = 0;  ///< formats 1h/3h: bits 79:64 of ELBST/EILBRT
  std::uint16_t elbat = 0;
  std::uint16_t elbatm = 0;
};

/// The command fields of a Copy (CDW2/3 and CDW10-15), in host terms.
struct copy_fields {
  std::uint64_t sdlba = 0;     ///< CDW10/11
  std::uint32_t ranges = 1;    ///< number of ranges, 1..256 (NR = ranges - 1)
  std::uint8_t format = 0;     ///< CDW12 bits 11:8
  std::uint8_t prinfor = 0;    ///< CDW12 bits 15:12
  std::uint8_t dtype = 0;      ///< CDW12 bits 23:20
  bool stcw = false;           ///< CDW12 bit 24
  std::uint8_t prinfow = 0;    ///< CDW12 bits 29:26
  bool fua = false;            ///< CDW12 bit 30
  bool limited_retry = false;  ///< CDW12 bit 31
  std::uint16_t dspec = 0;     ///< CDW13 bits 31:16
  std::uint64_t ilbrt = 0;     ///< CDW14 (low 32 bits); CDW3 bits 31:0 = ILBRT bits 63:32 (64b guard)
  std::uint16_t lbat = 0;      ///< CDW15 bits 15:0
  std::uint16_t lbatm = 0;     ///< CDW15 bits 31:16
};

struct copy_dwords {
  std::uint32_t cdw2 = 0, cdw3 = 0, cdw10 = 0, cdw11 = 0, cdw12 = 0, cdw13 = 0, cdw14 = 0, cdw15 = 0;
  [[nodiscard]] bool operator==(const copy_dwords&) const = default;
};

/// Encodes the command dwords. Returns false (and leaves `out` untouched) when a field does not fit:
/// ranges outside 1..256, format > 3, PRINFO > 15, DTYPE > 15.
[[nodiscard]] bool encode_copy_dwords(const copy_fields& f, copy_dwords& out, std::string* why = nullptr);

/// Encodes the source range list (host→controller data) in `format`. Returns false when a range has
/// 0 or more than 65536 blocks, the list is empty or longer than 256, or the format is unknown.
[[nodiscard]] bool encode_ranges(std::uint8_t format, std::span<const source_range> ranges,
                                 std::vector<std::uint8_t>& out, std::string* why = nullptr);

/// Decodes one entry back (tests, fuzzing, the device model). `bytes` must hold range_entry_bytes.
[[nodiscard]] bool decode_range(std::uint8_t format, std::span<const std::uint8_t> bytes, source_range& out);

/// Decodes CDW10-15 back into fields (the device model).
[[nodiscard]] copy_fields decode_copy_dwords(const copy_dwords& d) noexcept;

}  // namespace offcopy::nvme
