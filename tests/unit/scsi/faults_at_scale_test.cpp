// Faults at scale on the SCSI copy-manager model (issue 8.9): thousands of random requests from
// one logical unit to another, on random copy managers (LIO-like; roomier LID1 ones with list
// ids, RECEIVE COPY STATUS and up to 4 concurrent copies on worker threads; token copy with
// capped tokens, short writes, expiring tokens), with random faults -- CHECK CONDITION at the
// k-th copy command after some segments (COPY ABORTED or MEDIUM ERROR with an INFORMATION field,
// too many segments, invalid opcode, token errors), busy list ids, timeouts, a progress callback
// that throws, a cancel at a random point. After each:
//   * the reported bytes are never more than the bytes really copied (the medium against a
//     reference: every destination block holds the source's bytes or its old ones), and exactly
//     those when the device says how far it got (no fault inside a command, or RECEIVE COPY
//     STATUS(LID1) that counts completed segments only) -- LIO reports no progress after an
//     error, so there the count may be short, never over;
//   * nothing outside the destination ranges changed;
//   * no hang (a watchdog aborts with the seed);
//   * no transport was torn down while a command it carried was running (the model checks it).
//
// CI runs 500 iterations; OFFCOPY_FAULT_ITERATIONS=N runs more, OFFCOPY_FAULT_SEED=S replays from S.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "offcopy/copy.hpp"
#include "src/core/device_state.hpp"
#include "tests/models/scsi_model.hpp"
#include "tests/unit/faults_at_scale.hpp"
#include "tests/unit/test_files.hpp"

using namespace offcopy;
using namespace offcopy::test_faults;
using offcopy::test::scsi_model;
using offcopy::test::scsi_model_config;

namespace {

constexpr std::uint64_t lu_bytes = 2 << 20;
constexpr std::uint32_t lba = 512;

std::vector<std::uint8_t> random_bytes(std::mt19937_64& g, std::size_t n) {
  std::vector<std::uint8_t> v(n);
  for (std::size_t i = 0; i < n; i += 8) {
    const std::uint64_t x = g();
    std::memcpy(v.data() + i, &x, std::min<std::size_t>(8, n - i));
  }
  return v;
}

void put(const std::string& path, const std::vector<std::uint8_t>& b) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  REQUIRE(fd >= 0);
  REQUIRE(::pwrite(fd, b.data(), b.size(), 0) == static_cast<ssize_t>(b.size()));
  ::close(fd);
}

std::vector<std::uint8_t> get(const std::string& path) {
  std::vector<std::uint8_t> b(lu_bytes);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  REQUIRE(::pread(fd, b.data(), b.size(), 0) == static_cast<ssize_t>(b.size()));
  ::close(fd);
  return b;
}

/// Fixed-format sense data written from SPC (not with our encoder): byte 0 70h, bit 7 VALID
/// when the INFORMATION field (bytes 3-6, big-endian) means something; 2 sense key; 7 additional
/// length; 12/13 ASC/ASCQ.
std::vector<std::uint8_t> sense(std::uint8_t key, std::uint8_t asc, std::uint8_t ascq, bool valid, std::uint32_t info) {
  std::vector<std::uint8_t> s(18, 0);
  s[0] = static_cast<std::uint8_t>(0x70 | (valid ? 0x80 : 0));
  s[2] = key;
  s[3] = static_cast<std::uint8_t>(info >> 24);
  s[4] = static_cast<std::uint8_t>(info >> 16);
  s[5] = static_cast<std::uint8_t>(info >> 8);
  s[6] = static_cast<std::uint8_t>(info);
  s[7] = 10;
  s[12] = asc;
  s[13] = ascq;
  return s;
}

std::vector<std::uint8_t> random_sense(std::mt19937_64& g, bool token) {
  const bool valid = chance(g, 60);
  const auto info = static_cast<std::uint32_t>(g());  // the device's own number: never a claim
  switch (pick(g, 0, token ? 5 : 4)) {
    case 0: return sense(0x0A, 0x0D, 0x02, valid, info);  // COPY ABORTED, copy target not reachable
    case 1: return sense(0x03, 0x11, 0x00, valid, info);  // MEDIUM ERROR, unrecovered read error
    case 2: return sense(0x04, 0x44, 0x00, valid, info);  // HARDWARE ERROR, internal target failure
    case 3: return sense(0x05, 0x26, 0x08, false, 0);     // ILLEGAL REQUEST, too many segments: split
    case 4: return sense(0x05, 0x20, 0x00, false, 0);     // invalid opcode: not supported
    default: return sense(0x05, 0x23, 0x07, false, 0);    // token expired: populated again
  }
}

scsi_model_config random_manager(std::mt19937_64& g, bool& token, bool& exact_progress) {
  scsi_model_config c;
  exact_progress = false;
  token = false;
  switch (pick(g, 0, 2)) {
    case 0:  // LIO: one segment, no list id, no progress after an error
      break;
    case 1:  // roomier LID1 copy manager, list ids, maybe RECEIVE COPY STATUS, maybe concurrent
      c.snlid = false;
      c.max_segment_descriptors = static_cast<std::uint16_t>(pick(g, 2, 8));
      c.max_descriptor_list_bytes = 2048;
      c.copy_status_lid1 = chance(g, 60);
      c.lid1_counts_failed_segment = chance(g, 30);
      c.lid1_transfer_units = chance(g, 70) ? 0x00 : 0x02;
      c.max_concurrent_copies = static_cast<std::uint8_t>(pick(g, 1, 4));
      // Whole completed segments, counted in bytes: what the device says is what it did.
      exact_progress = c.copy_status_lid1 && !c.lid1_counts_failed_segment && c.lid1_transfer_units == 0x00;
      break;
    default:  // token copy
      token = true;
      c.xcopy = false;
      c.token = true;
      c.max_range_descriptors = static_cast<std::uint16_t>(pick(g, 1, 8));
      c.max_token_transfer_blocks = pick(g, 64, 4096);
      if (chance(g, 30)) c.populate_max_blocks = pick(g, 1, 512);
      c.populate_short_status = chance(g, 50) ? 0x03 : 0x04;
      if (chance(g, 30)) c.write_using_token_max_blocks = pick(g, 1, 512);
      c.short_write_status = chance(g, 50) ? 0x03 : 0x04;
      c.honour_del_tkn = chance(g, 70);
      if (chance(g, 20)) c.token_lifetime_writes = static_cast<unsigned>(pick(g, 1, 3));
      c.transfer_count_units = chance(g, 70) ? 0xF1 : 0x00;
      break;
  }
  return c;
}

std::vector<extent> random_extents(std::mt19937_64& g) {
  const std::uint64_t blocks = lu_bytes / lba;
  const unsigned n = static_cast<unsigned>(pick(g, 1, 16));
  std::vector<extent> ex;
  std::uint64_t dst = pick(g, 0, 64);
  for (unsigned i = 0; i < n; ++i) {
    const std::uint64_t len = pick(g, 1, 160);
    if (dst + len > blocks) break;
    ex.push_back({pick(g, 0, blocks - len) * lba, dst * lba, len * lba});
    dst += len + pick(g, 0, 40);
  }
  if (chance(g, 50)) std::shuffle(ex.begin(), ex.end(), g);
  return ex;
}

}  // namespace

TEST_CASE("faults at scale: EXTENDED COPY and token copy on the copy-manager model with random faults") {
  const unsigned n = iterations(500);
  const std::uint64_t seed0 = first_seed(0x5c5100);
  watchdog dog(std::chrono::seconds(120));
  std::string dir = media_dir() + "/offcopy-faults-scsi-XXXXXX";
  REQUIRE(::mkdtemp(dir.data()) != nullptr);
  const std::string src_path = dir + "/lun0", dst_path = dir + "/lun1";
  unsigned failed = 0, short_counts = 0, concurrent = 0;
  double slowest = 0;
  std::uint64_t slowest_seed = 0;
  for (unsigned it = 0; it < n; ++it) {
    const std::uint64_t seed = seed0 + it;
    dog.start(seed);
    const auto t0 = std::chrono::steady_clock::now();
    CAPTURE(seed);
    std::mt19937_64 g(seed);
    bool token = false, exact_progress = false;
    const scsi_model_config cfg = random_manager(g, token, exact_progress);
    const auto src_bytes = random_bytes(g, lu_bytes);
    const auto dst_before = random_bytes(g, lu_bytes);
    put(src_path, src_bytes);
    put(dst_path, dst_before);
    detail::forget_discoveries();  // the same files, another copy manager
    scsi_model model(cfg);
    model.add_lu("lun0", src_path, lu_bytes);
    model.add_lu("lun1", dst_path, lu_bytes);

    // A fault that leaves part of a command done which the device may not report.
    bool partial_unreported = false;
    if (chance(g, 35)) {
      const unsigned before = chance(g, 50) ? 0 : static_cast<unsigned>(pick(g, 1, 4));
      model.config().fault_partial_blocks = chance(g, 20) ? static_cast<std::uint32_t>(pick(g, 1, 8)) : 0;
      model.fail_copy_command(static_cast<unsigned>(pick(g, 1, 12)), random_sense(g, token), before);
      partial_unreported = model.config().fault_partial_blocks != 0 || (before != 0 && (token || !exact_progress));
    }
    if (chance(g, 15)) model.busy_list_ids(static_cast<unsigned>(pick(g, 1, 10)));
    if (chance(g, 10)) model.time_out_copy_command(static_cast<unsigned>(pick(g, 1, 12)));
    if (cfg.max_concurrent_copies > 1) ++concurrent;

    auto src = test_files::open_device(src_path, false);
    auto dst = test_files::open_device(dst_path, true);
    policy pol;
    pol.mode = chance(g, 50) ? copy_mode::offload : copy_mode::automatic;
    pol.commands_in_flight = static_cast<unsigned>(pick(g, 1, 8));
    std::atomic<bool> cancel{false};
    pol.cancel = &cancel;
    const int cancel_at = chance(g, 15) ? static_cast<int>(pick(g, 0, 12)) : -1;
    const int throw_at = chance(g, 10) ? static_cast<int>(pick(g, 1, 12)) : -1;
    if (cancel_at == 0) cancel = true;
    int calls = 0;
    pol.on_progress = [&](const progress&) {
      ++calls;
      if (calls == cancel_at) cancel = true;
      if (calls == throw_at) throw std::runtime_error("progress callback gave up");
    };
    const auto ex = random_extents(g);
    std::uint64_t total = 0;
    for (const extent& e : ex) total += e.length_bytes;

    report rep = copy(request{src, dst, ex}, pol);
    INFO(rep.result.to_string());
    src.reset();
    dst.reset();

    CHECK(model.audit().torn_down_while_executing == 0);
    const auto after = get(dst_path);
    std::vector<bool> in_range(lu_bytes / lba, false);
    std::uint64_t copied = 0;
    for (const extent& e : ex) {
      for (std::uint64_t b = 0; b < e.length_bytes / lba; ++b) {
        const std::uint64_t s = e.src_offset_bytes + b * lba, d = e.dst_offset_bytes + b * lba;
        in_range[d / lba] = true;
        const bool now_source = std::equal(after.begin() + d, after.begin() + d + lba, src_bytes.begin() + s);
        const bool still_old = std::equal(after.begin() + d, after.begin() + d + lba, dst_before.begin() + d);
        CHECK_MESSAGE((now_source || still_old), "destination block " << d / lba << " holds neither");
        if (now_source) copied += lba;
      }
    }
    for (std::size_t b = 0; b < in_range.size(); ++b) {
      if (in_range[b]) continue;
      CHECK_MESSAGE(std::equal(after.begin() + b * lba, after.begin() + (b + 1) * lba, dst_before.begin() + b * lba),
                    "block " << b << " outside the destination ranges changed");
    }
    CHECK(rep.bytes_copied <= copied);
    if (!partial_unreported) {
      CHECK(rep.bytes_copied == copied);
    } else if (rep.bytes_copied != copied) {
      ++short_counts;
    }
    if (rep.result.ok()) CHECK(copied == total);
    if (!rep.result.ok()) {
      ++failed;
      const errc c = rep.result.code();
      // size_limit_exceeded: a single block the device still refuses (the fault's 26/08 on it).
      CHECK((c == errc::io_error || c == errc::device_error || c == errc::internal || c == errc::cancelled ||
             c == errc::not_supported || c == errc::out_of_range || c == errc::size_limit_exceeded));
    }
    const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (took > slowest) {
      slowest = took;
      slowest_seed = seed;
    }
  }
  ::unlink(src_path.c_str());
  ::unlink(dst_path.c_str());
  ::rmdir(dir.c_str());
  MESSAGE("slowest: " << slowest << " s (seed " << slowest_seed << ")");
  MESSAGE(n << " requests: " << failed << " failed, " << short_counts
            << " counted short after an unreported partial command, " << concurrent << " on concurrent copy managers");
  if (n >= 100) CHECK(failed > n / 10);
}
