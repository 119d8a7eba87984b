// The resolution stage's pure parts: device-mapper table parameters as the kernel prints them, and
// ranges mapped through a stack of nodes onto media.
//
// Expected values are written from the kernel's own descriptions, not from our code:
//   linear:    Documentation/admin-guide/device-mapper/linear.rst ("<dev path> <offset>"),
//   striped:   Documentation/admin-guide/device-mapper/striped.rst ("<num devs> <chunk size>
//              [<dev path> <offset>]+") and drivers/md/dm-stripe.c stripe_map_sector (chunk =
//              offset / chunk size; stripe = chunk mod stripes; sector on it = (chunk / stripes) *
//              chunk size + offset in the chunk + the stripe's start),
//   multipath: drivers/md/dm-mpath.c multipath_status (STATUSTYPE_TABLE and STATUSTYPE_INFO), the
//              strings dmsetup table / dmsetup status print for a two-path round-robin map.
#include <doctest/doctest.h>

#include <sys/sysmacros.h>

#include <string>
#include <vector>

#include "src/core/dm.hpp"
#include "src/core/resolve.hpp"

using namespace offcopy;
using namespace offcopy::detail;

TEST_CASE("dm: linear parameters are a device and a start sector") {
  dm_linear l;
  REQUIRE(parse_linear("259:0 2048", l));
  CHECK(l.device == makedev(259, 0));
  CHECK(l.offset_sectors == 2048);
  REQUIRE(parse_linear("253:12 0", l));
  CHECK(l.device == makedev(253, 12));
  CHECK_FALSE(parse_linear("259:0", l));
  CHECK_FALSE(parse_linear("259:0 2048 7", l));
  CHECK_FALSE(parse_linear("/dev/sda 2048", l));  // the kernel prints devices as MAJOR:MINOR
  CHECK_FALSE(parse_linear("259:0 -1", l));
  CHECK_FALSE(parse_linear("259:0 99999999999999999999999", l));
}

TEST_CASE("dm: striped parameters are stripes, chunk sectors and a device and start per stripe") {
  dm_striped s;
  REQUIRE(parse_striped("2 128 259:0 2048 259:1 4096", s));
  CHECK(s.chunk_sectors == 128);
  REQUIRE(s.stripes.size() == 2);
  CHECK(s.stripes[0].device == makedev(259, 0));
  CHECK(s.stripes[0].offset_sectors == 2048);
  CHECK(s.stripes[1].device == makedev(259, 1));
  CHECK(s.stripes[1].offset_sectors == 4096);
  CHECK_FALSE(parse_striped("2 128 259:0 2048", s));  // one stripe missing
  CHECK_FALSE(parse_striped("0 128", s));             // no stripes
  CHECK_FALSE(parse_striped("1 0 259:0 0", s));       // no chunk
  CHECK_FALSE(parse_striped("1 128 259:0 0 extra", s));
}

TEST_CASE("dm: multipath table parameters give every path of every group") {
  std::vector<dev_t> paths;
  // Two paths, one round-robin group, no features, no hardware handler (dmsetup table).
  REQUIRE(parse_multipath_paths("0 0 1 1 round-robin 0 2 1 8:0 1 8:16 1", paths));
  CHECK(paths == std::vector<dev_t>{makedev(8, 0), makedev(8, 16)});
  // queue_if_no_path, an ALUA handler, two groups of one path each with service-time (2 path args).
  REQUIRE(parse_multipath_paths("1 queue_if_no_path 1 alua 2 1 service-time 0 1 2 8:32 1 1 service-time 0 1 2 8:48 1 1",
                                paths));
  CHECK(paths == std::vector<dev_t>{makedev(8, 32), makedev(8, 48)});
  CHECK_FALSE(parse_multipath_paths("0 0 1 1 round-robin 0 2 1 8:0 1", paths));  // a path short
  CHECK_FALSE(parse_multipath_paths("0 0 0 0", paths));                          // no paths at all
  CHECK_FALSE(parse_multipath_paths("0 0 1 1 round-robin 0 1 1 8:0 1 trailing", paths));
}

TEST_CASE("dm: multipath status names the active paths") {
  // STATUSTYPE_INFO: "2 <queue_io> <pg_init_count>" features, "0" handler, groups, then per group
  // its state, selector status, paths and per path "<dev> <A|F> <fail count>" + selector status.
  CHECK(multipath_active_paths("2 0 0 0 1 1 A 0 2 0 8:0 A 0 8:16 A 0") ==
        std::vector<dev_t>{makedev(8, 0), makedev(8, 16)});
  CHECK(multipath_active_paths("2 0 0 0 1 1 A 0 2 0 8:0 F 1 8:16 A 0") == std::vector<dev_t>{makedev(8, 16)});
  CHECK(multipath_active_paths("2 0 0 0 2 1 A 0 1 2 8:32 A 0 0 1 E 0 1 2 8:48 F 3 0 1") ==
        std::vector<dev_t>{makedev(8, 32)});
  CHECK(multipath_active_paths("2 1 0 0 1 1 E 0 2 0 8:0 F 1 8:16 F 1").empty());
}

namespace {

/// A hand-made stack: node 0 on top, media at the leaves (no doors needed to map ranges).
struct stack_builder {
  resolution r;
  std::uint32_t node(std::uint64_t size) {
    stack_node n;
    n.size_bytes = size;
    n.name = "node" + std::to_string(r.nodes.size());
    n.path = n.name;
    r.nodes.push_back(n);
    return static_cast<std::uint32_t>(r.nodes.size() - 1);
  }
  std::uint32_t medium(std::uint64_t size) {
    const std::uint32_t n = node(size);
    stack_medium m;
    m.node = n;
    m.path = r.nodes[n].path;
    m.identity = "id-" + m.path;
    r.media.push_back(m);
    r.nodes[n].medium = static_cast<std::int32_t>(r.media.size() - 1);
    return n;
  }
  void direct(std::uint32_t n, std::uint64_t start, std::uint64_t length, std::uint32_t lower, std::uint64_t at) {
    stack_target t;
    t.start_bytes = start;
    t.length_bytes = length;
    t.type = "dm linear";
    t.lowers.push_back({lower, at});
    r.nodes[n].targets.push_back(t);
  }
  void striped(std::uint32_t n, std::uint64_t start, std::uint64_t length, std::uint64_t chunk,
               std::vector<stack_target::lower> stripes) {
    stack_target t;
    t.what = stack_target::kind::striped;
    t.start_bytes = start;
    t.length_bytes = length;
    t.chunk_bytes = chunk;
    t.type = "dm striped";
    t.lowers = std::move(stripes);
    r.nodes[n].targets.push_back(t);
  }
};

struct seen_piece {
  std::uint64_t offset, length;
  std::uint32_t medium;
  std::uint64_t medium_offset;
  bool operator==(const seen_piece&) const = default;
};

std::vector<seen_piece> walk(const resolution& r, std::uint64_t off, std::uint64_t len) {
  std::vector<seen_piece> out;
  map_range(r, 0, off, len, [&](const mapped_piece& p, std::span<const piece_hop>) {
    out.push_back({p.offset_bytes, p.length_bytes, p.medium, p.medium_offset_bytes});
  });
  return out;
}

}  // namespace

TEST_CASE("map_range: a linear table of two segments on two media, in table order") {
  // An LV of 3 MiB: its first 1 MiB at 1 MiB of PV A, the next 2 MiB at 5 MiB of PV B.
  stack_builder b;
  const auto lv = b.node(3 << 20);
  const auto a = b.medium(16 << 20);
  const auto bb = b.medium(16 << 20);
  b.direct(lv, 0, 1 << 20, a, 1 << 20);
  b.direct(lv, 1 << 20, 2 << 20, bb, 5 << 20);
  // Medium indices follow creation: A is 0, B is 1.
  CHECK(walk(b.r, 0, 3 << 20) == std::vector<seen_piece>{{0, 1 << 20, 0, 1 << 20}, {1 << 20, 2 << 20, 1, 5 << 20}});
  // A range crossing the segment boundary is cut there.
  CHECK(walk(b.r, (1 << 20) - 512, 1024) ==
        std::vector<seen_piece>{{(1 << 20) - 512, 512, 0, (2 << 20) - 512}, {1 << 20, 512, 1, 5 << 20}});
  CHECK(walk(b.r, (2 << 20) + 4096, 4096) == std::vector<seen_piece>{{(2 << 20) + 4096, 4096, 1, (6 << 20) + 4096}});
}

TEST_CASE("map_range: striped chunk by chunk, as dm-stripe maps sectors") {
  // 2 stripes, 64 KiB chunks: stripe 0 starts at 8 KiB of A, stripe 1 at 0 of B.
  constexpr std::uint64_t k = 64 << 10;
  stack_builder b;
  const auto st = b.node(8 * k);
  const auto a = b.medium(1 << 20);
  const auto bb = b.medium(1 << 20);
  b.striped(st, 0, 8 * k, k, {{a, 8192}, {bb, 0}});
  // Chunks 0..3 -> A row 0, B row 0, A row 1, B row 1.
  CHECK(walk(b.r, 0, 4 * k) ==
        std::vector<seen_piece>{{0, k, 0, 8192}, {k, k, 1, 0}, {2 * k, k, 0, 8192 + k}, {3 * k, k, 1, k}});
  // Inside chunk 5 (stripe 1, row 2): byte 5k + 100 is at 2k + 100 of B.
  CHECK(walk(b.r, 5 * k + 100, 200) == std::vector<seen_piece>{{5 * k + 100, 200, 1, 2 * k + 100}});
  // A range across chunks 6 and 7 is cut at the chunk boundary.
  CHECK(walk(b.r, 7 * k - 512, 1024) ==
        std::vector<seen_piece>{{7 * k - 512, 512, 0, 8192 + 4 * k - 512}, {7 * k, 512, 1, 3 * k}});
}

TEST_CASE("map_range: dm on dm (a linear LV over a striped device) composes both maps") {
  constexpr std::uint64_t k = 4096;
  stack_builder b;
  const auto lv = b.node(4 * k);
  const auto st = b.node(16 * k);
  const auto a = b.medium(1 << 20);
  const auto bb = b.medium(1 << 20);
  b.direct(lv, 0, 4 * k, st, 3 * k);  // the LV starts at chunk 3 of the striped device
  b.striped(st, 0, 16 * k, k, {{a, 0}, {bb, 0}});
  // LV chunk 0 = striped chunk 3 = B row 1; LV chunk 1 = chunk 4 = A row 2; ...
  CHECK(walk(b.r, 0, 4 * k) ==
        std::vector<seen_piece>{{0, k, 1, k}, {k, k, 0, 2 * k}, {2 * k, k, 1, 2 * k}, {3 * k, k, 0, 3 * k}});
}

TEST_CASE("map_range: an opaque target is a piece on the node itself, with the targets crossed") {
  stack_builder b;
  const auto top = b.node(2 << 20);
  const auto crypt = b.node(1 << 20);
  const auto disk = b.medium(4 << 20);
  b.direct(top, 0, 1 << 20, disk, 0);
  b.direct(top, 1 << 20, 1 << 20, crypt, 0);
  stack_target t;
  t.what = stack_target::kind::opaque;
  t.length_bytes = 1 << 20;
  t.type = "dm crypt";
  t.lowers.push_back({disk, 0});
  b.r.nodes[crypt].targets.push_back(t);
  stack_medium m;
  m.node = crypt;
  m.path = "node1";
  m.identity = "id-node1";
  m.opaque = "dm crypt";
  b.r.media.push_back(m);
  b.r.nodes[crypt].medium = 1;
  std::vector<std::string> types;
  std::vector<seen_piece> pieces;
  map_range(b.r, 0, 0, 2 << 20, [&](const mapped_piece& p, std::span<const piece_hop> hops) {
    pieces.push_back({p.offset_bytes, p.length_bytes, p.medium, p.medium_offset_bytes});
    std::string crossed;
    for (const auto& h : hops) crossed += h.target->type + ";";
    types.push_back(crossed);
  });
  CHECK(pieces == std::vector<seen_piece>{{0, 1 << 20, 0, 0}, {1 << 20, 1 << 20, 1, 0}});
  CHECK(types == std::vector<std::string>{"dm linear;", "dm linear;dm crypt;"});
}

TEST_CASE("pieces_of merges neighbours that are contiguous on one medium, and only those") {
  stack_builder b;
  const auto lv = b.node(4 << 20);
  const auto a = b.medium(16 << 20);
  // Three segments: the first two back to back on A (one piece), the third elsewhere on A.
  b.direct(lv, 0, 1 << 20, a, 2 << 20);
  b.direct(lv, 1 << 20, 1 << 20, a, 3 << 20);
  b.direct(lv, 2 << 20, 2 << 20, a, 10 << 20);
  const auto p = pieces_of(b.r, 0, 4 << 20);
  REQUIRE(p.size() == 2);
  CHECK(p[0].offset_bytes == 0);
  CHECK(p[0].length_bytes == 2 << 20);
  CHECK(p[0].medium_offset_bytes == 2 << 20);
  CHECK(p[1].offset_bytes == 2 << 20);
  CHECK(p[1].medium_offset_bytes == 10 << 20);
  CHECK(b.r.stacked());
}
