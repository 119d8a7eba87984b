// Issue 8.4, signals and limits: a stop request (policy::cancel, set by a signal handler, the
// Python bridge or offcopy_job_cancel) ends the fallback copiers at their next I/O and verify at
// its next read, with exactly the bytes done reported; a memmove command is never stopped inside.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "offcopy/offcopy.hpp"
#include "src/core/sys.hpp"
#include "tests/unit/core/fake_backend.hpp"

using namespace offcopy;

namespace {

std::atomic<bool> g_stop{false};
std::atomic<int> g_writes{0}, g_stop_after{-1}, g_writes_after_stop{0};

/// Counts data writes (io_uring completions and pwrite/copy_file_range calls) and sets g_stop
/// after the g_stop_after-th; counts the ones that still happen afterwards.
detail::sys_table counting_table() {
  detail::sys_table t = detail::real_sys();
  t.uring_result = [](bool is_write, int fd, std::uint64_t off, std::uint32_t len, int res) {
    res = detail::real_sys().uring_result(is_write, fd, off, len, res);
    if (is_write) {
      if (g_stop) ++g_writes_after_stop;
      if (++g_writes == g_stop_after) g_stop = true;
    }
    return res;
  };
  t.copy_file_range = [](int in, off_t* oi, int out, off_t* oo, size_t n, unsigned fl) -> ssize_t {
    ssize_t r = detail::real_sys().copy_file_range(in, oi, out, oo, n, fl);
    if (g_stop) ++g_writes_after_stop;
    if (++g_writes == g_stop_after) g_stop = true;
    return r;
  };
  return t;
}

/// A copy from `src` to `dst` by `backend` alone, stopped by `cancel` (nullptr: never).
job copy_by(const std::string& src, const std::string& dst, const std::string& backend,
            std::atomic<bool>* cancel = nullptr) {
  job j;
  j.op = operation::copy;
  j.source = src;
  j.destination = dst;
  j.options.backends = {backend};
  j.options.cancel = cancel;
  return j;
}

void reset(int stop_after) {
  g_stop = false;
  g_writes = 0;
  g_writes_after_stop = 0;
  g_stop_after = stop_after;
}

}  // namespace

TEST_CASE("cancel: the buffered copier stops at its next I/O inside a 64 MiB command, the report exact") {
  // One 48 MiB extent is one command: before, the flag was only read between commands.
  core_test::file_pair f(48 << 20, 21);
  const std::string jpath = f.dir.file("c.journal");
  detail::scoped_sys_override seam(counting_table());
  reset(6);
  job j = copy_by(f.src_path, f.dst_path, "buffered", &g_stop);
  j.options.buffers_in_flight = 4;
  j.options.journal = jpath;  // its done ranges say exactly where the reported bytes are
  job_result r = run(j);
  REQUIRE(r.end == outcome::cancelled);
  CHECK(r.error.code() == errc::cancelled);
  CHECK(r.exit_status() == 1);
  // At most the I/Os already in flight complete after the flag is seen.
  CHECK(g_writes_after_stop <= 4);
  CHECK(g_writes < 16);
  const std::uint64_t done = r.bytes_copied();
  CHECK(done > 0);
  CHECK(done < (48ULL << 20));
  // What the journal records as done: a resume plan with it says.
  job p = j;
  p.op = operation::plan;
  p.options.cancel = nullptr;
  job_result planned = run(p);
  REQUIRE_MESSAGE(planned.ok(), planned.error_line());
  CHECK(planned.resumed_bytes == done);
  const auto got = core_test::read_file(f.dst_path);
  // The done bytes are a prefix here (one command): they are the source's.
  CHECK(std::equal(got.begin(), got.begin() + static_cast<std::ptrdiff_t>(done), f.src_data.begin()));
}

TEST_CASE("cancel: copy_file_range stops between its 8 MiB calls") {
  // 32 MiB: four calls' worth, so the stop after the second leaves two calls never made (200 MiB,
  // sized for the 32 MiB calls of before, took 47 s under ASan and TSan).
  core_test::file_pair f(32 << 20, 22);
  detail::scoped_sys_override seam(counting_table());
  reset(2);
  job_result r = run(copy_by(f.src_path, f.dst_path, "copy-file-range", &g_stop));
  REQUIRE(r.end == outcome::cancelled);
  CHECK(g_writes_after_stop == 0);
  CHECK(r.bytes_copied() == (16ULL << 20));  // two calls of 8 MiB, then the flag
  const auto got = core_test::read_file(f.dst_path);
  CHECK(std::equal(got.begin(), got.begin() + (16 << 20), f.src_data.begin()));
  CHECK(std::equal(got.begin() + (16 << 20), got.end(), f.dst_data.begin() + (16 << 20)));
}

TEST_CASE("cancel: a memmove command is never stopped inside, the stop comes before the next one") {
  // Two regions of one file each moved up by 512 bytes: each is one memmove command of the
  // buffered copier. The flag set during the first lets it finish, and the second never starts.
  core_test::scratch_dir dir;
  const std::string path = dir.file("m.bin");
  const std::size_t region = 4 << 20;
  auto data = core_test::random_bytes(2 * region, 23);
  core_test::write_file(path, data);
  detail::scoped_sys_override seam(counting_table());
  reset(3);
  job j = copy_by(path, path, "buffered", &g_stop);
  j.extents = {{0, 512, region - 512}, {region, region + 512, region - 512}};
  j.options.buffer_bytes = 256 << 10;
  j.options.buffers_in_flight = 2;
  job_result r = run(j);
  REQUIRE(r.end == outcome::cancelled);
  CHECK(r.bytes_copied() == region - 512);
  auto want = data;
  std::memmove(want.data() + 512, data.data(), region - 512);
  CHECK(core_test::read_file(path) == want);
}

TEST_CASE("cancel: verify stops at its next read, the copy itself is reported done") {
  core_test::file_pair f(64 << 20, 24);
  static std::atomic<int> reads{0};
  static std::atomic<bool> stop{false};
  reads = 0;
  stop = false;
  detail::sys_table t = detail::real_sys();
  t.pread = [](int fd, void* b, size_t n, off_t o) {
    if (++reads == 3) stop = true;  // verify reads with pread
    return detail::real_sys().pread(fd, b, n, o);
  };
  detail::scoped_sys_override seam(t);
  job j = copy_by(f.src_path, f.dst_path, "copy-file-range", &stop);
  j.options.verify = true;
  job_result r = run(j);
  REQUIRE(r.end == outcome::cancelled);
  CHECK(r.bytes_copied() == (64ULL << 20));
  CHECK(r.error.message().find("verification") != std::string::npos);
  CHECK(reads <= 4);
  CHECK_FALSE(r.copied->verified);
}

TEST_CASE("cancel: set before the job starts, nothing is opened, created or written") {
  core_test::scratch_dir dir;
  const std::string src = dir.file("s"), dst = dir.file("new"), jr = dir.file("j");
  core_test::write_file(src, core_test::random_bytes(1 << 20, 25));
  std::atomic<bool> stop{true};
  job j;
  j.op = operation::copy;
  j.source = src;
  j.destination = dst;
  j.options.cancel = &stop;
  j.options.journal = jr;
  job_result r = run(j);
  CHECK(r.end == outcome::cancelled);
  CHECK(r.bytes_copied() == 0);
  CHECK_FALSE(std::filesystem::exists(dst));
  CHECK_FALSE(std::filesystem::exists(jr));
  // Stopped after the destination was created, before any byte: removed, journal too.
  static std::atomic<bool> late{false};
  late = false;
  j.options.cancel = &late;
  detail::sys_table t = detail::real_sys();
  t.ftruncate = [](int fd, off_t n) {  // the journal's creation: the destination exists by then
    late = true;
    return detail::real_sys().ftruncate(fd, n);
  };
  detail::scoped_sys_override seam(t);
  r = run(j);
  CHECK(r.end == outcome::cancelled);
  CHECK(r.bytes_copied() == 0);
  CHECK_FALSE(std::filesystem::exists(dst));
  CHECK_FALSE(std::filesystem::exists(jr));
}

TEST_CASE("limits: a file size limit is an EFBIG error with the bytes done, SIGXFSZ never delivered") {
  // RLIMIT_FSIZE in this process would limit the test's own files: emulate the kernel's answer
  // (EFBIG from the write past the limit) through the seam, and raise the signal as the kernel
  // does: the job blocks and consumes it.
  core_test::file_pair f(4 << 20, 26);
  detail::sys_table t = detail::real_sys();
  t.copy_file_range = [](int in, off_t* oi, int out, off_t* oo, size_t n, unsigned fl) -> ssize_t {
    if (*oo >= (1 << 20)) {
      ::raise(SIGXFSZ);
      errno = EFBIG;
      return -1;
    }
    return detail::real_sys().copy_file_range(in, oi, out, oo, std::min<size_t>(n, (1 << 20) - *oo), fl);
  };
  detail::scoped_sys_override seam(t);
  // SIGXFSZ's default action would end the test program here.
  job_result r = run(copy_by(f.src_path, f.dst_path, "copy-file-range"));
  CHECK(r.end == outcome::device_error);
  CHECK(r.error.sys_errno() == EFBIG);
  CHECK(r.bytes_copied() == (1 << 20));
  sigset_t pending;
  sigpending(&pending);
  CHECK_FALSE(sigismember(&pending, SIGXFSZ));
}
