// Host Behavior Support (feature 16h): CDFE at bytes 5:4, read-modify-write, failures.
// Offsets from the NVM Express Base Specification 2.1, Host Behavior Support data structure
// (byte 0 ACRE, 1 ETDAS, 2 LBAFEE, 3 HDISNS, 5:4 CDFE); QEMU 10 tests `hbs.cdfe & (1 << format)`.
#include <doctest/doctest.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <vector>

#include "src/nvme/host_behavior.hpp"
#include "src/nvme/nvme_status.hpp"
#include "tests/models/nvme_model.hpp"

using namespace offcopy;
using namespace offcopy::nvme;
using offcopy::testing::nvme_model;
using offcopy::testing::nvme_model_config;

TEST_CASE("CDFE lives in bytes 5:4, little endian, bit n enables format nh") {
  std::array<std::uint8_t, 512> hbs{};
  hbs[2] = 1;     // LBAFEE, as Linux leaves it
  hbs[4] = 0x0c;  // formats 2h and 3h
  hbs[5] = 0x80;  // bit 15
  CHECK(cdfe_of(hbs) == 0x800c);
  put_cdfe(hbs, 0x0004);
  CHECK(hbs[4] == 0x04);
  CHECK(hbs[5] == 0x00);
  CHECK(hbs[2] == 1);
  CHECK(cdfe_bit(2) == 0x4);
  CHECK(cdfe_bit(3) == 0x8);
  CHECK(cdfe_formats(0) == "none");
  CHECK(cdfe_formats(0xc) == "2h 3h");
}

TEST_CASE("Get/Set Features 16h: opcodes, FID, current value, not saved, 512 bytes") {
  std::array<std::uint8_t, 512> buf{};
  const admin_command g = get_host_behavior_command(buf);
  CHECK(g.opcode == 0x0a);
  CHECK(g.cdw10 == 0x16);  // FID 16h, SEL 000b (current)
  CHECK(g.nsid == 0);
  CHECK(g.data == buf.data());
  CHECK(g.data_bytes == 512);
  const admin_command s = set_host_behavior_command(buf);
  CHECK(s.opcode == 0x09);
  CHECK(s.cdw10 == 0x16);  // SV (bit 31) clear
  CHECK(s.data_bytes == 512);
}

TEST_CASE("enable_cdfe: read-modify-write keeps every other byte, nothing sent when already enabled") {
  nvme_model m(nvme_model_config{});
  auto& hbs = m.host_behavior();
  for (std::size_t i = 0; i < hbs.size(); ++i) hbs[i] = static_cast<std::uint8_t>(i * 13 + 5);
  hbs[4] = 0x01;  // some other bit already set (format 0h)
  hbs[5] = 0x00;
  const auto before = hbs;
  admin_runner admin = [&](const admin_command& c) { return m.admin(c); };

  auto r = enable_cdfe(admin, cdfe_bit(2));
  REQUIRE(r.ok());
  CHECK(r.value().before == 0x0001);
  CHECK(r.value().after == 0x0005);
  CHECK(r.value().changed);
  for (std::size_t i = 0; i < hbs.size(); ++i) {
    if (i == 4) continue;
    CHECK_MESSAGE(hbs[i] == before[i], "byte " << i);
  }
  CHECK(hbs[4] == 0x05);
  // Get, Set, Get.
  REQUIRE(m.log().size() == 3);
  CHECK(m.log()[0].opcode == 0x0a);
  CHECK(m.log()[1].opcode == 0x09);
  CHECK(m.log()[2].opcode == 0x0a);

  m.clear_log();
  r = enable_cdfe(admin, cdfe_bit(2));
  REQUIRE(r.ok());
  CHECK_FALSE(r.value().changed);
  CHECK(m.log().size() == 1);  // one Get, no Set

  m.reset_controller();  // Linux at a controller reset: LBAFEE only
  CHECK(read_cdfe(admin).value() == 0);
  CHECK(hbs[2] == 1);
}

TEST_CASE("enable_cdfe failures: feature refused, passthrough refused, bits that do not stick") {
  SUBCASE("a controller without feature 16h: Invalid Field → not_supported with the NVMe detail") {
    nvme_model_config cfg;
    cfg.host_behavior_support = false;
    nvme_model m(cfg);
    auto r = enable_cdfe([&](const admin_command& c) { return m.admin(c); }, cdfe_bit(2));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code() == errc::not_supported);
    REQUIRE(r.error().nvme().has_value());
    CHECK(r.error().nvme()->sc == sc_invalid_field);
    CHECK(r.error().message().find("Get Features Host Behavior Support (feature 16h)") != std::string::npos);
  }
  SUBCASE("EPERM from the kernel: not_supported, says CAP_SYS_ADMIN") {
    auto r = read_cdfe([](const admin_command&) {
      io_completion c;
      c.sys_errno = EPERM;
      return c;
    });
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code() == errc::not_supported);
    CHECK(r.error().message().find("CAP_SYS_ADMIN") != std::string::npos);
  }
  SUBCASE("EIO: io_error") {
    auto r = read_cdfe([](const admin_command&) {
      io_completion c;
      c.sys_errno = EIO;
      return c;
    });
    CHECK(r.error().code() == errc::io_error);
  }
  SUBCASE("a controller that accepts Set Features but keeps CDFE at 0") {
    std::array<std::uint8_t, 512> state{};
    int sets = 0;
    auto r = enable_cdfe(
        [&](const admin_command& c) {
          if (c.opcode == admin_set_features)
            ++sets;  // accepted, ignored
          else
            std::memcpy(c.data, state.data(), 512);
          return io_completion{};
        },
        cdfe_bit(3));
    REQUIRE_FALSE(r.ok());
    CHECK(sets == 1);
    CHECK(r.error().code() == errc::not_supported);
    CHECK(r.error().message() ==
          "Host Behavior Support: CDFE is 0x0 after setting 0x8 (the controller did not keep it)");
  }
}
