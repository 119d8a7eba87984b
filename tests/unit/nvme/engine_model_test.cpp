// The core engine driving the real NVMe Copy session on the controller model: the exact command
// sequence for a plan, retry after 0x83, fallback after Invalid Opcode, and partial progress.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "offcopy/copy.hpp"
#include "src/core/backend.hpp"
#include "src/nvme/nvme_status.hpp"
#include "tests/models/nvme_model.hpp"
#include "tests/unit/nvme/nvme_model_rig.hpp"

using namespace offcopy;
using offcopy::testing::nvme_fault;
using offcopy::testing::nvme_model;
using offcopy::testing::nvme_model_backend;
using offcopy::testing::nvme_model_config;

namespace {

/// The rig with its first MiB patterned by fill().
struct fixture : testing::nvme_model_rig {
  explicit fixture(nvme_model_config cfg, unsigned depth = 4) : nvme_model_rig(cfg, depth, &fill) {}
  static std::uint8_t fill(std::size_t i) { return static_cast<std::uint8_t>(i * 31 + (i >> 9) * 7 + 1); }
  request req(std::vector<extent> ex) const { return request{dev, dev, std::move(ex)}; }
  bool same(std::uint64_t src_byte, std::uint64_t dst_byte, std::uint64_t len) const {
    return model.read_blocks(src_byte / 512, len / 512) == model.read_blocks(dst_byte / 512, len / 512);
  }
};

std::vector<const testing::nvme_model_record*> copy_records(const nvme_model& m) {
  std::vector<const testing::nvme_model_record*> out;
  for (const auto& r : m.log())
    if (r.opcode == 0x19) out.push_back(&r);
  return out;
}

policy offload_policy(unsigned in_flight = 4) {
  policy pol;
  pol.mode = copy_mode::offload;
  pol.commands_in_flight = in_flight;
  return pol;
}

}  // namespace

TEST_CASE("engine + model: the exact Copy sequence for a plan (greedy packing, gather)") {
  nvme_model_config cfg;
  cfg.mssrl = 16;
  cfg.mcl = 40;
  cfg.msrc_0based = 2;  // 3 ranges
  fixture f(cfg);
  // Extent A: 64 blocks contiguous; then B, C: scattered sources landing right after A.
  const std::vector<extent> ex{
      {0, 2 << 20, 64 * 512}, {100 * 512, (2 << 20) + 64 * 512, 8 * 512}, {300 * 512, (2 << 20) + 72 * 512, 8 * 512}};
  report rep = copy(f.req(ex), offload_policy(1));
  REQUIRE(rep.result.ok());
  CHECK(rep.bytes_copied == 80 * 512);
  const auto cmds = copy_records(f.model);
  // Greedy: [16,16,8 | 8 of A...]: A = 64 blocks → ranges 16,16,8 (MCL 40) | 16,8 + B 8 (3 ranges,
  // 32 blocks) | C 8.
  REQUIRE(cmds.size() == 3);
  CHECK(rep.of("nvme-copy").commands == 3);
  const std::uint64_t d0 = (2 << 20) / 512;
  CHECK(cmds[0]->fields.sdlba == d0);
  REQUIRE(cmds[0]->ranges.size() == 3);
  CHECK(cmds[0]->ranges[0].slba == 0);
  CHECK(cmds[0]->ranges[0].blocks == 16);
  CHECK(cmds[0]->ranges[1].slba == 16);
  CHECK(cmds[0]->ranges[2].blocks == 8);
  CHECK(cmds[1]->fields.sdlba == d0 + 40);
  REQUIRE(cmds[1]->ranges.size() == 3);
  CHECK(cmds[1]->ranges[0].slba == 40);
  CHECK(cmds[1]->ranges[0].blocks == 16);
  CHECK(cmds[1]->ranges[1].slba == 56);
  CHECK(cmds[1]->ranges[1].blocks == 8);
  CHECK(cmds[1]->ranges[2].slba == 100);
  CHECK(cmds[1]->ranges[2].blocks == 8);
  CHECK(cmds[2]->fields.sdlba == d0 + 72);
  REQUIRE(cmds[2]->ranges.size() == 1);
  CHECK(cmds[2]->ranges[0].slba == 300);
  for (const auto* c : cmds) CHECK(c->raw_status == 0);
  CHECK(f.same(0, 2 << 20, 64 * 512));
  CHECK(f.same(100 * 512, (2 << 20) + 64 * 512, 8 * 512));
  CHECK(f.same(300 * 512, (2 << 20) + 72 * 512, 8 * 512));
  CHECK(f.model.log().back().opcode == 0x00);  // policy.sync: Flush at the end
}

TEST_CASE("engine + model: 0x83 from a device that accepts less than it advertises → split and retried") {
  nvme_model_config cfg;
  cfg.mssrl = 128;
  cfg.mcl = 128;
  cfg.enforced_mcl = 48;
  fixture f(cfg);
  report rep = copy(f.req({{0, 2 << 20, 256 * 512}}), offload_policy(4));
  REQUIRE(rep.result.ok());
  CHECK(rep.bytes_copied == 256 * 512);
  CHECK(rep.of("nvme-copy").retries > 0);
  CHECK(f.same(0, 2 << 20, 256 * 512));
  std::uint64_t refused = 0;
  for (const auto* c : copy_records(f.model)) {
    if (c->raw_status == nvme::make_raw_status(1, 0x83, true))
      ++refused;
    else
      CHECK(c->raw_status == 0);
  }
  CHECK(refused >= 2);
}

TEST_CASE("engine + model: Invalid Opcode → fallback in auto mode, refusal in offload mode") {
  nvme_model_config cfg;
  cfg.copy_supported = false;
  SUBCASE("auto") {
    fixture f(cfg);
    policy pol = offload_policy(4);
    pol.mode = copy_mode::automatic;
    report rep = copy(f.req({{0, 2 << 20, 64 << 10}}), pol);
    REQUIRE(rep.result.ok());
    CHECK(rep.bytes_copied == 64 << 10);
    CHECK(rep.of("nvme-copy").bytes == 0);
    REQUIRE_FALSE(rep.fallback_reasons.empty());
    CHECK(rep.fallback_reasons[0].find("Invalid Command Opcode") != std::string::npos);
    CHECK(f.same(0, 2 << 20, 64 << 10));
  }
  SUBCASE("offload") {
    fixture f(cfg);
    report rep = copy(f.req({{0, 2 << 20, 64 << 10}}), offload_policy(1));
    CHECK(rep.result.code() == errc::not_supported);
    CHECK(rep.bytes_copied == 0);
    REQUIRE(rep.result.nvme().has_value());
    CHECK(rep.result.nvme()->sc == 0x01);
  }
}

TEST_CASE("engine + model: an error mid-copy reports exactly the blocks known done (DW0)") {
  nvme_model_config cfg;
  cfg.mssrl = 8;
  cfg.mcl = 32;
  cfg.msrc_0based = 3;
  fixture f(cfg);
  // Command 2 copies 1 of its 4 ranges and fails with Internal Error, DW0 = 1.
  f.model.inject(nvme_fault{2, nvme::make_raw_status(0, 0x06), 1});
  report rep = copy(f.req({{0, 2 << 20, 128 * 512}}), offload_policy(1));
  CHECK(rep.result.code() == errc::device_error);
  REQUIRE(rep.result.nvme().has_value());
  CHECK(rep.result.nvme()->dw0 == 1);
  CHECK(rep.result.nvme()->name == "Internal Error");
  CHECK(rep.bytes_copied == (32 + 8) * 512);
  CHECK(copy_records(f.model).size() == 2);  // stopped after the error
  CHECK(f.same(0, 2 << 20, 40 * 512));
}
