// Lifetimes of in-flight NVMe Copy commands (issue 8.5): on every error path the engine and the
// session keep each command's range list alive until the command was reaped, count what
// completed, and report the first error. The model's transports read what is still pending when
// they are torn down (ASan reports a freed range list; nvme_transport_audit counts them).
#include <doctest/doctest.h>

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "offcopy/copy.hpp"
#include "src/core/backend.hpp"
#include "src/nvme/copy_session.hpp"
#include "src/nvme/nvme_status.hpp"
#include "tests/unit/nvme/model_names.hpp"
#include "tests/unit/nvme/nvme_model_rig.hpp"

using namespace offcopy;

namespace {

constexpr std::uint64_t lba = 512;

/// The rig with its first MiB patterned by fill(), `script` for the model's transports, 8 commands
/// in flight; one range of 8 blocks per command: 64 commands for 256 KiB.
struct rig : testing::nvme_model_rig {
  explicit rig(nvme_transport_script script, unsigned depth = 8) : nvme_model_rig(config(), depth, &fill) {
    model.script(script);
  }
  static std::uint8_t fill(std::size_t i) { return static_cast<std::uint8_t>(i * 13 + (i >> 9) * 5 + 3); }

  static nvme_model_config config() {
    nvme_model_config c;
    c.mssrl = 8;
    c.mcl = 8;
    c.msrc_0based = 0;
    return c;
  }

  /// 256 KiB from offset 0 to 2 MiB: 64 Copy commands.
  report copy(policy pol) {
    pol.mode = copy_mode::offload;
    pol.commands_in_flight = 8;
    return offcopy::copy(request{dev, dev, {{0, 2 << 20, 256 << 10}}}, pol);
  }

  /// Destination blocks holding the source's bytes (the rest must still be zero).
  std::uint64_t blocks_really_copied() const {
    std::uint64_t n = 0;
    for (std::uint64_t b = 0; b < 512; ++b) {
      const auto d = model.read_blocks(4096 + b, 1);
      if (d == model.read_blocks(b, 1)) {
        ++n;
      } else {
        CHECK(d == std::vector<std::uint8_t>(lba, 0));
      }
    }
    return n;
  }

  /// The properties every test here ends with.
  void check_lifetimes_and_bytes(const report& rep) {
    CHECK(model.audit().pending_at_teardown == 0);
    CHECK(model.audit().buffers_changed == 0);
    CHECK(rep.bytes_copied == model.audit().copy_blocks_written * lba);
    CHECK(rep.bytes_copied == blocks_really_copied() * lba);
  }
};

}  // namespace

TEST_CASE("lifetimes: a completion for an unknown tag stops the copy, the rest in flight is reaped and counted") {
  rig r({.seed = 7, .unknown_tag_at_reap = 3});  // seed: partial reaps, commands stay pending across reaps
  report rep = r.copy({});
  CHECK(rep.result.code() == errc::internal);
  CHECK(rep.result.message().find("unknown tag") != std::string::npos);
  CHECK(rep.bytes_copied > 0);
  CHECK(rep.bytes_copied < (256u << 10));
  r.check_lifetimes_and_bytes(rep);
}

TEST_CASE("lifetimes: a reap that fails (io_uring EAGAIN) stops the copy, what was in flight still completes") {
  rig r({.seed = 11, .fail_reap = 4});
  report rep = r.copy({});
  CHECK(rep.result.code() == errc::io_error);
  CHECK(rep.result.sys_errno() == EAGAIN);
  CHECK(rep.bytes_copied > 0);
  r.check_lifetimes_and_bytes(rep);
}

TEST_CASE("lifetimes: a submit refused (EAGAIN) stops the copy, the commands before it complete and count") {
  rig r({.seed = 3, .refuse_submit = 12});
  report rep = r.copy({});
  CHECK(rep.result.code() == errc::io_error);
  CHECK(rep.bytes_copied >= 8 * 8 * lba);  // at least the first window completed
  r.check_lifetimes_and_bytes(rep);
}

TEST_CASE("lifetimes: a ring whose reaps keep failing ends the copy without a hang, its buffers are kept") {
  rig r({.seed = 5, .fail_reap = 3, .reaps_keep_failing = true});
  report rep = r.copy({});
  CHECK(rep.result.code() == errc::io_error);
  // The commands still pending never ran (the model executes at reap): nothing more was copied,
  // and their transport was never torn down with them pending.
  r.check_lifetimes_and_bytes(rep);
}

TEST_CASE("lifetimes: a command the driver cancelled after its timeout (EINTR) is an error, never re-sent") {
  rig r({.seed = 9, .cancel_command = 10});
  report rep = r.copy({});
  CHECK(rep.result.code() == errc::io_error);
  CHECK(rep.result.sys_errno() == EINTR);
  CHECK(rep.bytes_copied < (256u << 10));
  // Sent once: every command submitted ran on the model, except the cancelled one.
  CHECK(rep.of("nvme-copy").commands == r.model.copies_received() + 1);
  r.check_lifetimes_and_bytes(rep);
}

TEST_CASE("lifetimes: a progress callback that throws stops the copy, commands in flight are reaped and counted") {
  rig r({.seed = 13});
  policy pol;
  int calls = 0;
  pol.on_progress = [&](const progress&) {
    if (++calls == 5) throw std::runtime_error("callback gave up");
  };
  report rep = r.copy(pol);
  CHECK(rep.result.code() == errc::internal);
  CHECK(rep.result.message().find("callback gave up") != std::string::npos);
  CHECK(rep.bytes_copied >= 5 * 8 * lba);
  r.check_lifetimes_and_bytes(rep);
}

TEST_CASE("lifetimes: an error among the commands reaped after a cancel is still reported") {
  // One completion per reap, oldest first: command k + 8 goes out after completion k.
  rig r({.at_most_per_reap = 1});
  // The 12th Copy fails with a media error. The cancel comes with the 5th completion: the engine
  // sees it before sending the 13th, while 6..12 are in flight; the 12th fails after the cancel.
  nvme_fault f;
  f.at_command = 12;
  f.raw_status = nvme::make_raw_status(2, 0x81, false);
  r.model.inject(f);
  std::atomic<bool> cancel{false};
  policy pol;
  pol.cancel = &cancel;
  int calls = 0;
  pol.on_progress = [&](const progress&) {
    if (++calls == 5) cancel = true;
  };
  report rep = r.copy(pol);
  CHECK(rep.of("nvme-copy").commands == 12);
  CHECK(rep.bytes_copied == 11 * 8 * lba);
  CHECK(rep.result.code() == errc::device_error);
  CHECK(rep.result.message().find("after the copy was cancelled") != std::string::npos);
  REQUIRE(rep.result.nvme());
  CHECK(rep.result.nvme()->sc == 0x81);
  r.check_lifetimes_and_bytes(rep);
}

TEST_CASE("lifetimes: a session destroyed with commands outstanding waits for them before freeing their range lists") {
  nvme_model_config c = rig::config();
  nvme_model m(c);
  nvme_transport_script s;
  s.seed = 21;
  m.script(s);
  {
    nvme::copy_session session(m.make_transport(8), nvme::session_params{});
    for (std::uint64_t i = 0; i < 8; ++i) {
      const std::vector<plan_segment> seg{{i * 8, 4096 + i * 8, 8}};
      detail::command cmd;
      cmd.tag = i + 1;
      cmd.segments = seg;
      cmd.block_bytes = 512;
      REQUIRE(session.submit(cmd).ok());
    }
    std::vector<detail::completion> out;
    REQUIRE(session.reap(1, out).ok());
    CHECK(out.size() < 8);  // the rest is still pending when the session goes
  }
  CHECK(m.audit().torn_down == 1);
  CHECK(m.audit().pending_at_teardown == 0);
  CHECK(m.audit().copy_blocks_written == 64);  // every command ran before its range list was freed
}
