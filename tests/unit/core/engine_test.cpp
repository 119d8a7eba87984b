// The engine (src/core/engine.cpp) and make_plan against a scripted fake offload backend installed with
// detail::replace_backend: the exact command sequence, the in-flight window, barriers, retry smaller,
// fallback, errors with exact bytes done, cancellation and progress.
#include <doctest/doctest.h>

#include <atomic>
#include <cstring>
#include <vector>

#include "src/core/sys.hpp"
#include "tests/unit/core/fake_backend.hpp"

using namespace offcopy;
using offcopy::core_test::backend_swap;
using offcopy::core_test::fake_backend;
using offcopy::core_test::file_pair;
using offcopy::core_test::recorded_command;

namespace {

constexpr std::uint64_t kb = 512;  // the fake's block

extent blocks(std::uint64_t src, std::uint64_t dst, std::uint64_t n) { return {src * kb, dst * kb, n * kb}; }

plan must_plan(const request& req, const policy& pol = {}) {
  auto p = make_plan(req, pol);
  REQUIRE_MESSAGE(p.ok(), (p.ok() ? std::string() : p.error().to_string()));
  return p.value();
}

std::vector<plan_segment> batch_segments(const plan& p, std::size_t i) {
  const plan_batch& b = p.batches[i];
  return {p.segments.begin() + b.first_segment, p.segments.begin() + b.first_segment + b.segment_count};
}

detail::completion fail_with(errc code, std::uint64_t blocks_done = 0, const char* msg = "fake failure") {
  detail::completion c;
  c.result = status(code, msg);
  c.blocks_done = blocks_done;
  return c;
}

}  // namespace

TEST_CASE("engine: the commands sent are the plan's batches, in order, with their exact segments") {
  fake_backend fake;
  fake.cfg.limits = {3, 8, 16, true};  // 3 segments, 8 blocks each, 16 blocks per command, gather shape
  backend_swap swap(fake);
  file_pair f(1 << 20);
  std::vector<extent> ext{blocks(200, 40, 4), blocks(0, 0, 20), blocks(100, 20, 2)};
  request req{f.src, f.dst, ext};
  plan p = must_plan(req);
  CHECK(p.backend == "nvme-copy");
  CHECK(p.block_bytes == 512);
  // Sorted by destination, greedily packed: 20 blocks split 8+8 | 4, the gathered source at 100
  // continues the second command's destination, the gap before 40 starts a third.
  const std::vector<std::vector<plan_segment>> want{
      {{0, 0, 8}, {8, 8, 8}}, {{16, 16, 4}, {100, 20, 2}}, {{200, 40, 4}}};
  REQUIRE(p.batches.size() == want.size());
  for (std::size_t i = 0; i < want.size(); ++i) CHECK(batch_segments(p, i) == want[i]);

  report rep = execute(req, p);
  REQUIRE_MESSAGE(rep.result.ok(), rep.result.to_string());
  REQUIRE(fake.log.submitted.size() == want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    CHECK(fake.log.submitted[i].segments == want[i]);
    CHECK(fake.log.submitted[i].block_bytes == 512);
  }
  CHECK(fake.log.sessions == 1);
  CHECK(fake.log.finishes == 1);
  CHECK(rep.bytes_requested == 26 * kb);
  CHECK(rep.bytes_copied == 26 * kb);
  CHECK(rep.of("nvme-copy").bytes == 26 * kb);
  CHECK(rep.of("nvme-copy").commands == 3);
  CHECK(rep.of("nvme-copy").retries == 0);
  CHECK(rep.fallback_reasons.empty());
  CHECK(core_test::read_file(f.dst_path) == f.expected(ext));
}

TEST_CASE("engine: the in-flight window is min(session queue depth, policy commands_in_flight)") {
  struct window_case {
    unsigned depth, policy_in_flight;
    std::size_t expect;
  };
  for (window_case wc : {window_case{4, 32, 4}, window_case{8, 2, 2}, window_case{1, 32, 1}, window_case{16, 16, 16}}) {
    CAPTURE(wc.depth);
    CAPTURE(wc.policy_in_flight);
    fake_backend fake;
    fake.cfg.limits = {0, 0, 1, true};  // one block per command: 40 commands
    fake.cfg.queue_depth = wc.depth;
    backend_swap swap(fake);
    file_pair f(64 * 1024);
    std::vector<extent> ext{blocks(0, 10, 40)};
    request req{f.src, f.dst, ext};
    policy pol;
    pol.commands_in_flight = wc.policy_in_flight;
    report rep = execute(req, must_plan(req, pol), pol);
    REQUIRE_MESSAGE(rep.result.ok(), rep.result.to_string());
    CHECK(fake.log.submitted.size() == 40);
    CHECK(fake.log.max_in_flight == wc.expect);
    // The window is kept full: once it is, every later command is submitted with the window minus one out.
    for (std::size_t i = wc.expect; i < fake.log.submitted.size(); ++i)
      CHECK(fake.log.submitted[i].in_flight_before == wc.expect - 1);
    CHECK(core_test::read_file(f.dst_path) == f.expected(ext));
  }
}

TEST_CASE("engine: a barrier batch waits for every earlier command, the rest overlap, result is memmove") {
  fake_backend fake;
  fake.cfg.limits = {0, 0, 2, true};  // pieces of 4 blocks become 2 commands each: barrier + follower
  fake.cfg.queue_depth = 8;
  fake.cfg.complete_newest_first = true;  // out-of-order completion
  backend_swap swap(fake);
  core_test::scratch_dir dir;
  std::string path = dir.file("one.bin");
  std::vector<std::uint8_t> data = core_test::random_bytes(64 * 1024, 7);
  core_test::write_file(path, data);
  auto src = core_test::open_device(path, false);
  auto dst = core_test::open_device(path, true);
  // Move 16 blocks up by 4 within one file, then copy the moved region's start back down elsewhere.
  std::vector<extent> ext{blocks(0, 4, 16), blocks(4, 60, 3)};
  request req{src, dst, ext};
  plan p = must_plan(req);
  CHECK(p.same_medium);
  REQUIRE(p.ordered);
  report rep = execute(req, p);
  REQUIRE_MESSAGE(rep.result.ok(), rep.result.to_string());
  REQUIRE(fake.log.submitted.size() == p.batches.size());
  std::size_t overlapped = 0;
  for (std::size_t i = 0; i < p.batches.size(); ++i) {
    CAPTURE(i);
    CHECK(fake.log.submitted[i].segments == batch_segments(p, i));
    if (p.batches[i].barrier)
      CHECK(fake.log.submitted[i].in_flight_before == 0);
    else
      overlapped += fake.log.submitted[i].in_flight_before > 0;
  }
  CHECK(overlapped > 0);  // non-barrier batches did run concurrently
  std::vector<std::uint8_t> want = data;
  for (const extent& e : ext)
    std::memmove(want.data() + e.dst_offset_bytes, want.data() + e.src_offset_bytes, e.length_bytes);
  CHECK(core_test::read_file(path) == want);
}

TEST_CASE("engine: size limit exceeded splits the command in halves and re-sends them") {
  SUBCASE("one segment, split by blocks") {
    fake_backend fake;
    fake.cfg.outcome = [](std::size_t, const recorded_command& c) {
      return c.blocks() > 4 ? fail_with(errc::size_limit_exceeded) : detail::completion{};
    };
    backend_swap swap(fake);
    file_pair f(64 * 1024);
    std::vector<extent> ext{blocks(0, 0, 16)};
    request req{f.src, f.dst, ext};
    report rep = execute(req, must_plan(req));
    REQUIRE_MESSAGE(rep.result.ok(), rep.result.to_string());
    const std::vector<plan_segment> want{{0, 0, 16}, {0, 0, 8}, {0, 0, 4},  {4, 4, 4},
                                         {8, 8, 8},  {8, 8, 4}, {12, 12, 4}};
    REQUIRE(fake.log.submitted.size() == want.size());
    for (std::size_t i = 0; i < want.size(); ++i) {
      REQUIRE(fake.log.submitted[i].segments.size() == 1);
      CHECK(fake.log.submitted[i].segments[0] == want[i]);
    }
    CHECK(rep.of("nvme-copy").retries == 3);
    CHECK(rep.of("nvme-copy").commands == 7);
    CHECK(rep.bytes_copied == 16 * kb);
    CHECK(core_test::read_file(f.dst_path) == f.expected(ext));
  }
  SUBCASE("several segments, split by segments") {
    fake_backend fake;
    fake.cfg.outcome = [](std::size_t, const recorded_command& c) {
      return c.segments.size() > 2 ? fail_with(errc::size_limit_exceeded) : detail::completion{};
    };
    backend_swap swap(fake);
    file_pair f(64 * 1024);
    std::vector<extent> ext{blocks(10, 0, 2), blocks(20, 2, 2), blocks(30, 4, 2), blocks(40, 6, 2)};
    request req{f.src, f.dst, ext};
    plan p = must_plan(req);
    REQUIRE(p.batches.size() == 1);
    report rep = execute(req, p);
    REQUIRE_MESSAGE(rep.result.ok(), rep.result.to_string());
    REQUIRE(fake.log.submitted.size() == 3);
    CHECK(fake.log.submitted[0].segments.size() == 4);
    CHECK(fake.log.submitted[1].segments == std::vector<plan_segment>{{10, 0, 2}, {20, 2, 2}});
    CHECK(fake.log.submitted[2].segments == std::vector<plan_segment>{{30, 4, 2}, {40, 6, 2}});
    CHECK(rep.of("nvme-copy").retries == 1);
    CHECK(core_test::read_file(f.dst_path) == f.expected(ext));
  }
  SUBCASE("a refused single block cannot be split: the error stands") {
    fake_backend fake;
    fake.cfg.outcome = [](std::size_t, const recorded_command&) { return fail_with(errc::size_limit_exceeded); };
    backend_swap swap(fake);
    file_pair f(64 * 1024);
    std::vector<extent> ext{blocks(0, 0, 2)};
    request req{f.src, f.dst, ext};
    report rep = execute(req, must_plan(req));
    CHECK(rep.result.code() == errc::size_limit_exceeded);
    CHECK(rep.bytes_copied == 0);
    CHECK(fake.log.submitted.size() == 2);  // 2 blocks, then the first single block
    CHECK(core_test::read_file(f.dst_path) == f.dst_data);
  }
}

TEST_CASE("engine: not supported falls back in auto mode and fails in offload mode") {
  SUBCASE("auto: the rest of the command and of the plan go to the fallback, with the reason") {
    fake_backend fake;
    fake.cfg.limits = {0, 0, 4, true};
    fake.cfg.outcome = [](std::size_t i, const recorded_command&) {
      return i == 1 ? fail_with(errc::not_supported, 1, "Invalid Opcode") : detail::completion{};
    };
    backend_swap swap(fake);
    file_pair f(64 * 1024);
    std::vector<extent> ext{blocks(0, 8, 16)};
    request req{f.src, f.dst, ext};
    report rep = execute(req, must_plan(req));
    REQUIRE_MESSAGE(rep.result.ok(), rep.result.to_string());
    CHECK(fake.log.submitted.size() == 2);
    CHECK(rep.of("nvme-copy").bytes == 5 * kb);  // one command and one block of the second
    std::uint64_t fallback_bytes = rep.of("copy-file-range").bytes + rep.of("buffered").bytes;
    CHECK(fallback_bytes == 11 * kb);
    CHECK(rep.bytes_copied == 16 * kb);
    REQUIRE(rep.fallback_reasons.size() == 1);
    CHECK(rep.fallback_reasons[0] == "nvme-copy: not-supported: Invalid Opcode");
    CHECK(core_test::read_file(f.dst_path) == f.expected(ext));
  }
  SUBCASE("offload: nothing done yet -> not supported (exit 3), nothing more sent") {
    fake_backend fake;
    fake.cfg.limits = {0, 0, 4, true};
    fake.cfg.outcome = [](std::size_t, const recorded_command&) { return fail_with(errc::not_supported); };
    backend_swap swap(fake);
    file_pair f(64 * 1024);
    std::vector<extent> ext{blocks(0, 0, 16)};
    request req{f.src, f.dst, ext};
    policy pol;
    pol.mode = copy_mode::offload;
    report rep = execute(req, must_plan(req, pol), pol);
    CHECK(rep.result.code() == errc::not_supported);
    CHECK(rep.bytes_copied == 0);
    CHECK(fake.log.submitted.size() == 1);
    CHECK(rep.of("copy-file-range").bytes == 0);
    CHECK(rep.of("buffered").bytes == 0);
    CHECK(core_test::read_file(f.dst_path) == f.dst_data);
  }
  SUBCASE("offload: after data moved it is a device error, not 'offload impossible'") {
    fake_backend fake;
    fake.cfg.limits = {0, 0, 4, true};
    fake.cfg.outcome = [](std::size_t i, const recorded_command&) {
      return i == 2 ? fail_with(errc::not_supported) : detail::completion{};
    };
    backend_swap swap(fake);
    file_pair f(64 * 1024);
    std::vector<extent> ext{blocks(0, 0, 16)};
    request req{f.src, f.dst, ext};
    policy pol;
    pol.mode = copy_mode::offload;
    report rep = execute(req, must_plan(req, pol), pol);
    CHECK(rep.result.code() == errc::device_error);
    CHECK(rep.bytes_copied == 8 * kb);
  }
  SUBCASE("open_session says not supported: auto falls back, offload fails") {
    for (copy_mode mode : {copy_mode::automatic, copy_mode::offload}) {
      fake_backend fake;
      fake.cfg.open_error = status(errc::not_supported, "no Copy on this namespace");
      backend_swap swap(fake);
      file_pair f(64 * 1024);
      std::vector<extent> ext{blocks(0, 0, 16)};
      request req{f.src, f.dst, ext};
      policy pol;
      pol.mode = mode;
      report rep = execute(req, must_plan(req, pol), pol);
      if (mode == copy_mode::automatic) {
        REQUIRE_MESSAGE(rep.result.ok(), rep.result.to_string());
        REQUIRE(rep.fallback_reasons.size() == 1);
        CHECK(rep.fallback_reasons[0] == "nvme-copy: no Copy on this namespace");
        CHECK(rep.bytes_copied == 16 * kb);
        CHECK(core_test::read_file(f.dst_path) == f.expected(ext));
      } else {
        CHECK(rep.result.code() == errc::not_supported);
        CHECK(rep.bytes_copied == 0);
        CHECK(core_test::read_file(f.dst_path) == f.dst_data);
      }
    }
  }
}

TEST_CASE("engine: a device error stops the copy with the exact bytes known done") {
  SUBCASE("synchronous: the partial prefix of the failed command counts, nothing after it is sent") {
    fake_backend fake;
    fake.cfg.limits = {0, 0, 4, true};
    fake.cfg.outcome = [](std::size_t i, const recorded_command&) {
      if (i != 2) return detail::completion{};
      detail::completion c;
      nvme_status_detail d;
      d.sct = 1;
      d.sc = 0x82;
      d.dw0 = 3;
      d.name = "Attempted Write to Read Only Range";
      c.result = status(errc::device_error, "Copy failed").with_nvme(d);
      c.blocks_done = 3;
      return c;
    };
    backend_swap swap(fake);
    file_pair f(64 * 1024);
    std::vector<extent> ext{blocks(0, 0, 16)};
    request req{f.src, f.dst, ext};
    report rep = execute(req, must_plan(req));
    CHECK(rep.result.code() == errc::device_error);
    REQUIRE(rep.result.nvme().has_value());
    CHECK(rep.result.nvme()->sc == 0x82);
    CHECK(rep.result.nvme()->dw0 == 3);
    CHECK(fake.log.submitted.size() == 3);
    CHECK(rep.bytes_copied == 11 * kb);
    CHECK(rep.bytes_copied == fake.log.blocks_written * kb);
    CHECK(rep.of("nvme-copy").bytes == 11 * kb);
    CHECK(rep.of("copy-file-range").bytes == 0);  // a real error never falls back
    CHECK(rep.of("buffered").bytes == 0);
    std::vector<std::uint8_t> want = f.expected({blocks(0, 0, 11)});
    CHECK(core_test::read_file(f.dst_path) == want);
  }
  SUBCASE("a partial prefix spanning segments") {
    fake_backend fake;
    fake.cfg.outcome = [](std::size_t, const recorded_command&) { return fail_with(errc::device_error, 3); };
    backend_swap swap(fake);
    file_pair f(64 * 1024);
    std::vector<extent> ext{blocks(10, 0, 2), blocks(20, 2, 2)};
    request req{f.src, f.dst, ext};
    report rep = execute(req, must_plan(req));
    CHECK(rep.result.code() == errc::device_error);
    CHECK(rep.bytes_copied == 3 * kb);
    CHECK(core_test::read_file(f.dst_path) == f.expected({blocks(10, 0, 2), blocks(20, 2, 1)}));
  }
  SUBCASE("asynchronous, out of order: commands in flight still count, bytes match what landed") {
    fake_backend fake;
    fake.cfg.limits = {0, 0, 2, true};
    fake.cfg.queue_depth = 4;
    fake.cfg.complete_newest_first = true;
    fake.cfg.outcome = [](std::size_t i, const recorded_command&) {
      return i == 5 ? fail_with(errc::io_error, 1) : detail::completion{};
    };
    backend_swap swap(fake);
    file_pair f(64 * 1024);
    std::vector<extent> ext{blocks(0, 0, 40)};
    request req{f.src, f.dst, ext};
    report rep = execute(req, must_plan(req));
    CHECK(rep.result.code() == errc::io_error);
    CHECK(rep.bytes_copied == fake.log.blocks_written * kb);
    CHECK(fake.log.submitted.size() < 20);
    CHECK(fake.log.completed.size() == fake.log.submitted.size());  // nothing left in flight
  }
  SUBCASE("reap failing: the outcome of what is in flight is unknown, the copy stops") {
    fake_backend fake;
    fake.cfg.limits = {0, 0, 2, true};
    fake.cfg.reap_fails_after = 2;
    backend_swap swap(fake);
    file_pair f(64 * 1024);
    std::vector<extent> ext{blocks(0, 0, 10)};
    request req{f.src, f.dst, ext};
    report rep = execute(req, must_plan(req));
    CHECK(rep.result.code() == errc::io_error);
    CHECK(rep.bytes_copied == 4 * kb);
    CHECK(fake.log.submitted.size() == 3);
  }
}

TEST_CASE("engine: cancellation stops between commands") {
  SUBCASE("set by the progress callback after two commands") {
    fake_backend fake;
    fake.cfg.limits = {0, 0, 2, true};
    backend_swap swap(fake);
    file_pair f(64 * 1024);
    std::vector<extent> ext{blocks(0, 0, 10)};
    request req{f.src, f.dst, ext};
    std::atomic<bool> cancel{false};
    policy pol;
    pol.cancel = &cancel;
    pol.on_progress = [&](const progress& pr) {
      if (pr.commands_done == 2) cancel = true;
    };
    report rep = execute(req, must_plan(req, pol), pol);
    CHECK(rep.result.code() == errc::cancelled);
    CHECK(fake.log.submitted.size() == 2);
    CHECK(rep.bytes_copied == 4 * kb);
    CHECK(core_test::read_file(f.dst_path) == f.expected({blocks(0, 0, 4)}));
  }
  SUBCASE("set before the start: nothing is sent") {
    fake_backend fake;
    backend_swap swap(fake);
    file_pair f(64 * 1024);
    request req{f.src, f.dst, {blocks(0, 0, 10)}};
    std::atomic<bool> cancel{true};
    policy pol;
    pol.cancel = &cancel;
    report rep = execute(req, must_plan(req, pol), pol);
    CHECK(rep.result.code() == errc::cancelled);
    CHECK(fake.log.submitted.empty());
    CHECK(rep.bytes_copied == 0);
  }
}

TEST_CASE("engine: the progress callback sees every completed command") {
  fake_backend fake;
  fake.cfg.limits = {0, 0, 3, true};
  fake.cfg.queue_depth = 2;
  backend_swap swap(fake);
  file_pair f(64 * 1024);
  std::vector<extent> ext{blocks(0, 0, 13)};
  request req{f.src, f.dst, ext};
  std::vector<progress> seen;
  policy pol;
  pol.on_progress = [&](const progress& pr) { seen.push_back(pr); };
  plan p = must_plan(req, pol);
  report rep = execute(req, p, pol);
  REQUIRE(rep.result.ok());
  REQUIRE(seen.size() == p.batches.size());
  for (std::size_t i = 0; i < seen.size(); ++i) {
    CHECK(seen[i].commands_done == i + 1);
    CHECK(seen[i].bytes_total == 13 * kb);
    if (i > 0) CHECK(seen[i].bytes_done > seen[i - 1].bytes_done);
    if (i > 0) CHECK(seen[i].elapsed_seconds >= seen[i - 1].elapsed_seconds);
  }
  CHECK(seen.back().bytes_done == 13 * kb);
}

TEST_CASE("engine: verify reads both sides back") {
  SUBCASE("match") {
    fake_backend fake;
    backend_swap swap(fake);
    file_pair f(64 * 1024);
    request req{f.src, f.dst, {blocks(0, 8, 16)}};
    policy pol;
    pol.verify = true;
    report rep = execute(req, must_plan(req, pol), pol);
    REQUIRE_MESSAGE(rep.result.ok(), rep.result.to_string());
    CHECK(rep.verified);
    CHECK(rep.first_mismatch_offset == -1);
  }
  SUBCASE("a corrupted destination byte is found at its exact offset") {
    fake_backend fake;
    fake.cfg.corrupt_dst_byte = 8 * kb + 1234;
    backend_swap swap(fake);
    file_pair f(64 * 1024);
    request req{f.src, f.dst, {blocks(0, 8, 16)}};
    policy pol;
    pol.verify = true;
    report rep = execute(req, must_plan(req, pol), pol);
    CHECK(rep.result.code() == errc::verify_mismatch);
    CHECK_FALSE(rep.verified);
    CHECK(rep.first_mismatch_offset == 8 * kb + 1234);
  }
}

TEST_CASE("engine: verify after an overlapping move on one file is skipped, and is not a fallback reason") {
  fake_backend fake;
  backend_swap swap(fake);
  core_test::scratch_dir dir;
  std::string path = dir.file("one.bin");
  core_test::write_file(path, core_test::random_bytes(64 * 1024, 3));
  auto src = core_test::open_device(path, false);
  auto dst = core_test::open_device(path, true);
  request req{src, dst, {blocks(0, 2, 8)}};
  policy pol;
  pol.verify = true;
  plan p = must_plan(req, pol);
  REQUIRE(p.ordered);
  report rep = execute(req, p, pol);
  REQUIRE_MESSAGE(rep.result.ok(), rep.result.to_string());
  CHECK_FALSE(rep.verified);
  CHECK(rep.fallback_reasons.empty());
  CHECK(rep.of("nvme-copy").bytes == 8 * kb);
}

TEST_CASE("make_plan: backend choice, alignment, modes and limit overrides") {
  SUBCASE("misaligned extent: offload mode refuses it, auto mode plans the fallback and says why") {
    fake_backend fake;
    backend_swap swap(fake);
    file_pair f(64 * 1024);
    request req{f.src, f.dst, {{0, 0, 1000}}};
    policy off;
    off.mode = copy_mode::offload;
    auto p = make_plan(req, off);
    REQUIRE_FALSE(p.ok());
    CHECK(p.error().code() == errc::misaligned);
    CHECK(p.error().message() == "extent 1 (0:0:1000) is not a multiple of the 512-byte logical block");
    plan a = must_plan(req);
    CHECK(a.backend == "copy-file-range");
    REQUIRE_FALSE(a.considered.empty());
    CHECK(a.considered[0].backend == "nvme-copy");
    CHECK_FALSE(a.considered[0].chosen);
    CHECK(a.considered[0].reason == "extent 1 is not aligned to 512-byte blocks");
  }
  SUBCASE("a backend that cannot copy the pair: offload mode says why, fallback mode never asks") {
    fake_backend fake;
    fake.cfg.check_ok = false;
    backend_swap swap(fake);
    file_pair f(64 * 1024);
    request req{f.src, f.dst, {blocks(0, 0, 4)}};
    policy off;
    off.mode = copy_mode::offload;
    auto p = make_plan(req, off);
    REQUIRE_FALSE(p.ok());
    CHECK(p.error().code() == errc::not_supported);
    CHECK(p.error().message().find("offload impossible: nvme-copy: fake device refuses") == 0);
    policy fb;
    fb.mode = copy_mode::fallback;
    fake.cfg.check_ok = true;
    plan q = must_plan(req, fb);
    CHECK(q.backend == "copy-file-range");
    CHECK(q.considered[0].reason == "mode fallback: offload disabled");
  }
  SUBCASE("overrides only tighten the device limits") {
    fake_backend fake;
    fake.cfg.limits = {4, 8, 16, true};
    backend_swap swap(fake);
    file_pair f(64 * 1024);
    request req{f.src, f.dst, {blocks(0, 0, 64)}};
    policy tight;
    tight.limit_override = {0, 2, 0, false};
    plan t = must_plan(req, tight);
    CHECK(t.limits == copy_limits{4, 2, 16, true});
    CHECK(t.batches.size() == 8);  // 4 segments x 2 blocks per command
    policy loose;
    loose.limit_override = {100, 100, 100, false};
    plan l = must_plan(req, loose);
    CHECK(l.limits == copy_limits{4, 8, 16, true});
    CHECK(l.batches.size() == 4);
  }
  SUBCASE("a destination not open for writing is refused") {
    fake_backend fake;
    backend_swap swap(fake);
    file_pair f(4096);
    auto ro = core_test::open_device(f.dst_path, false);
    request req{f.src, ro, {}};
    auto p = make_plan(req);
    REQUIRE_FALSE(p.ok());
    CHECK(p.error().code() == errc::read_only);
  }
  SUBCASE("overlap refused when the policy says so") {
    fake_backend fake;
    backend_swap swap(fake);
    file_pair f(64 * 1024);
    auto same = core_test::open_device(f.src_path, true);
    request req{f.src, same, {blocks(0, 1, 4)}};
    policy pol;
    pol.allow_overlap = false;
    auto p = make_plan(req, pol);
    REQUIRE_FALSE(p.ok());
    CHECK(p.error().code() == errc::overlap);
  }
}

TEST_CASE("replace_backend puts the original back") {
  detail::backend* before = detail::find_backend("nvme-copy");
  {
    fake_backend fake;
    backend_swap swap(fake);
    CHECK(detail::find_backend("nvme-copy") == &fake);
  }
  CHECK(detail::find_backend("nvme-copy") == before);
}

TEST_CASE("engine: before an offload, dirty pages are written back (no device cache flush), once per node") {
  static std::atomic<int> write_backs{0}, fsyncs{0};
  write_backs = 0;
  fsyncs = 0;
  detail::sys_table t = detail::real_sys();
  t.sync_file_range = [](int fd, off_t off, off_t n, unsigned flags) {
    ++write_backs;
    return detail::real_sys().sync_file_range(fd, off, n, flags);
  };
  t.fsync = [](int fd) {
    ++fsyncs;
    return detail::real_sys().fsync(fd);
  };
  detail::scoped_sys_override seam(t);
  fake_backend fake;
  backend_swap swap(fake);
  file_pair f(64 * 1024);
  request req{f.src, f.dst, {blocks(0, 8, 4)}};
  policy pol;
  pol.sync = false;  // the fake's finish() syncs nothing; the engine's write-back is what is counted
  report rep = copy(req, pol);
  REQUIRE_MESSAGE(rep.result.ok(), rep.result.to_string());
  CHECK(write_backs == 2);  // source and destination
  CHECK(fsyncs == 0);
  // One file as both source and destination (two device objects, one page cache): once.
  write_backs = 0;
  auto same = core_test::open_device(f.src_path, true);
  rep = copy(request{f.src, same, {blocks(0, 64, 4)}}, pol);
  REQUIRE_MESSAGE(rep.result.ok(), rep.result.to_string());
  CHECK(write_backs == 1);
}
