// The resolution stage on real kernel objects of this host (root): loop devices, their partitions
// (BLKPG through partx: this host's kernel parses no partition table itself) and their backing
// files, plus device-mapper tables served by a fake table source over loop devices (this host has
// no device-mapper; the guest scenarios prove the real thing).
//
// Issue 8 item 2, "one medium behind two doors", is a class: a partition and its whole disk, a loop
// device and its backing file, two device nodes of one device, two names of one file. For each,
// overlap and memmove order are decided on the medium, --no-overlap refuses, and the bytes read back
// through either door afterwards -- with buffered reads, not only O_DIRECT -- are memmove's.
// main() takes --require=loop[,partx] and exits 77 (skipped, with the reason) when the host cannot.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "offcopy/offcopy.hpp"
#include "src/core/dm.hpp"
#include "src/core/resolve.hpp"
#include "tests/host/host_util.hpp"

using namespace offcopy;
using namespace offcopy::host_util;

namespace {

/// Through the page cache (what a program reading the device sees).
std::vector<std::uint8_t> read_buffered(const std::string& path, std::uint64_t off, std::size_t n) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  std::vector<std::uint8_t> out(n);
  REQUIRE(::pread(fd, out.data(), n, static_cast<off_t>(off)) == static_cast<ssize_t>(n));
  ::close(fd);
  return out;
}

/// A 16 MiB image with an MBR: partition 1 at 1 MiB (4 MiB), partition 2 at 5 MiB (4 MiB), random data.
std::vector<std::uint8_t> partitioned_image(const std::string& img, std::uint64_t seed) {
  std::vector<std::uint8_t> data = random_bytes(16 * mib, seed);
  write_file(img, data);
  REQUIRE(shell("printf 'label: dos\\nstart=2048, size=8192\\nstart=10240, size=8192\\n' | sfdisk -q " + img));
  return read_file(img);
}

job copy_job(const std::string& src, const std::string& dst, std::vector<extent> extents) {
  job j;
  j.op = operation::copy;
  j.source = src;
  j.destination = dst;
  j.extents = std::move(extents);
  return j;
}

/// memmove of each extent in order, on one medium seen as `medium`; offsets given per door.
void expect_moves(std::vector<std::uint8_t>& medium, std::uint64_t src_door_at, std::uint64_t dst_door_at,
                  const std::vector<extent>& extents) {
  for (const extent& e : extents) {
    std::vector<std::uint8_t> tmp(
        medium.begin() + static_cast<std::ptrdiff_t>(src_door_at + e.src_offset_bytes),
        medium.begin() + static_cast<std::ptrdiff_t>(src_door_at + e.src_offset_bytes + e.length_bytes));
    std::copy(tmp.begin(), tmp.end(), medium.begin() + static_cast<std::ptrdiff_t>(dst_door_at + e.dst_offset_bytes));
  }
}

// ---- a fake device-mapper over loop devices -----------------------------------------------------

/// Serves tables for block devices that are really loop devices (this host has no dm): the "dm
/// device" is a loop device whose own bytes nothing reads when its table resolves; its media are
/// other loop devices (loop resolution off, so they stay block devices).
struct fake_dm {
  static inline std::mutex mu;
  static inline std::map<dev_t, detail::dm_table> tables;
  static inline std::atomic<int> reads{0};
  static inline int change_after = -1;  ///< from this read on, the event number is one higher

  static bool is_dm(dev_t d) {
    std::lock_guard lock(mu);
    return tables.count(d) != 0;
  }
  static result<detail::dm_table> read(dev_t d) {
    std::lock_guard lock(mu);
    auto it = tables.find(d);
    if (it == tables.end()) return status(errc::not_found, "no such fake dm device");
    const int n = ++reads;
    detail::dm_table t = it->second;
    if (change_after >= 0 && n >= change_after) ++t.event_nr;
    return t;
  }
  fake_dm() {
    static const detail::dm_source source{&fake_dm::is_dm, &fake_dm::read};
    detail::set_dm_source(&source);
    detail::set_loop_resolution(false);
    std::lock_guard lock(mu);
    tables.clear();
    reads = 0;
    change_after = -1;
  }
  ~fake_dm() {
    detail::set_dm_source(nullptr);
    detail::set_loop_resolution(true);
  }
  void add(dev_t d, std::string name, std::vector<detail::dm_line> lines, std::vector<dev_t> deps = {}) {
    detail::dm_table t;
    t.name = std::move(name);
    t.live_table = true;
    t.table = std::move(lines);
    t.deps = std::move(deps);
    std::lock_guard lock(mu);
    tables[d] = std::move(t);
  }
};

std::string devno_text(dev_t d) { return std::to_string(major(d)) + ":" + std::to_string(minor(d)); }

/// `top`, the node a fake table is served for (zeros), and two media A and B under it holding
/// random bytes (seeds `seed` and `seed + 1`), each a loop device over a file in `dir`.
struct two_media {
  std::vector<std::uint8_t> a_bytes, b_bytes;
  loop_device top, A, B;
  two_media(const scratch_dir& dir, std::size_t top_size, std::size_t media_size, std::uint64_t seed)
      : a_bytes(random_bytes(media_size, seed)),
        b_bytes(random_bytes(media_size, seed + 1)),
        top(written(dir.path() + "/top", std::vector<std::uint8_t>(top_size, 0))),
        A(written(dir.path() + "/a", a_bytes)),
        B(written(dir.path() + "/b", b_bytes)) {}
  static std::string written(const std::string& path, const std::vector<std::uint8_t>& bytes) {
    write_file(path, bytes);
    return path;
  }
};

}  // namespace

// ---- one medium, two doors (issue 8 item 2) -------------------------------------------------------

TEST_CASE("one medium two doors: a partition and its whole disk (the issue's own example)") {
  scratch_dir dir;
  const std::string img = dir.path() + "/disk.img";
  std::vector<std::uint8_t> medium = partitioned_image(img, 1);
  loop_device L(img, true);
  const std::string p1 = L.dev + "p1";
  REQUIRE(std::filesystem::exists(p1));
  // copy $L ${L}p1 0:100:1000 1048676:8192:1000: extent 2 reads what extent 1 wrote (p1 + 100 is
  // byte 1048676 of the disk). Before resolution, extent 2 copied stale bytes, exit 0.
  const std::vector<extent> extents{{0, 100, 1000}, {1048676, 8192, 1000}};
  job_result r = run(copy_job(L.dev, p1, extents));
  INFO(r.error.to_string());
  REQUIRE(r.ok());
  REQUIRE(r.planned);
  CHECK(r.planned->ordered);
  CHECK(r.planned->same_medium);
  expect_moves(medium, 0, mib, extents);
  CHECK(read_direct(img, 0, 16 * mib) == medium);
  // Through both doors, buffered: no stale page cache on either.
  CHECK(read_buffered(L.dev, 0, 16 * mib) == medium);
  CHECK(read_buffered(p1, 0, 4 * mib) ==
        std::vector<std::uint8_t>(medium.begin() + static_cast<std::ptrdiff_t>(mib),
                                  medium.begin() + static_cast<std::ptrdiff_t>(5 * mib)));

  SUBCASE("--no-overlap refuses it, nothing written") {
    job j = copy_job(L.dev, p1, extents);
    j.options.allow_overlap = false;
    const auto before = read_direct(img, 0, 16 * mib);
    job_result n = run(j);
    CHECK(n.error.code() == errc::overlap);
    CHECK(n.exit_status() == 2);
    CHECK(read_direct(img, 0, 16 * mib) == before);
  }
}

TEST_CASE("one medium two doors: two partitions, and the disk's page cache after a copy between them") {
  scratch_dir dir;
  const std::string img = dir.path() + "/disk.img";
  std::vector<std::uint8_t> medium = partitioned_image(img, 2);
  loop_device L(img, true);
  // Warm the disk's page cache over partition 2, then copy into it through the partitions.
  CHECK(read_buffered(L.dev, 5 * mib, 4 * mib).size() == 4 * mib);
  const std::vector<extent> extents{{0, 0, 3 * mib}};
  job_result r = run(copy_job(L.dev + "p1", L.dev + "p2", extents));
  INFO(r.error.to_string());
  REQUIRE(r.ok());
  CHECK_FALSE(r.planned->ordered);
  REQUIRE(r.planned->parts.size() == 1);
  CHECK(r.planned->parts[0].source_medium == img);  // partition -> loop -> its file
  CHECK(r.planned->parts[0].destination_medium == img);
  expect_moves(medium, mib, 5 * mib, extents);
  CHECK(read_direct(img, 0, 16 * mib) == medium);
  CHECK(read_buffered(L.dev, 0, 16 * mib) == medium);  // the warmed pages were dropped
}

TEST_CASE("one medium two doors: a loop device and its backing file") {
  scratch_dir dir;
  const std::string img = dir.path() + "/disk.img";
  std::vector<std::uint8_t> medium = random_bytes(8 * mib, 3);
  write_file(img, medium);
  loop_device L(img);
  // file -> loop device, overlapping by 4 KiB: a move up by 4 KiB on the file.
  const std::vector<extent> extents{{0, 4096, 2 * mib}, {2 * mib, 3 * mib, 64 * 1024}};
  job_result r = run(copy_job(img, L.dev, extents));
  INFO(r.error.to_string());
  REQUIRE(r.ok());
  CHECK(r.planned->ordered);
  CHECK(r.planned->same_medium);
  expect_moves(medium, 0, 0, extents);
  CHECK(read_direct(img, 0, 8 * mib) == medium);
  CHECK(read_buffered(L.dev, 0, 8 * mib) == medium);
  CHECK(read_buffered(img, 0, 8 * mib) == medium);

  SUBCASE("--no-overlap refuses it") {
    job j = copy_job(L.dev, img, {{0, 512, mib}});
    j.options.allow_overlap = false;
    const auto before = read_direct(img, 0, 8 * mib);
    job_result n = run(j);
    CHECK(n.error.code() == errc::overlap);
    CHECK(read_direct(img, 0, 8 * mib) == before);
  }
}

TEST_CASE("one medium two doors: two device nodes of one loop device") {
  scratch_dir dir;
  const std::string img = dir.path() + "/disk.img";
  std::vector<std::uint8_t> medium = random_bytes(4 * mib, 4);
  write_file(img, medium);
  loop_device L(img);
  const std::string alias = dir.path() + "/alias";
  REQUIRE(::mknod(alias.c_str(), S_IFBLK | 0600, L.devno()) == 0);
  const std::vector<extent> extents{{0, 1000, 100000}};
  job j = copy_job(L.dev, alias, extents);
  j.options.force = true;
  job_result r = run(j);
  INFO(r.error.to_string());
  REQUIRE(r.ok());
  CHECK(r.planned->ordered);
  expect_moves(medium, 0, 0, extents);
  CHECK(read_buffered(L.dev, 0, 4 * mib) == medium);
  CHECK(read_buffered(alias, 0, 4 * mib) == medium);
}

TEST_CASE("one medium two doors: two names of one file (a hard link)") {
  scratch_dir dir;
  const std::string a = dir.path() + "/a", b = dir.path() + "/b";
  std::vector<std::uint8_t> medium = random_bytes(2 * mib, 5);
  write_file(a, medium);
  REQUIRE(::link(a.c_str(), b.c_str()) == 0);
  const std::vector<extent> extents{{0, 1, mib}};
  job_result r = run(copy_job(a, b, extents));
  INFO(r.error.to_string());
  REQUIRE(r.ok());
  CHECK(r.planned->ordered);
  expect_moves(medium, 0, 0, extents);
  CHECK(read_buffered(a, 0, 2 * mib) == medium);
  job n = copy_job(a, b, extents);
  n.options.allow_overlap = false;
  CHECK(run(n).error.code() == errc::overlap);
}

TEST_CASE("probe shows the resolution: a loop partition's pieces on the backing file") {
  scratch_dir dir;
  const std::string img = dir.path() + "/disk.img";
  (void)partitioned_image(img, 6);
  loop_device L(img, true);
  job j;
  j.op = operation::probe;
  j.source = L.dev + "p2";
  job_result r = run(j);
  REQUIRE(r.ok());
  REQUIRE(r.probed);
  REQUIRE(r.probed->pieces.size() == 1);
  CHECK(r.probed->pieces_total == 1);
  CHECK(r.probed->pieces[0].offset_bytes == 0);
  CHECK(r.probed->pieces[0].length_bytes == 4 * mib);
  CHECK(r.probed->pieces[0].medium == img);
  CHECK(r.probed->pieces[0].medium_offset_bytes == 5 * mib);
  CHECK(r.probed->pieces[0].via == L.dev + "p2 (partition 2) > " + L.dev + " (loop)");
  REQUIRE(r.probed->media.size() == 1);
  CHECK(r.probed->media[0].path == img);
  CHECK(r.probed->media[0].find("copy-file-range") != nullptr);
  CHECK(r.probed->offload.empty());  // backends address media, not the partition
  const std::string json = r.to_json();
  CHECK(json.find("\"medium_offset_bytes\":5242880") != std::string::npos);
  CHECK(r.to_text().find("partition 2") != std::string::npos);
}

// ---- device-mapper tables (fake table source over loop devices) ---------------------------------

TEST_CASE("dm linear: a table of two pieces on two media, copied piece by piece") {
  scratch_dir dir;
  fake_dm fake;
  two_media media(dir, 4 * mib, 8 * mib, 10);
  auto& [a_bytes, b_bytes, top, A, B] = media;
  // vg-lv: 4 MiB = 1 MiB at 2 MiB of A, then 3 MiB at 1 MiB of B.
  fake.add(
      top.devno(), "vg-lv",
      {{0, 2048, "linear", devno_text(A.devno()) + " 4096"}, {2048, 6144, "linear", devno_text(B.devno()) + " 2048"}});
  std::vector<std::uint8_t> lv(a_bytes.begin() + 2 * mib, a_bytes.begin() + 3 * mib);
  lv.insert(lv.end(), b_bytes.begin() + mib, b_bytes.begin() + 4 * mib);

  SUBCASE("read: the LV to a file is the pieces in table order") {
    const std::string out = dir.path() + "/out";
    job_result r = run(copy_job(top.dev, out, {}));
    INFO(r.error.to_string());
    REQUIRE(r.ok());
    REQUIRE(r.planned->parts.size() == 2);
    CHECK(r.planned->parts[0].source_medium == A.dev);
    CHECK(r.planned->parts[1].source_medium == B.dev);
    CHECK(r.planned->parts[0].bytes == mib);
    CHECK(r.planned->parts[1].bytes == 3 * mib);
    CHECK(r.planned->total_bytes() == 4 * mib);
    CHECK(r.copied->bytes_copied == 4 * mib);
    CHECK(read_buffered(out, 0, 4 * mib) == lv);
  }
  SUBCASE("write: a file into the LV lands on both media, nothing outside the pieces moves") {
    const std::string in = dir.path() + "/in";
    const auto src = random_bytes(4 * mib, 12);
    write_file(in, src);
    job j = copy_job(in, top.dev, {{512 * 1024, 512 * 1024, 2 * mib}});  // across the piece boundary
    j.options.force = true;
    job_result r = run(j);
    INFO(r.error.to_string());
    REQUIRE(r.ok());
    std::vector<std::uint8_t> a_want = a_bytes, b_want = b_bytes;
    std::copy(src.begin() + 512 * 1024, src.begin() + mib, a_want.begin() + 2 * mib + 512 * 1024);
    std::copy(src.begin() + mib, src.begin() + 2560 * 1024, b_want.begin() + mib);
    CHECK(read_direct(A.dev, 0, 8 * mib) == a_want);
    CHECK(read_direct(B.dev, 0, 8 * mib) == b_want);
  }
  SUBCASE("mode offload: a pair no offload backend takes is exit 3, nothing written") {
    job j = copy_job(top.dev, dir.path() + "/out2", {});
    j.options.mode = "offload";
    job_result r = run(j);
    CHECK(r.error.code() == errc::not_supported);
    CHECK(r.exit_status() == 3);
    CHECK_FALSE(std::filesystem::exists(dir.path() + "/out2"));
  }
  SUBCASE("a table changed between the plan and the copy: refused, nothing written") {
    auto src = device::open(top.dev);
    REQUIRE(src.ok());
    write_file(dir.path() + "/out3", std::vector<std::uint8_t>(mib, 0));
    auto dst_dev = device::open(dir.path() + "/out3", open_options{true, false});
    REQUIRE(dst_dev.ok());
    request req{src.value(), dst_dev.value(), {{0, 0, mib}}};
    auto p = make_plan(req);
    REQUIRE(p.ok());
    fake_dm::change_after = 0;  // every read from now on sees event + 1
    report rep = execute(req, p.value());
    CHECK(rep.result.code() == errc::busy);
    CHECK(rep.result.message().find("vg-lv") != std::string::npos);
    CHECK(rep.bytes_copied == 0);
    CHECK(read_buffered(dir.path() + "/out3", 0, mib) == std::vector<std::uint8_t>(mib, 0));
  }
}

TEST_CASE("dm linear on a partition: dm -> partition -> disk, recursively") {
  scratch_dir dir;
  fake_dm fake;
  const std::string img = dir.path() + "/disk.img";
  const std::vector<std::uint8_t> disk = partitioned_image(img, 60);
  loop_device L(img, true);  // loop resolution off: the loop device is the medium
  write_file(dir.path() + "/top", std::vector<std::uint8_t>(2 * mib, 0));
  loop_device top(dir.path() + "/top");
  struct stat st {};
  REQUIRE(::stat((L.dev + "p2").c_str(), &st) == 0);
  // 2 MiB at 1 MiB of partition 2 (which starts at 5 MiB of the disk): the disk's [6, 8) MiB.
  fake.add(top.devno(), "on-part", {{0, 4096, "linear", devno_text(st.st_rdev) + " 2048"}});
  job p;
  p.op = operation::probe;
  p.source = top.dev;
  job_result pr = run(p);
  REQUIRE(pr.ok());
  REQUIRE(pr.probed->pieces.size() == 1);
  CHECK(pr.probed->pieces[0].medium == L.dev);
  CHECK(pr.probed->pieces[0].medium_offset_bytes == 6 * mib);
  CHECK(pr.probed->pieces[0].via == "/dev/mapper/on-part (dm linear) > " + L.dev + "p2 (partition 2)");
  const std::string out = dir.path() + "/out";
  job_result r = run(copy_job(top.dev, out, {}));
  INFO(r.error.to_string());
  REQUIRE(r.ok());
  CHECK(read_buffered(out, 0, 2 * mib) ==
        std::vector<std::uint8_t>(disk.begin() + static_cast<std::ptrdiff_t>(6 * mib),
                                  disk.begin() + static_cast<std::ptrdiff_t>(8 * mib)));
}

TEST_CASE("dm: a table changed while the copy runs stops it, and the report says so with the bytes done") {
  scratch_dir dir;
  fake_dm fake;
  const auto a_bytes = random_bytes(32 * mib, 70);
  write_file(dir.path() + "/top", std::vector<std::uint8_t>(32 * mib, 0));
  write_file(dir.path() + "/a", a_bytes);
  loop_device top(dir.path() + "/top"), A(dir.path() + "/a");
  fake.add(top.devno(), "moving", {{0, 65536, "linear", devno_text(A.devno()) + " 0"}});
  // Reads 1 (resolution) and 2 (execute's check) see the table as planned; every later one (the
  // watcher's, then the final check) sees it changed.
  fake_dm::change_after = 3;
  const std::string out = dir.path() + "/out";
  job j = copy_job(top.dev, out, {});
  j.options.buffer_bytes = 64 * 1024;  // 512 commands: the watcher has time to see the change
  j.options.buffers_in_flight = 1;
  job_result r = run(j);
  CHECK(r.error.code() == errc::busy);
  CHECK(r.error.message().find("moving") != std::string::npos);
  CHECK(r.error.message().find("during the copy") != std::string::npos);
  REQUIRE(r.copied);
  CHECK(r.copied->bytes_copied < 32 * mib);  // stopped part way (the buffered copier polls per buffer)
  MESSAGE(r.error.to_string());
  if (r.copied->bytes_copied > 0) {  // what the report claims is there (one buffer in flight: a prefix)
    const auto got = read_buffered(out, 0, r.copied->bytes_copied);
    CHECK(std::equal(got.begin(), got.end(), a_bytes.begin()));
  }
}

TEST_CASE("dm linear: overlap decided on the media, across two dm devices and a raw door") {
  scratch_dir dir;
  fake_dm fake;
  std::vector<std::uint8_t> m = random_bytes(8 * mib, 20);
  write_file(dir.path() + "/m", m);
  write_file(dir.path() + "/x", std::vector<std::uint8_t>(2 * mib, 0));
  write_file(dir.path() + "/y", std::vector<std::uint8_t>(2 * mib, 0));
  loop_device M(dir.path() + "/m"), X(dir.path() + "/x"), Y(dir.path() + "/y");
  // lv-x: 2 MiB at 1 MiB of M; lv-y: 2 MiB at 2 MiB of M (they share M's [2, 3) MiB).
  fake.add(X.devno(), "lv-x", {{0, 4096, "linear", devno_text(M.devno()) + " 2048"}});
  fake.add(Y.devno(), "lv-y", {{0, 4096, "linear", devno_text(M.devno()) + " 4096"}});

  SUBCASE("LV -> LV sharing bytes of M: ordered, memmove's result on M") {
    const std::vector<extent> extents{{0, 0, 2 * mib}};  // M[1,3) -> M[2,4): a move up by 1 MiB
    job j = copy_job(X.dev, Y.dev, extents);
    j.options.force = true;
    job_result r = run(j);
    INFO(r.error.to_string());
    REQUIRE(r.ok());
    CHECK(r.planned->ordered);
    CHECK(r.planned->same_medium);
    expect_moves(m, mib, 2 * mib, extents);
    CHECK(read_direct(M.dev, 0, 8 * mib) == m);
    job n = copy_job(X.dev, Y.dev, extents);
    n.options.force = true;
    n.options.allow_overlap = false;
    CHECK(run(n).error.code() == errc::overlap);
  }
  SUBCASE("the raw medium and an LV on it: one medium") {
    const std::vector<extent> extents{{0, 1536 * 1024, 1024 * 1024}};  // lv-x[0,1M) = M[1,2M) -> M[1.5,2.5M)
    job j = copy_job(X.dev, M.dev, extents);
    j.options.force = true;
    job_result r = run(j);
    INFO(r.error.to_string());
    REQUIRE(r.ok());
    CHECK(r.planned->ordered);
    expect_moves(m, mib, 0, extents);
    CHECK(read_direct(M.dev, 0, 8 * mib) == m);
    CHECK(read_buffered(M.dev, 0, 8 * mib) == m);
  }
}

TEST_CASE("dm linear: pieces that exchange bytes on one medium have no memmove order: refused") {
  scratch_dir dir;
  fake_dm fake;
  std::vector<std::uint8_t> m = random_bytes(4 * mib, 30);
  write_file(dir.path() + "/m", m);
  write_file(dir.path() + "/s", std::vector<std::uint8_t>(2 * mib, 0));
  loop_device M(dir.path() + "/m"), S(dir.path() + "/s");
  // The LV is M's first 2 MiB with its halves swapped; copying it onto M[0, 2M) exchanges them.
  fake.add(
      S.devno(), "swapped",
      {{0, 2048, "linear", devno_text(M.devno()) + " 2048"}, {2048, 2048, "linear", devno_text(M.devno()) + " 0"}});
  job j = copy_job(S.dev, M.dev, {{0, 0, 2 * mib}});
  j.options.force = true;
  job_result r = run(j);
  CHECK(r.error.code() == errc::overlap);
  CHECK(r.error.message().find("exchange") != std::string::npos);
  CHECK(read_direct(M.dev, 0, 4 * mib) == m);
}

TEST_CASE("dm striped: chunk by chunk onto two media") {
  scratch_dir dir;
  fake_dm fake;
  two_media media(dir, 2 * mib, 2 * mib, 40);
  auto& [a_bytes, b_bytes, top, A, B] = media;
  // 2 stripes of 64 KiB chunks (128 sectors), each stripe starting at 512 KiB of its medium.
  fake.add(top.devno(), "striped",
           {{0, 4096, "striped", "2 128 " + devno_text(A.devno()) + " 1024 " + devno_text(B.devno()) + " 1024"}});
  std::vector<std::uint8_t> want;
  for (std::size_t c = 0; c < 32; ++c) {
    const auto& from = c % 2 == 0 ? a_bytes : b_bytes;
    const std::size_t at = 512 * 1024 + (c / 2) * 65536;
    want.insert(want.end(), from.begin() + static_cast<std::ptrdiff_t>(at),
                from.begin() + static_cast<std::ptrdiff_t>(at + 65536));
  }
  const std::string out = dir.path() + "/out";
  job_result r = run(copy_job(top.dev, out, {}));
  INFO(r.error.to_string());
  REQUIRE(r.ok());
  REQUIRE(r.planned->parts.size() == 2);
  CHECK(r.planned->parts[0].ranges.size() == 16);  // every other chunk
  CHECK(read_buffered(out, 0, 2 * mib) == want);

  job p;
  p.op = operation::probe;
  p.source = top.dev;
  job_result pr = run(p);
  REQUIRE(pr.ok());
  CHECK(pr.probed->pieces_total == 32);
  CHECK(pr.probed->pieces[1].medium == B.dev);
  CHECK(pr.probed->pieces[1].medium_offset_bytes == 512 * 1024);
  CHECK(pr.probed->pieces[2].medium_offset_bytes == 512 * 1024 + 65536);
}

TEST_CASE("dm: an opaque target falls back through the dm device, and says which target") {
  scratch_dir dir;
  fake_dm fake;
  const auto top_bytes = random_bytes(2 * mib, 50);
  write_file(dir.path() + "/top", top_bytes);
  write_file(dir.path() + "/under", std::vector<std::uint8_t>(4 * mib, 7));
  loop_device top(dir.path() + "/top"), U(dir.path() + "/under");
  fake.add(top.devno(), "secret", {{0, 4096, "crypt", "aes-xts-plain64 :64:logon:k 0 " + devno_text(U.devno()) + " 0"}},
           {U.devno()});
  const std::string out = dir.path() + "/out";
  job_result r = run(copy_job(top.dev, out, {}));
  INFO(r.error.to_string());
  REQUIRE(r.ok());
  REQUIRE(r.copied);
  REQUIRE_FALSE(r.copied->fallback_reasons.empty());
  CHECK(r.copied->fallback_reasons[0].find("dm crypt") != std::string::npos);
  CHECK(read_buffered(out, 0, 2 * mib) == top_bytes);  // read through the "dm device" itself

  job o = copy_job(top.dev, dir.path() + "/out2", {});
  o.options.mode = "offload";
  job_result ro = run(o);
  CHECK(ro.exit_status() == 3);
  CHECK(ro.error.message().find("dm crypt") != std::string::npos);

  // What the opaque target uses is not written behind its back: its medium, written directly
  // where the target may read it, cannot be ordered against it.
  job w = copy_job(top.dev, U.dev, {{0, 0, mib}});
  w.options.force = true;
  job_result rw = run(w);
  CHECK(rw.error.code() == errc::overlap);
  CHECK(read_direct(U.dev, 0, 4 * mib) == std::vector<std::uint8_t>(4 * mib, 7));
}

int main(int argc, char** argv) {
  return host_main(argc, argv, [](const std::string& require) -> std::string {
    if (require.find("partx") == std::string::npos) return "";
    if (!shell("command -v sfdisk") || !shell("command -v partx"))
      return "sfdisk and partx are not installed (apt-get install fdisk util-linux)";
    return "";
  });
}
