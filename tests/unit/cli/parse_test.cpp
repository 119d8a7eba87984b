// The CLI's number and extent parsing and its exit codes (src/cli/parse.cpp).
#include <doctest/doctest.h>

#include <limits>
#include <sstream>

#include "src/cli/parse.hpp"

using namespace offcopy;
using namespace offcopy::cli;

namespace {
std::uint64_t size_of(std::string_view text) {
  auto r = parse_size(text);
  REQUIRE_MESSAGE(r.ok(), (r.ok() ? std::string() : r.error().to_string()));
  return r.value();
}
std::string size_error(std::string_view text) {
  auto r = parse_size(text);
  REQUIRE_FALSE_MESSAGE(r.ok(), text);
  CHECK(r.error().code() == errc::invalid_argument);
  return r.error().message();
}
}  // namespace

TEST_CASE("parse_size: plain, suffixed and hexadecimal numbers") {
  CHECK(size_of("0") == 0);
  CHECK(size_of("4096") == 4096);
  CHECK(size_of("4K") == 4096);
  CHECK(size_of("4k") == 4096);
  CHECK(size_of("4KiB") == 4096);
  CHECK(size_of("1M") == 1ULL << 20);
  CHECK(size_of("3G") == 3ULL << 30);
  CHECK(size_of("2T") == 2ULL << 40);
  CHECK(size_of("8s") == 4096);
  CHECK(size_of("0x1000") == 4096);
  CHECK(size_of("0X10") == 16);
  CHECK(size_of("0x2M") == 2ULL << 20);
  CHECK(size_of(" 12 ") == 12);
  CHECK(size_of("+7") == 7);
  CHECK(size_of("18446744073709551615") == std::numeric_limits<std::uint64_t>::max());
  CHECK(size_of("16777215T") == 16777215ULL << 40);
}

TEST_CASE("parse_size: errors") {
  CHECK(size_error("") == "'': empty number");
  CHECK(size_error("   ") == "'   ': empty number");
  CHECK(size_error("-1") == "'-1': negative numbers are not sizes");
  CHECK(size_error("-0x10") == "'-0x10': negative numbers are not sizes");
  CHECK(size_error("abc") == "'abc': not a number");
  CHECK(size_error("K") == "'K': not a number");
  CHECK(size_error("0x") == "'0x': unknown size suffix (use K, M, G, T or s)");
  CHECK(size_error("4X") == "'4X': unknown size suffix (use K, M, G, T or s)");
  CHECK(size_error("4S") == "'4S': unknown size suffix (use K, M, G, T or s)");
  CHECK(size_error("4KB") == "'4KB': unknown size suffix (use K, M, G, T or s)");
  CHECK(size_error("1.5M") == "'1.5M': unknown size suffix (use K, M, G, T or s)");
  CHECK(size_error("4 K") == "'4 K': unknown size suffix (use K, M, G, T or s)");
  CHECK(size_error("18446744073709551616") == "'18446744073709551616': number too large");
  CHECK(size_error("0x10000000000000000") == "'0x10000000000000000': number too large");
  CHECK(size_error("16777216T") == "'16777216T': number too large");
  CHECK(size_error("36028797018963968s") == "'36028797018963968s': number too large");
}

TEST_CASE("parse_extent") {
  auto e = parse_extent("1M:2M:4K");
  REQUIRE(e.ok());
  CHECK(e.value() == extent{1ULL << 20, 2ULL << 20, 4096});
  auto s = parse_extent("0:8s:0x200");
  REQUIRE(s.ok());
  CHECK(s.value() == extent{0, 4096, 512});
  // Zero length parses; validation refuses it later (with the extent's number).
  CHECK(parse_extent("0:0:0").ok());

  for (const char* bad : {"", "1", "1:2", "1:2:3:4", "::", "1::3", "a:b:c"}) {
    CAPTURE(bad);
    auto r = parse_extent(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code() == errc::invalid_argument);
  }
  CHECK(parse_extent("1:2").error().message() == "extent '1:2': expected [SOURCE@]SRC_OFFSET:DST_OFFSET:LENGTH");
  CHECK(parse_extent("0:0:-4K").error().message() == "extent: '-4K': negative numbers are not sizes");
  CHECK(parse_extent("0:4Q:1").error().message() == "extent: '4Q': unknown size suffix (use K, M, G, T or s)");
}

TEST_CASE("parse_extent: SOURCE@ names the source (0 = the positional one)") {
  CHECK(parse_extent("2@1K:8s:4K").value() == extent{1024, 4096, 4096, 2});
  CHECK(parse_extent("0@0:0:1").value() == extent{0, 0, 1, 0});
  CHECK(parse_extent("0:0:1").value().source == 0);
  CHECK(parse_extent("4294967295@0:0:1").value().source == 4294967295U);
  for (const char* bad : {"@0:0:1", "x@0:0:1", "-1@0:0:1", "1 @0:0:1", "4294967296@0:0:1", "1@2@0:0:1", "1@0:0"}) {
    CAPTURE(bad);
    auto r = parse_extent(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code() == errc::invalid_argument);
  }
  CHECK(parse_extent("x@0:0:1").error().message() ==
        "extent 'x@0:0:1': expected SOURCE@SRC_OFFSET:DST_OFFSET:LENGTH, SOURCE a number from 0");
}

TEST_CASE("parse_extents: one per line, comments and blank lines skipped, errors name the line") {
  std::istringstream in("# header\n0:0:4K\n\n   4K:8K:1M  \r\n# done\n");
  auto r = parse_extents(in, "list.txt");
  REQUIRE(r.ok());
  REQUIRE(r.value().size() == 2);
  CHECK(r.value()[1] == extent{4096, 8192, 1ULL << 20});

  std::istringstream empty("\n# nothing\n");
  auto e = parse_extents(empty, "x");
  REQUIRE(e.ok());
  CHECK(e.value().empty());

  std::istringstream bad("0:0:1\n0:0:1\n1:2:3:4\n");
  auto b = parse_extents(bad, "list.txt");
  REQUIRE_FALSE(b.ok());
  CHECK(b.error().code() == errc::invalid_argument);
  CHECK(b.error().message() == "list.txt:3: extent '1:2:3:4': expected [SOURCE@]SRC_OFFSET:DST_OFFSET:LENGTH");
}
