// Sparse sources (issue 8.7): a file with holes copied to a file keeps its holes, as cp does
// (SEEK_DATA / SEEK_HOLE on the source, holes punched in the destination, the size grown for a
// trailing hole), with both fallback copiers; the bytes moved through copy_file_range or written
// by the buffered copier are the data only. The block-device side (BLKZEROOUT) is in
// tests/host/fallback_host_test.cpp.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <random>

#include <doctest/doctest.h>

#include "fallback_test_util.hpp"
#include "offcopy/copy.hpp"
#include "src/core/sys.hpp"
#include "src/fallback/buffered.hpp"
#include "src/fallback/sparse.hpp"

using namespace offcopy;
using namespace offcopy::test;

namespace {

constexpr std::uint64_t mib = 1 << 20;

/// A file of `size` bytes with data only in `runs` (offset, length), random bytes there.
struct sparse_file {
  std::string path;
  std::vector<std::uint8_t> bytes;  ///< the whole content, zeros in the holes
  sparse_file(std::string p, std::uint64_t size, const std::vector<std::pair<std::uint64_t, std::uint64_t>>& runs,
              std::mt19937_64& rng)
      : path(std::move(p)), bytes(size, 0) {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
    REQUIRE(fd >= 0);
    for (auto [off, len] : runs) {
      auto data = random_bytes(len, rng);
      std::copy(data.begin(), data.end(), bytes.begin() + static_cast<std::ptrdiff_t>(off));
      REQUIRE(::pwrite(fd, data.data(), len, static_cast<off_t>(off)) == static_cast<ssize_t>(len));
    }
    REQUIRE(::ftruncate(fd, static_cast<off_t>(size)) == 0);
    REQUIRE(::fsync(fd) == 0);
    ::close(fd);
  }
};

std::uint64_t allocated_bytes(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return static_cast<std::uint64_t>(st.st_blocks) * 512;
}

/// True when [off, off + len) of the file holds no data (SEEK_DATA finds none before its end).
bool is_hole(const std::string& path, std::uint64_t off, std::uint64_t len) {
  int fd = ::open(path.c_str(), O_RDONLY);
  REQUIRE(fd >= 0);
  off_t d = ::lseek(fd, static_cast<off_t>(off), SEEK_DATA);
  ::close(fd);
  return d < 0 || static_cast<std::uint64_t>(d) >= off + len;
}

struct io_count {
  std::uint64_t cfr_bytes = 0;
  std::uint64_t written_bytes = 0;  ///< by pwrite and io_uring writes
  unsigned punches = 0;
} g_io;

ssize_t counting_cfr(int fd_in, off_t* off_in, int fd_out, off_t* off_out, size_t length, unsigned flags) {
  ssize_t n = detail::real_sys().copy_file_range(fd_in, off_in, fd_out, off_out, length, flags);
  if (n > 0) g_io.cfr_bytes += static_cast<std::uint64_t>(n);
  return n;
}
ssize_t counting_pwrite(int fd, const void* buf, size_t count, off_t offset) {
  ssize_t n = detail::real_sys().pwrite(fd, buf, count, offset);
  if (n > 0) g_io.written_bytes += static_cast<std::uint64_t>(n);
  return n;
}
int counting_uring_result(bool is_write, int, std::uint64_t, std::uint32_t, int res) {
  if (is_write && res > 0) g_io.written_bytes += static_cast<std::uint64_t>(res);
  return res;
}
int counting_fallocate(int fd, int mode, off_t offset, off_t length) {
  ++g_io.punches;
  return detail::real_sys().fallocate(fd, mode, offset, length);
}
detail::sys_table counting_table() {
  detail::sys_table t = detail::real_sys();
  t.copy_file_range = counting_cfr;
  t.pwrite = counting_pwrite;
  t.uring_result = counting_uring_result;
  t.fallocate = counting_fallocate;
  return t;
}

// Data runs (4 KiB aligned, so a 4 KiB-block file system stores exactly these), holes between,
// and a hole at the end.
const std::vector<std::pair<std::uint64_t, std::uint64_t>> kRuns{
    {0, 100 * 4096}, {3 * mib, 2 * 4096}, {5 * mib + 4096, mib}, {7 * mib, 4096}};
constexpr std::uint64_t kSize = 9 * mib;
constexpr std::uint64_t kData = 100 * 4096 + 2 * 4096 + mib + 4096;

}  // namespace

TEST_CASE("data_map: the runs of a sparse file, remembered between calls") {
  temp_dir dir;
  std::mt19937_64 rng(1);
  sparse_file f(dir.file("s"), kSize, kRuns, rng);
  int fd = ::open(f.path.c_str(), O_RDONLY);
  REQUIRE(fd >= 0);
  detail::data_map m(fd, true);
  auto r = m.at(0, kSize);
  CHECK_FALSE(r.hole);
  CHECK(r.end == 100 * 4096);
  r = m.at(100 * 4096, kSize);
  CHECK(r.hole);
  CHECK(r.end == 3 * mib);
  r = m.at(2 * mib, 2 * mib + 10);  // cut at the limit
  CHECK(r.hole);
  CHECK(r.end == 2 * mib + 10);
  r = m.at(7 * mib, kSize);
  CHECK_FALSE(r.hole);
  CHECK(r.end == 7 * mib + 4096);
  r = m.at(8 * mib, kSize);  // the trailing hole: no data after it
  CHECK(r.hole);
  CHECK(r.end == kSize);
  r = m.at(kSize + 5, kSize + 100);  // past the end: data, so that the read reports the short file
  CHECK_FALSE(r.hole);
  detail::data_map off(fd, false);
  CHECK_FALSE(off.at(200 * 4096, kSize).hole);
  ::close(fd);
}

TEST_CASE("sparse: file -> file keeps the holes, with copy_file_range and with the buffered copier") {
  for (bool buffered : {false, true}) {
    for (bool fresh : {true, false}) {
      CAPTURE(buffered);
      CAPTURE(fresh);
      temp_dir dir;
      std::mt19937_64 rng(2);
      sparse_file f(dir.file("src"), kSize, kRuns, rng);
      const std::string dst_path = dir.file("dst");
      if (fresh) {
        write_file(dst_path, {});
      } else {
        write_file(dst_path, random_bytes(4 * mib, rng));  // old data where the holes land
      }
      g_io = io_count{};
      detail::scoped_sys_override seam(counting_table());
      auto src = open_dev(f.path, false);
      auto dst = open_dev(dst_path, true);
      request req{src, dst, {}};
      policy pol;
      if (buffered) {
        pol.mode = copy_mode::fallback;
        pol.backends = {"buffered"};
      }
      report rep = copy(req, pol);
      REQUIRE_MESSAGE(rep.result.ok(), rep.result.to_string());
      CHECK(rep.bytes_copied == kSize);
      CHECK(rep.of(buffered ? "buffered" : "copy-file-range").bytes == kSize);
      CHECK(read_file(dst_path) == f.bytes);
      // Only the data moved; the holes are holes in the destination too.
      if (buffered) {
        CHECK(g_io.written_bytes == kData);
        CHECK(g_io.cfr_bytes == 0);
      } else {
        CHECK(g_io.cfr_bytes == kData);
      }
      CHECK(is_hole(dst_path, 100 * 4096, 3 * mib - 100 * 4096));
      CHECK(is_hole(dst_path, 7 * mib + 4096, kSize - 7 * mib - 4096));
      CHECK(allocated_bytes(dst_path) <= kData + 64 * 1024);
      if (!fresh) CHECK(g_io.punches > 0);  // the old data under the holes was punched out
    }
  }
}

TEST_CASE("sparse: unaligned extents over holes, to other offsets, copy exactly") {
  temp_dir dir;
  std::mt19937_64 rng(3);
  sparse_file f(dir.file("src"), kSize, kRuns, rng);
  for (bool buffered : {false, true}) {
    CAPTURE(buffered);
    const std::string dst_path = dir.file(buffered ? "dst-b" : "dst-c");
    std::vector<std::uint8_t> dst_data = random_bytes(6 * mib, rng);
    write_file(dst_path, dst_data);
    auto src = open_dev(f.path, false);
    auto dst = open_dev(dst_path, true);
    std::vector<extent> ext{{3, 1, 3 * mib + 100}, {5 * mib + 77, 3 * mib + 200, 2 * mib + 4097}};
    request req{src, dst, ext};
    policy pol;
    if (buffered) {
      pol.mode = copy_mode::fallback;
      pol.backends = {"buffered"};
    }
    report rep = copy(req, pol);
    REQUIRE_MESSAGE(rep.result.ok(), rep.result.to_string());
    for (const extent& e : ext) {
      if (dst_data.size() < e.dst_offset_bytes + e.length_bytes)
        dst_data.resize(e.dst_offset_bytes + e.length_bytes, 0);
      std::copy_n(f.bytes.begin() + static_cast<std::ptrdiff_t>(e.src_offset_bytes), e.length_bytes,
                  dst_data.begin() + static_cast<std::ptrdiff_t>(e.dst_offset_bytes));
    }
    CHECK(read_file(dst_path) == dst_data);
  }
}

TEST_CASE("sparse: a file system that cannot punch holes gets zeros written") {
  temp_dir dir;
  std::mt19937_64 rng(4);
  sparse_file f(dir.file("src"), 4 * mib, {{0, 4096}, {3 * mib, 4096}}, rng);
  const std::string dst_path = dir.file("dst");
  write_file(dst_path, random_bytes(4 * mib, rng));
  detail::sys_table t = detail::real_sys();
  t.fallocate = [](int, int, off_t, off_t) -> int {
    errno = EOPNOTSUPP;
    return -1;
  };
  detail::scoped_sys_override seam(t);
  auto src = open_dev(f.path, false);
  auto dst = open_dev(dst_path, true);
  report rep = copy(request{src, dst, {}}, {});
  REQUIRE_MESSAGE(rep.result.ok(), rep.result.to_string());
  CHECK(read_file(dst_path) == f.bytes);
}
