// The real NVMe backend (probe, pair check, transport choice, session, Host Behavior Support) on
// the controller model, through the link factory: cross-namespace copies and their failures.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "offcopy/copy.hpp"
#include "src/core/backend.hpp"
#include "src/core/device_state.hpp"
#include "src/nvme/copy_session.hpp"
#include "src/nvme/nvme_status.hpp"
#include "tests/models/nvme_model.hpp"
#include "tests/unit/test_files.hpp"

using namespace offcopy;
using offcopy::testing::nvme_model;
using offcopy::testing::nvme_model_config;
using offcopy::testing::nvme_model_record;

namespace {

constexpr std::uint64_t ns_bytes = 1 << 20;

nvme_model_config ns_config(std::uint32_t nsid, std::uint16_t mssrl, std::uint32_t mcl, std::uint8_t msrc,
                            std::uint32_t lba_bytes = 512) {
  nvme_model_config c;
  c.nsid = nsid;
  c.lba_bytes = lba_bytes;
  c.blocks = ns_bytes / lba_bytes;
  c.mssrl = mssrl;
  c.mcl = mcl;
  c.msrc_0based = msrc;
  c.ocfs = 0xf;  // QEMU 10
  return c;
}

/// One model controller whose namespaces are files, each opened as a device through the real
/// backend. Namespace 1: MSSRL 16, MCL 64, MSRC 3; 2: MSSRL 8, MCL 40, MSRC 7; 3: 4 KiB blocks.
struct controller {
  test_files::scratch_dir dir;
  std::map<std::uint32_t, std::string> path;
  std::map<std::uint32_t, int> fd;
  std::unique_ptr<nvme_model> model;
  std::map<std::uint32_t, std::shared_ptr<device>> dev;

  explicit controller(bool async = true, nvme_model_config first = ns_config(1, 16, 64, 3)) {
    std::vector<nvme_model_config> cfgs{first, ns_config(2, 8, 40, 7), ns_config(3, 16, 64, 3, 4096)};
    cfgs[1].ocfs = cfgs[2].ocfs = first.ocfs;
    for (const auto& c : cfgs) {
      path[c.nsid] = dir.file("ns" + std::to_string(c.nsid));
      test_files::write_file(path[c.nsid], std::vector<std::uint8_t>(ns_bytes, 0));
      fd[c.nsid] = ::open(path[c.nsid].c_str(), O_RDWR | O_CLOEXEC);
      REQUIRE(fd[c.nsid] >= 0);
      if (!model) {
        model = std::make_unique<nvme_model>(c, fd[c.nsid]);
      } else {
        model->add_namespace(c, fd[c.nsid]);
      }
      model->attach_path(path[c.nsid], c.nsid, async);
    }
    std::vector<std::uint8_t> data(256 << 10);
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::uint8_t>(i * 31 + (i >> 9) * 7 + 1);
    model->write_blocks(1, 0, data);
    for (const auto& [n, p] : path) dev[n] = test_files::open_device(p, true);
    for (const auto& [n, d] : dev) (void)d->probe();  // discovery runs on demand: here, before the log is cleared
    model->clear_log();                               // the probe's Identify / Get Features are not part of the copies
  }
  ~controller() {
    dev.clear();
    model.reset();
    for (auto& [n, f] : fd) ::close(f);
  }
  controller(const controller&) = delete;
  controller& operator=(const controller&) = delete;

  request req(std::uint32_t src, std::uint32_t dst, std::vector<extent> ex) const {
    return request{dev.at(src), dev.at(dst), std::move(ex)};
  }
  std::vector<std::uint8_t> blocks(std::uint32_t nsid, std::uint64_t lba, std::uint64_t n) const {
    return model->read_blocks(nsid, lba, n);
  }
  std::vector<const nvme_model_record*> copies() const {
    std::vector<const nvme_model_record*> out;
    for (const auto& r : model->log())
      if (!r.admin && r.opcode == 0x19) out.push_back(&r);
    return out;
  }
  std::string admin_sequence() const {
    std::string s;
    for (const auto& r : model->log()) {
      if (r.admin)
        s += r.opcode == 0x09 ? "S" : r.opcode == 0x0a ? "G" : "I";
      else if (r.opcode == 0x19)
        s += r.raw_status == 0 ? "c" : "x";
    }
    return s;
  }
};

policy offload(unsigned in_flight = 1) {
  policy pol;
  pol.mode = copy_mode::offload;
  pol.commands_in_flight = in_flight;
  return pol;
}

std::string detail_of(const capabilities& caps, const std::string& key) {
  for (const auto& m : caps.offload)
    if (m.backend == "nvme-copy")
      for (const auto& [k, v] : m.details)
        if (k == key) return v;
  return {};
}

const offload_mechanism* nvme_mechanism(const capabilities& caps) {
  for (const auto& m : caps.offload)
    if (m.backend == "nvme-copy") return &m;
  return nullptr;
}

struct env_var {
  std::string name;
  env_var(std::string n, const std::string& v) : name(std::move(n)) { ::setenv(name.c_str(), v.c_str(), 1); }
  ~env_var() { ::unsetenv(name.c_str()); }
};

}  // namespace

TEST_CASE("backend on the model: probe shows OCFS, CDFE and the namespace's own limits") {
  controller c;
  const capabilities caps = c.dev[2]->probe();  // what discovery found (caps(): what open found)
  const auto* m = nvme_mechanism(caps);
  REQUIRE(m != nullptr);
  CHECK(m->available);
  CHECK(m->limits.max_segment_blocks == 8);
  CHECK(m->limits.max_command_blocks == 40);
  CHECK(m->limits.max_segments_per_command == 8);
  CHECK(detail_of(caps, "ocfs") == "0xf");
  CHECK(detail_of(caps, "cdfe") == "0x0 (enabled: none)");
  CHECK(detail_of(caps, "controller_node") == "model-ctrl");
}

TEST_CASE("backend on the model: cross-namespace copy, format 2h, CDFE set by read-modify-write first") {
  controller c;
  c.model->host_behavior()[100] = 0x5a;  // a byte the copy must not clobber
  // 96 blocks from namespace 1 (MSSRL 16) to namespace 2 (MCL 40, 8 ranges): ranges of at most 16
  // blocks, commands of at most 40 blocks → [16 16 8] [16 16 8] [16].
  report rep = copy(c.req(1, 2, {{0, 100 * 512, 96 * 512}}), offload());
  REQUIRE_MESSAGE(rep.result.ok(), rep.result.to_string());
  CHECK(rep.bytes_copied == 96 * 512);
  CHECK(rep.of("nvme-copy").commands == 3);
  CHECK(rep.of("nvme-copy").retries == 0);
  CHECK(c.admin_sequence() == "GSGccc");
  CHECK(c.model->host_behavior()[4] == 0x04);
  CHECK(c.model->host_behavior()[100] == 0x5a);
  CHECK(c.model->host_behavior()[2] == 1);  // LBAFEE as Linux set it
  const auto cmds = c.copies();
  REQUIRE(cmds.size() == 3);
  const std::vector<std::vector<std::uint32_t>> want{{16, 16, 8}, {16, 16, 8}, {16}};
  std::uint64_t src = 0;
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(cmds[i]->nsid == 2);
    CHECK(cmds[i]->fields.format == 2);
    REQUIRE(cmds[i]->ranges.size() == want[i].size());
    for (std::size_t j = 0; j < want[i].size(); ++j) {
      CHECK(cmds[i]->ranges[j].snsid == 1);
      CHECK(cmds[i]->ranges[j].slba == src);
      CHECK(cmds[i]->ranges[j].blocks == want[i][j]);
      src += want[i][j];
    }
  }
  CHECK(cmds[1]->fields.sdlba == 140);
  CHECK(c.blocks(2, 100, 96) == c.blocks(1, 0, 96));
  CHECK(c.blocks(2, 196, 4) == std::vector<std::uint8_t>(4 * 512, 0));

  // The other way: namespace 2's MSSRL (8) per range, namespace 1's MCL 64 and 4 ranges.
  c.model->clear_log();
  rep = copy(c.req(2, 1, {{100 * 512, 512 * 512, 96 * 512}}), offload());
  REQUIRE(rep.result.ok());
  CHECK(rep.of("nvme-copy").commands == 3);  // 3 × (4 ranges × 8 blocks)
  CHECK(c.admin_sequence() == "Gccc");       // CDFE still set: one Get, no Set
  for (const auto* r : c.copies()) {
    CHECK(r->ranges.size() == 4);
    for (const auto& g : r->ranges) CHECK(g.blocks == 8);
  }
  CHECK(c.blocks(1, 512, 96) == c.blocks(1, 0, 96));
}

TEST_CASE("backend on the model: a controller reset between two copies, and one racing a copy") {
  controller c;
  REQUIRE(copy(c.req(1, 2, {{0, 0, 40 * 512}}), offload()).result.ok());
  CHECK(c.model->host_behavior()[4] == 0x04);

  SUBCASE("between: the next copy checks CDFE and sets it again") {
    c.model->reset_controller();
    c.model->clear_log();
    report rep = copy(c.req(1, 2, {{64 * 512, 64 * 512, 40 * 512}}), offload());
    REQUIRE(rep.result.ok());
    CHECK(c.admin_sequence() == "GSGc");
    CHECK(c.blocks(2, 64, 40) == c.blocks(1, 64, 40));
  }
  SUBCASE("racing: Invalid Field for format 2h → CDFE set again once, the same command sent again") {
    c.model->clear_log();
    c.model->reset_before_copy(c.model->copies_received() + 2);  // before this copy's 2nd command
    report rep = copy(c.req(1, 2, {{0, 200 * 512, 120 * 512}}), offload());
    REQUIRE_MESSAGE(rep.result.ok(), rep.result.to_string());
    CHECK(rep.bytes_copied == 120 * 512);
    CHECK(c.admin_sequence() == "GcxGSGcc");
    const auto cmds = c.copies();
    REQUIRE(cmds.size() == 4);
    CHECK(cmds[1]->raw_status == nvme::make_raw_status(0, nvme::sc_invalid_field, true));
    CHECK(cmds[2]->fields.sdlba == cmds[1]->fields.sdlba);
    CHECK(c.blocks(2, 200, 120) == c.blocks(1, 0, 120));
  }
}

TEST_CASE("backend on the model: incompatible formats fall back before anything is sent") {
  controller c;
  const auto before = c.blocks(3, 0, 16);
  const std::string why =
      "cross-namespace copy between incompatible formats (namespace 1 vs 3: LBA data size 512 B vs 4096 B)";
  CHECK(detail::find_backend("nvme-copy")
            ->check(detail::state_of(*c.dev[1]), detail::state_of(*c.dev[3]), policy{})
            .reason == why);
  SUBCASE("auto: the fallback copies") {
    policy pol;
    pol.commands_in_flight = 1;
    report rep = copy(c.req(1, 3, {{0, 0, 64 << 10}}), pol);
    REQUIRE(rep.result.ok());
    CHECK(rep.of("nvme-copy").bytes == 0);
    CHECK(c.blocks(3, 0, 16) == c.blocks(1, 0, 128));
  }
  SUBCASE("offload: refused with the reason, nothing written, no command sent") {
    report rep = copy(c.req(1, 3, {{0, 0, 64 << 10}}), offload());
    CHECK(rep.result.code() == errc::not_supported);
    CHECK(rep.result.message().find(why) != std::string::npos);
    CHECK(rep.bytes_copied == 0);
    CHECK(c.blocks(3, 0, 16) == before);
  }
  CHECK(c.copies().empty());
  CHECK(c.admin_sequence().empty());
}

TEST_CASE("backend on the model: media errors mid-command report exactly the bytes done (DW0)") {
  for (const copy_mode mode : {copy_mode::offload, copy_mode::automatic}) {
    CAPTURE(static_cast<int>(mode));
    policy pol = offload();
    pol.mode = mode;
    {
      // Unrecovered Read Error on the source. Commands [0,40) [40,80) [80,96) in ranges
      // [0 16 32 | 40 56 72 | 80]: block 60 is in range 1 of the second command → DW0 1 → 40 + 16
      // blocks done; no fallback in auto mode either (a media error is not "not supported").
      controller c;
      c.model->fail_reads(1, 60);
      report rep = copy(c.req(1, 2, {{0, 100 * 512, 96 * 512}}), pol);
      CHECK(rep.result.code() == errc::device_error);
      REQUIRE(rep.result.nvme().has_value());
      CHECK(rep.result.nvme()->raw_status == 0x0281);
      CHECK_FALSE(rep.result.nvme()->dnr);
      CHECK(rep.result.nvme()->dw0 == 1);
      CHECK(rep.bytes_copied == 56 * 512);
      CHECK(rep.fallback_reasons.empty());
      CHECK(c.blocks(2, 100, 56) == c.blocks(1, 0, 56));
      CHECK(c.blocks(2, 156, 40) == std::vector<std::uint8_t>(40 * 512, 0));
    }
    {
      // Write Fault on the destination: block 145 is in the second command's first range [140, 156).
      controller c;
      c.model->fail_writes(2, 145);
      report rep = copy(c.req(1, 2, {{0, 100 * 512, 96 * 512}}), pol);
      CHECK(rep.result.code() == errc::device_error);
      REQUIRE(rep.result.nvme().has_value());
      CHECK(rep.result.nvme()->raw_status == 0x0280);
      CHECK(rep.result.nvme()->dw0 == 0);
      CHECK(rep.bytes_copied == 40 * 512);
      CHECK(c.blocks(2, 100, 40) == c.blocks(1, 0, 40));
    }
  }
}

TEST_CASE("backend on the model: 0x183 from a range over the source's MSSRL or a command over MCL is re-split") {
  controller c;
  SUBCASE("ranges over MSSRL: refused at that range, the ranges before it count") {
    env_var e("OFFCOPY_TEST_NVME_LIMITS", "32:40:7");  // the planner believes MSSRL 32; ns 1 has 16
    report rep = copy(c.req(1, 2, {{0, 0, 96 * 512}}), offload());
    REQUIRE_MESSAGE(rep.result.ok(), rep.result.to_string());
    CHECK(rep.bytes_copied == 96 * 512);
    CHECK(rep.of("nvme-copy").retries > 0);
    bool refused = false;
    for (const auto* r : c.copies())
      if (r->raw_status == 0x4183) refused = true;
    CHECK(refused);
    CHECK(c.blocks(2, 0, 96) == c.blocks(1, 0, 96));
  }
  SUBCASE("commands over MCL: refused before any range") {
    env_var e("OFFCOPY_TEST_NVME_LIMITS", "16:80:7");  // ns 2's MCL is 40
    report rep = copy(c.req(1, 2, {{0, 0, 160 * 512}}), offload());
    REQUIRE(rep.result.ok());
    CHECK(rep.of("nvme-copy").retries >= 2);
    for (const auto* r : c.copies())
      if (r->raw_status == 0x4183) CHECK(r->dw0 == 0);
    CHECK(c.blocks(2, 0, 160) == c.blocks(1, 0, 160));
  }
}

TEST_CASE("backend on the model: transport choice follows the policy and the char device") {
  for (const bool async : {true, false}) {
    CAPTURE(async);
    controller c(async);
    auto& src = detail::state_of(*c.dev[1]);
    auto& dst = detail::state_of(*c.dev[2]);
    detail::backend* b = detail::find_backend("nvme-copy");
    for (const submission sub : {submission::automatic, submission::synchronous, submission::asynchronous}) {
      CAPTURE(static_cast<int>(sub));
      policy pol;
      pol.submit = sub;
      pol.commands_in_flight = 8;
      auto s = b->open_session(src, dst, pol);
      const bool want_async = sub == submission::asynchronous || (sub == submission::automatic && async);
      if (sub == submission::asynchronous && !async) {
        REQUIRE_FALSE(s.ok());
        CHECK(s.error().code() == errc::not_supported);
        continue;
      }
      REQUIRE(s.ok());
      auto* ns = dynamic_cast<nvme::copy_session*>(s.value().get());
      REQUIRE(ns != nullptr);
      CHECK(std::string(ns->transport_name()) == (want_async ? "model-async" : "model-sync"));
      CHECK(ns->queue_depth() == (want_async ? 8u : 1u));
    }
  }
}

TEST_CASE("backend on the model: a controller without Host Behavior Support keeps cross-namespace copies off") {
  nvme_model_config first = ns_config(1, 16, 64, 3);
  first.host_behavior_support = false;
  controller c(true, first);
  CHECK(detail_of(c.dev[2]->probe(), "cdfe").rfind("unknown: Get Features Host Behavior Support", 0) == 0);
  report rep = copy(c.req(1, 2, {{0, 0, 32 << 10}}), offload());
  CHECK(rep.result.code() == errc::not_supported);
  CHECK(rep.result.message().find("needs Host Behavior Support to enable format 2h") != std::string::npos);
  CHECK(c.copies().empty());
  // Within one namespace nothing changes.
  rep = copy(c.req(1, 1, {{0, 512 << 10, 32 << 10}}), offload());
  REQUIRE(rep.result.ok());
  CHECK(c.copies().size() == 1);
  CHECK(c.copies()[0]->fields.format == 0);
}

// Multi-source gather (issue 9 item 4): one request, several source namespaces of one controller,
// one destination namespace. Namespace 2 (the destination) takes 8 ranges and 40 blocks per
// command; namespace 1's ranges are at most 16 blocks, namespace 2's own at most 8.
namespace {

std::vector<std::uint8_t> pattern(std::size_t bytes, std::uint8_t seed) {
  std::vector<std::uint8_t> v(bytes);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<std::uint8_t>(i * 13 + seed + (i >> 9));
  return v;
}

struct want_range {
  std::uint32_t snsid;
  std::uint64_t slba, blocks;
};

void check_ranges(const nvme_model_record& r, std::uint64_t sdlba, const std::vector<want_range>& want) {
  CHECK(r.nsid == 2);
  CHECK(r.fields.format == 2);
  CHECK(r.fields.sdlba == sdlba);
  REQUIRE(r.ranges.size() == want.size());
  for (std::size_t j = 0; j < want.size(); ++j) {
    CHECK(r.ranges[j].snsid == want[j].snsid);
    CHECK(r.ranges[j].slba == want[j].slba);
    CHECK(r.ranges[j].blocks == want[j].blocks);
  }
}

}  // namespace

TEST_CASE("backend on the model: a gather from two namespaces and the destination's own, fewest commands") {
  controller c;
  c.model->write_blocks(2, 600, pattern(8 * 512, 0x40));
  c.model->write_blocks(2, 700, pattern(8 * 512, 0x90));
  // Source 0 = namespace 2 (the destination itself), source 1 = namespace 1.
  request req{c.dev[2], c.dev[2], {}, {c.dev[1]}};
  const std::uint64_t b = 512;
  req.extents = {
      {600 * b, 0 * b, 4 * b, 0},    // own, first: may lead a command
      {0 * b, 4 * b, 20 * b, 1},     // ns1: 16 + 4 (ns1's MSSRL)
      {50 * b, 24 * b, 10 * b, 1},   // ns1
      {700 * b, 34 * b, 4 * b, 0},   // own after ns1: a command of its own (QEMU 10 quirk)
      {200 * b, 38 * b, 12 * b, 1},  // ns1
  };
  auto p = make_plan(req, offload());
  REQUIRE_MESSAGE(p.ok(), p.error().to_string());
  REQUIRE(p.value().parts.size() == 1);
  const plan_part& g = p.value().parts[0];
  CHECK(g.backend == "nvme-copy");
  CHECK(g.gathered == std::vector<std::string>{c.path[2], c.path[1]});
  CHECK(g.gathered_sources == std::vector<std::uint32_t>{0, 1});
  CHECK(g.gathered_segment_blocks == std::vector<std::uint32_t>{8, 16});
  CHECK(p.value().batches.size() == 2);  // two parts packed apart: 3 commands

  report rep = copy(req, offload());
  REQUIRE_MESSAGE(rep.result.ok(), rep.result.to_string());
  CHECK(rep.bytes_copied == 50 * b);
  CHECK(rep.of("nvme-copy").commands == 2);
  CHECK(rep.gathered_sources == std::vector<std::string>{c.path[2], c.path[1]});
  const auto cmds = c.copies();
  REQUIRE(cmds.size() == 2);
  check_ranges(*cmds[0], 0, {{2, 600, 4}, {1, 0, 16}, {1, 16, 4}, {1, 50, 10}});
  check_ranges(*cmds[1], 34, {{2, 700, 4}, {1, 200, 12}});
  CHECK(c.blocks(2, 0, 4) == pattern(4 * 512, 0x40));
  CHECK(c.blocks(2, 4, 20) == c.blocks(1, 0, 20));
  CHECK(c.blocks(2, 24, 10) == c.blocks(1, 50, 10));
  CHECK(c.blocks(2, 34, 4) == pattern(4 * 512, 0x90));
  CHECK(c.blocks(2, 38, 12) == c.blocks(1, 200, 12));
  CHECK(c.blocks(2, 50, 4) == std::vector<std::uint8_t>(4 * 512, 0));  // nothing past the ranges
}

TEST_CASE("backend on the model: gather limits: MSRC + 1 ranges, MCL, each source's MSSRL") {
  controller c;
  request req{c.dev[1], c.dev[2], {}, {c.dev[2]}};
  const std::uint64_t b = 512;
  // 12 one-block extents alternating namespaces 1 and... only ns1 (no own after foreign): 12
  // ranges of ns1 non-adjacent at the source → 8 ranges per command (MSRC 7) → 2 commands.
  for (std::uint64_t i = 0; i < 12; ++i) req.extents.push_back({i * 3 * b, i * b, b, 0});
  // Then 60 own blocks, contiguous at the destination after them: a new command (own after ns1),
  // ranges of 8 (ns2's MSSRL), 40 blocks per command (MCL) → 40 + 20.
  req.extents.push_back({800 * b, 12 * b, 60 * b, 1});
  auto p = make_plan(req, offload());
  REQUIRE_MESSAGE(p.ok(), p.error().to_string());
  REQUIRE(p.value().parts.size() == 1);
  const auto& pl = p.value();
  REQUIRE(pl.batches.size() == 4);
  CHECK(pl.batches[0].segment_count == 8);
  CHECK(pl.batches[1].segment_count == 4);
  CHECK(pl.batch_blocks(pl.batches[2]) == 40);
  CHECK(pl.batches[2].segment_count == 5);
  CHECK(pl.batch_blocks(pl.batches[3]) == 20);
  for (const auto& s : pl.segments) CHECK(s.blocks <= (s.source == 0 ? 16U : 8U));
  report rep = copy(req, offload());
  REQUIRE_MESSAGE(rep.result.ok(), rep.result.to_string());
  CHECK(rep.of("nvme-copy").commands == 4);
  CHECK(rep.of("nvme-copy").retries == 0);  // the model enforces MSSRL per source and MCL: none refused
  for (std::uint64_t i = 0; i < 12; ++i) CHECK(c.blocks(2, i, 1) == c.blocks(1, i * 3, 1));
}

TEST_CASE("backend on the model: a gather source that cannot take part falls back per piece") {
  controller c;
  const std::uint64_t b = 512;
  // Namespace 3 has 4 KiB blocks: incompatible with namespace 2, its piece goes to a fallback.
  request req{c.dev[1], c.dev[2], {}, {c.dev[3]}};
  c.model->write_blocks(3, 10, pattern(2 * 4096, 0x21));
  req.extents = {{0, 0, 16 * b, 0}, {10 * 4096, 16 * b, 8192, 1}, {64 * b, 32 * b, 8 * b, 0}};
  SUBCASE("auto: nvme-copy for namespace 1, buffered for namespace 3, the reason names it") {
    policy pol;
    pol.commands_in_flight = 1;
    report rep = copy(req, pol);
    REQUIRE_MESSAGE(rep.result.ok(), rep.result.to_string());
    CHECK(rep.of("nvme-copy").bytes == 24 * b);
    CHECK(rep.of("nvme-copy").bytes == 24 * b);
    // The model's namespaces are files: copy-file-range is the fallback that takes the piece (on
    // block devices, buffered; with the reason in the report: the guest scenario nvme_gather).
    CHECK(rep.of("copy-file-range").bytes + rep.of("buffered").bytes == 8192);
    auto p = make_plan(req, pol);
    REQUIRE(p.ok());
    REQUIRE(p.value().parts.size() == 2);
    const plan_part& fb = p.value().parts[1];
    CHECK(fb.source == 1);
    CHECK(fb.backend != "nvme-copy");
    REQUIRE(!fb.considered.empty());
    CHECK(fb.considered[0].backend == "nvme-copy");
    CHECK(fb.considered[0].reason.find("incompatible formats") != std::string::npos);
    CHECK(p.value().parts[0].gathered.empty());  // one namespace left: a plain cross-namespace part
    CHECK(p.value().parts[0].backend == "nvme-copy");
    CHECK(c.blocks(2, 16, 16) == c.model->read_blocks(3, 10, 2));
    CHECK(c.blocks(2, 0, 16) == c.blocks(1, 0, 16));
    CHECK(c.blocks(2, 32, 8) == c.blocks(1, 64, 8));
  }
  SUBCASE("offload: not supported, nothing sent") {
    report rep = copy(req, offload());
    CHECK(rep.result.code() == errc::not_supported);
    CHECK(rep.result.message().find("source 1 (" + c.path[3] + ")") == 0);
    CHECK(c.copies().empty());
    CHECK(rep.bytes_copied == 0);
  }
}

TEST_CASE("gather requests: sources named, bounds per source, overlap across sources") {
  controller c;
  const std::uint64_t b = 512;
  SUBCASE("an extent naming a source the request lacks") {
    auto p = make_plan(request{c.dev[1], c.dev[2], {{0, 0, b, 2}}, {c.dev[3]}}, offload());
    REQUIRE(!p.ok());
    CHECK(p.error().code() == errc::invalid_argument);
    CHECK(p.error().message() == "extent 1: source 2 does not exist (sources 0 to 1)");
    auto q = make_plan(request{c.dev[1], c.dev[2], {{0, 0, b, 1}}}, offload());
    REQUIRE(!q.ok());
    CHECK(q.error().code() == errc::invalid_argument);
  }
  SUBCASE("bounds of the source each extent reads") {
    auto p = make_plan(request{c.dev[1], c.dev[2], {{0, 0, b, 0}, {ns_bytes - b, b, 2 * b, 1}}, {c.dev[3]}}, offload());
    REQUIRE(!p.ok());
    CHECK(p.error().code() == errc::out_of_range);
    CHECK(p.error().message().find("extent 2: source 1") == 0);
  }
  SUBCASE("two sources writing the same destination bytes") {
    auto p = make_plan(request{c.dev[1], c.dev[2], {{0, 0, 8 * b, 0}, {0, 4 * b, 8 * b, 1}}, {c.dev[3]}}, offload());
    REQUIRE(!p.ok());
    CHECK(p.error().code() == errc::overlap);
  }
  SUBCASE("one source reading what another source's extent writes") {
    // ns1 → ns2 [0, 8); ns2 (source 1) reads [4, 12) of itself: which first is not defined.
    auto p =
        make_plan(request{c.dev[1], c.dev[2], {{0, 0, 8 * b, 0}, {4 * b, 100 * b, 8 * b, 1}}, {c.dev[2]}}, offload());
    REQUIRE(!p.ok());
    CHECK(p.error().code() == errc::overlap);
    CHECK(p.error().message().find("extent 2 (source 1) reads bytes that extent 1 (source 0) writes") == 0);
  }
}

TEST_CASE("backend on the model: a gather refused mid-copy in auto mode: the rest falls back source by source") {
  controller c;
  c.model->write_blocks(2, 700, pattern(8 * 512, 0x90));
  const std::uint64_t b = 512;
  request req{c.dev[2], c.dev[2], {}, {c.dev[1]}};
  req.extents = {{0 * b, 0 * b, 20 * b, 1}, {700 * b, 20 * b, 4 * b, 0}, {200 * b, 24 * b, 12 * b, 1}};
  // Commands: [ns1 16, ns1 4] and [own 4, ns1 12]; the second copies its first range, then
  // answers Invalid Opcode (not supported): the engine falls back for ns1's 12 blocks only.
  c.model->inject(offcopy::testing::nvme_fault{2, nvme::make_raw_status(0, 0x01), 1});
  policy pol;
  pol.commands_in_flight = 1;
  report rep = copy(req, pol);
  REQUIRE_MESSAGE(rep.result.ok(), rep.result.to_string());
  CHECK(rep.bytes_copied == 36 * b);
  CHECK(rep.of("nvme-copy").bytes == 24 * b);
  CHECK(rep.of("copy-file-range").bytes + rep.of("buffered").bytes == 12 * b);
  CHECK(!rep.fallback_reasons.empty());
  CHECK(c.blocks(2, 0, 20) == c.blocks(1, 0, 20));
  CHECK(c.blocks(2, 20, 4) == pattern(4 * 512, 0x90));
  CHECK(c.blocks(2, 24, 12) == c.blocks(1, 200, 12));
  CHECK(c.blocks(2, 36, 4) == std::vector<std::uint8_t>(4 * 512, 0));
}
