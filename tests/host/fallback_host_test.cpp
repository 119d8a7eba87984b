// The fallback copiers on real kernel objects of this host (root): loop devices and XFS with reflink.
//   - tiny shifts (1, 511, 4095 bytes, both ways) inside one loop device: memmove's bytes, whole
//     commands to the buffered copier (no pieces of the shift), O_DIRECT reads around skewed sources;
//   - a sparse file to a loop device: the holes become BLKZEROOUT calls (the kernel's Write Zeroes),
//     and the bytes written through buffers are the data only (issue 8.7);
//   - XFS made with reflink=1 on a loop device: a whole-file copy is a clone (FICLONERANGE), the
//     report says so (cloned_bytes), and the destination's extents are shared (FIEMAP).
// main() takes --require=loop[,xfs] and exits 77 (skipped, with the reason) when the host cannot.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "offcopy/offcopy.hpp"
#include "src/core/resolve.hpp"
#include "src/core/sys.hpp"
#include "tests/host/host_util.hpp"

using namespace offcopy;
using namespace offcopy::host_util;

namespace {

/// Keeps loop devices block devices of their own for its lifetime: these tests prove the
/// block-device paths of the fallback copiers (O_DIRECT, BLKZEROOUT), and loop devices are this
/// host's only block devices (by default a loop device resolves to its backing file).
struct loop_devices_whole {
  loop_devices_whole() { detail::set_loop_resolution(false); }
  ~loop_devices_whole() { detail::set_loop_resolution(true); }
};

void write_at(const std::string& path, std::uint64_t offset, const std::vector<std::uint8_t>& data, bool direct) {
  int fd = ::open(path.c_str(), O_WRONLY | (direct ? O_DIRECT : 0));
  REQUIRE(fd >= 0);
  void* buf = nullptr;
  REQUIRE(::posix_memalign(&buf, 4096, std::max<std::size_t>(data.size(), 4096)) == 0);
  std::memcpy(buf, data.data(), data.size());
  REQUIRE(::pwrite(fd, buf, data.size(), static_cast<off_t>(offset)) == static_cast<ssize_t>(data.size()));
  std::free(buf);
  REQUIRE(::fsync(fd) == 0);
  ::close(fd);
}

}  // namespace

TEST_CASE("host: tiny shifts on a loop device give memmove's bytes in whole commands") {
  scratch_dir dir;
  const std::string img = dir.path() + "/disk.img";
  const std::uint64_t size = 48 * mib;
  const std::vector<std::uint8_t> data = random_bytes(size, 5);
  {
    std::ofstream(img, std::ios::binary)
        .write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(size));
  }
  loop_devices_whole whole;
  loop_device loop(img);
  for (std::uint64_t shift : {1ULL, 511ULL, 4095ULL}) {
    for (bool up : {true, false}) {
      CAPTURE(shift);
      CAPTURE(up);
      write_at(loop.dev, 0, data, true);
      const std::uint64_t len = size - 4096 - shift;
      const std::uint64_t src = up ? 100 : 100 + shift, dst = up ? 100 + shift : 100;
      auto s = open_device(loop.dev, false);
      auto d = open_device(loop.dev, true);
      request req{s, d, {{src, dst, len}}};
      auto p = make_plan(req, {});
      REQUIRE(p.ok());
      REQUIRE(p.value().ordered);
      CHECK(p.value().backend == "buffered");
      report rep = execute(req, p.value(), {});
      REQUIRE_MESSAGE(rep.result.ok(), rep.result.to_string());
      CHECK(rep.bytes_copied == len);
      CHECK(rep.of("buffered").commands == p.value().batches.size());  // no pieces of the shift
      std::vector<std::uint8_t> want = data;
      std::memmove(want.data() + dst, want.data() + src, len);
      CHECK(read_direct(loop.dev, 0, size) == want);
    }
  }
}

namespace {
struct zero_count {
  unsigned calls = 0;
  std::uint64_t bytes = 0;
  std::uint64_t written = 0;
} g_zero;

int counting_ioctl(int fd, unsigned long request, void* arg) {
  if (request == BLKZEROOUT) {
    ++g_zero.calls;
    g_zero.bytes += static_cast<std::uint64_t*>(arg)[1];
  }
  return detail::real_sys().ioctl(fd, request, arg);
}
int counting_uring_result(bool is_write, int, std::uint64_t, std::uint32_t, int res) {
  if (is_write && res > 0) g_zero.written += static_cast<std::uint64_t>(res);
  return res;
}
ssize_t counting_pwrite(int fd, const void* buf, size_t count, off_t offset) {
  ssize_t n = detail::real_sys().pwrite(fd, buf, count, offset);
  if (n > 0) g_zero.written += static_cast<std::uint64_t>(n);
  return n;
}
}  // namespace

TEST_CASE("host: a sparse file to a loop device zeroes the holes with BLKZEROOUT, writes only the data") {
  scratch_dir dir;
  const std::string img = dir.path() + "/disk.img", sparse = dir.path() + "/sparse";
  loop_devices_whole whole;
  loop_device loop((shell("truncate -s 16M " + img), img));
  write_at(loop.dev, 0, random_bytes(16 * mib, 6), true);  // old data where the holes land
  // Source: 12 MiB, data at [0, 64K), [5M, 5M + 8K), [9M + 4K, 10M); holes elsewhere, one at the end.
  std::vector<std::uint8_t> src(12 * mib, 0);
  {
    int fd = ::open(sparse.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
    REQUIRE(fd >= 0);
    for (auto [off, len] : std::vector<std::pair<std::uint64_t, std::uint64_t>>{
             {0, 64 * 1024}, {5 * mib, 8192}, {9 * mib + 4096, mib - 4096}}) {
      auto bytes = random_bytes(len, off + 1);
      std::copy(bytes.begin(), bytes.end(), src.begin() + static_cast<std::ptrdiff_t>(off));
      REQUIRE(::pwrite(fd, bytes.data(), len, static_cast<off_t>(off)) == static_cast<ssize_t>(len));
    }
    REQUIRE(::ftruncate(fd, 12 * mib) == 0);
    ::close(fd);
  }
  const std::uint64_t data_bytes = 64 * 1024 + 8192 + mib - 4096;
  g_zero = zero_count{};
  detail::sys_table t = detail::real_sys();
  t.ioctl = counting_ioctl;
  t.uring_result = counting_uring_result;
  t.pwrite = counting_pwrite;
  detail::scoped_sys_override seam(t);
  report rep = copy(request{open_device(sparse, false), open_device(loop.dev, true), {}}, {});
  REQUIRE_MESSAGE(rep.result.ok(), rep.result.to_string());
  CHECK(rep.of("buffered").bytes == 12 * mib);
  CHECK(g_zero.calls >= 3);
  CHECK(g_zero.bytes == 12 * mib - data_bytes);
  CHECK(g_zero.written == data_bytes);
  std::vector<std::uint8_t> got = read_direct(loop.dev, 0, 12 * mib);
  CHECK(got == src);
}

namespace {

/// The flags of every extent of a file (FIEMAP).
std::vector<std::uint32_t> extent_flags(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  REQUIRE(fd >= 0);
  std::vector<std::uint8_t> buf(sizeof(fiemap) + 256 * sizeof(fiemap_extent));
  auto* fm = reinterpret_cast<fiemap*>(buf.data());
  fm->fm_start = 0;
  fm->fm_length = ~0ULL;
  fm->fm_flags = FIEMAP_FLAG_SYNC;
  fm->fm_extent_count = 256;
  REQUIRE(::ioctl(fd, FS_IOC_FIEMAP, fm) == 0);
  ::close(fd);
  std::vector<std::uint32_t> flags;
  for (std::uint32_t i = 0; i < fm->fm_mapped_extents; ++i) flags.push_back(fm->fm_extents[i].fe_flags);
  return flags;
}

/// XFS with reflink on a loop device, mounted for the scope (unmounted and detached after).
struct xfs_mount {
  scratch_dir dir;
  std::string img = dir.path() + "/xfs.img", mnt = dir.path() + "/mnt";
  std::unique_ptr<loop_device> loop;
  bool mounted = false;
  xfs_mount() {
    REQUIRE(shell("truncate -s 320M " + img));
    loop = std::make_unique<loop_device>(img);
    REQUIRE(shell("mkfs.xfs -q -f -m reflink=1 " + loop->dev));
    std::filesystem::create_directories(mnt);
    REQUIRE(shell("mount -t xfs " + loop->dev + " " + mnt));
    mounted = true;
  }
  ~xfs_mount() {
    if (mounted) shell("umount " + mnt);
  }
};

}  // namespace

TEST_CASE("host: XFS with reflink clones a whole-file copy and says so") {
  xfs_mount fs;
  const std::string a = fs.mnt + "/a", b = fs.mnt + "/b", c = fs.mnt + "/c";
  const std::vector<std::uint8_t> data = random_bytes(24 * mib + 123, 9);  // a partial last block
  {
    std::ofstream(a, std::ios::binary)
        .write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
  }
  REQUIRE(shell("sync"));
  { std::ofstream(b, std::ios::binary); }
  report rep = copy(request{open_device(a, false), open_device(b, true), {}}, {});
  REQUIRE_MESSAGE(rep.result.ok(), rep.result.to_string());
  const backend_usage& u = rep.of("copy-file-range");
  CHECK(u.bytes == data.size());
  CHECK(u.cloned_bytes == data.size());
  CHECK(rep.to_json().find("\"cloned_bytes\":" + std::to_string(data.size())) != std::string::npos);
  CHECK(rep.to_text().find("cloned") != std::string::npos);
  CHECK(read_file(b) == data);
  auto flags = extent_flags(b);
  REQUIRE(!flags.empty());
  for (std::uint32_t f : flags) CHECK((f & FIEMAP_EXTENT_SHARED) != 0);

  // An extent off the block size: the aligned middle is cloned, the head and tail copied.
  { std::ofstream(c, std::ios::binary); }
  const extent e{1, 4097, 8 * mib};
  report part = copy(request{open_device(a, false), open_device(c, true), {e}}, {});
  REQUIRE_MESSAGE(part.result.ok(), part.result.to_string());
  CHECK(part.of("copy-file-range").cloned_bytes > 0);
  CHECK(part.of("copy-file-range").cloned_bytes < e.length_bytes);
  std::vector<std::uint8_t> want(e.dst_offset_bytes + e.length_bytes, 0);
  std::copy_n(data.begin() + 1, e.length_bytes, want.begin() + 4097);
  CHECK(read_file(c) == want);
}

int main(int argc, char** argv) {
  return host_main(argc, argv, [](const std::string& require) -> std::string {
    if (require.find("xfs") == std::string::npos) return "";
    if (!shell("command -v mkfs.xfs")) return "mkfs.xfs is not installed (apt-get install xfsprogs)";
    if (!shell("grep -qw xfs /proc/filesystems || modprobe xfs")) return "the kernel has no XFS";
    return "";
  });
}
