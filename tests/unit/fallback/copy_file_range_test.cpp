// copy_file_range backend: random segments, short copies and EINTR, refusals that fall through.
#include <cerrno>
#include <random>

#include <doctest/doctest.h>

#include "fallback_test_util.hpp"
#include "offcopy/copy.hpp"
#include "src/core/device_state.hpp"
#include "src/core/sys.hpp"

using namespace offcopy;
using namespace offcopy::test;
using detail::sys_table;

namespace {

struct cfr_script {
  std::mt19937_64 rng{3};
  bool shorten = false;
  bool interrupt = false;
  int refuse_errno = 0;            ///< fail every call with this errno ...
  std::uint64_t refuse_after = 0;  ///< ... once this many calls succeeded
  unsigned calls = 0;
  unsigned faults = 0;
} g_cfr;

ssize_t fake_cfr(int fd_in, off_t* off_in, int fd_out, off_t* off_out, size_t length, unsigned flags) {
  ++g_cfr.calls;
  if (g_cfr.refuse_errno != 0 && g_cfr.calls > g_cfr.refuse_after) {
    ++g_cfr.faults;
    errno = g_cfr.refuse_errno;
    return -1;
  }
  if (g_cfr.interrupt && g_cfr.rng() % 3 == 0) {
    ++g_cfr.faults;
    errno = EINTR;
    return -1;
  }
  if (g_cfr.shorten && length > 1 && g_cfr.rng() % 2 == 0) {
    ++g_cfr.faults;
    length = 1 + g_cfr.rng() % (length - 1);
  }
  return detail::real_sys().copy_file_range(fd_in, off_in, fd_out, off_out, length, flags);
}

sys_table scripted() {
  sys_table t = detail::real_sys();
  t.copy_file_range = fake_cfr;
  return t;
}

struct files {
  temp_dir dir;
  std::mt19937_64 rng;
  std::vector<std::uint8_t> src_data, dst_data;
  std::string src_path = dir.file("src"), dst_path = dir.file("dst");
  explicit files(std::uint64_t seed) : rng(seed) {
    src_data = random_bytes(2 << 20, rng);
    dst_data = random_bytes(1 << 20, rng);
    write_file(src_path, src_data);
    write_file(dst_path, dst_data);
  }
};

}  // namespace

TEST_CASE("copy_file_range: check() accepts file pairs only") {
  files f(1);
  auto src = open_dev(f.src_path, false);
  auto dst = open_dev(f.dst_path, true);
  auto& b = (*detail::find_backend("copy-file-range"));
  CHECK(b.check(detail::state_of(*src), detail::state_of(*dst), {}).ok);
  detail::device_state blockish;
  blockish.caps.kind = device_kind::block_device;
  auto p = b.check(detail::state_of(*src), blockish, {});
  CHECK_FALSE(p.ok);
  CHECK(!p.reason.empty());
}

TEST_CASE("copy_file_range: random segments, with short copies and EINTR") {
  for (bool faults : {false, true}) {
    CAPTURE(faults);
    g_cfr = cfr_script{};
    g_cfr.shorten = faults;
    g_cfr.interrupt = faults;
    detail::scoped_sys_override seam(scripted());
    files f(10 + faults);
    auto src = open_dev(f.src_path, false);
    auto dst = open_dev(f.dst_path, true);
    auto segs = random_segments(f.rng, f.src_data.size(), 3 << 20, 60, 200000);
    auto session =
        (*detail::find_backend("copy-file-range")).open_session(detail::state_of(*src), detail::state_of(*dst), {});
    REQUIRE(session.ok());
    auto done = run_commands(*session.value(), segs, 1, 4);
    for (const auto& c : done) CHECK_MESSAGE(c.result.ok(), c.result.to_string());
    REQUIRE(session.value()->finish().ok());
    apply_reference(f.src_data, f.dst_data, segs, 1);
    CHECK(read_file(f.dst_path) == f.dst_data);
    if (faults) CHECK(g_cfr.faults > 10);
  }
}

TEST_CASE("copy_file_range: a refusal at the first call is not_supported, later an I/O error") {
  for (int err : {EXDEV, EINVAL, EOPNOTSUPP, ENOSYS}) {
    CAPTURE(err);
    files f(20);
    auto src = open_dev(f.src_path, false);
    auto dst = open_dev(f.dst_path, true);
    std::vector<plan_segment> segs{{0, 0, 1000}, {5000, 2000, 1000}};
    {
      g_cfr = cfr_script{};
      g_cfr.refuse_errno = err;
      detail::scoped_sys_override seam(scripted());
      auto session =
          (*detail::find_backend("copy-file-range")).open_session(detail::state_of(*src), detail::state_of(*dst), {});
      REQUIRE(session.ok());
      auto done = run_commands(*session.value(), segs, 1, 2);
      REQUIRE(done.size() == 1);
      CHECK(done[0].result.code() == errc::not_supported);
      CHECK(done[0].result.sys_errno() == err);
      CHECK(done[0].blocks_done == 0);
    }
    {
      g_cfr = cfr_script{};
      g_cfr.refuse_errno = err;
      g_cfr.refuse_after = 1;  // the first segment copies, then the kernel refuses
      detail::scoped_sys_override seam(scripted());
      auto session =
          (*detail::find_backend("copy-file-range")).open_session(detail::state_of(*src), detail::state_of(*dst), {});
      REQUIRE(session.ok());
      auto done = run_commands(*session.value(), segs, 1, 2);
      REQUIRE(done.size() == 1);
      CHECK(done[0].result.code() != errc::not_supported);
      CHECK_FALSE(done[0].result.ok());
      CHECK(done[0].blocks_done == 1000);
    }
  }
}

TEST_CASE("copy_file_range: source ending early is a short read") {
  files f(30);
  auto src = open_dev(f.src_path, false);
  auto dst = open_dev(f.dst_path, true);
  std::vector<plan_segment> segs{{(2 << 20) - 100, 0, 300}};
  auto session =
      (*detail::find_backend("copy-file-range")).open_session(detail::state_of(*src), detail::state_of(*dst), {});
  REQUIRE(session.ok());
  auto done = run_commands(*session.value(), segs, 1, 1);
  REQUIRE(done.size() == 1);
  CHECK(done[0].result.code() == errc::io_error);
  CHECK(done[0].result.message().find("short read") != std::string::npos);
  CHECK(done[0].blocks_done == 100);
}

TEST_CASE("copy_file_range: the library copies file to file with it") {
  files f(40);
  auto src = open_dev(f.src_path, false);
  auto dst = open_dev(f.dst_path, true);
  request req{src, dst, {{3, 100, 500000}, {1 << 20, 700000, 300001}}};
  report rep = copy(req, {});
  REQUIRE_MESSAGE(rep.result.ok(), rep.result.to_string());
  CHECK(rep.of("copy-file-range").bytes == 800001);
  std::vector<plan_segment> segs{{3, 100, 500000}, {1 << 20, 700000, 300001}};
  apply_reference(f.src_data, f.dst_data, segs, 1);
  CHECK(read_file(f.dst_path) == f.dst_data);
}

TEST_CASE("copy_file_range: a kernel refusal falls through to the buffered copier") {
  g_cfr = cfr_script{};
  g_cfr.refuse_errno = EXDEV;
  detail::scoped_sys_override seam(scripted());
  files f(50);
  auto src = open_dev(f.src_path, false);
  auto dst = open_dev(f.dst_path, true);
  request req{src, dst, {{0, 0, 1 << 20}, {(1 << 20) + 1, (1 << 20) + 123, 4321}}};
  report rep = copy(req, {});
  REQUIRE_MESSAGE(rep.result.ok(), rep.result.to_string());
  CHECK(rep.of("copy-file-range").bytes == 0);
  CHECK(rep.of("buffered").bytes == (1 << 20) + 4321);
  CHECK(rep.bytes_copied == (1 << 20) + 4321);
  std::vector<plan_segment> segs{{0, 0, 1 << 20}, {(1 << 20) + 1, (1 << 20) + 123, 4321}};
  apply_reference(f.src_data, f.dst_data, segs, 1);
  CHECK(read_file(f.dst_path) == f.dst_data);
}
