// A move by a tiny shift (issue 8.3, 13.4): the plan holds one memmove-ordered segment per command-sized
// piece, and the engine cuts it, as the copy runs, into pieces of the shift distance for a backend that
// cannot copy a range onto itself (the scripted fake offload backend here). Checked: the exact pieces
// sent, one at a time, from the right end; the bytes equal a reference memmove; a failure mid-way
// counts exactly the pieces done; a refusal hands the rest to the fallbacks, which finish in order.
#include <doctest/doctest.h>

#include <cstring>
#include <vector>

#include "src/core/planner.hpp"
#include "tests/unit/core/fake_backend.hpp"

using namespace offcopy;
using offcopy::core_test::backend_swap;
using offcopy::core_test::fake_backend;

namespace {

constexpr std::uint64_t kb = 512;  // the fake's block

struct one_file {
  core_test::scratch_dir dir;
  std::string path = dir.file("one.bin");
  std::vector<std::uint8_t> data;
  std::shared_ptr<device> src, dst;
  explicit one_file(std::size_t bytes) : data(core_test::random_bytes(bytes, 11)) {
    core_test::write_file(path, data);
    src = core_test::open_device(path, false);
    dst = core_test::open_device(path, true);
  }
  /// The file after memmove of `e`, with only the part moved by the first `done` blocks of the copy
  /// order (from the end when moving up) applied.
  [[nodiscard]] std::vector<std::uint8_t> moved(const extent& e, std::uint64_t done_bytes) const {
    std::vector<std::uint8_t> out = data;
    const bool up = e.dst_offset_bytes > e.src_offset_bytes;
    const std::uint64_t skip = up ? e.length_bytes - done_bytes : 0;
    std::memmove(out.data() + e.dst_offset_bytes + skip, data.data() + e.src_offset_bytes + skip, done_bytes);
    return out;
  }
};

plan must_plan(const request& req, const policy& pol = {}) {
  auto p = make_plan(req, pol);
  REQUIRE_MESSAGE(p.ok(), (p.ok() ? std::string() : p.error().to_string()));
  return p.value();
}

}  // namespace

TEST_CASE("engine: a memmove batch reaches an offload backend as pieces of the shift, one at a time") {
  for (bool up : {true, false}) {
    CAPTURE(up);
    fake_backend fake;
    fake.cfg.limits = {4, 64, 256, true};  // the largest one-segment command: 64 blocks
    fake.cfg.queue_depth = 8;
    backend_swap swap(fake);
    one_file f(1 << 20);
    const extent e = up ? extent{0, 3 * kb, 1000 * kb} : extent{3 * kb, 0, 1000 * kb};
    request req{f.src, f.dst, {e}};
    plan p = must_plan(req);
    REQUIRE(p.ordered);
    CHECK(p.batches.size() == 16);  // 15 x 64 + 40 blocks: the size of a plain copy's plan
    CHECK(p.batches.front().order == (up ? copy_order::descending : copy_order::ascending));
    report rep = execute(req, p);
    REQUIRE_MESSAGE(rep.result.ok(), rep.result.to_string());
    // Pieces of 3 blocks, from the end when moving up (from the start when moving down).
    std::vector<plan_segment> want;
    for (std::size_t b = 0; b < p.batches.size(); ++b) {
      plan_segment rest = p.segments[p.batches[b].first_segment];
      while (rest.blocks > 0) want.push_back(detail::take_memmove_piece(rest, p.batches[b].order, 3));
    }
    REQUIRE(want.size() == 15 * 22 + 14);  // per 64 blocks: 21 x 3 + 1; the last 40: 13 x 3 + 1
    REQUIRE(fake.log.submitted.size() == want.size());
    for (std::size_t i = 0; i < want.size(); ++i) {
      CAPTURE(i);
      REQUIRE(fake.log.submitted[i].segments.size() == 1);
      CHECK(fake.log.submitted[i].segments[0] == want[i]);
      CHECK(fake.log.submitted[i].in_flight_before == 0);
    }
    CHECK(want.front() == (up ? plan_segment{997, 1000, 3} : plan_segment{3, 0, 3}));
    CHECK(rep.bytes_copied == 1000 * kb);
    CHECK(rep.of("nvme-copy").commands == want.size());
    CHECK(core_test::read_file(f.path) == f.moved(e, e.length_bytes));
  }
}

TEST_CASE("engine: a failing memmove piece counts exactly the pieces before it") {
  fake_backend fake;
  fake.cfg.limits = {0, 0, 100, true};
  backend_swap swap(fake);
  one_file f(256 * 1024);
  const extent e{0, 4 * kb, 300 * kb};  // up by 4 blocks
  fake.cfg.outcome = [](std::size_t index, const core_test::recorded_command&) {
    detail::completion c;
    if (index == 30) {
      c.result = status(errc::io_error, "fake failure");
      c.blocks_done = 1;  // a prefix of the piece, in its segment order
    }
    return c;
  };
  request req{f.src, f.dst, {e}};
  report rep = execute(req, must_plan(req));
  CHECK(rep.result.code() == errc::io_error);
  CHECK(fake.log.submitted.size() == 31);  // nothing after the failure
  // 30 pieces of 4 blocks from the end, then the first block of the 31st piece.
  CHECK(rep.bytes_copied == (30 * 4 + 1) * kb);
  std::vector<std::uint8_t> want = f.moved(e, 30 * 4 * kb);
  const plan_segment last = fake.log.submitted.back().segments.at(0);
  std::memcpy(want.data() + last.dst_block * kb, f.data.data() + last.src_block * kb, kb);
  CHECK(core_test::read_file(f.path) == want);
}

TEST_CASE("engine: an offload refusal mid-move hands the memmove rest to the fallbacks, in order") {
  fake_backend fake;
  fake.cfg.limits = {0, 0, 64, true};
  backend_swap swap(fake);
  one_file f(512 * 1024);
  const extent e{kb, 0, 900 * kb};  // down by 1 block
  fake.cfg.outcome = [](std::size_t index, const core_test::recorded_command&) {
    detail::completion c;
    if (index == 100) c.result = status(errc::not_supported, "fake: copy no longer possible");
    return c;
  };
  request req{f.src, f.dst, {e}};
  report rep = execute(req, must_plan(req));
  REQUIRE_MESSAGE(rep.result.ok(), rep.result.to_string());
  CHECK(rep.of("nvme-copy").bytes == 100 * kb);
  // The refused piece (1 block, not overlapping itself) goes to copy_file_range; the memmove rest
  // of the batch, a move by 1 block, it refuses too, for the buffered copier.
  CHECK(rep.of("copy-file-range").bytes == 1 * kb);
  CHECK(rep.of("buffered").bytes == 799 * kb);
  CHECK(rep.bytes_copied == 900 * kb);
  CHECK(core_test::read_file(f.path) == f.moved(e, e.length_bytes));
}
