// The Copy session against the controller model: what is sent, and how completions come back.
#include <doctest/doctest.h>

#include <numeric>
#include <vector>

#include "src/nvme/copy_session.hpp"
#include "src/nvme/nvme_status.hpp"
#include "tests/models/nvme_model.hpp"

using namespace offcopy;
using namespace offcopy::nvme;
using offcopy::testing::nvme_fault;
using offcopy::testing::nvme_model;
using offcopy::testing::nvme_model_config;

namespace {
std::vector<std::uint8_t> pattern(std::size_t n, std::uint8_t seed) {
  std::vector<std::uint8_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>(seed + i * 7 + (i >> 9));
  return v;
}
detail::command make_cmd(std::uint64_t tag, const std::vector<plan_segment>& segs) {
  detail::command c;
  c.tag = tag;
  c.segments = segs;
  c.block_bytes = 512;
  return c;
}
std::vector<detail::completion> reap_all(copy_session& s, unsigned n) {
  std::vector<detail::completion> out;
  REQUIRE(s.reap(n, out).ok());
  return out;
}
}  // namespace

TEST_CASE("gather: scattered sources land back to back in one Copy") {
  nvme_model m(nvme_model_config{});
  m.write_blocks(0, pattern(8 * 512, 1));
  m.write_blocks(100, pattern(4 * 512, 2));
  copy_session s(m.make_transport(4), session_params{});
  const std::vector<plan_segment> segs{{0, 1000, 8}, {100, 1008, 4}};
  REQUIRE(s.submit(make_cmd(7, segs)).ok());
  auto out = reap_all(s, 1);
  REQUIRE(out.size() == 1);
  CHECK(out[0].tag == 7);
  CHECK(out[0].result.ok());
  REQUIRE(m.log().size() == 1);
  const auto& rec = m.log()[0];
  CHECK(rec.opcode == 0x19);
  CHECK(rec.nsid == 1);
  CHECK(rec.fields.sdlba == 1000);
  CHECK(rec.fields.ranges == 2);
  CHECK(rec.fields.format == 0);
  REQUIRE(rec.ranges.size() == 2);
  CHECK(rec.ranges[0].slba == 0);
  CHECK(rec.ranges[0].blocks == 8);
  CHECK(rec.ranges[1].slba == 100);
  CHECK(rec.ranges[1].blocks == 4);
  CHECK(m.read_blocks(1000, 8) == pattern(8 * 512, 1));
  CHECK(m.read_blocks(1008, 4) == pattern(4 * 512, 2));
}

TEST_CASE("partition offsets are added to both sides; PI regenerates with ILBRT = SDLBA") {
  nvme_model m(nvme_model_config{});
  session_params p;
  p.src_offset_blocks = 2048;
  p.dst_offset_blocks = 4096;
  p.pi_regenerate = true;
  copy_session s(m.make_transport(1), p);
  const std::vector<plan_segment> segs{{10, 20, 5}};
  REQUIRE(s.submit(make_cmd(1, segs)).ok());
  auto out = reap_all(s, 1);
  REQUIRE(out.size() == 1);
  CHECK(out[0].result.ok());
  const auto& f = m.log().at(0).fields;
  CHECK(f.sdlba == 4116);
  CHECK(m.log()[0].ranges.at(0).slba == 2058);
  CHECK(f.prinfow == 0x8);  // PRACT: the controller writes fresh PI for the destination LBAs
  CHECK(f.prinfor == 0x8);  // QEMU 7.2 wants PRACT equal on both sides
  CHECK(f.ilbrt == 4116);
}

TEST_CASE("segments longer than 65536 blocks become several ranges; over 256 ranges is a size limit") {
  nvme_model_config cfg;
  cfg.blocks = 1 << 20;
  cfg.enforce_limits = false;
  nvme_model m(cfg);
  copy_session s(m.make_transport(2), session_params{});
  const std::vector<plan_segment> one{{0, 500000, 65536 * 2 + 3}};
  REQUIRE(s.submit(make_cmd(1, one)).ok());
  auto out = reap_all(s, 1);
  REQUIRE(out.size() == 1);
  CHECK(out[0].result.ok());
  REQUIRE(m.log().at(0).ranges.size() == 3);
  CHECK(m.log()[0].ranges[0].blocks == 65536);
  CHECK(m.log()[0].ranges[2].blocks == 3);
  CHECK(m.log()[0].ranges[2].slba == 131072);

  std::vector<plan_segment> many;
  for (std::uint64_t i = 0; i < 257; ++i) many.push_back({i * 2, 600000 + i, 1});
  REQUIRE(s.submit(make_cmd(2, many)).ok());
  out = reap_all(s, 1);
  REQUIRE(out.size() == 1);
  CHECK(out[0].result.code() == errc::size_limit_exceeded);
  CHECK(m.log().size() == 1);  // never sent
}

TEST_CASE("non-contiguous destinations are a bug in the caller, refused before sending") {
  nvme_model m(nvme_model_config{});
  copy_session s(m.make_transport(1), session_params{});
  const std::vector<plan_segment> segs{{0, 100, 4}, {10, 200, 4}};
  CHECK(s.submit(make_cmd(1, segs)).code() == errc::internal);
  CHECK(m.log().empty());
}

TEST_CASE("statuses: 0x83, invalid opcode, partial progress from DW0") {
  SUBCASE("controller limits: 0x83 → size_limit_exceeded, nothing done") {
    nvme_model_config cfg;
    cfg.mssrl = 4;
    nvme_model m(cfg);
    copy_session s(m.make_transport(1), session_params{});
    const std::vector<plan_segment> segs{{0, 100, 8}};
    REQUIRE(s.submit(make_cmd(3, segs)).ok());
    auto out = reap_all(s, 1);
    REQUIRE(out.size() == 1);
    CHECK(out[0].result.code() == errc::size_limit_exceeded);
    REQUIRE(out[0].result.nvme().has_value());
    CHECK(out[0].result.nvme()->sc == 0x83);
    CHECK(out[0].result.nvme()->name == "Command Size Limit Exceeded");
    CHECK(out[0].blocks_done == 0);
  }
  SUBCASE("Copy unsupported: Invalid Command Opcode → not_supported") {
    nvme_model_config cfg;
    cfg.copy_supported = false;
    nvme_model m(cfg);
    copy_session s(m.make_transport(1), session_params{});
    const std::vector<plan_segment> segs{{0, 100, 8}};
    REQUIRE(s.submit(make_cmd(3, segs)).ok());
    auto out = reap_all(s, 1);
    CHECK(out.at(0).result.code() == errc::not_supported);
    CHECK(out[0].result.nvme()->sc == 0x01);
  }
  SUBCASE("fault after 2 of 3 ranges: blocks_done counts exactly those ranges") {
    nvme_model m(nvme_model_config{});
    m.write_blocks(0, pattern(30 * 512, 9));
    m.inject(nvme_fault{2, make_raw_status(sct_generic, sc_internal_error), 2});
    copy_session s(m.make_transport(4), session_params{});
    const std::vector<plan_segment> a{{0, 1000, 1}};
    const std::vector<plan_segment> b{{0, 2000, 5}, {10, 2005, 7}, {20, 2012, 9}};
    REQUIRE(s.submit(make_cmd(1, a)).ok());
    REQUIRE(s.submit(make_cmd(2, b)).ok());
    auto out = reap_all(s, 2);
    REQUIRE(out.size() == 2);
    CHECK(out[0].result.ok());
    CHECK(out[1].tag == 2);
    CHECK(out[1].result.code() == errc::device_error);
    CHECK(out[1].result.nvme()->dw0 == 2);
    CHECK(out[1].blocks_done == 12);
    CHECK(m.read_blocks(2000, 5) == m.read_blocks(0, 5));
    CHECK(m.read_blocks(2005, 7) == m.read_blocks(10, 7));
    CHECK(m.read_blocks(2012, 9) == std::vector<std::uint8_t>(9 * 512, 0));
  }
}

TEST_CASE("a DW0 past the range count claims no progress") {
  nvme_model m(nvme_model_config{});
  // One range copied, but DW0 = 5: past the single range of this command.
  m.inject(nvme_fault{1, make_raw_status(sct_generic, sc_internal_error), 1, 5});
  copy_session s(m.make_transport(1), session_params{});
  const std::vector<plan_segment> segs{{0, 100, 8}};
  REQUIRE(s.submit(make_cmd(1, segs)).ok());
  auto out = reap_all(s, 1);
  REQUIRE(out.size() == 1);
  CHECK(out[0].result.code() == errc::device_error);
  CHECK(out[0].result.nvme()->dw0 == 5);
  CHECK(out[0].blocks_done == 0);
}

TEST_CASE("out-of-order completions are matched by tag; finish() flushes the namespace") {
  nvme_model m(nvme_model_config{});
  copy_session s(m.make_transport(8, /*reverse_completion=*/true), session_params{});
  CHECK(s.queue_depth() == 8);
  std::vector<std::vector<plan_segment>> cmds;
  for (std::uint64_t i = 0; i < 8; ++i) cmds.push_back({{i * 16, 4000 + i * 16, 16}});
  for (std::uint64_t i = 0; i < 8; ++i) REQUIRE(s.submit(make_cmd(100 + i, cmds[i])).ok());
  auto out = reap_all(s, 8);
  REQUIRE(out.size() == 8);
  CHECK(out[0].tag == 107);
  CHECK(out[7].tag == 100);
  for (const auto& c : out) CHECK(c.result.ok());
  REQUIRE(s.finish().ok());
  CHECK(m.log().back().opcode == 0x00);
}
