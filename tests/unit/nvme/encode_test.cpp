// Golden byte vectors for the NVMe Copy source range entries (formats 0h-3h) and the command
// dwords, written by hand from independent offsets, never produced by our encoder:
//   - QEMU 10 hw/nvme: include/block/nvme.h NvmeCopySourceRangeFormat0_2 {sparams 0-3, slba 8-15,
//     nlb 16-17, sopt 22-23, reftag 24-27, apptag 28-29, appmask 30-31} and
//     NvmeCopySourceRangeFormat1_3 {..., sr[10] 26-35, apptag 36-37, appmask 38-39}; ctrl.c
//     nvme_copy_source_range_parse_format1_3 reads the reference tag from sr[4..9] most-
//     significant byte first; nvme_copy reads ILBRT as CDW14 | CDW3 << 32;
//   - libnvme src/nvme/types.h struct nvme_copy_range / _f1 / _f2 / _f3 (same offsets; elbat
//     before elbatm) and util.c nvme_init_copy_range_elbt (elbt[9 - i] = byte i of the tag).
#include <doctest/doctest.h>

#include <unistd.h>

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include "src/nvme/copy_encode.hpp"
#include "src/nvme/copy_session.hpp"
#include "tests/models/nvme_model.hpp"
#include "tests/unit/hex.hpp"

using namespace offcopy::nvme;
using bytes = std::vector<std::uint8_t>;
using offcopy::test_hex::hex;

namespace {
std::uint64_t le(const std::vector<std::uint8_t>& b, std::size_t off, std::size_t n) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i) v |= std::uint64_t{b[off + i]} << (8 * i);
  return v;
}
bytes encode_one(std::uint8_t format, const source_range& r) {
  bytes b;
  REQUIRE(encode_ranges(format, std::span(&r, 1), b));
  return b;
}
}  // namespace

TEST_CASE("format 0h range entry: golden vector") {
  source_range r;
  r.slba = 0x0123456789abcdefULL;
  r.blocks = 0x1235;  // NLB 0-based = 0x1234
  r.eilbrt = 0xa1b2c3d4;
  r.elbat = 0xbeef;
  r.elbatm = 0xf00d;
  r.snsid = 7;  // ignored by format 0h
  r.sopt = 9;
  CHECK(encode_one(0, r) == hex("00 00 00 00 00 00 00 00"     // 0-7 reserved
                                "ef cd ab 89 67 45 23 01"     // 8-15 SLBA, little endian
                                "34 12 00 00 00 00 00 00"     // 16-17 NLB 0-based, 18-23 reserved
                                "d4 c3 b2 a1 ef be 0d f0"));  // 24-27 EILBRT, 28-29 ELBAT, 30-31 ELBATM
}

TEST_CASE("format 1h range entry: golden vector, the 80-bit ELBST/EILBRT most-significant byte first") {
  source_range r;
  r.slba = 0xfffffffffffffffeULL;
  r.blocks = 1;
  r.eilbrt = 0x8877665544332211ULL;  // all 64 bits kept (libnvme 1.3 truncates)
  r.elbst_eilbrt_hi = 0xaa99;
  r.elbat = 0x1234;
  r.elbatm = 0x5678;
  CHECK(encode_one(1, r) == hex("00 00 00 00 00 00 00 00"        // 0-7 reserved
                                "fe ff ff ff ff ff ff ff"        // 8-15 SLBA
                                "00 00 00 00 00 00 00 00 00 00"  // 16-17 NLB, 18-25 reserved
                                "aa 99 88 77 66 55 44 33 22 11"  // 26-35 ELBST/EILBRT, bits 79:0 MSB first
                                "34 12 78 56"));                 // 36-37 ELBAT, 38-39 ELBATM
}

TEST_CASE("format 1h: a 48-bit reference tag lands where QEMU reads it (sr[4..9]) and libnvme writes it") {
  // 16-byte PI with a 64-bit guard: the reference tag is 48 bits (storage tag size 0). QEMU:
  // reftag = sr[4] << 40 | sr[5] << 32 | ... | sr[9], sr = bytes 26-35. libnvme:
  // elbt[9 - i] = (eilbrt >> 8i) & 0xff, elbt[0..1] = 0.
  source_range r;
  r.slba = 0x100000010ULL;
  r.blocks = 8;
  r.eilbrt = 0x123456789abcULL;
  const bytes b = encode_one(1, r);
  REQUIRE(b.size() == 40);
  CHECK(bytes(b.begin() + 26, b.begin() + 36) == hex("00 00 00 00 12 34 56 78 9a bc"));
  std::uint64_t qemu_reftag = 0;
  for (int i = 4; i <= 9; ++i) qemu_reftag = (qemu_reftag << 8) | b[26 + i];
  CHECK(qemu_reftag == 0x123456789abcULL);
}

TEST_CASE("format 2h range entry: golden vector, source NSID at 0-3, SOPT at 22-23") {
  source_range r;
  r.snsid = 0xdeadbeef;
  r.slba = 42;
  r.blocks = 65536;  // NLB 0-based 0xffff
  r.sopt = 0x8001;
  r.eilbrt = 0x01020304;
  r.elbat = 0x0506;
  r.elbatm = 0x0708;
  CHECK(encode_one(2, r) == hex("ef be ad de 00 00 00 00"     // 0-3 SNSID, 4-7 reserved
                                "2a 00 00 00 00 00 00 00"     // 8-15 SLBA
                                "ff ff 00 00 00 00 01 80"     // 16-17 NLB, 18-21 reserved, 22-23 SOPT
                                "04 03 02 01 06 05 08 07"));  // 24-27 EILBRT, 28-29 ELBAT, 30-31 ELBATM
}

TEST_CASE("format 3h range entry: golden vector, source NSID, SOPT and the 80-bit tag") {
  source_range r;
  r.snsid = 3;
  r.slba = 1ULL << 40;
  r.blocks = 2;
  r.sopt = 0x0102;
  r.eilbrt = 0x1122334455667788ULL;
  r.elbst_eilbrt_hi = 0x99aa;
  r.elbat = 0xbbcc;
  r.elbatm = 0xddee;
  CHECK(encode_one(3, r) ==
        hex("03 00 00 00 00 00 00 00"        // 0-3 SNSID, 4-7 reserved
            "00 00 00 00 00 01 00 00"        // 8-15 SLBA
            "01 00 00 00 00 00 02 01 00 00"  // 16-17 NLB, 18-21 reserved, 22-23 SOPT, 24-25 reserved
            "99 aa 11 22 33 44 55 66 77 88"  // 26-35 ELBST/EILBRT MSB first
            "cc bb ee dd"));                 // 36-37 ELBAT, 38-39 ELBATM
}

TEST_CASE("format 1h/3h entries decode back (encoder and decoder agree on the byte order)") {
  source_range r;
  r.slba = 77;
  r.blocks = 3;
  r.eilbrt = 0x0102030405060708ULL;
  r.elbst_eilbrt_hi = 0x0a0b;
  for (std::uint8_t fmt : {1, 3}) {
    const bytes b = encode_one(fmt, r);
    source_range back;
    REQUIRE(decode_range(fmt, b, back));
    CHECK(back.eilbrt == r.eilbrt);
    CHECK(back.elbst_eilbrt_hi == r.elbst_eilbrt_hi);
  }
}

TEST_CASE("range lists: 256 entries in order, edges refused") {
  std::vector<source_range> rs(256);
  for (std::size_t i = 0; i < rs.size(); ++i) {
    rs[i].slba = (1ULL << 63) + i * 1000;  // 64-bit LBAs survive
    rs[i].blocks = static_cast<std::uint32_t>(i + 1);
  }
  for (std::uint8_t fmt : {0, 1, 2, 3}) {
    std::vector<std::uint8_t> b;
    REQUIRE(encode_ranges(fmt, rs, b));
    const std::size_t n = range_entry_bytes(fmt);
    REQUIRE(b.size() == 256 * n);
    for (std::size_t i = 0; i < rs.size(); ++i) {
      CHECK(le(b, i * n + 8, 8) == rs[i].slba);
      CHECK(le(b, i * n + 16, 2) == i);  // 0-based
      source_range back;
      REQUIRE(decode_range(fmt, std::span(b).subspan(i * n, n), back));
      CHECK(back.slba == rs[i].slba);
      CHECK(back.blocks == rs[i].blocks);
    }
  }
  std::vector<std::uint8_t> b{1, 2, 3};
  rs.push_back(rs[0]);
  CHECK_FALSE(encode_ranges(0, rs, b));  // 257 ranges
  CHECK(b.size() == 3);                  // untouched on failure
  CHECK_FALSE(encode_ranges(0, {}, b));  // 0 ranges
  source_range bad;
  bad.blocks = 0;
  CHECK_FALSE(encode_ranges(0, std::span(&bad, 1), b));
  bad.blocks = 65537;
  CHECK_FALSE(encode_ranges(0, std::span(&bad, 1), b));
  bad.blocks = 1;
  CHECK_FALSE(encode_ranges(4, std::span(&bad, 1), b));
}

TEST_CASE("command dwords: SDLBA, NR 0-based and every CDW12 field") {
  copy_fields f;
  f.sdlba = 0x1122334455667788ULL;
  f.ranges = 256;
  copy_dwords d;
  REQUIRE(encode_copy_dwords(f, d));
  CHECK(d.cdw10 == 0x55667788u);
  CHECK(d.cdw11 == 0x11223344u);
  CHECK(d.cdw12 == 0xffu);  // NR = 255 (libnvme 1.3 wraps nr=0 to 256 the other way)
  CHECK(d.cdw13 == 0);
  CHECK(d.cdw14 == 0);
  CHECK(d.cdw15 == 0);
  CHECK(d.cdw2 == 0);
  CHECK(d.cdw3 == 0);

  f.ranges = 1;
  REQUIRE(encode_copy_dwords(f, d));
  CHECK((d.cdw12 & 0xff) == 0);

  struct field_case {
    copy_fields f;
    std::uint32_t cdw12;
  };
  copy_fields base;
  base.ranges = 1;
  std::vector<field_case> cases;
  auto with = [&](auto mutate, std::uint32_t expected) {
    copy_fields x = base;
    mutate(x);
    cases.push_back({x, expected});
  };
  with([](copy_fields& x) { x.format = 3; }, 0x3u << 8);
  with([](copy_fields& x) { x.prinfor = 0xf; }, 0xfu << 12);
  with([](copy_fields& x) { x.dtype = 0xf; }, 0xfu << 20);
  with([](copy_fields& x) { x.stcw = true; }, 1u << 24);
  with([](copy_fields& x) { x.prinfow = 0xf; }, 0xfu << 26);
  with([](copy_fields& x) { x.fua = true; }, 1u << 30);
  with([](copy_fields& x) { x.limited_retry = true; }, 1u << 31);
  for (const auto& c : cases) {
    REQUIRE(encode_copy_dwords(c.f, d));
    CHECK(d.cdw12 == c.cdw12);
    CHECK(decode_copy_dwords(d).format == c.f.format);
  }

  copy_fields g;
  g.ranges = 2;
  g.dspec = 0xabcd;
  g.ilbrt = 0x0102030405060708ULL;
  g.lbat = 0x1111;
  g.lbatm = 0x2222;
  REQUIRE(encode_copy_dwords(g, d));
  CHECK(d.cdw13 == 0xabcd0000u);
  CHECK(d.cdw14 == 0x05060708u);
  CHECK(d.cdw3 == 0x01020304u);
  CHECK(d.cdw15 == 0x22221111u);
  const copy_fields back = decode_copy_dwords(d);
  CHECK(back.ranges == 2);
  CHECK(back.dspec == 0xabcd);
  CHECK(back.ilbrt == g.ilbrt);
  CHECK(back.lbat == 0x1111);
  CHECK(back.lbatm == 0x2222);

  copy_fields bad;
  bad.ranges = 0;
  CHECK_FALSE(encode_copy_dwords(bad, d));
  bad.ranges = 257;
  CHECK_FALSE(encode_copy_dwords(bad, d));
  bad.ranges = 1;
  bad.format = 4;
  CHECK_FALSE(encode_copy_dwords(bad, d));
  bad.format = 0;
  bad.prinfow = 16;
  CHECK_FALSE(encode_copy_dwords(bad, d));
}

TEST_CASE("session in format 1h: the model, decoding with QEMU's byte order, reads back the tags we meant") {
  // The session sets EILBRT = SLBA on PI namespaces; the model decodes the 80-bit field with its
  // own offsets (most-significant byte first): a byte-order mistake shows as a wrong tag.
  offcopy::testing::nvme_model_config pi16;  // format 1h needs a 32/64-bit guard namespace (QEMU: 0x10a)
  pi16.metadata_bytes = 16;
  pi16.pi_type = 1;
  pi16.pi_format = 2;
  offcopy::testing::nvme_model m(pi16);
  session_params p;
  p.descriptor_format = 1;
  p.pi_regenerate = true;
  copy_session s(m.make_transport(1), p);
  const std::vector<offcopy::plan_segment> segs{{0x0a0b, 4000, 3}, {0x0c0d, 4003, 2}};
  offcopy::detail::command c;
  c.tag = 1;
  c.segments = segs;
  c.block_bytes = 512;
  REQUIRE(s.submit(c).ok());
  std::vector<offcopy::detail::completion> out;
  REQUIRE(s.reap(1, out).ok());
  REQUIRE(out.size() == 1);
  CHECK(out[0].result.ok());
  REQUIRE(m.log().size() == 1);
  const auto& rec = m.log()[0];
  CHECK(rec.fields.format == 1);
  REQUIRE(rec.ranges.size() == 2);
  CHECK(rec.ranges[0].slba == 0x0a0b);
  CHECK(rec.ranges[0].eilbrt == 0x0a0b);
  CHECK(rec.ranges[0].elbst_eilbrt_hi == 0);
  CHECK(rec.ranges[1].eilbrt == 0x0c0d);
}

TEST_CASE("initial reference tag: the LBA cut to the PI format's tag width, upper bits in CDW3") {
  // QEMU 10 nvme_copy: iocb->reftag = CDW14 | CDW3 << 32; nvme_check_prinfo compares it with the
  // LBA masked to 48 bits (64-bit guard) or 32 bits (16-bit guard). libnvme nvme_copy (args v2):
  // CDW3 = ilbrt_u64 >> 32, CDW14 = ilbrt_u64 & 0xffffffff.
  struct variant {
    std::uint8_t pif;
    std::uint64_t sdlba;
    std::uint32_t cdw14, cdw3;
  };
  for (const variant v : {variant{2, 0x123456789ULL, 0x23456789, 0x1},            // 16-byte PI, above 2^32
                          variant{2, 0xabcd000100000007ULL, 0x00000007, 0x0001},  // 48 bits kept
                          variant{0, 0x123456789ULL, 0x23456789, 0x0},            // 8-byte PI: 32 bits
                          variant{1, 0xabcd000100000007ULL, 0x00000007, 0xabcd0001}}) {
    CAPTURE(int(v.pif));
    CAPTURE(v.sdlba);
    session_params p;
    p.pi_regenerate = true;
    p.reference_tag_bits = reference_tag_bits(v.pif);
    p.descriptor_format = v.pif == 0 ? 0 : 1;
    const std::vector<offcopy::plan_segment> segs{{0x1000, v.sdlba, 4}};
    offcopy::detail::command c;
    c.segments = segs;
    c.block_bytes = 512;
    copy_dwords dw;
    std::vector<std::uint8_t> ranges;
    std::vector<std::uint32_t> range_blocks;
    REQUIRE(build_copy(p, c, dw, ranges, range_blocks).ok());
    CHECK(dw.cdw10 == static_cast<std::uint32_t>(v.sdlba));
    CHECK(dw.cdw11 == static_cast<std::uint32_t>(v.sdlba >> 32));
    CHECK(dw.cdw14 == v.cdw14);
    CHECK(dw.cdw3 == v.cdw3);
  }
  CHECK(reference_tag_bits(0) == 32);
  CHECK(reference_tag_bits(1) == 64);
  CHECK(reference_tag_bits(2) == 48);
}

TEST_CASE("session on a 16-byte PI namespace above 2^32 blocks: the model reads 48-bit tags") {
  offcopy::testing::nvme_model_config cfg;
  cfg.blocks = (1ULL << 32) + 4096;
  cfg.enforce_limits = false;
  cfg.metadata_bytes = 16;  // 64-bit guard PI: format 1h is this namespace's (QEMU: 0x10a otherwise)
  cfg.pi_type = 1;
  cfg.pi_format = 2;
  // Media: a sparse temporary file (2 TiB apparent, 16 blocks written).
  char path[] = "/tmp/offcopy-pi48-XXXXXX";
  const int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  ::unlink(path);
  REQUIRE(::ftruncate(fd, static_cast<off_t>(cfg.blocks * cfg.lba_bytes)) == 0);
  offcopy::testing::nvme_model m(cfg, fd);
  session_params p;
  p.descriptor_format = 1;
  p.pi_regenerate = true;
  p.reference_tag_bits = reference_tag_bits(2);
  copy_session s(m.make_transport(1), p);
  const std::vector<offcopy::plan_segment> segs{{(1ULL << 32) + 8, (1ULL << 32) + 1024, 16}};
  offcopy::detail::command c;
  c.tag = 1;
  c.segments = segs;
  c.block_bytes = 512;
  REQUIRE(s.submit(c).ok());
  std::vector<offcopy::detail::completion> out;
  REQUIRE(s.reap(1, out).ok());
  REQUIRE(m.log().size() == 1);
  CHECK(m.log()[0].fields.ilbrt == (1ULL << 32) + 1024);
  REQUIRE(m.log()[0].ranges.size() == 1);
  CHECK(m.log()[0].ranges[0].eilbrt == (1ULL << 32) + 8);
  ::close(fd);
}
