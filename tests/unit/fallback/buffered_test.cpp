// The buffered copier: random segments against a reference model, on both I/O drivers, with
// short transfers, EINTR/EAGAIN, EIO and O_DIRECT refusals scripted through the syscall seam.
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <random>

#include <doctest/doctest.h>

#include "fallback_test_util.hpp"
#include "offcopy/copy.hpp"
#include "src/core/device_state.hpp"
#include "src/core/sys.hpp"
#include "src/fallback/buffered.hpp"

using namespace offcopy;
using namespace offcopy::test;
using detail::buffered_tuning;
using detail::sys_table;

namespace {

struct fixture {
  temp_dir dir;
  std::mt19937_64 rng;
  std::vector<std::uint8_t> src_data;
  std::vector<std::uint8_t> dst_data;
  std::string src_path = dir.file("src");
  std::string dst_path = dir.file("dst");

  explicit fixture(std::uint64_t seed, std::size_t src_bytes = 3 << 20, std::size_t dst_bytes = 2 << 20) : rng(seed) {
    src_data = random_bytes(src_bytes, rng);
    dst_data = random_bytes(dst_bytes, rng);
    write_file(src_path, src_data);
    write_file(dst_path, dst_data);
  }
};

policy small_buffers(std::uint32_t buffer_bytes = 64 << 10, unsigned buffers = 8) {
  policy p;
  p.buffer_bytes = buffer_bytes;
  p.buffers_in_flight = buffers;
  return p;
}

/// Copies random segments through one buffered session and checks the destination.
void copy_and_check(fixture& f, const buffered_tuning& tuning, const policy& pol, std::uint32_t block_bytes,
                    std::size_t per_command, detail::buffered_session_info* info_out = nullptr) {
  auto src = open_dev(f.src_path, false);
  auto dst = open_dev(f.dst_path, true);
  auto segs = random_segments(f.rng, f.src_data.size() / block_bytes, (f.dst_data.size() + (1 << 20)) / block_bytes, 40,
                              (300 << 10) / block_bytes);
  REQUIRE(!segs.empty());
  auto session = detail::open_buffered_session(detail::state_of(*src), detail::state_of(*dst), pol, tuning);
  REQUIRE(session.ok());
  auto done = run_commands(*session.value(), segs, block_bytes, per_command);
  for (const auto& c : done) CHECK_MESSAGE(c.result.ok(), c.result.to_string());
  REQUIRE(session.value()->finish().ok());
  if (info_out != nullptr) *info_out = detail::describe_buffered_session(*session.value());
  session.value().reset();
  apply_reference(f.src_data, f.dst_data, segs, block_bytes);
  auto got = read_file(f.dst_path);
  REQUIRE(got.size() == f.dst_data.size());
  CHECK(got == f.dst_data);
}

// ---- scripted faults ---------------------------------------------------------------------------

struct script {
  std::mt19937_64 rng{7};
  bool shorten = false;    ///< report (and, for pread/pwrite, do) fewer bytes than asked
  bool interrupt = false;  ///< fail about one call in four with EINTR (or EAGAIN)
  int fail_errno = 0;      ///< fail writes at or past fail_offset with this errno
  bool fail_on_write = true;
  std::uint64_t fail_offset = ~0ULL;
  bool refuse_direct = false;           ///< EINVAL for every O_DIRECT transfer
  std::atomic<bool>* cancel = nullptr;  ///< set when a write reaches cancel_offset
  std::uint64_t cancel_offset = ~0ULL;
  unsigned calls = 0;
  unsigned faults = 0;
} g_script;

bool is_direct(int fd) { return (::fcntl(fd, F_GETFL) & O_DIRECT) != 0; }

/// Decides the fate of one transfer: returns -errno, or the bytes to do (≤ length).
long long decide(bool is_write, int fd, std::uint64_t offset, std::uint32_t length) {
  ++g_script.calls;
  if (g_script.cancel != nullptr && is_write && offset + length > g_script.cancel_offset) g_script.cancel->store(true);
  if (g_script.refuse_direct && is_direct(fd)) {
    ++g_script.faults;
    return -EINVAL;
  }
  if (g_script.fail_errno != 0 && is_write == g_script.fail_on_write && offset + length > g_script.fail_offset &&
      offset <= g_script.fail_offset) {
    ++g_script.faults;
    return -g_script.fail_errno;
  }
  if (g_script.interrupt && g_script.rng() % 4 == 0) {
    ++g_script.faults;
    return g_script.rng() % 2 ? -EINTR : -EAGAIN;
  }
  if (g_script.shorten && length > 1 && g_script.rng() % 2 == 0) {
    ++g_script.faults;
    return static_cast<long long>(1 + g_script.rng() % (length - 1));
  }
  return length;
}

ssize_t fake_pread(int fd, void* buf, size_t count, off_t offset) {
  long long d = decide(false, fd, static_cast<std::uint64_t>(offset), static_cast<std::uint32_t>(count));
  if (d < 0) {
    errno = static_cast<int>(-d);
    return -1;
  }
  return detail::real_sys().pread(fd, buf, static_cast<size_t>(d), offset);
}

ssize_t fake_pwrite(int fd, const void* buf, size_t count, off_t offset) {
  long long d = decide(true, fd, static_cast<std::uint64_t>(offset), static_cast<std::uint32_t>(count));
  if (d < 0) {
    errno = static_cast<int>(-d);
    return -1;
  }
  return detail::real_sys().pwrite(fd, buf, static_cast<size_t>(d), offset);
}

/// io_uring already moved the bytes: the hook can only report less (or an error) than happened,
/// which the copier must treat the same way: redo the rest.
int fake_uring_result(bool is_write, int fd, std::uint64_t offset, std::uint32_t length, int res) {
  if (res < 0) return res;
  long long d = decide(is_write, fd, offset, static_cast<std::uint32_t>(res));
  (void)length;
  return static_cast<int>(d);
}

int no_uring(unsigned, struct io_uring*, unsigned) { return -ENOSYS; }

sys_table scripted_table() {
  sys_table t = detail::real_sys();
  t.pread = fake_pread;
  t.pwrite = fake_pwrite;
  t.uring_result = fake_uring_result;
  return t;
}

struct driver_case {
  const char* name;
  bool uring;
};
const driver_case drivers[] = {{"io_uring", true}, {"pread/pwrite", false}};

buffered_tuning tuning_of(bool uring, buffered_tuning::direct_io direct) {
  buffered_tuning t;
  t.use_io_uring = uring;
  t.direct = direct;
  return t;
}

}  // namespace

TEST_CASE("buffered: random unaligned segments match the reference, every driver and direct mode") {
  for (const auto& drv : drivers) {
    for (auto direct : {buffered_tuning::direct_io::always, buffered_tuning::direct_io::never,
                        buffered_tuning::direct_io::automatic}) {
      for (std::size_t per_command : {1UL, 7UL, 1000UL}) {
        CAPTURE(drv.name);
        CAPTURE(static_cast<int>(direct));
        CAPTURE(per_command);
        fixture f(1234 + per_command + static_cast<unsigned>(direct) * 10 + drv.uring * 100);
        copy_and_check(f, tuning_of(drv.uring, direct), small_buffers(), 1, per_command);
      }
    }
  }
}

TEST_CASE("buffered: block-unit segments use O_DIRECT with registered buffers") {
  fixture f(99);
  detail::buffered_session_info info;
  copy_and_check(f, tuning_of(true, buffered_tuning::direct_io::always), small_buffers(), 4096, 3, &info);
  CHECK(info.io_uring);
  CHECK(info.registered_buffers);
  CHECK(info.buffers == 8);
  CHECK(info.buffer_bytes == (64 << 10));
  if (info.dst_direct && info.src_direct) {
    CHECK(info.direct_ops > 0);
    CHECK(info.cached_ops == 0);  // every chunk is 4 KiB aligned
  } else {
    MESSAGE("O_DIRECT not available on the temporary directory's filesystem");
  }
}

TEST_CASE("buffered: unaligned heads and tails go through the page cache, the middle direct") {
  fixture f(5, 4 << 20, 4 << 20);
  auto src = open_dev(f.src_path, false);
  auto dst = open_dev(f.dst_path, true);
  // 100 bytes before a page boundary to 300 bytes after a later one, same misalignment on both sides.
  std::vector<plan_segment> segs{{8192 - 100, 3 * 4096 - 100, 100 + 2 * 65536 + 300}};
  auto session = detail::open_buffered_session(detail::state_of(*src), detail::state_of(*dst), small_buffers(),
                                               tuning_of(true, buffered_tuning::direct_io::always));
  REQUIRE(session.ok());
  auto done = run_commands(*session.value(), segs, 1, 1);
  REQUIRE(done.size() == 1);
  CHECK(done[0].result.ok());
  REQUIRE(session.value()->finish().ok());
  auto info = detail::describe_buffered_session(*session.value());
  if (info.dst_direct && info.src_direct) {
    CHECK(info.direct_ops == 4);  // two 64 KiB chunks, read + write each
    CHECK(info.cached_ops == 4);  // head and tail, read + write each
  }
  session.value().reset();
  apply_reference(f.src_data, f.dst_data, segs, 1);
  CHECK(read_file(f.dst_path) == f.dst_data);
}

TEST_CASE("buffered: short reads and writes, EINTR and EAGAIN are resubmitted") {
  for (const auto& drv : drivers) {
    for (auto direct : {buffered_tuning::direct_io::always, buffered_tuning::direct_io::never}) {
      CAPTURE(drv.name);
      CAPTURE(static_cast<int>(direct));
      g_script = script{};
      g_script.shorten = true;
      g_script.interrupt = true;
      detail::scoped_sys_override seam(scripted_table());
      fixture f(77 + drv.uring);
      copy_and_check(f, tuning_of(drv.uring, direct), small_buffers(), 1, 5);
      CHECK(g_script.faults > 20);
    }
  }
}

TEST_CASE("buffered: without io_uring the pread/pwrite path copies") {
  sys_table t = detail::real_sys();
  t.uring_queue_init = no_uring;
  detail::scoped_sys_override seam(t);
  fixture f(31);
  detail::buffered_session_info info;
  copy_and_check(f, tuning_of(true, buffered_tuning::direct_io::automatic), small_buffers(), 1, 4, &info);
  CHECK_FALSE(info.io_uring);
  CHECK(info.buffers == 1);
}

TEST_CASE("buffered: O_DIRECT refused with EINVAL falls back to the page cache") {
  for (const auto& drv : drivers) {
    CAPTURE(drv.name);
    g_script = script{};
    g_script.refuse_direct = true;
    detail::scoped_sys_override seam(scripted_table());
    fixture f(41);
    detail::buffered_session_info info;
    copy_and_check(f, tuning_of(drv.uring, buffered_tuning::direct_io::always), small_buffers(), 4096, 2, &info);
    if (info.dst_direct || info.src_direct) CHECK(g_script.faults > 0);
  }
}

TEST_CASE("buffered: EIO fails the command and blocks_done is the written prefix") {
  for (const auto& drv : drivers) {
    for (bool on_write : {true, false}) {
      CAPTURE(drv.name);
      CAPTURE(on_write);
      g_script = script{};
      g_script.fail_errno = EIO;
      g_script.fail_on_write = on_write;
      fixture f(55);
      auto src = open_dev(f.src_path, false);
      auto dst = open_dev(f.dst_path, true);
      // One command, 1 MiB from source 0 to destination 512 KiB; the fault hits 300 KiB in.
      const std::uint64_t bb = 512;
      std::vector<plan_segment> segs{{0, 1024, 2048}};
      g_script.fail_offset = (on_write ? 1024 * bb : 0) + 300 * 1024;
      detail::scoped_sys_override seam(scripted_table());
      auto session = detail::open_buffered_session(detail::state_of(*src), detail::state_of(*dst), small_buffers(),
                                                   tuning_of(drv.uring, buffered_tuning::direct_io::always));
      REQUIRE(session.ok());
      auto done = run_commands(*session.value(), segs, bb, 1);
      REQUIRE(done.size() == 1);
      CHECK(done[0].result.code() == errc::io_error);
      CHECK(done[0].result.sys_errno() == EIO);
      CHECK(done[0].result.message().find(on_write ? "write" : "read") != std::string::npos);
      // The 64 KiB chunk holding byte 300 KiB starts at 256 KiB: at most that much is claimed.
      CHECK(done[0].blocks_done * bb <= 256 * 1024);
      if (!drv.uring) CHECK(done[0].blocks_done * bb == 256 * 1024);  // one buffer: exactly in order
      session.value().reset();
      auto got = read_file(f.dst_path);
      std::uint64_t claimed = done[0].blocks_done * bb;
      CHECK(std::equal(got.begin() + 1024 * bb, got.begin() + static_cast<std::ptrdiff_t>(1024 * bb + claimed),
                       f.src_data.begin()));
    }
  }
}

TEST_CASE("buffered: cancel set while a command runs stops it before its next buffer, blocks_done the prefix") {
  for (const auto& drv : drivers) {
    CAPTURE(drv.name);
    g_script = script{};
    std::atomic<bool> cancel{false};
    g_script.cancel = &cancel;
    g_script.cancel_offset = 256 * 1024;  // the write of the chunk at 256 KiB sets the flag
    fixture f(57);
    auto src = open_dev(f.src_path, false);
    auto dst = open_dev(f.dst_path, true);
    // One command of 2 MiB (32 chunks of 64 KiB), source 0 to destination 0.
    const std::uint64_t bb = 512;
    std::vector<plan_segment> segs{{0, 0, 4096}};
    policy pol = small_buffers();
    pol.cancel = &cancel;
    detail::scoped_sys_override seam(scripted_table());
    auto session = detail::open_buffered_session(detail::state_of(*src), detail::state_of(*dst), pol,
                                                 tuning_of(drv.uring, buffered_tuning::direct_io::never));
    REQUIRE(session.ok());
    auto done = run_commands(*session.value(), segs, bb, 1);
    REQUIRE(done.size() == 1);
    CHECK(done[0].result.code() == errc::cancelled);
    const std::uint64_t claimed = done[0].blocks_done * bb;
    // The chunk that set the flag and those already in flight finish; no further chunk is cut:
    // one buffer stops right after it, eight at most 8 chunks beyond the flag's own.
    if (!drv.uring) CHECK(claimed == 320 * 1024);
    CHECK(claimed >= 320 * 1024);
    CHECK(claimed <= (320 + 8 * 64) * 1024);
    session.value().reset();
    auto got = read_file(f.dst_path);
    CHECK(std::equal(got.begin(), got.begin() + static_cast<std::ptrdiff_t>(claimed), f.src_data.begin()));
    // Beyond what was cut, the destination is untouched.
    const std::size_t cut_end = (320 + 8 * 64) * 1024;
    CHECK(std::equal(got.begin() + static_cast<std::ptrdiff_t>(cut_end), got.end(),
                     f.dst_data.begin() + static_cast<std::ptrdiff_t>(cut_end)));
  }
}

TEST_CASE("buffered: a read past the end of the source is an error, never zero fill") {
  for (const auto& drv : drivers) {
    CAPTURE(drv.name);
    fixture f(66, 100000, 200000);
    auto src = open_dev(f.src_path, false);
    auto dst = open_dev(f.dst_path, true);
    std::vector<plan_segment> segs{{90000, 0, 20000}};  // 10000 bytes beyond the end
    auto session = detail::open_buffered_session(detail::state_of(*src), detail::state_of(*dst), small_buffers(4096, 4),
                                                 tuning_of(drv.uring, buffered_tuning::direct_io::never));
    REQUIRE(session.ok());
    auto done = run_commands(*session.value(), segs, 1, 1);
    REQUIRE(done.size() == 1);
    CHECK(done[0].result.code() == errc::io_error);
    CHECK(done[0].result.message().find("short read") != std::string::npos);
    CHECK(done[0].blocks_done <= 10000);
  }
}

TEST_CASE("buffered: a regular-file destination grows") {
  fixture f(88, 1 << 20, 0);
  auto src = open_dev(f.src_path, false);
  auto dst = open_dev(f.dst_path, true);
  std::vector<plan_segment> segs{{0, 100000, 500000}, {700000, 600001, 12345}};
  auto session = detail::open_buffered_session(detail::state_of(*src), detail::state_of(*dst), small_buffers(),
                                               tuning_of(true, buffered_tuning::direct_io::always));
  REQUIRE(session.ok());
  auto done = run_commands(*session.value(), segs, 1, 2);
  REQUIRE(done.size() == 1);
  CHECK(done[0].result.ok());
  REQUIRE(session.value()->finish().ok());
  session.value().reset();
  apply_reference(f.src_data, f.dst_data, segs, 1);
  CHECK(read_file(f.dst_path) == f.dst_data);
}

TEST_CASE("buffered: finish() reports a failing fdatasync") {
  sys_table t = detail::real_sys();
  t.fdatasync = [](int) {
    errno = EIO;
    return -1;
  };
  fixture f(12);
  auto src = open_dev(f.src_path, false);
  auto dst = open_dev(f.dst_path, true);
  detail::scoped_sys_override seam(t);
  auto session = detail::open_buffered_session(detail::state_of(*src), detail::state_of(*dst), small_buffers(), {});
  REQUIRE(session.ok());
  std::vector<plan_segment> segs{{0, 0, 1000}};
  auto done = run_commands(*session.value(), segs, 1, 1);
  CHECK(done[0].result.ok());
  status fin = session.value()->finish();
  CHECK(fin.code() == errc::io_error);
  CHECK(fin.sys_errno() == EIO);
}

TEST_CASE("buffered: whole-library copy in fallback mode matches") {
  fixture f(2024, 5 << 20, 1 << 20);
  auto src = open_dev(f.src_path, false);
  auto dst = open_dev(f.dst_path, true);
  request req{src, dst, {{0, 0, 1 << 20}, {(1 << 20) + 3, (2 << 20) + 5, 777777}, {4 << 20, 1 << 20, 4097}}};
  policy pol = small_buffers();
  pol.mode = copy_mode::fallback;
  pol.backends = {"buffered"};
  report rep = copy(req, pol);
  REQUIRE_MESSAGE(rep.result.ok(), rep.result.to_string());
  CHECK(rep.bytes_copied == (1 << 20) + 777777 + 4097);
  CHECK(rep.of("buffered").bytes == rep.bytes_copied);
  std::vector<plan_segment> segs;
  for (const auto& e : req.extents) segs.push_back({e.src_offset_bytes, e.dst_offset_bytes, e.length_bytes});
  apply_reference(f.src_data, f.dst_data, segs, 1);
  CHECK(read_file(f.dst_path) == f.dst_data);
}
