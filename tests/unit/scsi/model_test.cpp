// The SCSI backends against the in-process copy-manager model: discovery, the exact command
// sequence the engine sends for a plan, limits, retries, faults, token copy.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "offcopy/copy.hpp"
#include "src/core/backend.hpp"
#include "src/core/device_state.hpp"
#include "src/scsi/lu.hpp"
#include "src/scsi/token.hpp"
#include "src/scsi/xcopy.hpp"
#include "tests/models/scsi_model.hpp"

using namespace offcopy;
using offcopy::test::scsi_model;
using offcopy::test::scsi_model_config;
using strings = std::vector<std::string>;

namespace {

constexpr std::uint64_t MiB = 1 << 20;

struct tmpdir {
  tmpdir() {
    char t[] = "/tmp/offcopy-scsi-model-XXXXXX";
    REQUIRE(::mkdtemp(t) != nullptr);
    path = t;
  }
  ~tmpdir() { std::filesystem::remove_all(path); }
  std::string file(const std::string& n) const { return path + "/" + n; }
  std::string path;
};

std::vector<std::uint8_t> read_file(const std::string& p, std::uint64_t off, std::uint64_t n) {
  std::vector<std::uint8_t> b(n);
  std::ifstream in(p, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(off));
  in.read(reinterpret_cast<char*>(b.data()), static_cast<std::streamsize>(n));
  return b;
}

void fill_random(const std::string& p, std::uint64_t off, std::uint64_t n, unsigned seed) {
  std::vector<std::uint8_t> b(n);
  std::mt19937 g(seed);
  for (auto& x : b) x = static_cast<std::uint8_t>(g());
  std::fstream out(p, std::ios::binary | std::ios::in | std::ios::out);
  out.seekp(static_cast<std::streamoff>(off));
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(n));
}

struct rig {
  explicit rig(scsi_model_config cfg, std::uint64_t size = 64 * MiB, std::uint32_t dst_lbs = 512) : model(cfg) {
    model.add_lu("lun0", dir.file("lun0"), size, 512);
    model.add_lu("lun1", dir.file("lun1"), size, dst_lbs);
    fill_random(dir.file("lun0"), 0, 16 * MiB, 1);
    auto s = device::open(dir.file("lun0"));
    open_options wo;
    wo.writable = true;
    auto d = device::open(dir.file("lun1"), wo);
    REQUIRE(s.ok());
    REQUIRE(d.ok());
    src = s.value();
    dst = d.value();
    src_caps = src->probe();  // discovery runs on demand: run it here, before the log is cleared
    (void)dst->probe();
    model.clear_log();  // discovery commands are not part of the copy
  }
  report copy(std::vector<extent> ex, copy_mode mode = copy_mode::offload, std::vector<std::string> backends = {}) {
    request r;
    r.source = src;
    r.destination = dst;
    r.extents = std::move(ex);
    policy p;
    p.mode = mode;
    p.backends = std::move(backends);
    return offcopy::copy(r, p);
  }
  bool same(std::uint64_t src_off, std::uint64_t dst_off, std::uint64_t n) {
    return read_file(dir.file("lun0"), src_off, n) == read_file(dir.file("lun1"), dst_off, n);
  }
  tmpdir dir;
  scsi_model model;
  std::shared_ptr<device> src, dst;
  capabilities src_caps;  // src->probe(): what discovery found
};

scsi_model_config lio() { return {}; }
scsi_model_config roomy() {
  scsi_model_config c;
  c.snlid = false;
  c.max_segment_descriptors = 4;
  c.max_descriptor_list_bytes = 1024;
  return c;
}
scsi_model_config token_only() {
  scsi_model_config c;
  c.xcopy = false;
  c.token = true;
  c.max_range_descriptors = 4;
  c.max_token_transfer_blocks = 8192;  // 4 MiB
  return c;
}

/// The log without list ids (they depend on the process).
strings shape(const strings& log) {
  strings out;
  for (auto s : log) {
    auto p = s.find(" id=");
    if (p != std::string::npos) {
      auto e = s.find(' ', p + 1);
      s.erase(p, e == std::string::npos ? std::string::npos : e - p);
    }
    out.push_back(s);
  }
  return out;
}

}  // namespace

namespace doctest {
template <>
struct StringMaker<strings> {
  static String convert(const strings& v) {
    std::string s = "{";
    for (const auto& x : v) s += "\n  \"" + x + "\"";
    return (s + "}").c_str();
  }
};
}  // namespace doctest

TEST_CASE("model: probe reports LIO-like XCOPY limits and no token copy") {
  rig r(lio());
  const auto* x = r.src_caps.find("scsi-xcopy");
  REQUIRE(x != nullptr);
  CHECK(x->available);
  CHECK(x->limits.max_segments_per_command == 1);
  CHECK(x->limits.max_segment_blocks == 65535);
  CHECK(x->limits.max_command_blocks == 0);
  CHECK_FALSE(x->limits.contiguous_destination);
  const auto* t = r.src_caps.find("scsi-token");
  REQUIRE(t != nullptr);
  CHECK_FALSE(t->available);
  CHECK(t->reason.find("0x8F") != std::string::npos);
}

TEST_CASE("model: roomier limits: segments bounded by the descriptor list length") {
  auto c = roomy();
  c.max_segment_descriptors = 100;
  c.max_descriptor_list_bytes = 2 * 32 + 10 * 28 + 5;  // room for 10 segments with 2 CSCDs
  c.max_segment_bytes = 1 * MiB;
  rig r(c);
  const auto* x = r.src_caps.find("scsi-xcopy");
  REQUIRE(x != nullptr);
  CHECK(x->limits.max_segments_per_command == 10);
  CHECK(x->limits.max_segment_blocks == 2048);
}

TEST_CASE("model: LIO-like: one segment per command, no list id, 65535-block split") {
  rig r(lio());
  auto rep = r.copy({{0, 8 * MiB, 1 * MiB}, {1 * MiB, 20 * MiB, 2 * MiB}, {12 * MiB, 30 * MiB, 40 * MiB - 12 * MiB}});
  INFO(rep.result.to_string());
  REQUIRE(rep.result.ok());
  // 28 MiB = 57344 blocks fits one segment; 40 MiB would not.
  CHECK(shape(r.model.log()) == strings{"lun1 XCOPY usage=3 0>16384x2048", "lun1 XCOPY usage=3 2048>40960x4096",
                                        "lun1 XCOPY usage=3 24576>61440x57344"});
  CHECK(rep.of("scsi-xcopy").commands == 3);
  CHECK(r.same(0, 8 * MiB, 1 * MiB));
  CHECK(r.same(1 * MiB, 20 * MiB, 2 * MiB));
  r.model.clear_log();
  auto big = r.copy({{0, 0, 40 * MiB}});
  REQUIRE(big.result.ok());
  CHECK(shape(r.model.log()) == strings{"lun1 XCOPY usage=3 0>0x65535", "lun1 XCOPY usage=3 65535>65535x16385"});
  CHECK(r.same(0, 0, 16 * MiB));
}

TEST_CASE("model: roomier copy manager: scattered extents packed 4 per command, list ids discarded") {
  rig r(roomy());
  std::vector<extent> ex;
  for (int i = 0; i < 6; ++i)
    ex.push_back(
        {static_cast<std::uint64_t>(i) * 2 * MiB, 32 * MiB + static_cast<std::uint64_t>(5 - i) * 2 * MiB, MiB});
  auto rep = r.copy(ex);
  INFO(rep.result.to_string());
  REQUIRE(rep.result.ok());
  CHECK(rep.of("scsi-xcopy").commands == 2);
  auto log = shape(r.model.log());
  REQUIRE(log.size() == 2);
  CHECK(log[0].rfind("lun1 XCOPY usage=2 ", 0) == 0);
  CHECK(std::count(log[0].begin(), log[0].end(), '>') == 4);
  CHECK(std::count(log[1].begin(), log[1].end(), '>') == 2);
  CHECK(r.model.log()[0] != r.model.log()[1]);  // different list ids
  for (int i = 0; i < 6; ++i)
    CHECK(r.same(static_cast<std::uint64_t>(i) * 2 * MiB, 32 * MiB + static_cast<std::uint64_t>(5 - i) * 2 * MiB, MiB));
}

TEST_CASE("model: busy list id is retried with another id") {
  rig r(roomy());
  r.model.busy_list_ids(2);
  auto rep = r.copy({{0, 0, MiB}});
  INFO(rep.result.to_string());
  REQUIRE(rep.result.ok());
  const auto& log = r.model.log();
  REQUIRE(log.size() == 3);
  CHECK(log[0].find(" busy") != std::string::npos);
  CHECK(log[1].find(" busy") != std::string::npos);
  CHECK(log[2].find(" busy") == std::string::npos);
  CHECK(log[0].substr(0, log[0].find(" usage")) != log[2].substr(0, log[2].find(" usage")));
  CHECK(r.same(0, 0, MiB));
}

TEST_CASE("model: 26/08 from the device: the engine splits and re-sends") {
  rig r(roomy());
  r.model.fail_copy_command(1, detail::scsi::make_fixed_sense(0x05, 0x26, 0x08));
  auto rep = r.copy({{0, 0, MiB}, {2 * MiB, 4 * MiB, MiB}, {6 * MiB, 8 * MiB, MiB}});
  INFO(rep.result.to_string());
  REQUIRE(rep.result.ok());
  auto log = shape(r.model.log());
  REQUIRE(log.size() >= 3);
  CHECK(std::count(log[0].begin(), log[0].end(), '>') == 3);  // refused
  CHECK(std::count(log[1].begin(), log[1].end(), '>') < 3);   // halves
  CHECK(rep.of("scsi-xcopy").retries >= 1);
  CHECK(r.same(0, 0, MiB));
  CHECK(r.same(6 * MiB, 8 * MiB, MiB));
}

TEST_CASE("model: COPY ABORTED 0D/02 stops the copy with the sense decoded") {
  rig r(lio());
  r.model.fail_copy_command(2, detail::scsi::make_fixed_sense(0x0A, 0x0D, 0x02));
  auto rep = r.copy({{0, 0, MiB}, {2 * MiB, 4 * MiB, MiB}, {6 * MiB, 8 * MiB, MiB}}, copy_mode::automatic);
  CHECK(rep.result.code() == errc::device_error);
  REQUIRE(rep.result.scsi());
  CHECK(rep.result.scsi()->sense_key == 0x0A);
  CHECK(rep.result.scsi()->asc == 0x0D);
  CHECK(rep.result.scsi()->ascq == 0x02);
  CHECK(rep.result.scsi()->text.find("opy") != std::string::npos);
  CHECK(rep.bytes_copied == MiB);
  CHECK(r.model.log().size() == 2);
}

TEST_CASE("model: invalid opcode mid-copy: auto falls back, offload fails") {
  {
    rig r(lio());
    r.model.fail_copy_command(1, detail::scsi::make_fixed_sense(0x05, 0x20, 0x00));
    auto rep = r.copy({{0, 0, 2 * MiB}}, copy_mode::automatic);
    INFO(rep.result.to_string());
    REQUIRE(rep.result.ok());
    CHECK(r.same(0, 0, 2 * MiB));
    CHECK(rep.of("scsi-xcopy").bytes == 0);
  }
  {
    rig r(lio());
    r.model.fail_copy_command(1, detail::scsi::make_fixed_sense(0x05, 0x20, 0x00));
    auto rep = r.copy({{0, 0, 2 * MiB}}, copy_mode::offload);
    CHECK(rep.result.code() == errc::not_supported);
  }
}

TEST_CASE("model: 512 vs 4096-byte blocks: XCOPY refused with the reason, auto copies anyway") {
  rig r(lio(), 64 * MiB, 4096);
  request req;
  req.source = r.src;
  req.destination = r.dst;
  req.extents = {{0, 0, MiB}};
  auto p = make_plan(req, {});
  REQUIRE(p.ok());
  bool seen = false;
  for (const auto& c : p.value().considered)
    if (c.backend == "scsi-xcopy") {
      seen = true;
      CHECK_FALSE(c.chosen);
      CHECK(c.reason.find("512 vs 4096") != std::string::npos);
    }
  CHECK(seen);
  auto rep = r.copy({{0, 0, MiB}}, copy_mode::automatic);
  REQUIRE(rep.result.ok());
  CHECK(r.model.log().empty());
  CHECK(r.same(0, 0, MiB));
}

TEST_CASE("model: copy within one LU (one CSCD)") {
  tmpdir dir;
  scsi_model m(lio());
  m.add_lu("lun0", dir.file("lun0"), 64 * MiB);
  fill_random(dir.file("lun0"), 0, 4 * MiB, 3);
  open_options wo;
  wo.writable = true;
  auto s = device::open(dir.file("lun0"));
  auto d = device::open(dir.file("lun0"), wo);
  REQUIRE(s.ok());
  REQUIRE(d.ok());
  m.clear_log();
  request req{s.value(), d.value(), {{0, 32 * MiB, 2 * MiB}}};
  policy pol;
  pol.mode = copy_mode::offload;
  auto rep = copy(req, pol);
  INFO(rep.result.to_string());
  REQUIRE(rep.result.ok());
  CHECK(shape(m.log()) == strings{"lun0 XCOPY usage=3 0>65536x4096"});
  CHECK(read_file(dir.file("lun0"), 0, 2 * MiB) == read_file(dir.file("lun0"), 32 * MiB, 2 * MiB));
}

TEST_CASE("model: token copy: POPULATE TOKEN, RRTI, WRITE USING TOKEN, RRTI per command") {
  rig r(token_only());
  const auto* t = r.src_caps.find("scsi-token");
  REQUIRE(t != nullptr);
  CHECK(t->available);
  CHECK(t->limits.max_segments_per_command == 4);
  CHECK(t->limits.max_command_blocks == 8192);
  auto rep = r.copy({{0, 8 * MiB, MiB}, {4 * MiB, 12 * MiB, MiB}, {2 * MiB, 20 * MiB, 3 * MiB}});
  INFO(rep.result.to_string());
  REQUIRE(rep.result.ok());
  CHECK(rep.of("scsi-token").bytes == 5 * MiB);
  // 4 MiB per token: 2048 + 2048 + the first 4096 blocks... split at 8192 blocks.
  CHECK(shape(r.model.log()) == strings{"lun0 PT 0x2048 8192x2048 4096x4096", "lun0 RRTI",
                                        "lun1 WUT del off=0 16384x2048 24576x2048 40960x4096", "lun1 RRTI",
                                        "lun0 PT 8192x2048", "lun0 RRTI", "lun1 WUT del off=0 45056x2048",
                                        "lun1 RRTI"});
  CHECK(r.same(0, 8 * MiB, MiB));
  CHECK(r.same(4 * MiB, 12 * MiB, MiB));
  CHECK(r.same(2 * MiB, 20 * MiB, 3 * MiB));
}

TEST_CASE("model: partial WRITE USING TOKEN is finished with offsets into the ROD") {
  // A short WRITE USING TOKEN ends GOOD with COPY OPERATION STATUS 04h (completed with residual
  // data) or 03h (partial ROD token usage, QNAP's answer): both are resumed from the transfer
  // count, never reported as a device error.
  for (const std::uint8_t status : {std::uint8_t{0x04}, std::uint8_t{0x03}}) {
    for (const std::uint8_t units : {std::uint8_t{0xF1}, std::uint8_t{0x00}, std::uint8_t{0x01}}) {
      CAPTURE(int(status));
      CAPTURE(int(units));
      auto c = token_only();
      c.write_using_token_max_blocks = 1500;
      c.short_write_status = status;
      c.transfer_count_units = units;
      c.honour_del_tkn = false;  // the token outlives a short write: the rest uses OFFSET INTO ROD
      rig r(c);
      auto rep = r.copy({{0, 8 * MiB, MiB}, {4 * MiB, 12 * MiB, MiB}});
      INFO(rep.result.to_string());
      REQUIRE(rep.result.ok());
      CHECK(shape(r.model.log()) == strings{"lun0 PT 0x2048 8192x2048", "lun0 RRTI",
                                            "lun1 WUT del off=0 16384x2048 24576x2048", "lun1 RRTI",
                                            "lun1 WUT del off=1500 17884x548 24576x2048", "lun1 RRTI",
                                            "lun1 WUT del off=3000 25528x1096", "lun1 RRTI"});
      CHECK(r.same(0, 8 * MiB, MiB));
      CHECK(r.same(4 * MiB, 12 * MiB, MiB));
    }
  }
}

TEST_CASE("model: a token that represents fewer blocks than asked: write what it covers, populate the rest") {
  // RRTI after POPULATE TOKEN: copy operation status 04h/03h and a transfer count of 1000 blocks,
  // in blocks (F1h), bytes (00h) or KiB (01h). Each token's part is written from ROD offset 0,
  // then the remaining source ranges are populated again.
  for (const std::uint8_t units : {std::uint8_t{0xF1}, std::uint8_t{0x00}, std::uint8_t{0x01}}) {
    for (const std::uint8_t status : {std::uint8_t{0x04}, std::uint8_t{0x03}}) {
      CAPTURE(int(units));
      CAPTURE(int(status));
      auto c = token_only();
      c.populate_max_blocks = 1000;
      c.populate_short_status = status;
      c.transfer_count_units = units;
      rig r(c);
      auto rep = r.copy({{0, 8 * MiB, MiB}, {4 * MiB, 12 * MiB, MiB}});
      INFO(rep.result.to_string());
      REQUIRE(rep.result.ok());
      CHECK(rep.bytes_copied == 2 * MiB);
      CHECK(shape(r.model.log()) == strings{"lun0 PT 0x2048 8192x2048",
                                            "lun0 RRTI",
                                            "lun1 WUT del off=0 16384x1000",
                                            "lun1 RRTI",
                                            "lun0 PT 1000x1048 8192x2048",
                                            "lun0 RRTI",
                                            "lun1 WUT del off=0 17384x1000",
                                            "lun1 RRTI",
                                            "lun0 PT 2000x48 8192x2048",
                                            "lun0 RRTI",
                                            "lun1 WUT del off=0 18384x48 24576x952",
                                            "lun1 RRTI",
                                            "lun0 PT 9144x1096",
                                            "lun0 RRTI",
                                            "lun1 WUT del off=0 25528x1000",
                                            "lun1 RRTI",
                                            "lun0 PT 10144x96",
                                            "lun0 RRTI",
                                            "lun1 WUT del off=0 26528x96",
                                            "lun1 RRTI"});
      CHECK(r.same(0, 8 * MiB, MiB));
      CHECK(r.same(4 * MiB, 12 * MiB, MiB));
    }
  }
}

TEST_CASE("model: transfer counts in MiB units, a count in reserved units is not taken as blocks") {
  {
    auto c = token_only();
    c.populate_max_blocks = 2048;  // 1 MiB per token
    c.transfer_count_units = 0x02;
    rig r(c);
    auto rep = r.copy({{0, 8 * MiB, MiB}, {4 * MiB, 12 * MiB, MiB}});
    INFO(rep.result.to_string());
    REQUIRE(rep.result.ok());
    CHECK(shape(r.model.log()) == strings{"lun0 PT 0x2048 8192x2048", "lun0 RRTI", "lun1 WUT del off=0 16384x2048",
                                          "lun1 RRTI", "lun0 PT 8192x2048", "lun0 RRTI",
                                          "lun1 WUT del off=0 24576x2048", "lun1 RRTI"});
    CHECK(r.same(4 * MiB, 12 * MiB, MiB));
  }
  {
    // 07h is reserved: the count means nothing. 01h (completed, no residual) still says all of it
    // was done.
    auto c = token_only();
    c.transfer_count_units = 0x07;
    rig r(c);
    auto rep = r.copy({{0, 8 * MiB, MiB}});
    INFO(rep.result.to_string());
    REQUIRE(rep.result.ok());
    CHECK(shape(r.model.log()) == strings{"lun0 PT 0x2048", "lun0 RRTI", "lun1 WUT del off=0 16384x2048", "lun1 RRTI"});
    CHECK(r.same(0, 8 * MiB, MiB));
  }
  {
    // A short write (04h) whose count is in reserved units proves nothing: stop, claim nothing.
    auto c = token_only();
    c.transfer_count_units = 0x07;
    c.write_using_token_max_blocks = 1500;
    rig r(c);
    auto rep = r.copy({{0, 8 * MiB, MiB}}, copy_mode::offload, {"scsi-token"});
    CHECK(rep.result.code() == errc::device_error);
    CHECK(rep.bytes_copied == 0);
  }
}

TEST_CASE("model: expired token is populated again and the rest written") {
  auto c = token_only();
  c.write_using_token_max_blocks = 1024;
  c.token_lifetime_writes = 1;
  c.honour_del_tkn = false;  // it expires on its own (23/07), not by DEL_TKN
  rig r(c);
  auto rep = r.copy({{0, 8 * MiB, MiB}});
  INFO(rep.result.to_string());
  REQUIRE(rep.result.ok());
  // The new token represents what is left (blocks 1024-2047), so the rest is written from its
  // offset 0.
  CHECK(shape(r.model.log()) == strings{"lun0 PT 0x2048", "lun0 RRTI", "lun1 WUT del off=0 16384x2048", "lun1 RRTI",
                                        "lun1 WUT del off=1024 17408x1024", "lun1 RRTI", "lun0 PT 1024x1024",
                                        "lun0 RRTI", "lun1 WUT del off=0 17408x1024", "lun1 RRTI"});
  CHECK(r.same(0, 8 * MiB, MiB));
}

TEST_CASE("model: IMMED token copy polls RRTI until done, zero ROD token writes zeros") {
  // Every "in progress" status keeps the poll going: 10h (unknown), 11h (foreground), 12h
  // (background) — SPC-4, FreeBSD CTL RCS_CCS_INPROG_FGBG/FG/BG.
  for (const std::uint8_t running : {std::uint8_t{0x10}, std::uint8_t{0x11}, std::uint8_t{0x12}}) {
    CAPTURE(int(running));
    auto c = token_only();
    c.in_progress_polls = 2;
    c.in_progress_status = running;
    rig r(c);
    auto ts = detail::scsi::open_transport(detail::state_of(*r.src));
    auto td = detail::scsi::open_transport(detail::state_of(*r.dst));
    REQUIRE(ts);
    REQUIRE(td);
    detail::scsi::token_options opt;
    opt.immed = true;
    opt.poll_floor_ms = 0;
    detail::scsi::token_stats stats;
    std::vector<plan_segment> segs = {{0, 100, 50}};
    std::uint64_t done = 0;
    auto st = detail::scsi::token_copy(*ts, *td, segs, opt, stats, done, 512);
    INFO(st.to_string());
    REQUIRE(st.ok());
    CHECK(shape(r.model.log()) == strings{"lun0 PT immed 0x50", "lun0 RRTI", "lun0 RRTI", "lun0 RRTI",
                                          "lun1 WUT immed del off=0 100x50", "lun1 RRTI", "lun1 RRTI", "lun1 RRTI"});
    CHECK(stats.rrti_commands == 6);
    CHECK(r.same(0, 100 * 512, 50 * 512));
    r.model.clear_log();
    std::vector<detail::scsi::block_range> zr = {{100, 10}, {140, 2}};
    opt.immed = false;
    st = detail::scsi::token_write_zeros(*td, *detail::scsi::lu_of(detail::state_of(*r.dst)), zr, opt, stats, done);
    REQUIRE(st.ok());
    CHECK(done == 12);
    CHECK(shape(r.model.log()) == strings{"lun1 WUT off=0 100x10 140x2", "lun1 RRTI"});
    CHECK(read_file(r.dir.file("lun1"), 100 * 512, 10 * 512) == std::vector<std::uint8_t>(10 * 512, 0));
    CHECK(r.same(10 * 512, 110 * 512, 30 * 512));
  }
}

TEST_CASE("model: the zero ROD token only when VPD 0x8F descriptor 0x0108 lists FFFF0001h as token input") {
  // Not listed, or listed without TOKEN_IN (a type the array could only create): not_supported,
  // and no WRITE USING TOKEN is sent.
  for (const bool listed : {false, true}) {
    CAPTURE(listed);
    auto c = token_only();
    c.list_zero_rod = listed;
    c.zero_rod_flags = 0x01;  // TOKEN_OUT only
    rig r(c);
    auto td = detail::scsi::open_transport(detail::state_of(*r.dst));
    REQUIRE(td);
    detail::scsi::token_stats stats;
    std::uint64_t done = 7;
    std::vector<detail::scsi::block_range> zr = {{100, 10}};
    auto st = detail::scsi::token_write_zeros(*td, *detail::scsi::lu_of(detail::state_of(*r.dst)), zr, {}, stats, done);
    CHECK(st.code() == errc::not_supported);
    CHECK(st.message().find("0xFFFF0001") != std::string::npos);
    CHECK(done == 0);
    CHECK(r.model.log().empty());
    CHECK(stats.write_commands == 0);
  }
}

TEST_CASE("model: DEL_TKN on the last WRITE USING TOKEN of a real token frees it") {
  {
    rig r(token_only());
    auto rep = r.copy({{0, 8 * MiB, MiB}, {4 * MiB, 12 * MiB, MiB}});
    INFO(rep.result.to_string());
    REQUIRE(rep.result.ok());
    CHECK(shape(r.model.log()) ==
          strings{"lun0 PT 0x2048 8192x2048", "lun0 RRTI", "lun1 WUT del off=0 16384x2048 24576x2048", "lun1 RRTI"});
    CHECK(r.model.live_tokens() == 0);  // without DEL_TKN the array keeps it until it times out
  }
  {
    // A short write with DEL_TKN: the array (like CTL) has deleted the token when the command
    // ends, the next WRITE USING TOKEN gets 23/04, and what is left is populated again.
    auto c = token_only();
    c.write_using_token_max_blocks = 1500;
    rig r(c);
    auto rep = r.copy({{0, 8 * MiB, MiB}, {4 * MiB, 12 * MiB, MiB}});
    INFO(rep.result.to_string());
    REQUIRE(rep.result.ok());
    CHECK(shape(r.model.log()) ==
          strings{"lun0 PT 0x2048 8192x2048", "lun0 RRTI", "lun1 WUT del off=0 16384x2048 24576x2048", "lun1 RRTI",
                  "lun1 WUT del off=1500 17884x548 24576x2048", "lun1 RRTI", "lun0 PT 1500x548 8192x2048", "lun0 RRTI",
                  "lun1 WUT del off=0 17884x548 24576x2048", "lun1 RRTI", "lun1 WUT del off=1500 25528x1096",
                  "lun1 RRTI", "lun0 PT 9144x1096", "lun0 RRTI", "lun1 WUT del off=0 25528x1096", "lun1 RRTI"});
    CHECK(r.same(0, 8 * MiB, MiB));
    CHECK(r.same(4 * MiB, 12 * MiB, MiB));
    CHECK(r.model.live_tokens() == 0);
  }
}

TEST_CASE("model: token copy fault reports the blocks known written") {
  rig r(token_only());
  r.model.fail_copy_command(2, detail::scsi::make_fixed_sense(0x0A, 0x0D, 0x02), 1);
  auto rep = r.copy({{0, 8 * MiB, MiB}, {4 * MiB, 12 * MiB, MiB}}, copy_mode::offload, {"scsi-token"});
  CHECK(rep.result.code() == errc::device_error);
  CHECK(rep.bytes_copied == MiB);
  CHECK(r.same(0, 8 * MiB, MiB));
}

TEST_CASE("model: token copy on a LIO-like LU (forced): invalid opcode → not supported → fallback") {
  ::setenv("OFFCOPY_SCSI_TOKEN_FORCE", "1", 1);
  {
    rig r(lio());
    auto off = r.copy({{0, 0, MiB}}, copy_mode::offload, {"scsi-token"});
    CHECK(off.result.code() == errc::not_supported);
    CHECK(shape(r.model.log()) == strings{"lun0 0x83/0x10 invalid-opcode"});
  }
  {
    rig r(lio());
    auto rep = r.copy({{0, 0, MiB}}, copy_mode::automatic, {"scsi-token", "buffered"});
    INFO(rep.result.to_string());
    CHECK(rep.result.ok());
    CHECK(rep.bytes_copied == MiB);
    CHECK(rep.of("scsi-token").bytes == 0);
    CHECK(r.same(0, 0, MiB));
  }
  ::unsetenv("OFFCOPY_SCSI_TOKEN_FORCE");
}

TEST_CASE("model: RECEIVE COPY STATUS(LID1) after a failed XCOPY: whole segments known copied, never more") {
  // The first command (4 segments of 1 MiB) fails in its third segment after writing 100 of its
  // 2048 blocks. Two segments are known copied whether the array counts the failing segment in
  // SEGMENTS PROCESSED (3) or not (2, FreeBSD CTL), because the transfer count (2 MiB + 100
  // blocks) covers two whole segments only. With reserved units only SEGMENTS PROCESSED − 1.
  struct variant {
    bool counts_failed;
    std::uint8_t units;
    std::uint64_t expect_bytes;
  };
  for (const variant v : {variant{false, 0x00, 2 * MiB}, variant{true, 0x00, 2 * MiB}, variant{false, 0xF1, 2 * MiB},
                          variant{true, 0x02, 2 * MiB}, variant{false, 0x01, 2 * MiB}, variant{false, 0x09, 1 * MiB},
                          variant{true, 0x09, 2 * MiB}}) {
    CAPTURE(v.counts_failed);
    CAPTURE(int(v.units));
    auto c = roomy();
    c.copy_status_lid1 = true;
    c.lid1_counts_failed_segment = v.counts_failed;
    c.lid1_transfer_units = v.units;
    c.fault_partial_blocks = 100;
    rig r(c);
    r.model.fail_copy_command(1, detail::scsi::make_fixed_sense(0x0A, 0x0D, 0x02), 2);
    std::vector<extent> ex;
    for (int i = 0; i < 4; ++i)
      ex.push_back({static_cast<std::uint64_t>(i) * 2 * MiB, 32 * MiB + static_cast<std::uint64_t>(i) * 2 * MiB, MiB});
    auto rep = r.copy(ex);
    CHECK(rep.result.code() == errc::device_error);
    CHECK(rep.bytes_copied == v.expect_bytes);
    auto log = shape(r.model.log());
    REQUIRE(log.size() == 2);
    CHECK(log[1] == "lun1 RCS");
    CHECK(r.same(0, 32 * MiB, MiB));
    CHECK(r.same(2 * MiB, 34 * MiB, MiB));
  }
}

TEST_CASE("lid1_blocks_known_done: whole segments bounded by SEGMENTS PROCESSED and the transfer count") {
  using detail::scsi::copy_status_lid1;
  const std::vector<plan_segment> segs = {{0, 0, 8}, {100, 100, 8}, {200, 200, 8}};
  const auto done = [&](std::uint16_t processed, std::uint8_t units, std::uint32_t count) {
    copy_status_lid1 st;
    st.copy_status = 0x02;
    st.segments_processed = processed;
    st.transfer_count_units = units;
    st.transfer_count = count;
    return detail::scsi::lid1_blocks_known_done(st, segs, 512);
  };
  CHECK(done(0, 0x00, 0) == 0);
  CHECK(done(2, 0x00, 16 * 512) == 16);        // CTL: two segments completed, their bytes
  CHECK(done(3, 0x00, 16 * 512 + 100) == 16);  // counts the failing one: its partial bytes do not make it whole
  CHECK(done(2, 0x00, 15 * 512) == 8);         // a count short of the second segment
  CHECK(done(3, 0xF1, 24) == 24);              // every segment, in blocks
  CHECK(done(9, 0xF1, 1000) == 24);            // more than the command had: capped
  CHECK(done(2, 0x09, 16) == 8);               // reserved units: SEGMENTS PROCESSED − 1
  CHECK(done(1, 0x09, 16) == 0);
}

TEST_CASE("model: a copy manager with 4 concurrent copies gets 4 commands in flight") {
  auto c = roomy();
  c.max_segment_descriptors = 1;
  c.max_concurrent_copies = 4;
  rig r(c);
  policy pol;
  auto sess =
      (*detail::find_backend("scsi-xcopy")).open_session(detail::state_of(*r.src), detail::state_of(*r.dst), pol);
  REQUIRE(sess.ok());
  CHECK(sess.value()->queue_depth() == 4);
  sess = (*detail::find_backend("scsi-xcopy")).open_session(detail::state_of(*r.src), detail::state_of(*r.dst), [] {
    policy p;
    p.commands_in_flight = 2;
    return p;
  }());
  REQUIRE(sess.ok());
  CHECK(sess.value()->queue_depth() == 2);
  std::vector<extent> ex;
  for (int i = 0; i < 12; ++i)
    ex.push_back(
        {static_cast<std::uint64_t>(i) * MiB, 32 * MiB + static_cast<std::uint64_t>(11 - i) * 2 * MiB, 512 * 1024});
  auto rep = r.copy(ex);
  INFO(rep.result.to_string());
  REQUIRE(rep.result.ok());
  CHECK(rep.of("scsi-xcopy").commands == 12);
  CHECK(r.model.log().size() == 12);
  for (int i = 0; i < 12; ++i)
    CHECK(r.same(static_cast<std::uint64_t>(i) * MiB, 32 * MiB + static_cast<std::uint64_t>(11 - i) * 2 * MiB,
                 512 * 1024));
}

TEST_CASE("model: concurrent copies: a fault in one command stops the copy, others complete") {
  auto c = roomy();
  c.max_segment_descriptors = 1;
  c.max_concurrent_copies = 4;
  rig r(c);
  r.model.fail_copy_command(3, detail::scsi::make_fixed_sense(0x0A, 0x0D, 0x02));
  std::vector<extent> ex;
  for (int i = 0; i < 8; ++i)
    ex.push_back({static_cast<std::uint64_t>(i) * 2 * MiB, 32 * MiB + static_cast<std::uint64_t>(i) * 2 * MiB, MiB});
  auto rep = r.copy(ex);
  CHECK(rep.result.code() == errc::device_error);
  CHECK(rep.bytes_copied < 8 * MiB);
}

namespace {

/// Passes commands to another transport and records each one's opcode (and VPD page for an
/// INQUIRY with EVPD: "12/83").
class recording_transport final : public detail::scsi::transport {
 public:
  explicit recording_transport(std::unique_ptr<detail::scsi::transport> inner) : inner_(std::move(inner)) {}
  detail::scsi::scsi_reply execute(std::span<const std::uint8_t> cdb, detail::scsi::data_direction dir,
                                   std::span<std::uint8_t> data, unsigned timeout_seconds) override {
    char b[16];
    if (cdb.size() >= 3 && cdb[0] == 0x12 && (cdb[1] & 1) != 0)
      std::snprintf(b, sizeof b, "12/%02x", cdb[2]);
    else
      std::snprintf(b, sizeof b, "%02x", cdb.empty() ? 0 : cdb[0]);
    sent.emplace_back(b);
    return inner_->execute(cdb, dir, data, timeout_seconds);
  }
  [[nodiscard]] std::string name() const override { return inner_->name(); }
  strings sent;

 private:
  std::unique_ptr<detail::scsi::transport> inner_;
};

/// What the LU answers to an INQUIRY (evpd, page), as the kernel keeps it in sysfs.
std::vector<std::uint8_t> ask(detail::scsi::transport& t, bool evpd, std::uint8_t page) {
  std::vector<std::uint8_t> b(255, 0);
  const std::uint8_t cdb[6] = {0x12, static_cast<std::uint8_t>(evpd ? 1 : 0), page, 0, 255, 0};
  auto r = t.execute(cdb, detail::scsi::data_direction::from_device, b, 10);
  REQUIRE(r.sam_status == 0);
  b.resize(b.size() - r.data_resid_bytes);
  return b;
}

void put(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace

TEST_CASE("model: discovery takes INQUIRY and VPD 00h/83h from the kernel's sysfs copies, a bad copy is asked again") {
  tmpdir dir;
  scsi_model model(lio());
  model.add_lu("lun0", dir.file("lun0"), 8 * MiB, 512);
  auto plain = model.transport_for(dir.file("lun0"));
  REQUIRE(plain != nullptr);
  const auto inquiry = ask(*plain, false, 0), vpd0 = ask(*plain, true, 0x00), vpd83 = ask(*plain, true, 0x83);
  const std::string sys = dir.file("sysfs");
  std::filesystem::create_directory(sys);

  recording_transport by_cmd(model.transport_for(dir.file("lun0")));
  auto reference = detail::scsi::discover(by_cmd);
  REQUIRE(reference.ok());
  const auto& ref = *reference.value();
  CHECK(by_cmd.sent == strings{"12", "12/00", "12/83", "9e", "84"});
  CHECK_FALSE(ref.from_sysfs);
  REQUIRE_FALSE(ref.naa.empty());

  auto discover_with = [&](const char* what) {
    CAPTURE(what);
    recording_transport t(model.transport_for(dir.file("lun0")));
    auto found = detail::scsi::discover(t, std::nullopt, sys);
    REQUIRE(found.ok());
    const auto& lu = *found.value();
    // Whatever the path, the same facts.
    REQUIRE(lu.inquiry);
    CHECK(lu.inquiry->vendor == ref.inquiry->vendor);
    CHECK(lu.inquiry->product == ref.inquiry->product);
    CHECK(lu.inquiry->third_party_copy == ref.inquiry->third_party_copy);
    CHECK(lu.vpd_pages == ref.vpd_pages);
    CHECK(lu.naa == ref.naa);
    CHECK(lu.rcop.has_value());
    return std::make_pair(t.sent, lu.from_sysfs);
  };

  put(sys + "/inquiry", inquiry);
  put(sys + "/vpd_pg0", vpd0);
  put(sys + "/vpd_pg83", vpd83);
  CHECK(discover_with("all three kept") == std::make_pair(strings{"9e", "84"}, true));

  // A copy that is not the page it names, or is cut short, is asked of the device.
  auto wrong = vpd83;
  wrong[1] = 0x80;
  put(sys + "/vpd_pg83", wrong);
  CHECK(discover_with("vpd_pg83 names page 80h") == std::make_pair(strings{"12/83", "9e", "84"}, true));
  put(sys + "/vpd_pg83", {0x00, 0x83});
  CHECK(discover_with("vpd_pg83 shorter than its header") == std::make_pair(strings{"12/83", "9e", "84"}, true));
  put(sys + "/vpd_pg83", vpd83);

  // The kernel keeps no page 00h (it did not ask): the command; then 83h is still its copy.
  std::filesystem::remove(sys + "/vpd_pg0");
  CHECK(discover_with("no vpd_pg0") == std::make_pair(strings{"12/00", "9e", "84"}, true));
  put(sys + "/vpd_pg0", vpd0);

  // Standard INQUIRY data shorter than its 36 bytes: every command, as without sysfs.
  put(sys + "/inquiry", std::vector<std::uint8_t>(inquiry.begin(), inquiry.begin() + 10));
  CHECK(discover_with("inquiry cut short") == std::make_pair(strings{"12", "12/00", "12/83", "9e", "84"}, false));
  std::filesystem::remove(sys + "/inquiry");
  CHECK(discover_with("no inquiry") == std::make_pair(strings{"12", "12/00", "12/83", "9e", "84"}, false));
}

TEST_CASE("lu_info::naa_hex: two lower-case digits per byte, every nibble value") {
  detail::scsi::lu_info lu;
  CHECK(lu.naa_hex().empty());
  lu.naa = {0x60, 0x01, 0x40, 0x5a, 0xbc, 0xde, 0xf9, 0x00, 0xff, 0x0f, 0xf0, 0x12, 0x34, 0x56, 0x78, 0x9b};
  CHECK(lu.naa_hex() == "6001405abcdef900ff0ff0123456789b");
}
