// Fuzz target: the extent parser (src/cli/parse.cpp: parse_size, parse_extent, parse_extents),
// against a reference written here from the documented grammar (docs/cli.md), not from the code:
//
//   size    := blank* "+"? ( ("0x" | "0X") hexdigit+ | digit+ ) suffix? (blank | CR)*
//   suffix  := "s" (512) | [KkMmGgTt] ("iB" | "ib")? (2^10 .. 2^40)
//   extent  := size ":" size ":" size
//   file    := lines; blank lines and lines starting with "#" (after blanks) are skipped
//
// blank = space or tab. A value past 2^64 - 1 is an error. Byte 0 picks the parser, the rest is
// the text; the parser and the reference must agree on accepting it and on every number.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "src/cli/parse.hpp"

namespace {

[[noreturn]] void broken(int line) {
  std::fprintf(stderr, "extents: parser and reference disagree (line %d)\n", line);
  std::abort();
}
#define FUZZ_REQUIRE(cond)         \
  do {                             \
    if (!(cond)) broken(__LINE__); \
  } while (0)

bool is_blank(char c) { return c == ' ' || c == '\t'; }

std::optional<std::uint64_t> reference_size(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size() && is_blank(s[i])) ++i;
  std::size_t end = s.size();
  while (end > i && (is_blank(s[end - 1]) || s[end - 1] == '\r')) --end;
  s = s.substr(i, end - i);
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);
  unsigned base = 10;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    base = 16;
    s.remove_prefix(2);
  }
  auto digit = [&](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (base == 16 && c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (base == 16 && c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  unsigned __int128 v = 0;
  std::size_t n = 0;
  bool too_large = false;
  while (n < s.size() && digit(s[n]) >= 0) {
    v = v * base + static_cast<unsigned>(digit(s[n]));
    if (v > UINT64_MAX) too_large = true, v = UINT64_MAX;
    ++n;
  }
  if (n == 0 || too_large) return std::nullopt;
  const std::string_view suffix = s.substr(n);
  unsigned shift = 0;
  if (suffix.empty()) {
  } else if (suffix == "s") {
    shift = 9;
  } else if (suffix.size() == 1 || suffix.substr(1) == "iB" || suffix.substr(1) == "ib") {
    if (suffix.size() != 1 && suffix.size() != 3) return std::nullopt;
    switch (suffix[0]) {
      case 'K':
      case 'k': shift = 10; break;
      case 'M':
      case 'm': shift = 20; break;
      case 'G':
      case 'g': shift = 30; break;
      case 'T':
      case 't': shift = 40; break;
      default: return std::nullopt;
    }
  } else {
    return std::nullopt;
  }
  v <<= shift;
  if (v > UINT64_MAX) return std::nullopt;
  return static_cast<std::uint64_t>(v);
}

std::optional<offcopy::extent> reference_extent(std::string_view s) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == ':') {
      parts.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  if (parts.size() != 3) return std::nullopt;
  auto a = reference_size(parts[0]), b = reference_size(parts[1]), c = reference_size(parts[2]);
  if (!a || !b || !c) return std::nullopt;
  return offcopy::extent{*a, *b, *c};
}

bool same(const offcopy::extent& x, const offcopy::extent& y) {
  return x.src_offset_bytes == y.src_offset_bytes && x.dst_offset_bytes == y.dst_offset_bytes &&
         x.length_bytes == y.length_bytes;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0: {
      auto got = offcopy::cli::parse_size(text);
      auto want = reference_size(text);
      FUZZ_REQUIRE(got.ok() == want.has_value());
      if (got.ok()) FUZZ_REQUIRE(got.value() == *want);
      break;
    }
    case 1: {
      auto got = offcopy::cli::parse_extent(text);
      auto want = reference_extent(text);
      FUZZ_REQUIRE(got.ok() == want.has_value());
      if (got.ok()) FUZZ_REQUIRE(same(got.value(), *want));
      break;
    }
    default: {
      std::istringstream in(text);
      auto got = offcopy::cli::parse_extents(in, "fuzz");
      std::vector<offcopy::extent> want;
      bool ok = true;
      std::size_t start = 0;
      while (start < text.size() && ok) {
        std::size_t nl = text.find('\n', start);
        if (nl == std::string::npos) nl = text.size();
        std::string_view line(text.data() + start, nl - start);
        start = nl + 1;
        std::size_t i = 0;
        while (i < line.size() && is_blank(line[i])) ++i;
        std::size_t end = line.size();
        while (end > i && (is_blank(line[end - 1]) || line[end - 1] == '\r')) --end;
        if (i == end || line[i] == '#') continue;
        if (auto e = reference_extent(line.substr(i, end - i))) {
          want.push_back(*e);
        } else {
          ok = false;
        }
      }
      FUZZ_REQUIRE(got.ok() == ok);
      if (got.ok()) {
        FUZZ_REQUIRE(got.value().size() == want.size());
        for (std::size_t k = 0; k < want.size(); ++k) FUZZ_REQUIRE(same(got.value()[k], want[k]));
      }
      break;
    }
  }
  return 0;
}
