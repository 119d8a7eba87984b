// Making untrusted bytes (paths, extents-file lines, device strings, sense text) safe for output.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace offcopy::detail {

/// `s` with every invalid UTF-8 sequence (bad, overlong, surrogate, past U+10FFFF) replaced by
/// U+FFFD. Valid text comes back unchanged.
[[nodiscard]] std::string valid_utf8(std::string_view s);

/// valid_utf8(s) with control characters (C0 except newline and tab, DEL, C1) written as "\xNN":
/// nothing a terminal would interpret. Used on every text the library returns for printing.
[[nodiscard]] std::string terminal_safe(std::string_view s);

/// The one way the library serialises JSON: compact, invalid UTF-8 replaced by U+FFFD (never a
/// throw), so every JSON text it returns parses.
[[nodiscard]] std::string dump_json(const nlohmann::json& j);

}  // namespace offcopy::detail
