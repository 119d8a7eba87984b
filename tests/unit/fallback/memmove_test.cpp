// The fallback copiers run a segment that overlaps itself (a move within one medium by less than its
// length) in memmove order themselves (issue 8.3, 13.4): the buffered copier in large chunks from the
// right end, writing a chunk only once every chunk before it has been read; copy_file_range in pieces
// of the shift distance, or it refuses a shift under 1 MiB. Checked against std::memmove on random
// shifts (1 byte, a sector minus one, a page minus one, random), both directions, both I/O drivers,
// O_DIRECT on and off (a skewed source read direct around its range), and a failure mid-move.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include <doctest/doctest.h>

#include "fallback_test_util.hpp"
#include "offcopy/copy.hpp"
#include "src/core/sys.hpp"
#include "src/fallback/buffered.hpp"

using namespace offcopy;
using namespace offcopy::test;
using detail::buffered_tuning;

namespace {

/// One file opened as source and destination (one medium).
struct one_file {
  temp_dir dir;
  std::string path = dir.file("one");
  std::vector<std::uint8_t> data;
  std::shared_ptr<device> src, dst;
  one_file(std::size_t bytes, std::mt19937_64& rng) : data(random_bytes(bytes, rng)) {
    write_file(path, data);
    src = open_dev(path, false);
    dst = open_dev(path, true);
  }
};

/// Submits one command and waits for it.
detail::completion run_one(detail::copy_session& s, const plan_segment& seg, std::uint32_t block_bytes,
                           copy_order order) {
  std::vector<plan_segment> one{seg};
  detail::command cmd{1, std::span<const plan_segment>(one), block_bytes, order};
  REQUIRE(s.submit(cmd).ok());
  one[0] = plan_segment{~0ULL, ~0ULL, 1};  // the session must have copied it
  std::vector<detail::completion> got;
  REQUIRE(s.reap(1, got).ok());
  REQUIRE(got.size() == 1);
  return got[0];
}

copy_order order_of(std::uint64_t src, std::uint64_t dst) {
  return dst > src ? copy_order::descending : copy_order::ascending;
}

int refuse_uring(unsigned, struct io_uring*, unsigned) { return -ENOSYS; }

}  // namespace

TEST_CASE("buffered: a segment overlapping itself is copied in memmove order, any shift, any mode") {
  std::mt19937_64 rng(1313);
  const std::uint64_t shifts[] = {1, 511, 4095, 4096, 65537};
  int cases = 0, skewed = 0;
  for (bool uring : {true, false}) {
    for (auto direct : {buffered_tuning::direct_io::never, buffered_tuning::direct_io::always}) {
      for (int k = 0; k < 12; ++k) {
        one_file f(3 << 20, rng);
        const std::uint64_t shift = k < 5 ? shifts[k] : 1 + rng() % (1 << 20);
        const std::uint64_t len = (2 << 20) + rng() % (1 << 20) - shift;
        const std::uint64_t lo = rng() % ((3 << 20) - len - shift + 1);
        const bool up = k % 2 == 0;
        const std::uint64_t src = up ? lo : lo + shift, dst = up ? lo + shift : lo;
        CAPTURE(uring);
        CAPTURE(static_cast<int>(direct));
        CAPTURE(shift);
        CAPTURE(up);
        buffered_tuning t;
        t.use_io_uring = uring;
        t.direct = direct;
        policy pol;
        pol.buffer_bytes = 64 << 10;  // many chunks, several in flight
        pol.buffers_in_flight = 1 + static_cast<unsigned>(rng() % 8);
        auto s = detail::open_buffered_session(detail::state_of(*f.src), detail::state_of(*f.dst), pol, t);
        REQUIRE(s.ok());
        REQUIRE(s.value()->runs_memmove_order());
        auto c = run_one(*s.value(), {src, dst, len}, 1, order_of(src, dst));
        CHECK_MESSAGE(c.result.ok(), c.result.to_string());
        skewed += detail::describe_buffered_session(*s.value()).skewed_reads > 0;
        s.value().reset();
        std::vector<std::uint8_t> want = f.data;
        std::memmove(want.data() + dst, want.data() + src, len);
        CHECK(read_file(f.path) == want);
        ++cases;
      }
    }
  }
  CHECK(cases == 48);
  CHECK(skewed > 0);  // direct on both sides: sources off the granule were read around their range
}

TEST_CASE("buffered: a memmove command in blocks, split by the engine's limits, through the library") {
  std::mt19937_64 rng(77);
  for (std::uint64_t shift_blocks : {1ULL, 3ULL, 200ULL}) {
    one_file f(2 << 20, rng);
    const std::uint64_t len = (1 << 20) + 4096;
    request req{f.src, f.dst, {{0, shift_blocks * 512, len}}};
    policy pol;
    pol.mode = copy_mode::fallback;
    pol.backends = {"buffered"};
    pol.buffer_bytes = 32 << 10;
    auto p = make_plan(req, pol);
    REQUIRE(p.ok());
    REQUIRE(p.value().ordered);
    report rep = execute(req, p.value(), pol);
    REQUIRE_MESSAGE(rep.result.ok(), rep.result.to_string());
    // Whole commands reach the buffered copier: no pieces of the shift.
    CHECK(rep.of("buffered").commands == p.value().batches.size());
    std::vector<std::uint8_t> want = f.data;
    std::memmove(want.data() + shift_blocks * 512, want.data(), len);
    CHECK(read_file(f.path) == want);
  }
}

namespace {
struct fail_script {
  std::uint64_t fail_read_at = ~0ULL;  ///< fail the read covering this source offset with EIO
  unsigned reads = 0;
} g_fail;

int failing_uring_result(bool is_write, int, std::uint64_t offset, std::uint32_t length, int res) {
  if (!is_write) ++g_fail.reads;
  if (!is_write && res > 0 && offset <= g_fail.fail_read_at && g_fail.fail_read_at < offset + length) return -EIO;
  (void)length;
  return res;
}
}  // namespace

TEST_CASE("buffered: a memmove command failing mid-way claims only what moved, counted from its end") {
  std::mt19937_64 rng(99);
  one_file f(2 << 20, rng);
  const std::uint64_t len = (1 << 20) + 100, shift = 1;
  g_fail = fail_script{};
  g_fail.fail_read_at = 300000;  // a third of the way from the start: reached after two thirds
  detail::sys_table t = detail::real_sys();
  t.uring_result = failing_uring_result;
  detail::scoped_sys_override seam(t);
  policy pol;
  pol.buffer_bytes = 64 << 10;
  pol.buffers_in_flight = 4;
  auto s = detail::open_buffered_session(detail::state_of(*f.src), detail::state_of(*f.dst), pol, buffered_tuning{});
  REQUIRE(s.ok());
  auto c = run_one(*s.value(), {0, shift, len}, 1, copy_order::descending);
  CHECK(c.result.code() == errc::io_error);
  REQUIRE(c.blocks_done > 0);
  REQUIRE(c.blocks_done < len - 300000);
  s.value().reset();
  // The claimed bytes, the last blocks_done of the segment, hold the moved data.
  const std::vector<std::uint8_t> got = read_file(f.path);
  const std::uint64_t from = len - c.blocks_done;
  CHECK(std::memcmp(got.data() + from + shift, f.data.data() + from, c.blocks_done) == 0);
  // Nothing below the failed chunk's destination was written.
  CHECK(std::memcmp(got.data(), f.data.data(), 300000 - (64 << 10)) == 0);
}

namespace {
struct retry_script {
  std::uint64_t offset = 0;                                      ///< the read covering this source offset ...
  unsigned again = 0;                                            ///< ... completes with EAGAIN this many times
  std::vector<std::pair<std::uint64_t, std::uint64_t>> written;  ///< completed writes
  unsigned read_after_write = 0;                                 ///< reads completed over bytes already overwritten
} g_retry;

int retrying_uring_result(bool is_write, int, std::uint64_t offset, std::uint32_t length, int res) {
  if (!is_write && g_retry.again > 0 && offset <= g_retry.offset && g_retry.offset < offset + length) {
    --g_retry.again;
    return -EAGAIN;
  }
  // The memmove rule, seen from the completions: a read completes before any write over its bytes.
  if (is_write && res > 0) g_retry.written.emplace_back(offset, offset + static_cast<std::uint64_t>(res));
  if (!is_write && res > 0)
    for (auto [lo, hi] : g_retry.written)
      if (lo < offset + static_cast<std::uint64_t>(res) && offset < hi) ++g_retry.read_after_write;
  (void)length;
  return res;
}
}  // namespace

TEST_CASE("buffered: a chunk whose read is retried holds back the write of the chunk after it") {
  // Moving up by a byte from the end, the chunk after a chunk writes over that chunk's first byte:
  // while that chunk's read is being redone (EAGAIN), the next chunk, already read, must wait.
  std::mt19937_64 rng(31);
  for (int k = 0; k < 6; ++k) {
    const copy_order order = k % 2 == 0 ? copy_order::descending : copy_order::ascending;
    one_file f(1 << 20, rng);
    const std::uint64_t len = (1 << 20) - 1;
    const bool up = order == copy_order::descending;
    const std::uint64_t src = up ? 0 : 1, dst = up ? 1 : 0;
    g_retry = retry_script{};
    g_retry.offset = 200000 + static_cast<std::uint64_t>(k) * 110000;
    g_retry.again = 30;  // redone over many submissions: the next chunk's write would land meanwhile
    detail::sys_table t = detail::real_sys();
    t.uring_result = retrying_uring_result;
    detail::scoped_sys_override seam(t);
    policy pol;
    pol.buffer_bytes = 64 << 10;
    pol.buffers_in_flight = 4;
    auto s = detail::open_buffered_session(detail::state_of(*f.src), detail::state_of(*f.dst), pol, buffered_tuning{});
    REQUIRE(s.ok());
    auto c = run_one(*s.value(), {src, dst, len}, 1, order);
    REQUIRE_MESSAGE(c.result.ok(), c.result.to_string());
    CHECK(g_retry.again == 0);
    CHECK(g_retry.read_after_write == 0);
    s.value().reset();

    std::vector<std::uint8_t> want = f.data;
    std::memmove(want.data() + dst, want.data() + src, len);
    CHECK(read_file(f.path) == want);
  }
}

TEST_CASE("buffered: a memmove through pread/pwrite (one buffer) when io_uring is unavailable") {
  // One buffer: a window of a descending move is one chunk, or the copy could wait on itself.
  std::mt19937_64 rng(5);
  for (bool up : {true, false}) {
    for (std::uint32_t buffer : {4096U, 65536U + 512U}) {
      CAPTURE(up);
      CAPTURE(buffer);
      one_file f(1 << 20, rng);
      detail::sys_table t = detail::real_sys();
      t.uring_queue_init = refuse_uring;
      detail::scoped_sys_override seam(t);
      const std::uint64_t len = (1 << 20) - 1;
      request req{f.src, f.dst, {up ? extent{0, 1, len} : extent{1, 0, len}}};
      policy pol;
      pol.mode = copy_mode::fallback;
      pol.backends = {"buffered"};
      pol.buffer_bytes = buffer;
      for (auto direct : {buffered_tuning::direct_io::never, buffered_tuning::direct_io::always}) {
        buffered_tuning tuning;
        tuning.use_io_uring = false;
        tuning.direct = direct;
        write_file(f.path, f.data);
        auto s = detail::open_buffered_session(detail::state_of(*f.src), detail::state_of(*f.dst), pol, tuning);
        REQUIRE(s.ok());
        CHECK(detail::describe_buffered_session(*s.value()).buffers == 1);
        const plan_segment seg{up ? 0ULL : 1ULL, up ? 1ULL : 0ULL, len};
        auto c = run_one(*s.value(), seg, 1, up ? copy_order::descending : copy_order::ascending);
        REQUIRE_MESSAGE(c.result.ok(), c.result.to_string());
        s.value().reset();
        std::vector<std::uint8_t> want = f.data;
        std::memmove(want.data() + (up ? 1 : 0), want.data() + (up ? 0 : 1), len);
        CHECK(read_file(f.path) == want);
      }
      write_file(f.path, f.data);
      report rep = copy(req, pol);
      REQUIRE_MESSAGE(rep.result.ok(), rep.result.to_string());
      std::vector<std::uint8_t> want = f.data;
      std::memmove(want.data() + (up ? 1 : 0), want.data() + (up ? 0 : 1), len);
      CHECK(read_file(f.path) == want);
    }
  }
}

namespace {
unsigned g_cfr_calls = 0;
ssize_t counting_cfr(int fd_in, off_t* off_in, int fd_out, off_t* off_out, size_t length, unsigned flags) {
  ++g_cfr_calls;
  return detail::real_sys().copy_file_range(fd_in, off_in, fd_out, off_out, length, flags);
}
}  // namespace

TEST_CASE("copy_file_range: a move by at least 1 MiB runs in pieces of the shift, a smaller one is refused") {
  std::mt19937_64 rng(21);
  for (bool up : {true, false}) {
    CAPTURE(up);
    one_file f(8 << 20, rng);
    const std::uint64_t shift = (1 << 20) + 4096, len = (6 << 20) + 7;
    const std::uint64_t src = up ? 0 : shift, dst = up ? shift : 0;
    g_cfr_calls = 0;
    detail::sys_table t = detail::real_sys();
    t.copy_file_range = counting_cfr;
    detail::scoped_sys_override seam(t);
    auto s =
        detail::find_backend("copy-file-range")->open_session(detail::state_of(*f.src), detail::state_of(*f.dst), {});
    REQUIRE(s.ok());
    REQUIRE(s.value()->runs_memmove_order());
    auto c = run_one(*s.value(), {src, dst, len}, 1, order_of(src, dst));
    REQUIRE_MESSAGE(c.result.ok(), c.result.to_string());
    CHECK(g_cfr_calls >= (len + shift - 1) / shift);  // one piece of the shift at a time
    std::vector<std::uint8_t> want = f.data;
    std::memmove(want.data() + dst, want.data() + src, len);
    CHECK(read_file(f.path) == want);

    auto refused = run_one(*s.value(), {0, 4095, 1 << 20}, 1, copy_order::descending);
    CHECK(refused.result.code() == errc::not_supported);
    CHECK(refused.blocks_done == 0);
    CHECK(read_file(f.path) == want);  // nothing written
  }
}

TEST_CASE("library: a move by a tiny shift in one file ends in the buffered copier, bytes exact") {
  std::mt19937_64 rng(8);
  for (std::uint64_t shift : {1ULL, 511ULL, 4095ULL}) {
    CAPTURE(shift);
    one_file f(3 << 20, rng);
    const std::uint64_t len = (3 << 20) - shift;
    request req{f.src, f.dst, {{0, shift, len}}};
    report rep = copy(req, {});
    REQUIRE_MESSAGE(rep.result.ok(), rep.result.to_string());
    CHECK(rep.of("buffered").bytes == len);
    CHECK(rep.bytes_copied == len);
    std::vector<std::uint8_t> want = f.data;
    std::memmove(want.data() + shift, want.data(), len);
    CHECK(read_file(f.path) == want);
  }
}
