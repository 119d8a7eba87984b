// Tests against real SCSI LUs (LIO in the guest), built into guest_scsi: OFFCOPY_SCSI_SRC /
// OFFCOPY_SCSI_DST name two LUNs on one target and OFFCOPY_SCSI_SRC_SG the source's sg node
// (tests/vm/scenarios/scsi_unit_guest.sh sets them); without them the program exits 77, skipped.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <random>

#include "offcopy/copy.hpp"
#include "src/core/backend.hpp"
#include "src/core/device_state.hpp"
#include "src/scsi/lu.hpp"
#include "src/scsi/xcopy.hpp"
#include "tests/unit/guest.hpp"

using namespace offcopy;

OFFCOPY_GUEST_REQUIRES("OFFCOPY_SCSI_SRC", "tests/vm/scenarios/scsi_unit_guest.sh");
OFFCOPY_GUEST_REQUIRES("OFFCOPY_SCSI_SRC_SG", "tests/vm/scenarios/scsi_unit_guest.sh");
OFFCOPY_GUEST_REQUIRES("OFFCOPY_SCSI_DST", "tests/vm/scenarios/scsi_unit_guest.sh");

namespace {

/// A variable main() has already checked (OFFCOPY_GUEST_REQUIRES).
const char* env(const char* n) {
  const char* v = std::getenv(n);
  REQUIRE(v != nullptr);
  return v;
}

struct aligned_buf {
  explicit aligned_buf(std::size_t n) : size(n) {
    void* p = nullptr;
    REQUIRE(::posix_memalign(&p, 4096, n) == 0);
    data.reset(static_cast<std::uint8_t*>(p));
  }
  struct freer {
    void operator()(std::uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<std::uint8_t, freer> data;
  std::size_t size;
};

void write_direct(const std::string& path, std::uint64_t off, const aligned_buf& b) {
  int fd = ::open(path.c_str(), O_WRONLY | O_DIRECT);
  REQUIRE(fd >= 0);
  REQUIRE(::pwrite(fd, b.data.get(), b.size, static_cast<off_t>(off)) == static_cast<ssize_t>(b.size));
  ::fsync(fd);
  ::close(fd);
}

aligned_buf read_direct(const std::string& path, std::uint64_t off, std::size_t n) {
  aligned_buf b(n);
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECT);
  REQUIRE(fd >= 0);
  REQUIRE(::pread(fd, b.data.get(), n, static_cast<off_t>(off)) == static_cast<ssize_t>(n));
  ::close(fd);
  return b;
}

aligned_buf random_buf(std::size_t n, unsigned seed) {
  aligned_buf b(n);
  std::mt19937 g(seed);
  for (std::size_t i = 0; i < n; ++i) b.data.get()[i] = static_cast<std::uint8_t>(g());
  return b;
}

bool same(const aligned_buf& a, const aligned_buf& b) {
  return a.size == b.size && std::memcmp(a.data.get(), b.data.get(), a.size) == 0;
}

void print_caps(const capabilities& c) {
  std::cout << c.path << ": size " << c.size_bytes << " lbs " << c.logical_block_bytes << " block_path " << c.block_path
            << " identity " << c.identity << "\n";
  for (const auto& m : c.offload) {
    std::cout << "  " << m.backend << " available=" << m.available << " reason='" << m.reason
              << "' segs=" << m.limits.max_segments_per_command << " seg_blocks=" << m.limits.max_segment_blocks
              << " cmd_blocks=" << m.limits.max_command_blocks << "\n";
    for (const auto& [k, v] : m.details) std::cout << "    " << k << " = " << v << "\n";
  }
}

}  // namespace

TEST_CASE("guest: discovery on /dev/sdX and /dev/sgN") {
  const char* src = env("OFFCOPY_SCSI_SRC");
  const char* sg = env("OFFCOPY_SCSI_SRC_SG");
  auto d = device::open(src);
  REQUIRE(d.ok());
  const capabilities dc = d.value()->probe();  // discovery runs on demand
  print_caps(dc);
  auto* x = dc.find("scsi-xcopy");
  REQUIRE(x != nullptr);
  CHECK(x->available);
  CHECK(x->limits.max_segments_per_command == 1);  // LIO
  CHECK(x->limits.max_segment_blocks == 65535);
  auto* t = dc.find("scsi-token");
  REQUIRE(t != nullptr);
  CHECK_FALSE(t->available);
  auto g = device::open(sg);
  REQUIRE(g.ok());
  const capabilities gc = g.value()->probe();
  print_caps(gc);
  CHECK(gc.size_bytes == d.value()->caps().size_bytes);
  CHECK(gc.logical_block_bytes == d.value()->caps().logical_block_bytes);
  CHECK(gc.block_path == std::string(src));
  CHECK(gc.identity == d.value()->caps().identity);
}

TEST_CASE("guest: the kernel's INQUIRY and VPD copies in sysfs say what the commands say") {
  // Discovery takes the standard INQUIRY data and VPD 00h/83h from sysfs (no command); the same
  // facts asked of LIO by command must match, on the disk and on the sg node.
  for (const char* path : {env("OFFCOPY_SCSI_SRC"), env("OFFCOPY_SCSI_SRC_SG")}) {
    CAPTURE(path);
    auto d = device::open(path);
    REQUIRE(d.ok());
    const detail::device_state& st = detail::state_of(*d.value());
    struct stat sb {};
    REQUIRE(::fstat(st.fd, &sb) == 0);
    const std::string dir = std::string(S_ISBLK(sb.st_mode) ? "/sys/dev/block/" : "/sys/dev/char/") +
                            std::to_string(major(sb.st_rdev)) + ":" + std::to_string(minor(sb.st_rdev)) + "/device";
    auto t = detail::scsi::open_transport(st);
    REQUIRE(t != nullptr);
    auto by_command = detail::scsi::discover(*t);
    auto by_sysfs = detail::scsi::discover(*t, std::nullopt, dir);
    REQUIRE(by_command.ok());
    REQUIRE(by_sysfs.ok());
    const auto& c = *by_command.value();
    const auto& f = *by_sysfs.value();
    CHECK_FALSE(c.from_sysfs);
    CHECK(f.from_sysfs);
    REQUIRE(c.inquiry);
    REQUIRE(f.inquiry);
    CHECK(f.inquiry->vendor == c.inquiry->vendor);
    CHECK(f.inquiry->product == c.inquiry->product);
    CHECK(f.inquiry->peripheral_type == c.inquiry->peripheral_type);
    CHECK(f.inquiry->third_party_copy == c.inquiry->third_party_copy);
    CHECK(f.vpd_pages == c.vpd_pages);
    CHECK_FALSE(c.naa.empty());
    CHECK(f.naa == c.naa);
    CHECK(f.rcop.has_value() == c.rcop.has_value());
  }
}

TEST_CASE("guest: XCOPY session LUN to LUN, then the engine") {
  const char* src = env("OFFCOPY_SCSI_SRC");
  const char* dst = env("OFFCOPY_SCSI_DST");
  const std::size_t n = 1 << 20;
  auto data = random_buf(n, 7);
  write_direct(src, 0, data);

  open_options wo;
  wo.writable = true;
  auto s = device::open(src);
  auto d = device::open(dst, wo);
  REQUIRE(s.ok());
  REQUIRE(d.ok());
  (void)s.value()->probe();  // discovery runs on demand: the backend below needs its results
  (void)d.value()->probe();
  auto& be = (*detail::find_backend("scsi-xcopy"));
  policy pol;
  auto ps = be.check(detail::state_of(*s.value()), detail::state_of(*d.value()), pol);
  INFO(ps.reason);
  REQUIRE(ps.ok);
  auto sess = be.open_session(detail::state_of(*s.value()), detail::state_of(*d.value()), pol);
  REQUIRE(sess.ok());
  // 1 MiB at 0 → 4 MiB in two commands (LIO: one segment each).
  std::vector<plan_segment> segs = {{0, 8192, 1024}, {1024, 9216, 1024}};
  for (std::size_t i = 0; i < segs.size(); ++i) {
    detail::command c;
    c.tag = i;
    c.segments = std::span<const plan_segment>(&segs[i], 1);
    c.block_bytes = 512;
    REQUIRE(sess.value()->submit(c).ok());
  }
  std::vector<detail::completion> out;
  REQUIRE(sess.value()->reap(2, out).ok());
  REQUIRE(out.size() == 2);
  for (auto& c : out) {
    INFO(c.result.to_string());
    CHECK(c.result.ok());
  }
  CHECK(same(read_direct(dst, 4 << 20, n), data));

  // Two segments in one command sent raw: LIO refuses with 26/08 too many segments.
  {
    auto t = detail::scsi::open_transport(detail::state_of(*d.value()));
    REQUIRE(t);
    auto decided = detail::scsi::decide_pair(*detail::scsi::lu_of(detail::state_of(*s.value())),
                                             *detail::scsi::lu_of(detail::state_of(*d.value())));
    REQUIRE(decided.ok);
    auto list = detail::scsi::build_xcopy_list(decided.pair, 0, decided.usage, segs);
    auto cdb = detail::scsi::extended_copy_lid1_cdb(static_cast<std::uint32_t>(list.size()));
    auto st = detail::scsi::run_command(*t, cdb, detail::scsi::data_direction::to_device, list, 60, "EXTENDED COPY");
    std::cout << "two segments on LIO: " << st.to_string() << "\n";
    CHECK(st.code() == errc::size_limit_exceeded);
    REQUIRE(st.scsi());
    CHECK(st.scsi()->asc == 0x26);
  }

  // The engine end to end: --mode offload through scsi-xcopy, 3 extents.
  request req;
  req.source = s.value();
  req.destination = d.value();
  req.extents = {{0, 16 << 20, 256 << 10}, {256 << 10, 20 << 20, 512 << 10}, {768 << 10, 24 << 20, 256 << 10}};
  policy op;
  op.mode = copy_mode::offload;
  op.backends = {"scsi-xcopy"};
  auto rep = copy(req, op);
  std::cout << rep.to_json() << "\n";
  INFO(rep.result.to_string());
  CHECK(rep.result.ok());
  CHECK(rep.of("scsi-xcopy").bytes == n);
  CHECK(rep.of("scsi-xcopy").commands == 3);
  auto a = read_direct(dst, 16 << 20, 256 << 10);
  CHECK(std::memcmp(a.data.get(), data.data.get(), 256 << 10) == 0);
  auto b = read_direct(dst, 20 << 20, 512 << 10);
  CHECK(std::memcmp(b.data.get(), data.data.get() + (256 << 10), 512 << 10) == 0);
  auto c = read_direct(dst, 24 << 20, 256 << 10);
  CHECK(std::memcmp(c.data.get(), data.data.get() + (768 << 10), 256 << 10) == 0);
}

TEST_CASE("guest: token copy is refused by LIO as not supported") {
  const char* src = env("OFFCOPY_SCSI_SRC");
  const char* dst = env("OFFCOPY_SCSI_DST");
  ::setenv("OFFCOPY_SCSI_TOKEN_FORCE", "1", 1);
  open_options wo;
  wo.writable = true;
  detail::forget_discoveries();  // earlier cases discovered these LUNs without the variable
  auto s = device::open(src);
  auto d = device::open(dst, wo);
  REQUIRE(s.ok());
  REQUIRE(d.ok());
  (void)s.value()->probe();  // discovery runs on demand: the backend below needs its results
  (void)d.value()->probe();
  auto& be = (*detail::find_backend("scsi-token"));
  policy pol;
  auto sess = be.open_session(detail::state_of(*s.value()), detail::state_of(*d.value()), pol);
  REQUIRE(sess.ok());
  std::vector<plan_segment> segs = {{0, 0, 8}};
  detail::command c;
  c.segments = segs;
  c.block_bytes = 512;
  REQUIRE(sess.value()->submit(c).ok());
  std::vector<detail::completion> out;
  REQUIRE(sess.value()->reap(1, out).ok());
  REQUIRE(out.size() == 1);
  std::cout << "token on LIO: " << out[0].result.to_string() << "\n";
  CHECK(out[0].result.code() == errc::not_supported);
  REQUIRE(out[0].result.scsi());
  CHECK(out[0].result.scsi()->sense_key == 0x05);
  CHECK(out[0].result.scsi()->asc == 0x20);
  ::unsetenv("OFFCOPY_SCSI_TOKEN_FORCE");
}
