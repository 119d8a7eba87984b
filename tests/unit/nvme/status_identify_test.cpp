// NVMe status decoding and Identify parsing.
#include <doctest/doctest.h>

#include <nvme/types.h>

#include <cstring>
#include <vector>

#include "src/nvme/identify.hpp"
#include "src/nvme/nvme_backend.hpp"
#include "src/nvme/nvme_status.hpp"

using namespace offcopy;
using namespace offcopy::nvme;

TEST_CASE("status: SCT/SC/DNR split, names and portable codes") {
  const std::uint16_t raw = make_raw_status(sct_command_specific, sc_command_size_limit_exceeded, true);
  CHECK(raw == 0x4183);
  const nvme_status_detail d = decode_status(raw, 5);
  CHECK(d.sct == 1);
  CHECK(d.sc == 0x83);
  CHECK(d.dnr);
  CHECK(d.dw0 == 5);
  CHECK(d.name == "Command Size Limit Exceeded");
  CHECK(copy_errc(raw) == errc::size_limit_exceeded);

  CHECK(copy_errc(0) == errc::ok);
  CHECK(copy_status(0, 0, "x").ok());
  CHECK(copy_errc(make_raw_status(0, sc_invalid_opcode)) == errc::not_supported);
  CHECK(copy_errc(make_raw_status(0, sc_invalid_field, true)) == errc::not_supported);
  CHECK(copy_errc(make_raw_status(1, sc_incompatible_namespace_or_format)) == errc::not_supported);
  CHECK(copy_errc(make_raw_status(0, sc_internal_error)) == errc::device_error);
  CHECK(copy_errc(make_raw_status(0, sc_lba_out_of_range)) == errc::device_error);
  // The controller will not do this one (overlap, descriptor format): the buffered path can.
  CHECK(copy_errc(make_raw_status(1, sc_overlapping_io_range, true)) == errc::not_supported);
  CHECK(copy_errc(make_raw_status(1, sc_invalid_format, true)) == errc::not_supported);
  CHECK(copy_errc(make_raw_status(2, 0x80)) == errc::device_error);  // Write Fault
  CHECK(copy_errc(make_raw_status(2, 0x81)) == errc::device_error);  // media error

  CHECK(copy_status_name(make_raw_status(1, 0x82)) == "Attempted Write to Read Only Range");
  CHECK(copy_status_name(make_raw_status(1, 0x85)) == "Incompatible Namespace or Format");
  CHECK(copy_status_name(make_raw_status(1, 0x86)) == "Fast Copy Not Possible");
  CHECK(copy_status_name(make_raw_status(1, 0x87)) == "Overlapping I/O Range");
  CHECK(copy_status_name(make_raw_status(1, 0x89)) == "Insufficient Resources");
  CHECK(copy_status_name(make_raw_status(1, 0x0a)) == "Invalid Format");
  CHECK(copy_status_name(make_raw_status(0, 0x01)) == "Invalid Command Opcode");
  CHECK(copy_status_name(make_raw_status(0, 0x80)) == "LBA Out of Range");
  CHECK_FALSE(copy_status_name(make_raw_status(2, 0x81)).empty());  // libnvme's table

  const status s = copy_status(make_raw_status(0, sc_invalid_opcode, true), 0, "NVMe Copy");
  CHECK(s.code() == errc::not_supported);
  REQUIRE(s.nvme().has_value());
  CHECK(s.nvme()->raw_status == 0x4001);
  CHECK(s.message().find("Invalid Command Opcode") != std::string::npos);
}

namespace {
struct identify_pages {
  std::vector<std::uint8_t> ctrl = std::vector<std::uint8_t>(4096);
  std::vector<std::uint8_t> ns = std::vector<std::uint8_t>(4096);
  std::vector<std::uint8_t> nvm = std::vector<std::uint8_t>(4096);
  nvme_id_ctrl& c() { return *reinterpret_cast<nvme_id_ctrl*>(ctrl.data()); }
  nvme_id_ns& n() { return *reinterpret_cast<nvme_id_ns*>(ns.data()); }
  nvme_nvm_id_ns& v() { return *reinterpret_cast<nvme_nvm_id_ns*>(nvm.data()); }
};

/// What QEMU 7.2 reports for `-device nvme-ns,...,logical_block_size=512,mssrl=128,mcl=128,msrc=127`.
identify_pages qemu_like() {
  identify_pages p;
  p.c().oncs = 0x15f;
  p.c().ocfs = 0x3;
  p.c().cntlid = 0;
  std::memcpy(p.c().sn, "deadbeef            ", 20);
  std::memcpy(p.c().mn, "QEMU NVMe Ctrl                          ", 40);
  p.n().nsze = 131072;
  p.n().flbas = 0;
  p.n().lbaf[0].ds = 9;
  p.n().mssrl = 128;
  p.n().mcl = 128;
  p.n().msrc = 127;
  return p;
}
}  // namespace

TEST_CASE("identify: QEMU-like namespace gives the planner its limits") {
  identify_pages p = qemu_like();
  namespace_info info;
  REQUIRE(parse_identify(p.ctrl, p.ns, {}, 1, info));
  CHECK(info.copy_usable);
  CHECK(info.serial == "deadbeef");
  CHECK(info.model == "QEMU NVMe Ctrl");
  CHECK(info.lba_bytes == 512);
  const offload_mechanism m = to_mechanism(info);
  CHECK(m.available);
  CHECK(m.backend == "nvme-copy");
  CHECK(m.limits.max_segments_per_command == 128);  // MSRC 0-based
  CHECK(m.limits.max_segment_blocks == 128);
  CHECK(m.limits.max_command_blocks == 128);
  CHECK(m.limits.contiguous_destination);
  bool saw_ocfs = false;
  for (const auto& [k, v] : m.details)
    if (k == "ocfs") saw_ocfs = v == "0x3";
  CHECK(saw_ocfs);
}

TEST_CASE("identify: every reason for no offload") {
  SUBCASE("ONCS bit 8 clear") {
    identify_pages p = qemu_like();
    p.c().oncs = 0x5f;
    namespace_info info;
    REQUIRE(parse_identify(p.ctrl, p.ns, {}, 1, info));
    CHECK_FALSE(info.copy_usable);
    CHECK(info.reason.find("ONCS=0x5f") != std::string::npos);
    CHECK_FALSE(to_mechanism(info).available);
  }
  SUBCASE("zero MSSRL / MCL (nvme,drive= namespaces in QEMU)") {
    identify_pages p = qemu_like();
    p.n().mssrl = 0;
    p.n().mcl = 0;
    p.n().msrc = 0;
    namespace_info info;
    REQUIRE(parse_identify(p.ctrl, p.ns, {}, 1, info));
    CHECK_FALSE(info.copy_usable);
    CHECK(info.reason.find("MSSRL=0") != std::string::npos);
  }
  SUBCASE("MSRC 0 is one range, usable") {
    identify_pages p = qemu_like();
    p.n().mssrl = 1;
    p.n().msrc = 0;
    namespace_info info;
    REQUIRE(parse_identify(p.ctrl, p.ns, {}, 1, info));
    CHECK(info.copy_usable);
    CHECK(to_mechanism(info).limits.max_segments_per_command == 1);
  }
  SUBCASE("64-bit guard PI needs format 1h") {
    identify_pages p = qemu_like();
    p.n().dps = 1;
    p.n().lbaf[0].ms = 16;
    p.v().elbaf[0] = 2u << 7;
    p.c().ocfs = 0x1;
    namespace_info info;
    REQUIRE(parse_identify(p.ctrl, p.ns, p.nvm, 1, info));
    CHECK(info.pi_format == 2);
    CHECK(info.descriptor_format == 1);
    CHECK_FALSE(info.copy_usable);
    CHECK(info.reason.find("format 1h") != std::string::npos);
    p.c().ocfs = 0x3;
    REQUIRE(parse_identify(p.ctrl, p.ns, p.nvm, 1, info));
    CHECK(info.copy_usable);
  }
  SUBCASE("16-bit guard PI type 1 stays on format 0h") {
    identify_pages p = qemu_like();
    p.n().dps = 1;
    p.n().lbaf[0].ms = 8;
    namespace_info info;
    REQUIRE(parse_identify(p.ctrl, p.ns, p.nvm, 1, info));
    CHECK(info.copy_usable);
    CHECK(info.pi_type == 1);
    CHECK(info.descriptor_format == 0);
  }
  SUBCASE("FLBAS high index bits") {
    identify_pages p = qemu_like();
    p.n().flbas = 0x21;  // index 0x11 = 17
    p.n().lbaf[17].ds = 12;
    namespace_info info;
    REQUIRE(parse_identify(p.ctrl, p.ns, {}, 1, info));
    CHECK(info.lba_format_index == 17);
    CHECK(info.lba_bytes == 4096);
  }
  SUBCASE("short data") {
    identify_pages p = qemu_like();
    namespace_info info;
    CHECK_FALSE(parse_identify(std::span(p.ctrl).first(100), p.ns, {}, 1, info));
    CHECK_FALSE(info.copy_usable);
  }
}

TEST_CASE("pair check: same namespace, cross namespace, controllers, block sizes, permission") {
  identify_pages p = qemu_like();
  nvme_device_data a;
  REQUIRE(parse_identify(p.ctrl, p.ns, {}, 1, a.info));
  a.identified = true;
  a.location.controller = "nvme0";
  nvme_device_data b = a;
  policy pol;

  auto ps = check_pair(&a, &b, pol, true);
  CHECK(ps.ok);
  CHECK(ps.offload);
  CHECK(ps.block_bytes == 512);
  CHECK(ps.limits.max_segments_per_command == 128);
  CHECK(ps.limits.contiguous_destination);

  CHECK_FALSE(check_pair(&a, &b, pol, false).ok);
  CHECK(check_pair(&a, &b, pol, false).reason == "NVMe passthrough needs CAP_SYS_ADMIN");
  CHECK(check_pair(nullptr, &b, pol, true).reason == "source is not an NVMe namespace");

  // QEMU 7.2: OCFS 0x3, no cross-namespace formats.
  b.info.nsid = 2;
  b.cdfe = 0;
  ps = check_pair(&a, &b, pol, true);
  CHECK_FALSE(ps.ok);
  CHECK(ps.reason == "cross-namespace copy needs descriptor format 2h, controller OCFS=0x3");
  b.info.ocfs = 0xf;
  CHECK(check_pair(&a, &b, pol, true).ok);
  b.cdfe.reset();
  b.cdfe_error = "Get Features Host Behavior Support (feature 16h): NVMe status SCT 0 SC 0x02 (Invalid Field)";
  CHECK(check_pair(&a, &b, pol, true).reason.find("needs Host Behavior Support to enable format 2h") !=
        std::string::npos);

  b = a;
  b.location.controller = "nvme1";
  CHECK(check_pair(&a, &b, pol, true).reason.find("different NVMe controllers") != std::string::npos);
  b = a;
  b.info.serial = "other";  // same sysfs parent, other controller: not proven one controller
  CHECK(check_pair(&a, &b, pol, true).reason.find("different NVMe controllers") != std::string::npos);
  b = a;
  b.info.cntlid = 7;
  CHECK(check_pair(&a, &b, pol, true).reason.find("different NVMe controllers") != std::string::npos);

  b = a;
  b.info.lba_bytes = 4096;
  CHECK(check_pair(&a, &b, pol, true).reason.find("equal block sizes") != std::string::npos);

  b = a;
  b.info.copy_usable = false;
  b.info.reason = "namespace 1 reports no usable Copy limits (MSSRL=0, MCL=0, MSRC=0)";
  CHECK(check_pair(&a, &b, pol, true).reason ==
        "destination: namespace 1 reports no usable Copy limits (MSSRL=0, MCL=0, MSRC=0)");
}

TEST_CASE("pair check across namespaces: one controller proven, formats compared before anything is sent") {
  identify_pages p = qemu_like();
  p.c().ocfs = 0xf;
  nvme_device_data a;
  REQUIRE(parse_identify(p.ctrl, p.ns, {}, 1, a.info));
  a.identified = true;
  a.location.controller = "nvme-subsys0";
  a.location.subsystem_controllers = 1;
  a.cdfe = 0;
  nvme_device_data b = a;
  b.info.nsid = 2;
  policy pol;
  REQUIRE(check_pair(&a, &b, pol, true).ok);

  SUBCASE("a multipath subsystem with two controllers: which one runs the command is not ours to say") {
    b.location.subsystem_controllers = 2;
    CHECK(check_pair(&a, &b, pol, true).reason ==
          "cross-namespace copy: nvme-subsys0 has 2 controllers, which one runs the command is the kernel's "
          "choice, so one controller for both namespaces is not proven");
  }
  SUBCASE("every part of the LBA format must match") {
    b.info.lba_bytes = 4096;
    CHECK(check_pair(&a, &b, pol, true).reason ==
          "cross-namespace copy between incompatible formats (namespace 1 vs 2: LBA data size 512 B vs 4096 B)");
    b.info = a.info;
    b.info.nsid = 2;
    b.info.metadata_bytes = 8;
    CHECK(check_pair(&a, &b, pol, true).reason.find("metadata size 0 B vs 8 B") != std::string::npos);
    a.info.metadata_bytes = 8;
    a.info.metadata_extended = true;
    CHECK(check_pair(&a, &b, pol, true).reason.find("metadata extended LBA vs separate buffer") != std::string::npos);
    a.info.metadata_extended = false;
    a.info.pi_type = 1;
    b.info.pi_type = 3;
    CHECK(check_pair(&a, &b, pol, true).reason.find("protection information Type 1 vs Type 3") != std::string::npos);
    b.info.pi_type = 1;
    b.info.pi_format = 2;
    CHECK(check_pair(&a, &b, pol, true).reason.find("PI format 16-bit guard vs 64-bit guard") != std::string::npos);
    b.info.pi_format = 0;
    b.info.pi_first = true;
    CHECK(check_pair(&a, &b, pol, true).reason.find("PI last vs first of the metadata") != std::string::npos);
    b.info.pi_first = false;
    CHECK(check_pair(&a, &b, pol, true).ok);
  }
  SUBCASE("64-bit guard PI on both: format 3h must be offered") {
    for (auto* d : {&a, &b}) {
      d->info.metadata_bytes = 16;
      d->info.pi_type = 1;
      d->info.pi_format = 2;
      evaluate(d->info);
      REQUIRE(d->info.descriptor_format == 1);
    }
    b.info.ocfs = 0x7;  // 0h 1h 2h
    CHECK(check_pair(&a, &b, pol, true).reason ==
          "cross-namespace copy needs descriptor format 3h, controller OCFS=0x7");
    b.info.ocfs = 0xf;
    CHECK(check_pair(&a, &b, pol, true).ok);
  }
  SUBCASE("limits: the source's MSSRL per range, the destination's MCL and MSRC per command") {
    a.info.mssrl_blocks = 64;
    a.info.mcl_blocks = 4096;
    a.info.msrc_0based = 255;
    b.info.mssrl_blocks = 1024;
    b.info.mcl_blocks = 512;
    b.info.msrc_0based = 7;
    auto ps = check_pair(&a, &b, pol, true);
    REQUIRE(ps.ok);
    CHECK(ps.limits.max_segment_blocks == 64);
    CHECK(ps.limits.max_command_blocks == 512);
    CHECK(ps.limits.max_segments_per_command == 8);
    ps = check_pair(&b, &a, pol, true);
    CHECK(ps.limits.max_segment_blocks == 1024);
    CHECK(ps.limits.max_command_blocks == 4096);
    CHECK(ps.limits.max_segments_per_command == 256);
  }
}
