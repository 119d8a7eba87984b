// Golden vectors written as hex dumps in the unit tests (tests/unit/nvme, tests/unit/scsi).
#pragma once

#include <cctype>
#include <cstdint>
#include <string_view>
#include <vector>

#include <doctest/doctest.h>

namespace offcopy::test_hex {

/// "83 00 0a" -> {0x83, 0x00, 0x0a}: golden vectors stay readable as hex dumps. White space is
/// skipped; anything else that is not a hex digit, or an odd digit count, fails the test.
inline std::vector<std::uint8_t> hex(std::string_view text) {
  std::vector<std::uint8_t> out;
  int hi = -1;
  for (char c : text) {
    if (std::isspace(static_cast<unsigned char>(c))) continue;
    const int v = std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : std::tolower(c) - 'a' + 10;
    REQUIRE((v >= 0 && v < 16));
    if (hi < 0) {
      hi = v;
    } else {
      out.push_back(static_cast<std::uint8_t>(hi << 4 | v));
      hi = -1;
    }
  }
  REQUIRE(hi < 0);
  return out;
}

}  // namespace offcopy::test_hex
