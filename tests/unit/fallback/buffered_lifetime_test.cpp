// Lifetimes in the buffered copier (issue 8.5): when the io_uring wait fails with reads and writes
// still in flight, the session never unmaps their buffers (the kernel may still transfer into
// them): it keeps the ring and the buffers for the life of the process. Commands that completed
// before the failure are still handed to the engine and counted.
#include <doctest/doctest.h>

#include <liburing.h>

#include <cerrno>
#include <random>

#include "offcopy/copy.hpp"
#include "src/core/sys.hpp"
#include "src/fallback/buffered.hpp"
#include "tests/unit/fallback/fallback_test_util.hpp"

using namespace offcopy;

namespace {
int waits_allowed = 0;  ///< real io_uring_submit_and_wait calls before every later one fails
/// After the allowed waits: what is queued is handed to the kernel, then the wait fails with EIO
/// -- transfers in flight (or done and never reaped) that the session can no longer wait for.
int failing_wait(struct io_uring* ring, unsigned wait_nr) {
  if (waits_allowed-- > 0) return detail::real_sys().uring_submit_and_wait(ring, wait_nr);
  (void)io_uring_submit(ring);
  return -EIO;
}
}  // namespace

TEST_CASE("buffered lifetimes: a wait that fails with I/O in flight keeps the buffers, completed commands count") {
  test::temp_dir dir;
  std::mt19937_64 rng(8);
  const auto data = test::random_bytes(8 << 20, rng);
  test::write_file(dir.file("src"), data);
  test::write_file(dir.file("dst"), std::vector<std::uint8_t>(8 << 20, 0));
  auto src = test::open_dev(dir.file("src"), false);
  auto dst = test::open_dev(dir.file("dst"), true);
  policy pol;
  pol.mode = copy_mode::fallback;
  pol.backends = {"buffered"};
  pol.buffer_bytes = 64 << 10;
  pol.buffers_in_flight = 8;
  const std::vector<extent> ex{{0, 0, 8 << 20}};
  auto p = make_plan(request{src, dst, ex}, pol);
  REQUIRE(p.ok());
  REQUIRE(p.value().backend == "buffered");
  const std::uint64_t kept_before = detail::buffered_kept_buffer_bytes();
  detail::sys_table t = detail::real_sys();
  t.uring_submit_and_wait = failing_wait;
  waits_allowed = 20;
  report rep;
  {
    detail::scoped_sys_override seam(t);
    rep = execute(request{src, dst, ex}, p.value(), pol);
  }
  INFO(rep.result.to_string());
  CHECK(rep.result.code() == errc::io_error);
  CHECK(rep.result.sys_errno() == EIO);
  // What the engine counted (the written prefix) is really at the destination.
  const auto now = test::read_file(dir.file("dst"));
  REQUIRE(rep.bytes_copied <= now.size());
  CHECK(std::equal(now.begin(), now.begin() + static_cast<std::ptrdiff_t>(rep.bytes_copied), data.begin()));
  // The session could not wait for the transfers in flight: it kept its buffers (8 x 64 KiB).
  CHECK(detail::buffered_kept_buffer_bytes() - kept_before >= 8 * (64 << 10));
}

TEST_CASE("buffered lifetimes: a wait that fails once everything completed unmaps as usual") {
  test::temp_dir dir;
  std::mt19937_64 rng(9);
  const auto data = test::random_bytes(1 << 20, rng);
  test::write_file(dir.file("src"), data);
  auto src = test::open_dev(dir.file("src"), false);
  test::write_file(dir.file("dst2"), {});
  auto dst = test::open_dev(dir.file("dst2"), true);
  policy pol;
  pol.mode = copy_mode::fallback;
  pol.backends = {"buffered"};
  const std::uint64_t kept_before = detail::buffered_kept_buffer_bytes();
  report rep = copy(request{src, dst, {{0, 0, 1 << 20}}}, pol);
  CHECK(rep.result.ok());
  CHECK(detail::buffered_kept_buffer_bytes() == kept_before);
}
