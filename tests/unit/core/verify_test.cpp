// The verify stage (src/core/verify.cpp) on its own: detail::verify_copy() reports only through
// the report (result, verified, verify_skipped, first_mismatch_offset, time.verify_seconds), the
// one function both execute() and a resumed job use. Real files; read errors through the sys() seam.
#include <doctest/doctest.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "src/core/sys.hpp"
#include "src/core/verify.hpp"
#include "tests/unit/core/fake_backend.hpp"

using namespace offcopy;

namespace {

constexpr std::uint64_t mib = 1ULL << 20;

/// A source and a destination holding what copying `extents` (source 0) would leave there.
struct copied_pair {
  core_test::scratch_dir dir;
  std::string src_path = dir.file("src.bin"), dst_path = dir.file("dst.bin");
  std::vector<std::uint8_t> src_data, dst_data;
  std::shared_ptr<device> src, dst;

  copied_pair(std::size_t bytes, const std::vector<extent>& extents) {
    src_data = core_test::random_bytes(bytes, 41);
    dst_data = core_test::random_bytes(bytes, 42);
    for (const extent& e : extents)
      std::memcpy(dst_data.data() + e.dst_offset_bytes, src_data.data() + e.src_offset_bytes, e.length_bytes);
  }
  /// Writes both files (after the test changed dst_data) and opens them.
  void open() {
    core_test::write_file(src_path, src_data);
    core_test::write_file(dst_path, dst_data);
    src = core_test::open_device(src_path, false);
    dst = core_test::open_device(dst_path, true);
  }
};

std::atomic<int> preads{0};
std::atomic<std::uint64_t> fail_from{~0ULL};  // preads at or past this offset fail with EIO

ssize_t counting_pread(int fd, void* buf, size_t n, off_t off) {
  ++preads;
  if (static_cast<std::uint64_t>(off) + n > fail_from) {
    errno = EIO;
    return -1;
  }
  return detail::real_sys().pread(fd, buf, n, off);
}

/// Counts verify's reads; fails those reaching `fail_from`.
struct read_seam {
  detail::sys_table table = detail::real_sys();
  std::optional<detail::scoped_sys_override> on;
  explicit read_seam(std::uint64_t fail_at = ~0ULL) {
    preads = 0;
    fail_from = fail_at;
    table.pread = counting_pread;
    on.emplace(table);
  }
};

}  // namespace

TEST_CASE("verify: a match sets verified and the verify time, nothing else") {
  const std::vector<extent> ext{{0, 3 * mib, 5 * mib}, {6 * mib, 512, 4096}};
  copied_pair f(8 * mib, ext);
  f.open();
  read_seam seam;
  report rep;
  detail::verify_copy(request{f.src, f.dst, ext}, plan{}, nullptr, rep);
  REQUIRE_MESSAGE(rep.result.ok(), rep.result.to_string());
  CHECK(rep.verified);
  CHECK_FALSE(rep.verify_skipped);
  CHECK(rep.first_mismatch_offset == -1);
  CHECK(rep.time.verify_seconds > 0);
  CHECK(preads == 6);  // 5 MiB in reads of 4 MiB and 1 MiB on each side, then 4 KiB on each
}

TEST_CASE("verify: a mismatch is report.result verify_mismatch with the first differing destination byte") {
  // Source and destination offsets differ, and the first difference lies in the second 4 MiB read:
  // the offset must be the destination's, counted across reads.
  const std::vector<extent> ext{{512, 8192, 9 * mib}};
  copied_pair f(10 * mib, ext);
  const std::uint64_t first = 8192 + 4 * mib + 777;
  f.dst_data[first] ^= 0x01;
  f.dst_data[8192 + 6 * mib] ^= 0x80;  // a later difference: not the one reported
  f.open();
  report rep;
  detail::verify_copy(request{f.src, f.dst, ext}, plan{}, nullptr, rep);
  CHECK(rep.result.code() == errc::verify_mismatch);
  CHECK(rep.first_mismatch_offset == static_cast<std::int64_t>(first));
  CHECK(rep.result.message() ==
        fmt::format("verify: destination byte {} differs from source byte {}", first, 512 + 4 * mib + 777));
  CHECK_FALSE(rep.verified);
  CHECK_FALSE(rep.verify_skipped);
  CHECK(rep.time.verify_seconds > 0);
  // The same in the JSON every front end prints.
  auto j = nlohmann::json::parse(rep.to_json());
  CHECK(j["first_mismatch_offset"] == first);
  CHECK(j["error"]["code"] == "verify-mismatch");
}

TEST_CASE("verify: the first differing byte of a request's very first and very last byte") {
  const std::vector<extent> ext{{0, 0, 1 * mib}};
  SUBCASE("first") {
    copied_pair f(1 * mib, ext);
    f.dst_data[0] ^= 0xff;
    f.open();
    report rep;
    detail::verify_copy(request{f.src, f.dst, {}}, plan{}, nullptr, rep);  // no extents: the whole source
    CHECK(rep.result.code() == errc::verify_mismatch);
    CHECK(rep.first_mismatch_offset == 0);
  }
  SUBCASE("last") {
    copied_pair f(1 * mib, ext);
    f.dst_data[mib - 1] ^= 0x10;
    f.open();
    report rep;
    detail::verify_copy(request{f.src, f.dst, {}}, plan{}, nullptr, rep);
    CHECK(rep.result.code() == errc::verify_mismatch);
    CHECK(rep.first_mismatch_offset == static_cast<std::int64_t>(mib - 1));
  }
}

TEST_CASE("verify: an I/O error while reading back is report.result io_error, naming the device") {
  // Source bytes [0, 1 MiB) went to destination [2 MiB, 3 MiB): reads reaching past 2 MiB + 64 KiB
  // are the destination's, and fail.
  const std::vector<extent> ext{{0, 2 * mib, 1 * mib}};
  copied_pair f(4 * mib, ext);
  f.open();
  read_seam seam(2 * mib + 65536);
  report rep;
  detail::verify_copy(request{f.src, f.dst, ext}, plan{}, nullptr, rep);
  CHECK(rep.result.code() == errc::io_error);
  CHECK(rep.result.sys_errno() == EIO);
  CHECK(rep.result.message().find("verify: read " + f.dst_path) != std::string::npos);
  CHECK(rep.first_mismatch_offset == -1);
  CHECK_FALSE(rep.verified);
  CHECK(preads == 2);  // the source's read, the destination's failing one
}

TEST_CASE("verify: several sources, each compared with the destination ranges it was copied to") {
  core_test::scratch_dir dir;
  const std::size_t n = 1 * mib;
  auto a = core_test::random_bytes(n, 51), b = core_test::random_bytes(n, 52), d = core_test::random_bytes(n, 53);
  // Source 0 bytes [0, 64K) -> destination 0; source 1 bytes [4K, 68K) -> destination 512K.
  std::memcpy(d.data(), a.data(), 65536);
  std::memcpy(d.data() + 524288, b.data() + 4096, 65536);
  const std::uint64_t bad = 524288 + 40000;
  d[bad] ^= 0x01;
  core_test::write_file(dir.file("a"), a);
  core_test::write_file(dir.file("b"), b);
  core_test::write_file(dir.file("d"), d);
  request req{core_test::open_device(dir.file("a"), false),
              core_test::open_device(dir.file("d"), true),
              {{0, 0, 65536, 0}, {4096, 524288, 65536, 1}},
              {core_test::open_device(dir.file("b"), false)}};
  report rep;
  detail::verify_copy(req, plan{}, nullptr, rep);
  CHECK(rep.result.code() == errc::verify_mismatch);
  CHECK(rep.first_mismatch_offset == static_cast<std::int64_t>(bad));
  d[bad] ^= 0x01;
  core_test::write_file(dir.file("d"), d);
  report again;
  detail::verify_copy(req, plan{}, nullptr, again);
  CHECK_MESSAGE(again.result.ok(), again.result.to_string());
  CHECK(again.verified);
}

TEST_CASE("verify: skipped after an ordered plan, not run after a failed copy, stopped by cancel") {
  const std::vector<extent> ext{{0, 0, 1 * mib}};
  copied_pair f(1 * mib, ext);
  f.dst_data[100] ^= 1;  // would be a mismatch if anything compared
  f.open();
  const request req{f.src, f.dst, ext};
  read_seam seam;
  SUBCASE("ordered plan: the source no longer holds the original bytes") {
    plan p;
    p.ordered = true;
    report rep;
    detail::verify_copy(req, p, nullptr, rep);
    CHECK(rep.result.ok());
    CHECK(rep.verify_skipped);
    CHECK_FALSE(rep.verified);
    CHECK(rep.fallback_reasons.empty());
    CHECK(preads == 0);
  }
  SUBCASE("the copy failed: its error stays") {
    report rep;
    rep.result = status(errc::device_error, "the copy's own error");
    detail::verify_copy(req, plan{}, nullptr, rep);
    CHECK(rep.result.code() == errc::device_error);
    CHECK(rep.result.message() == "the copy's own error");
    CHECK_FALSE(rep.verified);
    CHECK(rep.first_mismatch_offset == -1);
    CHECK(preads == 0);
  }
  SUBCASE("cancel") {
    std::atomic<bool> stop{true};
    report rep;
    detail::verify_copy(req, plan{}, &stop, rep);
    CHECK(rep.result.code() == errc::cancelled);
    CHECK(rep.first_mismatch_offset == -1);
    CHECK_FALSE(rep.verified);
    CHECK(preads == 0);
  }
}
