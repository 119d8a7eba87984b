// Byte-exact tests of the NVMe Copy encoder against the spec offsets (DESIGN.md §2).
#include <doctest/doctest.h>

#include <array>
#include <cstdint>
#include <vector>

#include "src/nvme/copy_encode.hpp"

using namespace offcopy::nvme;

namespace {
std::uint64_t le(const std::vector<std::uint8_t>& b, std::size_t off, std::size_t n) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i) v |= std::uint64_t{b[off + i]} << (8 * i);
  return v;
}
bool zero(const std::vector<std::uint8_t>& b, std::size_t off, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i)
    if (b[off + i] != 0) return false;
  return true;
}
}  // namespace

TEST_CASE("format 0h range entry: every field at its offset") {
  source_range r;
  r.slba = 0x0123456789abcdefULL;
  r.blocks = 0x1235;  // NLB 0-based = 0x1234
  r.eilbrt = 0xa1b2c3d4;
  r.elbat = 0xbeef;
  r.elbatm = 0xf00d;
  r.snsid = 7;  // ignored by format 0h
  r.sopt = 9;
  std::vector<std::uint8_t> b;
  REQUIRE(encode_ranges(0, std::span(&r, 1), b));
  REQUIRE(b.size() == 32);
  CHECK(zero(b, 0, 8));
  CHECK(le(b, 8, 8) == 0x0123456789abcdefULL);
  CHECK(b[16] == 0x34);
  CHECK(b[17] == 0x12);
  CHECK(zero(b, 18, 6));
  CHECK(le(b, 24, 4) == 0xa1b2c3d4);
  CHECK(le(b, 28, 2) == 0xbeef);  // ELBAT at 28-29 (libnvme 1.3 swaps these two)
  CHECK(le(b, 30, 2) == 0xf00d);  // ELBATM at 30-31
}

TEST_CASE("format 1h range entry: 80-bit ELBST/EILBRT at 26-35") {
  source_range r;
  r.slba = 0xfffffffffffffffeULL;
  r.blocks = 1;
  r.eilbrt = 0x8877665544332211ULL;  // all 64 bits kept (libnvme 1.3 truncates)
  r.elbst_eilbrt_hi = 0xaa99;
  r.elbat = 0x1234;
  r.elbatm = 0x5678;
  std::vector<std::uint8_t> b;
  REQUIRE(encode_ranges(1, std::span(&r, 1), b));
  REQUIRE(b.size() == 40);
  CHECK(zero(b, 0, 8));
  CHECK(le(b, 8, 8) == 0xfffffffffffffffeULL);
  CHECK(le(b, 16, 2) == 0);  // 1 block, 0-based
  CHECK(zero(b, 18, 8));
  CHECK(le(b, 26, 8) == 0x8877665544332211ULL);
  CHECK(le(b, 34, 2) == 0xaa99);
  CHECK(le(b, 36, 2) == 0x1234);
  CHECK(le(b, 38, 2) == 0x5678);
}

TEST_CASE("format 2h range entry: source NSID at 0-3, SOPT at 22-23") {
  source_range r;
  r.snsid = 0xdeadbeef;
  r.slba = 42;
  r.blocks = 65536;  // NLB 0-based 0xffff
  r.sopt = 0x8001;
  r.eilbrt = 0x01020304;
  r.elbat = 0x0506;
  r.elbatm = 0x0708;
  std::vector<std::uint8_t> b;
  REQUIRE(encode_ranges(2, std::span(&r, 1), b));
  REQUIRE(b.size() == 32);
  CHECK(le(b, 0, 4) == 0xdeadbeef);
  CHECK(zero(b, 4, 4));
  CHECK(le(b, 8, 8) == 42);
  CHECK(le(b, 16, 2) == 0xffff);
  CHECK(zero(b, 18, 4));
  CHECK(le(b, 22, 2) == 0x8001);
  CHECK(le(b, 24, 4) == 0x01020304);
  CHECK(le(b, 28, 2) == 0x0506);
  CHECK(le(b, 30, 2) == 0x0708);
}

TEST_CASE("format 3h range entry: source NSID, SOPT and the 80-bit tag") {
  source_range r;
  r.snsid = 3;
  r.slba = 1ULL << 40;
  r.blocks = 2;
  r.sopt = 0x0102;
  r.eilbrt = 0x1122334455667788ULL;
  r.elbst_eilbrt_hi = 0x99aa;
  r.elbat = 0xbbcc;
  r.elbatm = 0xddee;
  std::vector<std::uint8_t> b;
  REQUIRE(encode_ranges(3, std::span(&r, 1), b));
  REQUIRE(b.size() == 40);
  CHECK(le(b, 0, 4) == 3);
  CHECK(zero(b, 4, 4));
  CHECK(le(b, 8, 8) == (1ULL << 40));
  CHECK(le(b, 16, 2) == 1);
  CHECK(zero(b, 18, 4));
  CHECK(le(b, 22, 2) == 0x0102);
  CHECK(zero(b, 24, 2));
  CHECK(le(b, 26, 8) == 0x1122334455667788ULL);
  CHECK(le(b, 34, 2) == 0x99aa);
  CHECK(le(b, 36, 2) == 0xbbcc);
  CHECK(le(b, 38, 2) == 0xddee);
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
  CHECK(b.size() == 3);                   // untouched on failure
  CHECK_FALSE(encode_ranges(0, {}, b));   // 0 ranges
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
