// Issue 8.8, crashes and resume: the journal (src/core/journal.*) and resumed jobs. The crash
// tests take a snapshot of the destination and of the journal at a command boundary (or in the
// middle of a command's writes) -- what kill -9 would leave -- restore it, run the same job again
// and compare with the reference: a memmove of each extent in request order.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "offcopy/offcopy.hpp"
#include "src/core/journal.hpp"
#include "src/core/sys.hpp"
#include "tests/unit/core/fake_backend.hpp"

using namespace offcopy;
using detail::journal;
using detail::range_set;

namespace {

std::vector<std::uint8_t> memmove_reference(std::vector<std::uint8_t> data, const std::vector<extent>& extents) {
  for (const extent& e : extents)
    std::memmove(data.data() + e.dst_offset_bytes, data.data() + e.src_offset_bytes, e.length_bytes);
  return data;
}

// Whole copies, not element by element: under ASan (-O0) a 600 MiB file copied a byte at a time
// through iterators took minutes.
std::string read_all(const std::string& path) {
  auto v = core_test::read_file(path);
  return {reinterpret_cast<const char*>(v.data()), v.size()};
}

void write_all(const std::string& path, const std::string& bytes) {
  const auto* p = reinterpret_cast<const std::uint8_t*>(bytes.data());
  core_test::write_file(path, std::vector<std::uint8_t>(p, p + bytes.size()));
}

job copy_job(const std::string& src, const std::string& dst, std::vector<extent> extents, const std::string& jr) {
  job j;
  j.op = operation::copy;
  j.source = src;
  j.destination = dst;
  j.extents = std::move(extents);
  j.options.journal = jr;
  j.options.sync = false;
  return j;
}

}  // namespace

TEST_CASE("journal: CRC32C is the Castagnoli CRC (RFC 3720 B.4 check values)") {
  const char digits[] = "123456789";
  CHECK(detail::crc32c(0, digits, 9) == 0xE3069283U);
  std::uint8_t zeros[32] = {};
  CHECK(detail::crc32c(0, zeros, 32) == 0x8A9136AAU);
  std::uint8_t ones[32];
  std::memset(ones, 0xff, sizeof ones);
  CHECK(detail::crc32c(0, ones, 32) == 0x62A8AB43U);
  // Continuing from a CRC equals one pass.
  CHECK(detail::crc32c(detail::crc32c(0, digits, 4), digits + 4, 5) == 0xE3069283U);
}

TEST_CASE("journal: range_set agrees with a bitmap on random adds and queries") {
  std::mt19937_64 rng(8);
  for (int round = 0; round < 200; ++round) {
    range_set s;
    std::vector<bool> bits(256, false);
    for (int i = 0; i < 12; ++i) {
      std::uint64_t lo = rng() % 256, hi = lo + rng() % 40;
      hi = std::min<std::uint64_t>(hi, 256);
      s.add(lo, hi);
      for (std::uint64_t b = lo; b < hi; ++b) bits[b] = true;
    }
    // Merged: no two ranges touch.
    std::uint64_t prev_hi = 0;
    bool first = true;
    for (auto [lo, hi] : s.ranges()) {
      CHECK(lo < hi);
      if (!first) CHECK(lo > prev_hi);
      prev_hi = hi;
      first = false;
    }
    for (int q = 0; q < 50; ++q) {
      std::uint64_t lo = rng() % 256, hi = std::min<std::uint64_t>(256, lo + 1 + rng() % 60);
      bool all = true, any = false;
      std::uint64_t n = 0;
      for (std::uint64_t b = lo; b < hi; ++b) {
        all = all && bits[b];
        any = any || bits[b];
        n += bits[b] ? 1 : 0;
      }
      CHECK(s.covers(lo, hi) == all);
      CHECK(s.intersects(lo, hi) == any);
      CHECK(s.bytes_within(lo, hi) == n);
      std::uint64_t missing = 0;
      std::uint64_t at = lo;
      for (auto [a, b] : s.missing(lo, hi)) {
        CHECK(a >= at);
        for (std::uint64_t x = a; x < b; ++x) CHECK_FALSE(bits[x]);
        missing += b - a;
        at = b;
      }
      CHECK(missing == (hi - lo) - n);
    }
  }
}

TEST_CASE("journal: created durably, reloaded with its records, a torn tail cut, damage and mismatches refused") {
  core_test::scratch_dir dir;
  const std::string path = dir.file("j");
  nlohmann::json fp = {{"format", 1},
                       {"source", {{"identity", "file:1:2:3"}, {"size_bytes", 1000}}},
                       {"destination", {{"identity", "wwid:eui.1"}, {"size_bytes", 4096}}},
                       {"request", {{"extents", 1}, {"bytes", 1000}, {"crc32c", "0x1"}}}};
  {
    auto j = journal::open(path, fp, journal::access::write, {});
    REQUIRE(j.ok());
    CHECK_FALSE(j.value()->resumed());
    j.value()->bind(-1, false, 0);
    std::vector<plan_segment> segs{{0, 0, 10}, {20, 30, 5}};
    REQUIRE(j.value()->completed(segs, 8, 12, false).ok());  // 10 blocks of the first, 2 of the second
    REQUIRE(j.value()->commit().ok());
  }
  const std::string good = read_all(path);
  {
    auto j = journal::open(path, fp, journal::access::read, {});
    REQUIRE(j.ok());
    CHECK(j.value()->resumed());
    CHECK(j.value()->done().covers(0, 80));
    CHECK(j.value()->done().covers(240, 256));
    CHECK_FALSE(j.value()->done().intersects(80, 240));
    auto rest = j.value()->remaining({{0, 0, 300}}, 0, 0);
    REQUIRE(rest.ok());
    CHECK(rest.value().done_bytes == 96);
    const std::vector<extent>& left = rest.value().extents;
    REQUIRE(left.size() == 2);
    CHECK(left[0].dst_offset_bytes == 80);
    CHECK(left[0].length_bytes == 160);
    CHECK(left[1].dst_offset_bytes == 256);
    CHECK(left[1].src_offset_bytes == 256);
  }
  // A torn tail (a record cut short, garbage after it) is dropped: the records before it stay.
  write_all(path, good + std::string("\x02\x00\x00\x00\x10\x00\x00\x00\x01\x02", 10));
  {
    auto j = journal::open(path, fp, journal::access::write, {});
    REQUIRE(j.ok());
    CHECK(j.value()->done().covers(0, 80));
  }
  CHECK(read_all(path) == good);  // the torn bytes were cut before appending
  // A flipped bit in a record: that record and everything after it are ignored.
  std::string flipped = good;
  flipped[flipped.size() - 5] = static_cast<char>(flipped[flipped.size() - 5] ^ 1);
  write_all(path, flipped);
  {
    auto j = journal::open(path, fp, journal::access::read, {});
    REQUIRE(j.ok());
    CHECK(j.value()->done().covers(0, 80));
    CHECK_FALSE(j.value()->done().intersects(240, 256));
  }
  // A damaged header, a foreign file, another request: refused with the reason.
  std::string bad_header = good;
  bad_header[30] = 'X';
  write_all(path, bad_header);
  auto r = journal::open(path, fp, journal::access::write, {});
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == errc::invalid_argument);
  CHECK(r.error().message().find("damaged") != std::string::npos);
  write_all(path, "#!/bin/sh\n");
  r = journal::open(path, fp, journal::access::write, {});
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message().find("not an offcopy journal") != std::string::npos);
  write_all(path, good);
  for (auto [key, field, value, says] : std::vector<std::tuple<std::string, std::string, nlohmann::json, std::string>>{
           {"source", "size_bytes", 2000, "source's size_bytes changed"},
           {"destination", "identity", "wwid:eui.2", "destination is another file or device"},
           {"request", "crc32c", "0x2", "extents differ"}}) {
    nlohmann::json other = fp;
    other[key][field] = value;
    auto o = journal::open(path, other, journal::access::read, {});
    REQUIRE_FALSE(o.ok());
    CAPTURE(o.error().message());
    CHECK(o.error().code() == errc::invalid_argument);
    CHECK(o.error().message().find(says) != std::string::npos);
  }
  // A creation cut short (empty, part of the signature, the header's own write torn) is new.
  for (std::size_t cut : {std::size_t{0}, std::size_t{7}, std::size_t{16}, std::size_t{40}}) {
    write_all(path, good.substr(0, cut));
    auto n = journal::open(path, fp, journal::access::write, {});
    REQUIRE(n.ok());
    CHECK_FALSE(n.value()->resumed());
  }
  // Not the source or the destination of the copy; not a directory.
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  r = journal::open(path, fp, journal::access::write,
                    {fmt::format("file:{}:{}:{}", major(st.st_dev), minor(st.st_dev), st.st_ino)});
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message().find("is the source or the destination") != std::string::npos);
  r = journal::open(dir.path(), fp, journal::access::read, {});
  REQUIRE_FALSE(r.ok());
}

TEST_CASE("journal: the destination is made durable before the records that claim it, the journal after them") {
  // A 600 MiB sparse source: the buffered copier moves its 64 MiB commands fast (holes are
  // punched, not copied) and the journal commits every 256 MiB of completed work.
  core_test::scratch_dir dir;
  const std::string src = dir.file("sparse.bin"), dst = dir.file("out.bin"), jpath = dir.file("order.journal");
  const std::uint64_t size = 600ULL << 20;
  {
    int fd = ::open(src.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
    REQUIRE(fd >= 0);
    REQUIRE(::ftruncate(fd, static_cast<off_t>(size)) == 0);
    auto data = core_test::random_bytes(1 << 20, 3);
    for (std::uint64_t at = 0; at < size; at += 64ULL << 20)
      REQUIRE(::pwrite(fd, data.data(), data.size(), static_cast<off_t>(at)) == static_cast<ssize_t>(data.size()));
    ::close(fd);
  }
  static std::vector<std::pair<char, int>> calls;  // 'S' fdatasync(fd), 'W' pwrite(fd) of the journal
  static std::atomic<int> journal_fd{-1};
  static std::string journal_path;
  calls.clear();
  journal_fd = -1;
  journal_path = jpath;
  detail::sys_table t = detail::real_sys();
  t.open = [](const char* p, int flags, mode_t mode) {
    int fd = detail::real_sys().open(p, flags, mode);
    if (journal_path == p) journal_fd = fd;
    return fd;
  };
  t.fdatasync = [](int fd) {
    calls.emplace_back('S', fd);
    return detail::real_sys().fdatasync(fd);
  };
  t.pwrite = [](int fd, const void* b, size_t n, off_t o) {
    if (fd == journal_fd) calls.emplace_back('W', fd);
    return detail::real_sys().pwrite(fd, b, n, o);
  };
  detail::scoped_sys_override seam(t);
  job j = copy_job(src, dst, {}, jpath);
  j.options.backends = {"buffered"};
  job_result r = run(j);
  REQUIRE_MESSAGE(r.ok(), r.error_line());
  REQUIRE(journal_fd >= 0);
  // The header: written, then synced. Every later write of the journal: right after a sync of the
  // destination (another fd), and right before a sync of the journal.
  std::size_t writes = 0;
  for (std::size_t i = 0; i < calls.size(); ++i) {
    if (calls[i].first != 'W') continue;
    ++writes;
    REQUIRE(i + 1 < calls.size());
    CHECK(calls[i + 1] == std::make_pair('S', journal_fd.load()));
    if (writes == 1) continue;  // the header
    REQUIRE(i > 0);
    CHECK(calls[i - 1].first == 'S');
    CHECK(calls[i - 1].second != journal_fd);
  }
  CHECK(writes >= 3);  // the header, a commit per 256 MiB of completed work
  CHECK(read_all(dst) == read_all(src));
  CHECK_FALSE(std::filesystem::exists(jpath));  // removed once done
}

namespace {

/// Runs `j` with the fake offload backend and, when command `crash_at` completes, keeps a copy
/// of the data file and of the journal as kill -9 would leave them (half of that command's first
/// segment written when `torn`). Returns whether command `crash_at` was reached.
struct crash_capture {
  std::size_t crash_at = 0;
  bool torn = false;
  bool reached = false;
  std::string data, journal_bytes;
};

bool run_until_crash(const job& j, const std::string& data_path, crash_capture& cc, std::size_t& commands) {
  core_test::fake_backend fake;
  fake.cfg.block_bytes = 512;
  fake.cfg.limits.max_command_blocks = 8;
  fake.cfg.queue_depth = 4;
  fake.cfg.max_per_reap = 2;
  fake.cfg.outcome = [&](std::size_t index, const core_test::recorded_command& cmd) {
    detail::completion c;
    if (index != cc.crash_at) return c;
    if (cc.torn) {
      // Half of the first segment reaches the destination before the crash.
      const plan_segment& s = cmd.segments.front();
      const std::uint64_t n = std::max<std::uint64_t>(1, s.blocks / 2) * cmd.block_bytes;
      std::vector<std::uint8_t> buf(n);
      int fd = ::open(data_path.c_str(), O_RDWR);
      REQUIRE(fd >= 0);
      REQUIRE(::pread(fd, buf.data(), n, static_cast<off_t>(s.src_block * cmd.block_bytes)) == static_cast<ssize_t>(n));
      REQUIRE(::pwrite(fd, buf.data(), n, static_cast<off_t>(s.dst_block * cmd.block_bytes)) ==
              static_cast<ssize_t>(n));
      ::close(fd);
    }
    cc.reached = true;
    cc.data = read_all(data_path);
    cc.journal_bytes = read_all(j.options.journal);
    c.result = status(errc::device_error, "fake: the machine died here");
    return c;
  };
  core_test::backend_swap swap(fake);
  job_result r = run(j);
  commands = fake.log.submitted.size();
  return cc.reached;
}

/// The same job with a healthy fake: the resume after the crash.
job_result resume_with_fake(const job& j) {
  core_test::fake_backend fake;
  fake.cfg.block_bytes = 512;
  fake.cfg.limits.max_command_blocks = 8;
  fake.cfg.queue_depth = 4;
  core_test::backend_swap swap(fake);
  return run(j);
}

}  // namespace

TEST_CASE(
    "journal: an overlapping move through an offload, crashed at every command (whole or torn), resumes to memmove's "
    "bytes") {
  // One file, three extents in request order: a move up by 3 blocks (the engine sends pieces of 3
  // blocks, one at a time), a chained pair (the second reads what the first wrote), and a move
  // down by 20 blocks split by the 8-block command limit into concurrent commands.
  const std::vector<extent> ext{{0, 3 * 512, 40 * 512},
                                {100 * 512, 140 * 512, 16 * 512},
                                {140 * 512, 60 * 512, 16 * 512},
                                {200 * 512, 180 * 512, 48 * 512}};
  core_test::scratch_dir dir;
  const std::string data_path = dir.file("one.bin"), jpath = dir.file("one.journal");
  const auto original = core_test::random_bytes(256 * 512, 11);
  const auto want = memmove_reference(original, ext);
  job j = copy_job(data_path, data_path, ext, jpath);
  j.options.mode = "offload";
  // How many commands a clean run sends.
  core_test::write_file(data_path, original);
  std::size_t total = 0;
  {
    crash_capture none;
    none.crash_at = SIZE_MAX;
    run_until_crash(j, data_path, none, total);
    REQUIRE(core_test::read_file(data_path) == want);
    CHECK_FALSE(std::filesystem::exists(jpath));
  }
  REQUIRE(total > 20);
  int resumed = 0;
  for (bool torn : {false, true}) {
    for (std::size_t k = 0; k < total; ++k) {
      CAPTURE(k);
      CAPTURE(torn);
      core_test::write_file(data_path, original);
      std::filesystem::remove(jpath);
      crash_capture cc;
      cc.crash_at = k;
      cc.torn = torn;
      std::size_t n = 0;
      REQUIRE(run_until_crash(j, data_path, cc, n));
      // The machine died: only what it left on disk counts.
      write_all(data_path, cc.data);
      write_all(jpath, cc.journal_bytes);
      job_result r = resume_with_fake(j);
      REQUIRE_MESSAGE(r.ok(), r.error_line());
      CHECK(core_test::read_file(data_path) == want);
      CHECK_FALSE(std::filesystem::exists(jpath));
      if (r.resumed_bytes > 0) ++resumed;
    }
  }
  CHECK(resumed > 0);  // some crashes came after a commit: those resumes skipped work
}

TEST_CASE(
    "journal: the buffered copier's own memmove command, crashed after any write, resumes to memmove's bytes or is "
    "refused") {
  // Three regions of one file each moved up by 1000 bytes: the buffered copier runs each as one
  // command in memmove order itself. A crash inside one leaves source bytes overwritten: the
  // resume must refuse, never produce other bytes than memmove; a crash between them resumes.
  core_test::scratch_dir dir;
  const std::string data_path = dir.file("m.bin"), jpath = dir.file("m.journal");
  const std::size_t size = 3 << 20, region = 1 << 20;
  const std::vector<extent> ext{
      {0, 1000, region - 1000}, {region, region + 1000, region - 1000}, {2 * region, 2 * region + 1000, region - 1000}};
  const auto original = core_test::random_bytes(size, 12);
  const auto want = memmove_reference(original, ext);
  static std::atomic<int> writes{0}, crash_at{-1};
  static std::string snap_data, snap_journal, data_file, journal_file;
  data_file = data_path;
  journal_file = jpath;
  detail::sys_table t = detail::real_sys();
  // Every data write of the copier completes through one of these (io_uring or pread/pwrite).
  t.uring_result = [](bool is_write, int fd, std::uint64_t off, std::uint32_t len, int res) {
    res = detail::real_sys().uring_result(is_write, fd, off, len, res);
    if (is_write && writes++ == crash_at) {
      snap_data = read_all(data_file);
      snap_journal = read_all(journal_file);
    }
    return res;
  };
  // The journal's own writes are moments too: right after a command's done record, before the
  // next command's memmove record, a crash leaves a resumable journal.
  t.pwrite = [](int fd, const void* b, size_t n, off_t o) {
    ssize_t r = detail::real_sys().pwrite(fd, b, n, o);
    if (writes++ == crash_at) {
      snap_data = read_all(data_file);
      snap_journal = read_all(journal_file);
    }
    return r;
  };
  detail::scoped_sys_override seam(t);
  int refused = 0, resumed = 0;
  for (int k = 0; k < 64; ++k) {
    CAPTURE(k);
    core_test::write_file(data_path, original);
    std::filesystem::remove(jpath);
    writes = 0;
    crash_at = k;
    snap_data.clear();
    job j = copy_job(data_path, data_path, ext, jpath);
    j.options.backends = {"buffered"};
    j.options.buffer_bytes = 64 << 10;  // 16 writes per region
    j.options.buffers_in_flight = 2;
    job_result r = run(j);
    REQUIRE_MESSAGE(r.ok(), r.error_line());
    if (snap_data.empty()) continue;  // fewer writes than k
    write_all(data_path, snap_data);
    write_all(jpath, snap_journal);
    crash_at = -1;
    job again = copy_job(data_path, data_path, ext, jpath);
    again.options.backends = {"buffered"};
    job_result r2 = run(again);
    if (r2.ok()) {
      ++resumed;
      CHECK(core_test::read_file(data_path) == want);
    } else {
      ++refused;
      CHECK(r2.end == outcome::bad_input);
      CHECK(r2.error.message().find("interrupted") != std::string::npos);
      CHECK(std::filesystem::exists(jpath));
    }
  }
  MESSAGE("resumed " << resumed << ", refused " << refused);
  CHECK(refused > 0);
  CHECK(resumed > 0);
}
