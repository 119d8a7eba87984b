// Parsing of the CLI's numbers and extents (pure, unit-tested).
#pragma once

#include <cstdint>
#include <istream>
#include <string>
#include <string_view>
#include <vector>

#include "offcopy/request.hpp"
#include "offcopy/status.hpp"

namespace offcopy::cli {

/// "4096", "4K", "1M", "2G", "1T" (powers of 1024), "8s" (512-byte sectors), "0x1000".
/// Errors: invalid_argument for empty, negative, malformed, unknown suffix or overflow.
[[nodiscard]] result<std::uint64_t> parse_size(std::string_view text);

/// "[SOURCE@]SRC_OFFSET:DST_OFFSET:LENGTH", each a size; SOURCE (extent::source, default 0) a
/// decimal number: 0 the positional source, k the k-th --source.
[[nodiscard]] result<extent> parse_extent(std::string_view text);

/// One extent per line; blank lines and lines starting with '#' are skipped.
[[nodiscard]] result<std::vector<extent>> parse_extents(std::istream& in, const std::string& name);

}  // namespace offcopy::cli
