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

TEST_CASE("segments are namespace LBAs, sent as they are, PI regenerates with ILBRT = SDLBA") {
  // Partitions are resolved to their namespace before the backend sees them (src/core/resolve.hpp):
  // a plan's blocks are namespace-absolute.
  nvme_model m(nvme_model_config{});
  session_params p;
  p.pi_regenerate = true;
  copy_session s(m.make_transport(1), p);
  const std::vector<plan_segment> segs{{2058, 4116, 5}};
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

TEST_CASE("segments longer than 65536 blocks become several ranges, over 256 ranges is a size limit") {
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

TEST_CASE("out-of-order completions are matched by tag, finish() flushes the namespace") {
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

namespace {
/// A controller with namespaces 1, 2 and 4 (512-byte blocks) offering formats 0h-3h.
nvme_model_config cross_namespace_config() {
  nvme_model_config c;
  c.ocfs = 0xf;
  return c;
}
void add_namespaces(nvme_model& m) {
  for (std::uint32_t n : {2u, 4u}) {
    nvme_model_config o = cross_namespace_config();
    o.nsid = n;
    m.add_namespace(o);
  }
}
}  // namespace

TEST_CASE("gather across namespaces: one format 2h Copy names each range's source namespace") {
  nvme_model m(cross_namespace_config());
  add_namespaces(m);
  m.host_behavior()[4] = 0x04;  // CDFE: format 2h enabled
  m.write_blocks(1, 0, pattern(8 * 512, 1));
  m.write_blocks(4, 10, pattern(8 * 512, 2));
  m.write_blocks(2, 500, pattern(8 * 512, 3));
  session_params p;
  p.nsid = 2;
  p.descriptor_format = 2;
  copy_session s(m.make_transport(1), p);
  const std::vector<gather_source> src{{1, 0, 8}, {4, 10, 8}, {2, 500, 8}};
  REQUIRE(s.submit_gather(7, 100, src).ok());
  auto out = reap_all(s, 1);
  REQUIRE(out.size() == 1);
  CHECK(out[0].tag == 7);
  CHECK(out[0].result.ok());
  REQUIRE(m.log().size() == 1);
  const auto& rec = m.log()[0];
  CHECK(rec.nsid == 2);
  CHECK(rec.fields.format == 2);
  CHECK(rec.fields.sdlba == 100);
  REQUIRE(rec.ranges.size() == 3);
  CHECK(rec.ranges[0].snsid == 1);
  CHECK(rec.ranges[1].snsid == 4);
  CHECK(rec.ranges[1].slba == 10);
  CHECK(rec.ranges[2].snsid == 2);  // the destination's own namespace, named as such
  CHECK(m.read_blocks(2, 100, 8) == pattern(8 * 512, 1));
  CHECK(m.read_blocks(2, 108, 8) == pattern(8 * 512, 2));
  CHECK(m.read_blocks(2, 116, 8) == pattern(8 * 512, 3));

  // Formats 0h/1h cannot name another namespace: refused before sending.
  session_params q = p;
  q.descriptor_format = 0;
  copy_session t(m.make_transport(1), q);
  CHECK(t.submit_gather(8, 100, src).code() == errc::internal);
  CHECK(m.log().size() == 1);
}

TEST_CASE("Invalid Field for format 2h: CDFE set again and the command resent, once") {
  const std::vector<plan_segment> segs{{0, 100, 8}};
  session_params p;
  p.nsid = 2;
  p.source_nsid = 1;
  p.descriptor_format = 2;
  const std::uint16_t invalid_field = make_raw_status(sct_generic, sc_invalid_field, true);

  SUBCASE("the format had been disabled (a controller reset): enabled again, resent, done") {
    nvme_model m(cross_namespace_config());
    add_namespaces(m);
    int calls = 0;
    p.reenable_formats = [&]() -> status {
      ++calls;
      m.host_behavior()[4] |= 0x04;
      return {};
    };
    copy_session s(m.make_transport(4), p);
    REQUIRE(s.submit(make_cmd(1, segs)).ok());
    auto out = reap_all(s, 1);
    REQUIRE(out.size() == 1);
    CHECK(out[0].result.ok());
    CHECK(calls == 1);
    CHECK(s.format_retries() == 1);
    REQUIRE(m.log().size() == 2);
    CHECK(m.log()[0].raw_status == invalid_field);
    CHECK(m.log()[1].raw_status == 0);
  }
  SUBCASE("still Invalid Field after enabling: completed as not supported, not resent again") {
    nvme_model m(cross_namespace_config());
    add_namespaces(m);
    p.reenable_formats = []() -> status { return {}; };  // claims success, changes nothing
    copy_session s(m.make_transport(1), p);
    REQUIRE(s.submit(make_cmd(1, segs)).ok());
    auto out = reap_all(s, 1);
    REQUIRE(out.size() == 1);
    CHECK(out[0].result.code() == errc::not_supported);
    CHECK(s.format_retries() == 1);
    CHECK(m.log().size() == 2);
  }
  SUBCASE("enabling fails, or no way to enable: completed at once") {
    nvme_model m(cross_namespace_config());
    add_namespaces(m);
    p.reenable_formats = []() -> status { return status(errc::not_supported, "no"); };
    copy_session s(m.make_transport(1), p);
    REQUIRE(s.submit(make_cmd(1, segs)).ok());
    CHECK(reap_all(s, 1).at(0).result.code() == errc::not_supported);
    CHECK(s.format_retries() == 0);
    CHECK(m.log().size() == 1);
  }
  SUBCASE("Invalid Field for format 0h is not about CDFE: not resent") {
    nvme_model_config c;
    c.ocfs = 0x2;  // 1h only: format 0h is Invalid Field
    nvme_model m(c);
    session_params q;
    int calls = 0;
    q.reenable_formats = [&]() -> status {
      ++calls;
      return {};
    };
    copy_session s(m.make_transport(1), q);
    REQUIRE(s.submit(make_cmd(1, segs)).ok());
    CHECK(reap_all(s, 1).at(0).result.code() == errc::not_supported);
    CHECK(calls == 0);
  }
}

TEST_CASE("the model answers hand-built Copy commands as QEMU 10 did in the guest (nvme_xns_status)") {
  // Namespace 1: MSSRL 128, MCL 1024, MSRC 15; 2: MSSRL 64, MCL 512, MSRC 7; 3: 4 KiB blocks.
  nvme_model_config c1;
  c1.ocfs = 0xf;
  c1.mcl = 1024;
  c1.msrc_0based = 15;
  c1.blocks = 16384;
  nvme_model m(c1);
  nvme_model_config c2 = c1;
  c2.nsid = 2;
  c2.mssrl = 64;
  c2.mcl = 512;
  c2.msrc_0based = 7;
  m.add_namespace(c2);
  nvme_model_config c3 = c1;
  c3.nsid = 3;
  c3.lba_bytes = 4096;
  c3.blocks = 1024;
  m.add_namespace(c3);
  m.write_blocks(1, 0, pattern(512 * 512, 5));
  m.write_blocks(2, 0, pattern(512 * 512, 6));

  // One format 2h command with `ranges` (snsid, slba, blocks) into namespace `nsid` at `sdlba`.
  auto send = [&](std::uint32_t nsid, std::uint64_t sdlba, std::vector<source_range> ranges) {
    copy_fields f;
    f.sdlba = sdlba;
    f.ranges = static_cast<std::uint32_t>(ranges.size());
    f.format = 2;
    io_command io;
    io.nsid = nsid;
    REQUIRE(encode_copy_dwords(f, io.dw));
    std::vector<std::uint8_t> data;
    REQUIRE(encode_ranges(2, ranges, data));
    io.data = data.data();
    io.data_bytes = static_cast<std::uint32_t>(data.size());
    return m.execute(io);
  };
  auto r = [](std::uint32_t ns, std::uint64_t slba, std::uint32_t n) {
    source_range s;
    s.snsid = ns;
    s.slba = slba;
    s.blocks = n;
    return s;
  };
  m.host_behavior()[4] = 0;
  CHECK(send(2, 4096, {r(1, 0, 8)}).raw_status == 0x4002);  // CDFE clear
  m.host_behavior()[4] = 0x0c;
  io_completion c = send(1, 8192, {r(2, 0, 64), r(2, 64, 100)});  // over namespace 2's MSSRL
  CHECK(c.raw_status == 0x4183);
  CHECK(c.dw0 == 1);
  CHECK(m.read_blocks(1, 8192, 64) == m.read_blocks(2, 0, 64));
  CHECK(m.read_blocks(1, 8256, 100) == std::vector<std::uint8_t>(100 * 512, 0));
  CHECK(send(2, 4096, {r(1, 0, 100)}).raw_status == 0);  // namespace 1's MSSRL (128) counts
  std::vector<source_range> nine;
  for (std::uint64_t i = 0; i < 9; ++i) nine.push_back(r(1, i * 8, 8));
  CHECK(send(2, 8192, nine).raw_status == 0x4183);  // NR over MSRC + 1
  std::vector<source_range> five;
  for (std::uint64_t i = 0; i < 5; ++i) five.push_back(r(1, i * 128, 128));
  c = send(2, 8192, five);  // 640 blocks over MCL 512: before any range
  CHECK(c.raw_status == 0x4183);
  CHECK(c.dw0 == 0);
  CHECK(send(3, 0, {r(1, 0, 8)}).raw_status == 0x4185);
  CHECK(send(1, 8, {r(1, 0, 16)}).raw_status == 0x4187);
  CHECK(send(1, 100, {r(1, 0, 16)}).raw_status == 0);  // overlap QEMU does not detect: end not inside
  CHECK(send(2, 4096, {r(99, 0, 8)}).raw_status == 0x4002);
  CHECK(send(2, 4096, {r(1000, 0, 8)}).raw_status == 0x400b);
}
