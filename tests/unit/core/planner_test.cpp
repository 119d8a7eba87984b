// Example-based tests of the planner: validation errors, merging, ordering, limits.
#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <vector>

#include "src/core/planner.hpp"

using namespace offcopy;
using namespace offcopy::detail;

namespace {
side_geometry side(std::uint64_t size, const char* identity = "", std::uint64_t offset = 0, bool grow = false) {
  return {size, grow, identity, offset};
}
constexpr std::uint64_t max64 = std::numeric_limits<std::uint64_t>::max();
}  // namespace

TEST_CASE("validate_extents: an empty list means the whole source to offset 0") {
  std::vector<extent> ext;
  REQUIRE(validate_extents(ext, side(8192), side(8192)).ok());
  REQUIRE(ext.size() == 1);
  CHECK(ext[0] == extent{0, 0, 8192});

  std::vector<extent> none;
  status s = validate_extents(none, side(0), side(8192));
  CHECK(s.code() == errc::zero_length);
  CHECK(s.message() == "source is empty: nothing to copy");
}

TEST_CASE("validate_extents: zero length names the extent") {
  std::vector<extent> ext{{0, 0, 512}, {512, 512, 0}};
  status s = validate_extents(ext, side(4096), side(4096));
  CHECK(s.code() == errc::zero_length);
  CHECK(s.message() == "extent 2: zero length");
}

TEST_CASE("validate_extents: offset + length overflowing 64 bits") {
  std::vector<extent> a{{max64 - 10, 0, 100}};
  CHECK(validate_extents(a, side(max64), side(max64)).code() == errc::invalid_argument);
  std::vector<extent> b{{0, max64, 2}};
  status s = validate_extents(b, side(max64), side(max64, "", 0, true));
  CHECK(s.code() == errc::invalid_argument);
  CHECK(s.message() == "extent 1: offset + length overflows 64 bits");
}

TEST_CASE("validate_extents: out of range on either side") {
  SUBCASE("past the end of the source") {
    std::vector<extent> ext{{4000, 0, 200}};
    status s = validate_extents(ext, side(4096), side(1 << 20));
    CHECK(s.code() == errc::out_of_range);
    CHECK(s.message() == "extent 1: source bytes [4000, 4200) are past the end of the source (4096 bytes)");
  }
  SUBCASE("exactly to the end is fine") {
    std::vector<extent> ext{{3996, 0, 100}};
    CHECK(validate_extents(ext, side(4096), side(4096)).ok());
  }
  SUBCASE("past the end of a fixed-size destination") {
    std::vector<extent> ext{{0, 4096, 512}};
    status s = validate_extents(ext, side(8192), side(4096));
    CHECK(s.code() == errc::out_of_range);
    CHECK(s.message() == "extent 1: destination bytes [4096, 4608) are past the end of the destination (4096 bytes)");
  }
  SUBCASE("a growable destination (regular file) may be extended") {
    std::vector<extent> ext{{0, 1 << 20, 512}};
    CHECK(validate_extents(ext, side(8192), side(0, "", 0, true)).ok());
  }
  SUBCASE("but not past the largest file offset (off_t)") {
    const std::uint64_t off_max = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    std::vector<extent> fits{{0, off_max - 512, 512}};
    CHECK(validate_extents(fits, side(8192), side(0, "", 0, true)).ok());
    std::vector<extent> past{{0, off_max - 511, 512}};
    status s = validate_extents(past, side(8192), side(0, "", 0, true));
    CHECK(s.code() == errc::out_of_range);
    CHECK(s.message() ==
          "extent 1: destination bytes [9223372036854775296, 9223372036854775808) are past the "
          "largest file offset");
  }
}

TEST_CASE("validate_extents: two extents writing the same destination bytes") {
  SUBCASE("overlapping") {
    std::vector<extent> ext{{0, 1000, 100}, {5000, 0, 10}, {200, 1050, 100}};
    status s = validate_extents(ext, side(8192), side(8192));
    CHECK(s.code() == errc::overlap);
    CHECK(s.message() == "extents 1 and 3 both write destination bytes [1050, 1100)");
  }
  SUBCASE("one inside another") {
    std::vector<extent> ext{{0, 0, 4096}, {0, 100, 10}};
    CHECK(validate_extents(ext, side(8192), side(8192)).code() == errc::overlap);
  }
  SUBCASE("touching is not overlapping") {
    std::vector<extent> ext{{0, 100, 100}, {0, 0, 100}};
    CHECK(validate_extents(ext, side(8192), side(8192)).ok());
  }
  SUBCASE("sources may overlap each other") {
    std::vector<extent> ext{{0, 0, 100}, {50, 100, 100}};
    CHECK(validate_extents(ext, side(8192), side(8192)).ok());
  }
}

TEST_CASE("first_misaligned") {
  std::vector<extent> ext{{0, 0, 4096}, {512, 1024, 512}, {512, 1024, 100}};
  CHECK(first_misaligned(ext, 1) == -1);
  CHECK(first_misaligned(ext, 512) == 2);
  CHECK(first_misaligned(ext, 4096) == 1);
  CHECK(first_misaligned(std::vector<extent>{{4096, 8192, 8192}}, 4096) == -1);
}

TEST_CASE("has_overlap_hazard") {
  std::vector<extent> ext{{0, 50, 100}};
  CHECK(has_overlap_hazard(ext, side(1000, "m"), side(1000, "m")));
  std::vector<extent> touching{{0, 100, 100}};  // source [0,100) ends where the destination starts
  CHECK_FALSE(has_overlap_hazard(touching, side(1000, "m"), side(1000, "m")));
  CHECK_FALSE(has_overlap_hazard(ext, side(1000, "a"), side(1000, "b")));
  CHECK_FALSE(has_overlap_hazard(ext, side(1000, ""), side(1000, "")));  // unknown identity: not the same medium
  // Same disk, partitions: source partition at 0, destination partition at 100 -> dst 0..100 is medium 100..200.
  std::vector<extent> parts{{100, 0, 100}};
  CHECK(has_overlap_hazard(parts, side(1000, "disk", 0), side(1000, "disk", 100)));
  std::vector<extent> apart{{0, 0, 100}};
  CHECK_FALSE(has_overlap_hazard(apart, side(1000, "disk", 0), side(1000, "disk", 100)));
  // Another extent's source reading what an earlier one writes is a hazard too.
  std::vector<extent> chain{{0, 500, 10}, {505, 800, 10}};
  CHECK(has_overlap_hazard(chain, side(1000, "m"), side(1000, "m")));
}

TEST_CASE("pack_extents: adjacent extents are merged, sorted by destination") {
  std::vector<extent> ext{{1024, 1024, 512}, {0, 0, 512}, {512, 512, 512}, {8192, 4096, 512}};
  plan p;
  pack_extents(ext, 512, copy_limits{}, false, 0, p);
  REQUIRE(p.segments.size() == 2);
  CHECK(p.segments[0] == plan_segment{0, 0, 3});
  CHECK(p.segments[1] == plan_segment{16, 8, 1});
  REQUIRE(p.batches.size() == 1);  // no limits, scatter allowed: one command
  CHECK(p.batches[0].segment_count == 2);
  CHECK_FALSE(p.ordered);

  // Adjacent in the destination only: two segments, still one command when destinations may gather.
  std::vector<extent> gather{{0, 0, 512}, {4096, 512, 512}};
  plan g;
  pack_extents(gather, 512, copy_limits{0, 0, 0, true}, false, 0, g);
  CHECK(g.segments.size() == 2);
  CHECK(g.batches.size() == 1);
}

TEST_CASE("pack_extents: limits split segments and commands") {
  std::vector<extent> ext{{0, 0, 10 * 512}};
  plan p;
  pack_extents(ext, 512, copy_limits{2, 3, 0, true}, false, 0, p);
  // 10 blocks, 3 per segment, 2 segments per command: 6 + 4.
  REQUIRE(p.batches.size() == 2);
  CHECK(p.batch_blocks(p.batches[0]) == 6);
  CHECK(p.batch_blocks(p.batches[1]) == 4);
  CHECK(p.segments == std::vector<plan_segment>{{0, 0, 3}, {3, 3, 3}, {6, 6, 3}, {9, 9, 1}});

  plan q;
  std::vector<extent> e2{{0, 0, 10 * 512}};
  pack_extents(e2, 512, copy_limits{0, 0, 4, false}, false, 0, q);
  REQUIRE(q.batches.size() == 3);
  CHECK(q.batch_blocks(q.batches[2]) == 2);
}

TEST_CASE("pack_extents: contiguous destination breaks a command at a destination gap") {
  std::vector<extent> ext{{0, 0, 512}, {512, 1024, 512}};
  plan scatter, gather;
  std::vector<extent> e1 = ext, e2 = ext;
  pack_extents(e1, 512, copy_limits{}, false, 0, scatter);
  pack_extents(e2, 512, copy_limits{0, 0, 0, true}, false, 0, gather);
  CHECK(scatter.batches.size() == 1);
  CHECK(gather.batches.size() == 2);
}

TEST_CASE("pack_extents: an extent overlapping itself is moved in memmove order behind barriers") {
  SUBCASE("moving up, no limits: one segment copied from its end") {
    std::vector<extent> ext{{0, 2, 8}};  // one file, unit 1: [0,8) -> [2,10)
    plan p;
    pack_extents(ext, 1, copy_limits{}, true, 0, p);
    CHECK(p.ordered);
    CHECK(p.segments == std::vector<plan_segment>{{0, 2, 8}});
    REQUIRE(p.batches.size() == 1);
    CHECK(p.batches[0].barrier);
    CHECK(p.batches[0].order == copy_order::descending);
  }
  SUBCASE("moving up within limits: command-sized pieces from the end, the last one too short to overlap") {
    std::vector<extent> ext{{0, 2, 8}};
    plan p;
    pack_extents(ext, 1, copy_limits{0, 0, 3, false}, true, 0, p);
    CHECK(p.segments == std::vector<plan_segment>{{5, 7, 3}, {2, 4, 3}, {0, 2, 2}});
    REQUIRE(p.batches.size() == 3);
    for (const auto& b : p.batches) CHECK(b.barrier);
    CHECK(p.batches[0].order == copy_order::descending);
    CHECK(p.batches[1].order == copy_order::descending);
    CHECK(p.batches[2].order == copy_order::any);  // 2 blocks moved by 2 do not overlap
  }
  SUBCASE("moving down: copied from its start") {
    std::vector<extent> ext{{3, 0, 8}};
    plan p;
    pack_extents(ext, 1, copy_limits{}, true, 0, p);
    CHECK(p.segments == std::vector<plan_segment>{{3, 0, 8}});
    REQUIRE(p.batches.size() == 1);
    CHECK(p.batches[0].order == copy_order::ascending);
  }
  SUBCASE("a shift at least a command long: pieces of the shift, no memmove order needed") {
    std::vector<extent> ext{{0, 4, 10}};
    plan p;
    pack_extents(ext, 1, copy_limits{0, 2, 0, false}, true, 0, p);
    // Pieces of 4 from the end, each split into segments of 2 that run together in one command.
    CHECK(p.segments == std::vector<plan_segment>{{6, 10, 2}, {8, 12, 2}, {2, 6, 2}, {4, 8, 2}, {0, 4, 2}});
    REQUIRE(p.batches.size() == 3);
    CHECK(p.batches[0].segment_count == 2);
    CHECK(p.batches[1].segment_count == 2);
    for (const auto& b : p.batches) {
      CHECK(b.barrier);
      CHECK(b.order == copy_order::any);
    }
  }
  SUBCASE("partitions of one disk: the medium offset decides") {
    // Source partition at medium 0, destination partition at medium 4: src 0..8 -> dst 0..8 is a move up by 4.
    std::vector<extent> ext{{0, 0, 8}};
    plan p;
    pack_extents(ext, 1, copy_limits{}, true, 4, p);
    CHECK(p.segments == std::vector<plan_segment>{{0, 0, 8}});
    CHECK(p.batches[0].order == copy_order::descending);
    CHECK(memmove_piece_blocks(p.segments[0], 1, 4) == 4);
  }
  SUBCASE("request order is kept between extents") {
    std::vector<extent> ext{{100, 0, 10}, {0, 100, 10}};  // swap-like: the second reads what the first wrote
    plan p;
    pack_extents(ext, 1, copy_limits{}, true, 0, p);
    CHECK(p.segments == std::vector<plan_segment>{{100, 0, 10}, {0, 100, 10}});
    REQUIRE(p.batches.size() == 2);
    CHECK(p.batches[1].barrier);
  }
}

TEST_CASE("pack_extents: a move by a tiny shift has a plan the size of a plain copy's (issue 8.3)") {
  SUBCASE("1023 MiB up by 1 byte in 64 MiB commands: 16 batches, not a billion") {
    std::vector<extent> ext{{0, 1, 1023ULL << 20}};
    plan p;
    pack_extents(ext, 1, copy_limits{0, 0, 64ULL << 20, false}, true, 0, p);
    REQUIRE(p.batches.size() == 16);
    CHECK(p.segments.size() == 16);
    CHECK(p.segments.front() == plan_segment{959ULL << 20, (959ULL << 20) + 1, 64ULL << 20});
    CHECK(p.segments.back() == plan_segment{0, 1, 63ULL << 20});
    for (const auto& b : p.batches) CHECK(b.order == copy_order::descending);
    CHECK(p.total_bytes() == 1023ULL << 20);
  }
  SUBCASE("an NVMe-like device, 1 GiB down by one 512-byte block: one batch per 128-block range") {
    std::vector<extent> ext{{512, 0, 1ULL << 30}};
    plan p;
    pack_extents(ext, 512, copy_limits{127, 128, 16384, true}, true, 0, p);
    CHECK(p.batches.size() == (1ULL << 30) / (128 * 512));
    CHECK(p.batches.front().order == copy_order::ascending);
  }
}

TEST_CASE("take_memmove_piece: pieces of the shift from the right end") {
  plan_segment up{0, 3, 10};
  CHECK(take_memmove_piece(up, copy_order::descending, 3) == plan_segment{7, 10, 3});
  CHECK(up == plan_segment{0, 3, 7});
  CHECK(take_memmove_piece(up, copy_order::descending, 100) == plan_segment{0, 3, 7});
  CHECK(up.blocks == 0);
  plan_segment down{5, 0, 7};
  CHECK(take_memmove_piece(down, copy_order::ascending, 5) == plan_segment{5, 0, 5});
  CHECK(down == plan_segment{10, 5, 2});
  CHECK(take_memmove_piece(down, copy_order::ascending, 0) == plan_segment{10, 5, 1});  // at least one block
  CHECK(memmove_piece_blocks(plan_segment{0, 3, 10}, 512, 0) == 3);
  CHECK(memmove_piece_blocks(plan_segment{8, 0, 10}, 512, 1024) == 6);
  CHECK(memmove_piece_blocks(plan_segment{0, 0, 10}, 4096, 512) == 1);  // less than a block: one
}
