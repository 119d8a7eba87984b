#include "src/core/text.hpp"

#include <algorithm>
#include <cstdint>

namespace offcopy::detail {
namespace {

constexpr std::string_view replacement = "\xEF\xBF\xBD";  // U+FFFD

/// Length of the valid UTF-8 sequence at s[i], or 0 when it is not one (RFC 3629 table).
std::size_t sequence_length(std::string_view s, std::size_t i) noexcept {
  const auto b = [&](std::size_t k) { return static_cast<std::uint8_t>(s[i + k]); };
  const std::size_t left = s.size() - i;
  const std::uint8_t c = b(0);
  if (c < 0x80) return 1;
  auto cont = [&](std::size_t k) { return k < left && (b(k) & 0xC0) == 0x80; };
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    if (c == 0xE0 && b(1) < 0xA0) return 0;  // overlong
    if (c == 0xED && b(1) > 0x9F) return 0;  // UTF-16 surrogates
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if (c == 0xF0 && b(1) < 0x90) return 0;  // overlong
    if (c == 0xF4 && b(1) > 0x8F) return 0;  // past U+10FFFF
    return 4;
  }
  return 0;
}

}  // namespace

std::string valid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    std::size_t n = sequence_length(s, i);
    if (n == 0) {
      out += replacement;
      ++i;
      continue;
    }
    out.append(s.substr(i, n));
    i += n;
  }
  return out;
}

std::string terminal_safe(std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  // The common case, printable ASCII with newlines and tabs, is returned as it is.
  if (std::all_of(s.begin(), s.end(), [](char ch) {
        const auto c = static_cast<std::uint8_t>(ch);
        return (c >= 0x20 && c < 0x7F) || c == '\n' || c == '\t';
      })) {
    return std::string(s);
  }
  std::string valid = valid_utf8(s);
  std::string out;
  out.reserve(valid.size());
  auto escape = [&](std::uint8_t v) {
    out += "\\x";
    out += hex[v >> 4];
    out += hex[v & 15];
  };
  for (std::size_t i = 0; i < valid.size(); ++i) {
    const auto c = static_cast<std::uint8_t>(valid[i]);
    if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7F) {
      escape(c);
    } else if (c == 0xC2 && i + 1 < valid.size() && static_cast<std::uint8_t>(valid[i + 1]) < 0xA0) {
      escape(static_cast<std::uint8_t>(valid[++i]));  // C1 control U+0080..U+009F
    } else {
      out += valid[i];
    }
  }
  return out;
}

std::string dump_json(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace offcopy::detail
