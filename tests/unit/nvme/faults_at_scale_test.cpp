// Faults at scale on the NVMe controller model (issue 8.9): thousands of random requests, each
// with random device limits and random faults -- an error status at the k-th Copy with some of its
// ranges done (partial DW0), Command Size Limit Exceeded from a device that enforces less than it
// advertises, a submit refused with EAGAIN, reaps that fail once or for good, a completion for an
// unknown tag, a command the driver cancels after its timeout, a progress callback that throws, a
// cancel at a random point -- through the real engine and Copy session. After each:
//   * the reported bytes are exactly the bytes really copied (the medium against a reference:
//     every destination block holds either the source's bytes or its old bytes, and the count of
//     the first kind is bytes_copied), and the offload's own count is what the model wrote;
//   * nothing outside the destination ranges changed;
//   * no hang (a watchdog aborts with the seed);
//   * no range list was freed while its command was outstanding (the model's transports check it
//     at teardown: nvme_transport_audit).
// A fifth of the requests move one range over itself (memmove order): when they succeed the
// medium equals the reference memmove.
//
// CI runs 800 iterations; OFFCOPY_FAULT_ITERATIONS=N runs more, OFFCOPY_FAULT_SEED=S replays from S.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "offcopy/copy.hpp"
#include "src/core/backend.hpp"
#include "src/nvme/nvme_status.hpp"
#include "tests/unit/faults_at_scale.hpp"
#include "tests/unit/nvme/model_names.hpp"

using namespace offcopy;
using namespace offcopy::test_faults;

namespace {

constexpr std::uint64_t medium_bytes = 2 << 20;

struct scratch_file {
  std::string path;
  int fd = -1;
  scratch_file() {
    std::string name = media_dir() + "/offcopy-faults-nvme-XXXXXX";
    fd = ::mkstemp(name.data());
    REQUIRE(fd >= 0);
    path = name;
    REQUIRE(::ftruncate(fd, medium_bytes) == 0);
  }
  ~scratch_file() {
    ::close(fd);
    ::unlink(path.c_str());
  }
  scratch_file(const scratch_file&) = delete;
  scratch_file& operator=(const scratch_file&) = delete;
  void put(const std::vector<std::uint8_t>& b) const {
    REQUIRE(::pwrite(fd, b.data(), b.size(), 0) == static_cast<ssize_t>(b.size()));
  }
  std::vector<std::uint8_t> get() const {
    std::vector<std::uint8_t> b(medium_bytes);
    REQUIRE(::pread(fd, b.data(), b.size(), 0) == static_cast<ssize_t>(b.size()));
    return b;
  }
};

/// One random Copy status at the k-th command: what a controller answers mid-copy.
nvme_fault random_status_fault(std::mt19937_64& g) {
  nvme_fault f;
  f.at_command = pick(g, 1, 40);
  f.ranges_done = static_cast<std::uint32_t>(pick(g, 0, 3));
  switch (pick(g, 0, 4)) {
    case 0: f.raw_status = nvme::make_raw_status(2, 0x81, false); break;  // Unrecovered Read Error
    case 1: f.raw_status = nvme::make_raw_status(2, 0x80, false); break;  // Write Fault
    case 2: f.raw_status = nvme::make_raw_status(1, nvme::sc_command_size_limit_exceeded, true); break;
    case 3: f.raw_status = nvme::make_raw_status(0, nvme::sc_invalid_field, true); break;  // not supported
    default: f.raw_status = nvme::make_raw_status(0, 0x06, false); break;                  // Internal Error
  }
  return f;
}

/// Non-overlapping extents: sources in the first half, destinations (distinct) in the second.
std::vector<extent> random_extents(std::mt19937_64& g, std::uint32_t lba) {
  const std::uint64_t half = medium_bytes / 2 / lba;
  const unsigned n = static_cast<unsigned>(pick(g, 1, 24));
  std::vector<extent> ex;
  std::uint64_t dst = half + pick(g, 0, 8);
  const bool gather = chance(g, 40);  // destinations back to back: one NVMe Copy gathers them
  for (unsigned i = 0; i < n; ++i) {
    const std::uint64_t len = pick(g, 1, lba == 512 ? 96 : 16);
    if (dst + len > 2 * half) break;
    const std::uint64_t src = pick(g, 0, half - len);
    ex.push_back({src * lba, dst * lba, len * lba});
    dst += len + (gather ? 0 : pick(g, 0, 6));
  }
  if (chance(g, 50)) std::shuffle(ex.begin(), ex.end(), g);
  return ex;
}

}  // namespace

TEST_CASE("faults at scale: NVMe Copy on the controller model with random faults") {
  const unsigned n = iterations(800);
  const std::uint64_t seed0 = first_seed(0x0ffc0b1);
  watchdog dog(std::chrono::seconds(120));
  scratch_file file;
  unsigned failed = 0, cancelled = 0, overlapping = 0;
  for (unsigned it = 0; it < n; ++it) {
    const std::uint64_t seed = seed0 + it;
    dog.start(seed);
    CAPTURE(seed);
    std::mt19937_64 g(seed);

    nvme_model_config cfg;
    cfg.lba_bytes = chance(g, 80) ? 512 : 4096;
    cfg.blocks = medium_bytes / cfg.lba_bytes;
    cfg.mssrl = static_cast<std::uint16_t>(pick(g, 1, 64));
    cfg.mcl = static_cast<std::uint32_t>(pick(g, cfg.mssrl, 256));
    cfg.msrc_0based = static_cast<std::uint8_t>(pick(g, 0, 15));
    if (chance(g, 20)) cfg.enforced_mcl = static_cast<std::uint32_t>(pick(g, 1, cfg.mcl));  // accepts less: 0x83
    const auto before = random_bytes(g, medium_bytes);
    file.put(before);
    nvme_model model(cfg, file.fd);

    nvme_transport_script script;
    script.seed = chance(g, 80) ? static_cast<std::uint32_t>(g() | 1) : 0;
    if (chance(g, 12)) script.refuse_submit = pick(g, 1, 40);
    if (chance(g, 12)) {
      script.fail_reap = pick(g, 1, 30);
      script.reaps_keep_failing = chance(g, 30);
    }
    if (chance(g, 10)) script.unknown_tag_at_reap = pick(g, 1, 30);
    if (chance(g, 10)) script.cancel_command = pick(g, 1, 40);
    model.script(script);
    if (chance(g, 30)) model.inject(random_status_fault(g));

    const unsigned depth = static_cast<unsigned>(pick(g, 1, 16));
    nvme_model_backend backend(model, depth, chance(g, 30));
    detail::backend* previous = detail::replace_backend("nvme-copy", &backend);
    open_options o;
    o.writable = true;
    auto dev = device::open(file.path, o);
    REQUIRE(dev.ok());

    policy pol;
    pol.mode = chance(g, 50) ? copy_mode::offload : copy_mode::automatic;
    pol.commands_in_flight = static_cast<unsigned>(pick(g, 1, 16));
    progress_faults faults(g, pol, 20);

    const bool overlap = chance(g, 20);
    std::vector<extent> ex;
    if (overlap) {
      // One range moved over itself by a shift shorter than it, both ways, anywhere on the medium.
      const std::uint64_t blocks = cfg.blocks;
      const std::uint64_t len = pick(g, 2, std::min<std::uint64_t>(blocks / 2, 400));
      const std::uint64_t shift = pick(g, 1, len - 1);
      const std::uint64_t lo = pick(g, 0, blocks - len - shift);
      const bool up = chance(g, 50);
      ex.push_back(
          {(up ? lo : lo + shift) * cfg.lba_bytes, (up ? lo + shift : lo) * cfg.lba_bytes, len * cfg.lba_bytes});
      ++overlapping;
    } else {
      ex = random_extents(g, cfg.lba_bytes);
    }
    std::uint64_t total = 0;
    for (const extent& e : ex) total += e.length_bytes;

    report rep = copy(request{dev.value(), dev.value(), ex}, pol);
    detail::replace_backend("nvme-copy", previous);
    dev = status(errc::internal, "closed");
    INFO(rep.result.to_string());

    // No buffer freed while its command was outstanding; no transport torn down with one pending.
    CHECK(model.audit().pending_at_teardown == 0);
    CHECK(model.audit().buffers_changed == 0);
    CHECK(rep.bytes_copied <= total);
    const auto after = file.get();
    if (overlap) {
      if (rep.result.ok()) {
        auto expect = before;
        std::memmove(expect.data() + ex[0].dst_offset_bytes, before.data() + ex[0].src_offset_bytes,
                     ex[0].length_bytes);
        CHECK(after == expect);
        CHECK(rep.bytes_copied == total);
      } else {
        // Nothing outside the destination range changed.
        const std::uint64_t d0 = ex[0].dst_offset_bytes, d1 = d0 + ex[0].length_bytes;
        CHECK(std::equal(after.begin(), after.begin() + static_cast<std::ptrdiff_t>(d0), before.begin()));
        CHECK(std::equal(after.begin() + static_cast<std::ptrdiff_t>(d1), after.end(),
                         before.begin() + static_cast<std::ptrdiff_t>(d1)));
      }
    } else {
      const outcome_checker check{cfg.lba_bytes, before, before, after};
      const std::uint64_t copied = check.copied_blocks(ex) * cfg.lba_bytes;
      CHECK(rep.bytes_copied == copied);
      CHECK(rep.of("nvme-copy").bytes == model.audit().copy_blocks_written * cfg.lba_bytes);
      if (rep.result.ok()) CHECK(copied == total);
    }
    if (!rep.result.ok()) {
      ++failed;
      const errc c = rep.result.code();
      if (c == errc::cancelled) ++cancelled;
      // size_limit_exceeded: a single block the device still refuses (the fault's 0x83 on it).
      CHECK((c == errc::io_error || c == errc::device_error || c == errc::internal || c == errc::cancelled ||
             c == errc::not_supported || c == errc::size_limit_exceeded));
      if (c == errc::not_supported) CHECK(rep.bytes_copied == 0);
    }
    dog.finish();
  }
  MESSAGE("slowest: " << dog.slowest_seconds() << " s (seed " << dog.slowest_seed() << ")");
  MESSAGE(n << " requests: " << failed << " failed (" << cancelled << " cancelled), " << overlapping
            << " moved a range over itself");
  if (n >= 100) CHECK(failed > n / 10);  // the faults did happen
}
