// SCSI wire formats: see wire.hpp. Every parser checks lengths before it reads.
#include "src/scsi/wire.hpp"

#include <algorithm>

namespace offcopy::detail::scsi {

namespace {

cdb16 tpc_cdb(std::uint8_t opcode, std::uint8_t service_action) noexcept {
  cdb16 c{};
  c[0] = opcode;
  c[1] = service_action & 0x1F;  // byte 1 bits 4-0
  return c;
}

std::string trimmed_ascii(std::span<const std::uint8_t> bytes) {
  std::string s;
  for (auto b : bytes) s.push_back((b >= 0x20 && b < 0x7F) ? static_cast<char>(b) : ' ');
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

}  // namespace

cdb6 inquiry_cdb(bool evpd, std::uint8_t page, std::uint16_t allocation_bytes) noexcept {
  cdb6 c{};
  c[0] = op_inquiry;
  c[1] = evpd ? 0x01 : 0x00;
  c[2] = evpd ? page : 0;
  put_be16(&c[3], allocation_bytes);
  return c;
}

cdb16 read_capacity16_cdb(std::uint32_t allocation_bytes) noexcept {
  auto c = tpc_cdb(op_service_action_in_16, sa_read_capacity_16);
  put_be32(&c[10], allocation_bytes);
  return c;
}

cdb16 receive_copy_operating_parameters_cdb(std::uint32_t allocation_bytes) noexcept {
  auto c = tpc_cdb(op_third_party_copy_in, sa_receive_copy_operating_parameters);
  put_be32(&c[10], allocation_bytes);
  return c;
}

cdb16 receive_copy_status_lid1_cdb(std::uint8_t list_id, std::uint32_t allocation_bytes) noexcept {
  auto c = tpc_cdb(op_third_party_copy_in, sa_receive_copy_status_lid1);
  c[2] = list_id;
  put_be32(&c[10], allocation_bytes);
  return c;
}

cdb16 extended_copy_lid1_cdb(std::uint32_t parameter_list_bytes) noexcept {
  auto c = tpc_cdb(op_third_party_copy_out, sa_extended_copy_lid1);
  put_be32(&c[10], parameter_list_bytes);
  return c;
}

cdb16 populate_token_cdb(std::uint32_t list_id, std::uint32_t parameter_list_bytes) noexcept {
  auto c = tpc_cdb(op_third_party_copy_out, sa_populate_token);
  put_be32(&c[6], list_id);
  put_be32(&c[10], parameter_list_bytes);
  return c;
}

cdb16 write_using_token_cdb(std::uint32_t list_id, std::uint32_t parameter_list_bytes) noexcept {
  auto c = tpc_cdb(op_third_party_copy_out, sa_write_using_token);
  put_be32(&c[6], list_id);
  put_be32(&c[10], parameter_list_bytes);
  return c;
}

cdb16 receive_rod_token_information_cdb(std::uint32_t list_id, std::uint32_t allocation_bytes) noexcept {
  auto c = tpc_cdb(op_third_party_copy_in, sa_receive_rod_token_information);
  put_be32(&c[2], list_id);
  put_be32(&c[10], allocation_bytes);
  return c;
}

std::optional<standard_inquiry> parse_standard_inquiry(std::span<const std::uint8_t> d) {
  if (d.size() < 36) return std::nullopt;
  standard_inquiry q;
  q.peripheral_qualifier = d[0] >> 5;
  q.peripheral_type = d[0] & 0x1F;
  q.third_party_copy = (d[5] & 0x08) != 0;
  q.vendor = trimmed_ascii(d.subspan(8, 8));
  q.product = trimmed_ascii(d.subspan(16, 16));
  q.revision = trimmed_ascii(d.subspan(32, 4));
  return q;
}

std::vector<std::uint8_t> parse_supported_vpd_pages(std::span<const std::uint8_t> d) {
  std::vector<std::uint8_t> pages;
  if (d.size() < 4 || d[1] != 0x00) return pages;
  const std::size_t end = std::min<std::size_t>(d.size(), 4 + std::size_t{get_be16(&d[2])});
  for (std::size_t i = 4; i < end; ++i) pages.push_back(d[i]);
  return pages;
}

std::optional<read_capacity16> parse_read_capacity16(std::span<const std::uint8_t> d) {
  if (d.size() < 14) return std::nullopt;
  read_capacity16 r;
  r.last_lba = get_be64(&d[0]);
  r.block_bytes = get_be32(&d[8]);
  r.physical_per_logical_log2 = d[13] & 0x0F;
  if (r.block_bytes == 0 || r.last_lba == ~std::uint64_t{0}) return std::nullopt;
  return r;
}

std::optional<std::vector<std::uint8_t>> parse_vpd83_lu_naa(std::span<const std::uint8_t> page) {
  if (page.size() < 4 || page[1] != 0x83) return std::nullopt;
  const std::size_t end = std::min<std::size_t>(page.size(), 4 + std::size_t{get_be16(&page[2])});
  std::optional<std::vector<std::uint8_t>> best;
  std::size_t off = 4;
  while (off + 4 <= end) {
    const std::uint8_t code_set = page[off] & 0x0F;
    const std::uint8_t association = (page[off + 1] >> 4) & 0x03;
    const std::uint8_t designator_type = page[off + 1] & 0x0F;
    const std::size_t len = page[off + 3];
    if (off + 4 + len > end) break;  // truncated descriptor: stop, keep what we have
    if (code_set == 1 && association == 0 && designator_type == 3 && len >= 8 && len <= 20) {
      if (!best || len > best->size())
        best.emplace(page.begin() + static_cast<std::ptrdiff_t>(off + 4),
                     page.begin() + static_cast<std::ptrdiff_t>(off + 4 + len));
    }
    off += 4 + len;
  }
  return best;
}

bool third_party_copy_vpd::accepts_rod_token(std::uint32_t rod_type) const noexcept {
  return std::any_of(rod_types.begin(), rod_types.end(),
                     [&](const rod_type_entry& e) { return e.rod_type == rod_type && e.token_in; });
}

bool third_party_copy_vpd::supports(std::uint8_t opcode, std::uint8_t service_action) const noexcept {
  for (const auto& c : commands) {
    if (c.opcode != opcode) continue;
    if (std::find(c.service_actions.begin(), c.service_actions.end(), service_action) != c.service_actions.end())
      return true;
  }
  return false;
}

std::optional<third_party_copy_vpd> parse_vpd8f(std::span<const std::uint8_t> page) {
  if (page.size() < 4 || page[1] != 0x8F) return std::nullopt;
  const std::size_t end = std::min<std::size_t>(page.size(), 4 + std::size_t{get_be16(&page[2])});
  third_party_copy_vpd v;
  std::size_t off = 4;
  while (off + 4 <= end) {
    const std::uint16_t type = get_be16(&page[off]);
    const std::size_t len = get_be16(&page[off + 2]);  // bytes after the 4-byte descriptor header
    if (off + 4 + len > end) break;
    const std::uint8_t* d = &page[off];
    v.descriptor_types.push_back(type);
    if (type == 0x0000 && len + 4 >= 36) {
      rod_token_limits r;
      r.max_range_descriptors = get_be16(d + 10);
      r.max_inactivity_timeout_s = get_be32(d + 12);
      r.default_inactivity_timeout_s = get_be32(d + 16);
      r.max_token_transfer_blocks = get_be64(d + 20);
      r.optimal_transfer_blocks = get_be64(d + 28);
      v.rod_limits = r;
    } else if (type == 0x0001 && len >= 1) {
      // 4: supported commands list length, then {opcode, n, n service actions}.
      const std::size_t list_end = std::min<std::size_t>(off + 4 + len, off + 5 + std::size_t{d[4]});
      std::size_t p = off + 5;
      while (p + 2 <= list_end) {
        supported_command c;
        c.opcode = page[p];
        const std::size_t n = page[p + 1];
        if (p + 2 + n > list_end) break;
        c.service_actions.assign(page.begin() + static_cast<std::ptrdiff_t>(p + 2),
                                 page.begin() + static_cast<std::ptrdiff_t>(p + 2 + n));
        v.commands.push_back(std::move(c));
        p += 2 + n;
      }
    } else if (type == 0x0108 && len + 4 >= 8) {
      // 6-7 ROD type descriptors length, then 64-byte ROD type descriptors from 8.
      constexpr std::size_t entry = 64;
      const std::size_t list_end = std::min<std::size_t>(off + 4 + len, off + 8 + std::size_t{get_be16(d + 6)});
      for (std::size_t p = off + 8; p + entry <= list_end; p += entry) {
        rod_type_entry e;
        e.rod_type = get_be32(&page[p]);
        e.ecpy_int = (page[p + 4] & 0x80) != 0;
        e.token_in = (page[p + 4] & 0x02) != 0;
        e.token_out = (page[p + 4] & 0x01) != 0;
        v.rod_types.push_back(e);
      }
    } else if (type == 0x8001 && len + 4 >= 16) {
      v.max_segment_bytes = get_be32(d + 12);
    }
    off += 4 + len;
  }
  return v;
}

bool copy_operating_parameters::supports_descriptor(std::uint8_t code) const noexcept {
  return std::find(descriptor_codes.begin(), descriptor_codes.end(), code) != descriptor_codes.end();
}

std::optional<copy_operating_parameters> parse_copy_operating_parameters(std::span<const std::uint8_t> d) {
  if (d.size() < 44) return std::nullopt;
  const std::size_t end = std::min<std::size_t>(d.size(), 4 + std::size_t{get_be32(&d[0])});
  if (end < 44) return std::nullopt;
  copy_operating_parameters p;
  p.snlid = (d[4] & 0x01) != 0;
  p.max_cscd_descriptors = get_be16(&d[8]);
  p.max_segment_descriptors = get_be16(&d[10]);
  p.max_descriptor_list_bytes = get_be32(&d[12]);
  p.max_segment_bytes = get_be32(&d[16]);
  p.max_inline_data_bytes = get_be32(&d[20]);
  p.held_data_limit_bytes = get_be32(&d[24]);
  p.total_concurrent_copies = get_be16(&d[34]);
  p.max_concurrent_copies = d[36];
  p.data_segment_granularity_log2 = d[37];
  const std::size_t codes_end = std::min<std::size_t>(end, 44 + std::size_t{d[43]});
  for (std::size_t i = 44; i < codes_end; ++i) p.descriptor_codes.push_back(d[i]);
  return p;
}

std::vector<std::uint8_t> encode_extended_copy_lid1(std::uint8_t list_id, list_id_usage usage,
                                                    std::span<const cscd_identification> cscds,
                                                    std::span<const block_segment> segments) {
  const std::size_t cscd_bytes = cscds.size() * cscd_descriptor_bytes;
  const std::size_t seg_bytes = segments.size() * block_segment_bytes;
  std::vector<std::uint8_t> b(xcopy_header_bytes + cscd_bytes + seg_bytes, 0);
  // Header: 0 list id; 1 bits 4-3 list id usage, bits 2-0 priority; 2-3 CSCD list length;
  // 8-11 segment list length; 12-15 inline data length (0).
  b[0] = usage == list_id_usage::none ? 0 : list_id;
  b[1] = static_cast<std::uint8_t>((static_cast<std::uint8_t>(usage) & 0x3) << 3) | 0x01;
  put_be16(&b[2], static_cast<std::uint16_t>(cscd_bytes));
  put_be32(&b[8], static_cast<std::uint32_t>(seg_bytes));
  std::uint8_t* p = b.data() + xcopy_header_bytes;
  for (const auto& c : cscds) {
    p[0] = 0xE4;                      // identification descriptor
    p[1] = c.peripheral_type & 0x1F;  // 1 bits 4-0 peripheral device type
    p[4] = 0x01;                      // code set: binary
    p[5] = 0x03;                      // association LU (bits 5-4 = 0), designator type NAA
    const std::size_t n = std::min<std::size_t>(c.naa.size(), 20);
    p[7] = static_cast<std::uint8_t>(n);   // designator length
    std::copy_n(c.naa.begin(), n, p + 8);  // 8-27, zero padded
    // 28: bit 2 PAD = 0; 29-31 disk block length.
    p[29] = static_cast<std::uint8_t>(c.block_bytes >> 16);
    p[30] = static_cast<std::uint8_t>(c.block_bytes >> 8);
    p[31] = static_cast<std::uint8_t>(c.block_bytes);
    p += cscd_descriptor_bytes;
  }
  for (const auto& s : segments) {
    p[0] = 0x02;              // block → block
    p[1] = 0x00;              // DC = 0 (blocks are counted in the source's block size), CAT = 0
    put_be16(p + 2, 0x0018);  // descriptor length
    put_be16(p + 4, s.src_cscd);
    put_be16(p + 6, s.dst_cscd);
    put_be16(p + 10, s.blocks);
    put_be64(p + 12, s.src_lba);
    put_be64(p + 20, s.dst_lba);
    p += block_segment_bytes;
  }
  return b;
}

std::optional<copy_status_lid1> parse_copy_status_lid1(std::span<const std::uint8_t> d) {
  if (d.size() < 12) return std::nullopt;
  copy_status_lid1 s;
  s.copy_status = d[4] & 0x7F;
  s.segments_processed = get_be16(&d[5]);
  s.transfer_count_units = d[7];
  s.transfer_count = get_be32(&d[8]);
  return s;
}

std::optional<std::uint64_t> transfer_count_blocks(std::uint8_t units, std::uint64_t count,
                                                   std::uint32_t block_bytes) noexcept {
  if (block_bytes == 0) return std::nullopt;
  if (units == transfer_units_blocks) return count;
  if (units > 6) return std::nullopt;  // 07h-F0h, F2h-FFh reserved
  // count × 2^(10 × units) bytes, in whole blocks; 128-bit so 2^60 units cannot overflow.
  __extension__ using u128 = unsigned __int128;
  const u128 bytes = static_cast<u128>(count) << (10 * units);
  const u128 blocks = bytes / block_bytes;
  if (blocks > ~std::uint64_t{0}) return ~std::uint64_t{0};
  return static_cast<std::uint64_t>(blocks);
}

namespace {
void put_ranges(std::uint8_t* p, std::span<const block_range> ranges) {
  for (const auto& r : ranges) {
    put_be64(p, r.lba);
    put_be32(p + 8, r.blocks);
    p += range_descriptor_bytes;
  }
}
}  // namespace

std::vector<std::uint8_t> encode_populate_token(std::span<const block_range> ranges, bool immed,
                                                std::uint32_t inactivity_timeout_s, std::uint32_t rod_type) {
  const std::size_t list_bytes = ranges.size() * range_descriptor_bytes;
  std::vector<std::uint8_t> b(populate_token_header_bytes + list_bytes, 0);
  put_be16(&b[0], static_cast<std::uint16_t>(b.size() - 2));
  b[2] = static_cast<std::uint8_t>((rod_type != 0 ? 0x02 : 0) | (immed ? 0x01 : 0));
  put_be32(&b[4], inactivity_timeout_s);
  put_be32(&b[8], rod_type);
  put_be16(&b[14], static_cast<std::uint16_t>(list_bytes));
  put_ranges(&b[16], ranges);
  return b;
}

std::vector<std::uint8_t> encode_write_using_token(std::span<const std::uint8_t> token,
                                                   std::uint64_t offset_into_rod_blocks,
                                                   std::span<const block_range> ranges, bool immed, bool delete_token) {
  const std::size_t list_bytes = ranges.size() * range_descriptor_bytes;
  std::vector<std::uint8_t> b(write_using_token_header_bytes + list_bytes, 0);
  put_be16(&b[0], static_cast<std::uint16_t>(b.size() - 2));
  b[2] = static_cast<std::uint8_t>((delete_token ? 0x02 : 0) | (immed ? 0x01 : 0));
  put_be64(&b[8], offset_into_rod_blocks);
  std::copy_n(token.begin(), std::min(token.size(), rod_token_bytes), &b[16]);  // 16-527
  put_be16(&b[534], static_cast<std::uint16_t>(list_bytes));
  put_ranges(&b[536], ranges);
  return b;
}

std::array<std::uint8_t, rod_token_bytes> zero_rod_token() noexcept {
  std::array<std::uint8_t, rod_token_bytes> t{};
  put_be32(&t[0], rod_type_zero);
  put_be16(&t[6], static_cast<std::uint16_t>(rod_token_bytes - 8));  // ROD token length 0x01F8
  return t;
}

std::optional<rod_token_information> parse_rod_token_information(std::span<const std::uint8_t> d) {
  if (d.size() < 32) return std::nullopt;
  const std::size_t end = std::min<std::size_t>(d.size(), 4 + std::size_t{get_be32(&d[0])});
  if (end < 32) return std::nullopt;
  rod_token_information r;
  r.response_to_service_action = d[4] & 0x1F;
  r.copy_status = d[5] & 0x7F;
  r.operation_counter = get_be16(&d[6]);
  r.status_update_delay_ms = get_be32(&d[8]);
  r.transfer_count_units = d[15];
  r.transfer_count = get_be64(&d[16]);
  const std::size_t sense_field = d[13];
  const std::size_t sense_len = std::min<std::size_t>(d[14], sense_field);
  if (32 + sense_field > end) return r;
  r.sense.assign(d.begin() + 32, d.begin() + static_cast<std::ptrdiff_t>(32 + sense_len));
  const std::size_t tok = 32 + sense_field;
  if (tok + 4 > end) return r;
  const std::uint32_t descriptors_len = get_be32(&d[tok]);
  if (descriptors_len < 2 + rod_token_bytes || tok + 6 + rod_token_bytes > end) return r;
  r.token.assign(d.begin() + static_cast<std::ptrdiff_t>(tok + 6),
                 d.begin() + static_cast<std::ptrdiff_t>(tok + 6 + rod_token_bytes));
  return r;
}

std::optional<sense_fields> parse_sense(std::span<const std::uint8_t> s) {
  if (s.size() < 2) return std::nullopt;
  sense_fields f;
  f.response_code = s[0] & 0x7F;
  if (f.response_code == 0x70 || f.response_code == 0x71) {
    if (s.size() < 3) return std::nullopt;
    f.sense_key = s[2] & 0x0F;
    if (s.size() >= 14) {
      f.asc = s[12];
      f.ascq = s[13];
    }
    if (s.size() >= 7) {
      f.information_valid = (s[0] & 0x80) != 0;
      f.information = get_be32(&s[3]);
    }
    return f;
  }
  if (f.response_code == 0x72 || f.response_code == 0x73) {
    if (s.size() < 4) return std::nullopt;
    f.sense_key = s[1] & 0x0F;
    f.asc = s[2];
    f.ascq = s[3];
    if (s.size() >= 8) {
      const std::size_t end = std::min<std::size_t>(s.size(), 8 + std::size_t{s[7]});
      std::size_t off = 8;
      while (off + 2 <= end) {
        const std::size_t len = s[off + 1];
        if (off + 2 + len > end) break;
        if (s[off] == 0x00 && len >= 0x0A) {  // information descriptor
          f.information_valid = (s[off + 2] & 0x80) != 0;
          f.information = get_be64(&s[off + 4]);
        }
        off += 2 + len;
      }
    }
    return f;
  }
  return std::nullopt;
}

std::vector<std::uint8_t> make_fixed_sense(std::uint8_t key, std::uint8_t asc, std::uint8_t ascq,
                                           std::optional<std::uint32_t> information) {
  std::vector<std::uint8_t> s(18, 0);
  s[0] = 0x70 | (information ? 0x80 : 0);
  s[2] = key & 0x0F;
  if (information) put_be32(&s[3], *information);
  s[7] = 10;  // additional sense length
  s[12] = asc;
  s[13] = ascq;
  return s;
}

sense_meaning classify_sense(const sense_fields& s) noexcept {
  const auto is = [&](std::uint8_t asc, std::uint8_t ascq) { return s.asc == asc && s.ascq == ascq; };
  switch (s.sense_key) {
    case sense_key_illegal_request:
      if (is(0x20, 0x00) || is(0x26, 0x09) || is(0x24, 0x00)) return sense_meaning::not_supported;
      if (is(0x26, 0x08) || is(0x26, 0x06) || is(0x1A, 0x00)) return sense_meaning::size_limit_exceeded;
      if (s.asc == 0x21) return sense_meaning::out_of_range;
      if (s.asc == 0x23) return sense_meaning::token_error;
      if (is(0x00, 0x16)) return sense_meaning::list_id_busy;
      return sense_meaning::device_error;
    case sense_key_unit_attention: return sense_meaning::retry;
    case sense_key_no_sense:
    case sense_key_not_ready:
      if (is(0x00, 0x16)) return sense_meaning::list_id_busy;
      return sense_meaning::device_error;
    default:
      if (is(0x00, 0x16)) return sense_meaning::list_id_busy;
      return sense_meaning::device_error;
  }
}

}  // namespace offcopy::detail::scsi
