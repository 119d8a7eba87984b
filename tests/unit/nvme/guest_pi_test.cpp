// Protection information against QEMU 10's NVMe controller (built into guest_nvme, run by
// tests/vm/scenarios/nvme_pi_tags.sh): the reference tags we send are the tags the controller
// checks. The oracle is the controller itself, with end-to-end checking (PRCHK) on:
//   - 16-byte PI (64-bit guard, 48-bit reference tag), Type 1, above 2^32 blocks: the initial
//     reference tag of our Copy (ILBRT, CDW14 + CDW3) and the EILBRT of a format 1h range entry
//     (80-bit field, most-significant byte first) are read back / checked by the controller;
//   - 8-byte PI (16-bit guard, 32-bit tag), Type 1, above 2^32 blocks: tags are the LBA's low 32 bits;
//   - 16-byte PI, Type 2 (tags not tied to the LBA): a wrong expected tag fails the per-block
//     check with End-to-end Reference Tag Check Error (SCT 2h, SC 84h).
// Reads and writes go through NVME_IOCTL_IO64_CMD with PRACT, so no metadata buffer moves: the
// controller generates PI on writes and checks (PRCHK) then strips it on reads.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

// libnvme 1.3 headers have no extern "C" guards; nvme/ioctl.h also defines the passthrough structs.
extern "C" {
#include <nvme/ioctl.h>
#include <nvme/types.h>
}

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "offcopy/copy.hpp"
#include "src/nvme/copy_encode.hpp"
#include "tests/unit/guest.hpp"

using namespace offcopy;

OFFCOPY_GUEST_REQUIRES("OFFCOPY_PI16_T1", "tests/vm/scenarios/nvme_pi_tags.sh");
OFFCOPY_GUEST_REQUIRES("OFFCOPY_PI8_T1", "tests/vm/scenarios/nvme_pi_tags.sh");
OFFCOPY_GUEST_REQUIRES("OFFCOPY_PI16_T2", "tests/vm/scenarios/nvme_pi_tags.sh");

namespace {

// PRINFO (CDW12 bits 29:26 of Read/Write, PRINFOR/PRINFOW of Copy): QEMU NVME_PRINFO_*,
// libnvme NVME_IO_PRINFO_*.
constexpr std::uint8_t pract = 0x8, prchk_guard = 0x4, prchk_ref = 0x1;
// Status (SCT << 8 | SC), as the ioctl returns it without DNR/More.
constexpr std::uint16_t st_invalid_pi = 0x181;   // Invalid Protection Information
constexpr std::uint16_t st_e2e_ref_tag = 0x284;  // End-to-end Reference Tag Check Error

struct ns_info {
  std::string path;
  int fd = -1;
  std::uint32_t nsid = 0;
  std::uint64_t blocks = 0;
  std::uint32_t lba_bytes = 0;
  std::uint16_t ms = 0;
  std::uint8_t pi_type = 0;
  std::uint8_t pif = 0;
  ~ns_info() {
    if (fd >= 0) ::close(fd);
  }
};

/// Opens a namespace and reads its format with libnvme's Identify (CNS 00h and 05h).
std::unique_ptr<ns_info> open_ns(const char* variable) {
  auto n = std::make_unique<ns_info>();
  n->path = std::getenv(variable);
  n->fd = ::open(n->path.c_str(), O_RDWR | O_CLOEXEC);
  REQUIRE_MESSAGE(n->fd >= 0, n->path << ": " << std::strerror(errno));
  REQUIRE(nvme_get_nsid(n->fd, &n->nsid) == 0);
  nvme_id_ns id{};
  REQUIRE(nvme_identify_ns(n->fd, n->nsid, &id) == 0);
  const unsigned idx = (id.flbas & 0x0f) | ((id.flbas & 0x60) >> 1);
  n->blocks = id.nsze;
  n->lba_bytes = 1u << id.lbaf[idx].ds;
  n->ms = id.lbaf[idx].ms;
  n->pi_type = id.dps & 7;
  std::vector<std::uint8_t> nvm(4096);
  REQUIRE(nvme_identify_ns_csi(n->fd, n->nsid, 0, NVME_CSI_NVM, nvm.data()) == 0);
  n->pif = static_cast<std::uint8_t>((reinterpret_cast<const nvme_nvm_id_ns*>(nvm.data())->elbaf[idx] >> 7) & 3);
  std::cout << n->path << ": nsid " << n->nsid << ", " << n->blocks << " blocks of " << n->lba_bytes << " B, ms "
            << n->ms << ", PI type " << int(n->pi_type) << ", pif " << int(n->pif) << "\n";
  return n;
}

struct io_result {
  int sys_errno = 0;
  std::uint16_t status = 0;  ///< SCT << 8 | SC
  std::uint32_t dw0 = 0;
};

io_result submit(const ns_info& n, std::uint8_t opcode, std::uint32_t cdw3, std::uint32_t cdw10, std::uint32_t cdw11,
                 std::uint32_t cdw12, std::uint32_t cdw13, std::uint32_t cdw14, std::uint32_t cdw15, void* data,
                 std::uint32_t data_bytes) {
  nvme_passthru_cmd64 cmd{};
  cmd.opcode = opcode;
  cmd.nsid = n.nsid;
  cmd.cdw3 = cdw3;
  cmd.cdw10 = cdw10;
  cmd.cdw11 = cdw11;
  cmd.cdw12 = cdw12;
  cmd.cdw13 = cdw13;
  cmd.cdw14 = cdw14;
  cmd.cdw15 = cdw15;
  cmd.addr = reinterpret_cast<std::uintptr_t>(data);
  cmd.data_len = data_bytes;
  cmd.timeout_ms = 60000;
  io_result r;
  const int rc = ::ioctl(n.fd, NVME_IOCTL_IO64_CMD, &cmd);
  if (rc < 0) r.sys_errno = errno;
  if (rc > 0) r.status = static_cast<std::uint16_t>(rc & 0x7ff);
  r.dw0 = static_cast<std::uint32_t>(cmd.result);
  return r;
}

/// Write (01h) with PRACT: the controller generates PI, reference tags from `ilbrt` (CDW14 low
/// 32 bits, CDW3 the upper ones) counting up per block.
io_result write_pract(const ns_info& n, std::uint64_t slba, std::vector<std::uint8_t>& data, std::uint64_t ilbrt) {
  const auto nlb = static_cast<std::uint32_t>(data.size() / n.lba_bytes);
  return submit(n, 0x01, static_cast<std::uint32_t>(ilbrt >> 32), static_cast<std::uint32_t>(slba),
                static_cast<std::uint32_t>(slba >> 32), (nlb - 1) | (std::uint32_t{pract} << 26), 0,
                static_cast<std::uint32_t>(ilbrt), 0, data.data(), static_cast<std::uint32_t>(data.size()));
}

/// Read (02h) with the guard and reference tag checked against `eilbrt`, PI stripped (PRACT).
io_result read_checked(const ns_info& n, std::uint64_t slba, std::vector<std::uint8_t>& out, std::uint64_t eilbrt) {
  const auto nlb = static_cast<std::uint32_t>(out.size() / n.lba_bytes);
  const std::uint32_t prinfo = pract | prchk_guard | prchk_ref;
  return submit(n, 0x02, static_cast<std::uint32_t>(eilbrt >> 32), static_cast<std::uint32_t>(slba),
                static_cast<std::uint32_t>(slba >> 32), (nlb - 1) | (prinfo << 26), 0,
                static_cast<std::uint32_t>(eilbrt), 0, out.data(), static_cast<std::uint32_t>(out.size()));
}

/// One Copy (19h) built by our encoder: one source range [slba, +blocks) with expected tag
/// `eilbrt` checked on the source (PRINFOR = PRACT | PRCHK guard | PRCHK ref), written at `sdlba`
/// with fresh PI from `ilbrt` (PRINFOW = PRACT).
io_result copy_checked(const ns_info& n, std::uint8_t format, std::uint64_t slba, std::uint32_t blocks,
                       std::uint64_t eilbrt, std::uint64_t sdlba, std::uint64_t ilbrt) {
  nvme::source_range r;
  r.slba = slba;
  r.blocks = blocks;
  r.eilbrt = eilbrt;
  std::vector<std::uint8_t> ranges;
  REQUIRE(nvme::encode_ranges(format, std::span(&r, 1), ranges));
  nvme::copy_fields f;
  f.sdlba = sdlba;
  f.ranges = 1;
  f.format = format;
  f.prinfor = pract | prchk_guard | prchk_ref;
  f.prinfow = pract;
  f.ilbrt = ilbrt;
  nvme::copy_dwords dw;
  REQUIRE(nvme::encode_copy_dwords(f, dw));
  return submit(n, nvme::copy_opcode, dw.cdw3, dw.cdw10, dw.cdw11, dw.cdw12, dw.cdw13, dw.cdw14, dw.cdw15,
                ranges.data(), static_cast<std::uint32_t>(ranges.size()));
}

std::vector<std::uint8_t> pattern(std::size_t bytes, unsigned seed) {
  std::vector<std::uint8_t> b(bytes);
  std::mt19937 g(seed);
  for (auto& x : b) x = static_cast<std::uint8_t>(g());
  return b;
}

std::string describe(const io_result& r) {
  char b[64];
  std::snprintf(b, sizeof b, "errno %d, status 0x%03x, dw0 %u", r.sys_errno, r.status, r.dw0);
  return b;
}

/// The engine's own NVMe Copy (the real backend, --mode offload) of `blocks` blocks.
report engine_copy(const ns_info& n, std::uint64_t src_lba, std::uint64_t dst_lba, std::uint64_t blocks) {
  open_options wo;
  wo.writable = true;
  auto s = device::open(n.path);
  auto d = device::open(n.path, wo);
  REQUIRE_MESSAGE(s.ok(), s.error().to_string());
  REQUIRE_MESSAGE(d.ok(), d.error().to_string());
  request req;
  req.source = s.value();
  req.destination = d.value();
  req.extents = {{src_lba * n.lba_bytes, dst_lba * n.lba_bytes, blocks * n.lba_bytes}};
  policy pol;
  pol.mode = copy_mode::offload;
  pol.backends = {"nvme-copy"};
  auto rep = copy(req, pol);
  std::cout << rep.to_json() << "\n";
  return rep;
}

constexpr std::uint64_t above_2_32 = 1ULL << 32;

}  // namespace

TEST_CASE("16-byte PI, Type 1, above 2^32 blocks: 48-bit tags in ILBRT, in our Copy, in format 1h EILBRT") {
  auto ns = open_ns("OFFCOPY_PI16_T1");
  REQUIRE(ns->pi_type == 1);
  REQUIRE(ns->pif == 2);  // 64-bit guard, 48-bit reference tag
  REQUIRE(ns->blocks > above_2_32 + 65536);
  const std::uint32_t n = 16;
  const std::uint64_t src = above_2_32 + 64, dst_engine = above_2_32 + 4096, dst_raw = above_2_32 + 8192,
                      dst_wrong = above_2_32 + 12288;
  auto data = pattern(n * ns->lba_bytes, 16);

  // The controller's own reading of a 48-bit initial tag (CDW14 + CDW3 bits 15:0).
  auto w = write_pract(*ns, src, data, src);
  REQUIRE_MESSAGE(w.status == 0, describe(w));
  std::vector<std::uint8_t> back(data.size());
  auto r = read_checked(*ns, src, back, src);
  CHECK_MESSAGE(r.status == 0, describe(r));
  CHECK(back == data);
  // The same tag cut to 32 bits is not this LBA's Type 1 tag.
  r = read_checked(*ns, src, back, src & 0xffffffffu);
  CHECK_MESSAGE(r.status == st_invalid_pi, describe(r));

  // Our backend's Copy (PRACT, ILBRT = SDLBA): the destination's regenerated tags pass a checked
  // read at their 48-bit LBA. With ILBRT cut to 32 bits they would be the LBA's low bits: 0x284.
  auto rep = engine_copy(*ns, src, dst_engine, n);
  REQUIRE_MESSAGE(rep.result.ok(), rep.result.to_string());
  CHECK(rep.of("nvme-copy").bytes == std::uint64_t{n} * ns->lba_bytes);
  std::fill(back.begin(), back.end(), 0);
  r = read_checked(*ns, dst_engine, back, dst_engine);
  CHECK_MESSAGE(r.status == 0, describe(r));
  CHECK(back == data);

  // Format 1h with the source checked: EILBRT = the source LBA (48 bits) in the 80-bit field,
  // most-significant byte first. Written little-endian the controller would read another tag
  // and refuse it (Invalid Protection Information).
  auto c = copy_checked(*ns, 1, src, n, src, dst_raw, dst_raw);
  CHECK_MESSAGE(c.status == 0, describe(c));
  std::fill(back.begin(), back.end(), 0);
  r = read_checked(*ns, dst_raw, back, dst_raw);
  CHECK_MESSAGE(r.status == 0, describe(r));
  CHECK(back == data);

  // A deliberately wrong expected tag: Type 1 ties it to the LBA, QEMU refuses it before moving
  // data (nvme_check_prinfo: Invalid Protection Information), and nothing is written.
  c = copy_checked(*ns, 1, src, n, src + 1, dst_wrong, dst_wrong);
  CHECK_MESSAGE(c.status == st_invalid_pi, describe(c));
  std::fill(back.begin(), back.end(), 0xAA);
  r = read_checked(*ns, dst_wrong, back, dst_wrong);  // never written: checks off (PI all FFh)
  CHECK_MESSAGE(r.status == 0, describe(r));
  CHECK(back == std::vector<std::uint8_t>(back.size(), 0));
}

TEST_CASE("8-byte PI, Type 1, above 2^32 blocks: tags are the LBA's low 32 bits, format 0h") {
  auto ns = open_ns("OFFCOPY_PI8_T1");
  REQUIRE(ns->pi_type == 1);
  REQUIRE(ns->pif == 0);  // 16-bit guard, 32-bit reference tag
  REQUIRE(ns->blocks > above_2_32 + 65536);
  const std::uint32_t n = 16;
  const std::uint64_t src = above_2_32 + 96, dst_engine = above_2_32 + 4096, dst_raw = above_2_32 + 8192;
  constexpr std::uint64_t low32 = 0xffffffffu;
  auto data = pattern(n * ns->lba_bytes, 8);
  auto w = write_pract(*ns, src, data, src & low32);
  REQUIRE_MESSAGE(w.status == 0, describe(w));
  std::vector<std::uint8_t> back(data.size());
  auto r = read_checked(*ns, src, back, src & low32);
  CHECK_MESSAGE(r.status == 0, describe(r));
  CHECK(back == data);

  auto rep = engine_copy(*ns, src, dst_engine, n);
  REQUIRE_MESSAGE(rep.result.ok(), rep.result.to_string());
  std::fill(back.begin(), back.end(), 0);
  r = read_checked(*ns, dst_engine, back, dst_engine & low32);
  CHECK_MESSAGE(r.status == 0, describe(r));
  CHECK(back == data);

  auto c = copy_checked(*ns, 0, src, n, src & low32, dst_raw, dst_raw & low32);
  CHECK_MESSAGE(c.status == 0, describe(c));
  std::fill(back.begin(), back.end(), 0);
  r = read_checked(*ns, dst_raw, back, dst_raw & low32);
  CHECK_MESSAGE(r.status == 0, describe(r));
  CHECK(back == data);
  c = copy_checked(*ns, 0, src, n, (src + 1) & low32, dst_raw, dst_raw & low32);
  CHECK_MESSAGE(c.status == st_invalid_pi, describe(c));
}

TEST_CASE("16-byte PI, Type 2: any 48-bit tag in format 1h, a wrong one fails the per-block check (0x284)") {
  auto ns = open_ns("OFFCOPY_PI16_T2");
  REQUIRE(ns->pi_type == 2);
  REQUIRE(ns->pif == 2);
  const std::uint32_t n = 8;
  const std::uint64_t src = 64, dst = 1024;
  // A tag unrelated to the LBA, every byte distinct, so a byte-order slip changes it.
  const std::uint64_t tag = 0xa1b2c3d4e5f6ULL;
  auto data = pattern(n * ns->lba_bytes, 2);
  auto w = write_pract(*ns, src, data, tag);
  REQUIRE_MESSAGE(w.status == 0, describe(w));
  std::vector<std::uint8_t> back(data.size());
  auto r = read_checked(*ns, src, back, tag);
  CHECK_MESSAGE(r.status == 0, describe(r));
  CHECK(back == data);

  auto c = copy_checked(*ns, 1, src, n, tag, dst, 0x112233445566ULL);
  CHECK_MESSAGE(c.status == 0, describe(c));
  std::fill(back.begin(), back.end(), 0);
  r = read_checked(*ns, dst, back, 0x112233445566ULL);
  CHECK_MESSAGE(r.status == 0, describe(r));
  CHECK(back == data);

  // Wrong expected tags: one bit in the upper 16 bits of the 48, and the same tag byte-swapped
  // (what a little-endian field would carry). Both: End-to-end Reference Tag Check Error.
  for (const std::uint64_t wrong : {tag ^ 0x010000000000ULL, 0xf6e5d4c3b2a1ULL}) {
    CAPTURE(wrong);
    c = copy_checked(*ns, 1, src, n, wrong, dst + 512, dst + 512);
    CHECK_MESSAGE(c.status == st_e2e_ref_tag, describe(c));
  }
  // And a checked read with the wrong tag.
  r = read_checked(*ns, src, back, tag + 1);
  CHECK_MESSAGE(r.status == st_e2e_ref_tag, describe(r));
}
