#include "src/cli/parse.hpp"

#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <limits>

#include <fmt/format.h>

namespace offcopy::cli {

std::string quoted(std::string_view text) {
  constexpr std::size_t max_bytes = 64;
  if (text.size() <= max_bytes) return std::string(text);
  return fmt::format("{}...({} bytes)", text.substr(0, max_bytes), text.size());
}

result<std::uint64_t> parse_size(std::string_view text) {
  auto bad = [&](const char* why) {
    return status(errc::invalid_argument, fmt::format("'{}': {}", quoted(text), why));
  };
  std::string_view s = text;
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  if (s.empty()) return bad("empty number");
  if (s.front() == '-') return bad("negative numbers are not sizes");
  if (s.front() == '+') s.remove_prefix(1);
  int base = 10;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    base = 16;
    s.remove_prefix(2);
  }
  std::uint64_t value = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), value, base);
  if (ptr == s.data()) return bad("not a number");
  if (ec == std::errc::result_out_of_range) return bad("number too large");
  std::string_view suffix(ptr, static_cast<std::size_t>(s.data() + s.size() - ptr));
  std::uint64_t mult = 1;
  if (suffix.empty()) {
  } else if (suffix == "s") {
    mult = 512;
  } else if (suffix.size() == 1 || (suffix.size() == 3 && (suffix.substr(1) == "iB" || suffix.substr(1) == "ib"))) {
    switch (suffix[0]) {
      case 'K':
      case 'k': mult = 1ULL << 10; break;
      case 'M':
      case 'm': mult = 1ULL << 20; break;
      case 'G':
      case 'g': mult = 1ULL << 30; break;
      case 'T':
      case 't': mult = 1ULL << 40; break;
      default: return bad("unknown size suffix (use K, M, G, T or s)");
    }
  } else {
    return bad("unknown size suffix (use K, M, G, T or s)");
  }
  if (value > std::numeric_limits<std::uint64_t>::max() / mult) return bad("number too large");
  return value * mult;
}

result<extent> parse_extent(std::string_view text) {
  // "K@SRC:DST:LEN": K names the source (0 the positional SRC, k the k-th --source).
  std::uint32_t source = 0;
  const std::string_view whole = text;
  if (auto at = text.find('@'); at != std::string_view::npos) {
    const std::string_view k = text.substr(0, at);
    auto [ptr, ec] = std::from_chars(k.data(), k.data() + k.size(), source, 10);
    if (k.empty() || ec != std::errc() || ptr != k.data() + k.size())
      return status(errc::invalid_argument,
                    fmt::format("extent '{}': expected SOURCE@SRC_OFFSET:DST_OFFSET:LENGTH, SOURCE a number from 0",
                                quoted(whole)));
    text.remove_prefix(at + 1);
  }
  auto c1 = text.find(':');
  auto c2 = c1 == std::string_view::npos ? c1 : text.find(':', c1 + 1);
  if (c1 == std::string_view::npos || c2 == std::string_view::npos || text.find(':', c2 + 1) != std::string_view::npos)
    return status(errc::invalid_argument,
                  fmt::format("extent '{}': expected [SOURCE@]SRC_OFFSET:DST_OFFSET:LENGTH", quoted(whole)));
  auto a = parse_size(text.substr(0, c1));
  if (!a.ok()) return std::move(a).error().prefix("extent");
  auto b = parse_size(text.substr(c1 + 1, c2 - c1 - 1));
  if (!b.ok()) return std::move(b).error().prefix("extent");
  auto c = parse_size(text.substr(c2 + 1));
  if (!c.ok()) return std::move(c).error().prefix("extent");
  return extent{a.value(), b.value(), c.value(), source};
}

namespace {

/// One line of an extents file: nothing (blank, comment), an extent, or an error.
status parse_line(std::string_view v, const std::string& name, std::size_t n, std::vector<extent>& out) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t' || v.back() == '\r')) v.remove_suffix(1);
  if (v.empty() || v.front() == '#') return {};
  auto e = parse_extent(v);
  if (!e.ok()) return std::move(e).error().prefix(fmt::format("{}:{}", name, n));
  out.push_back(e.value());
  return {};
}

}  // namespace

result<std::vector<extent>> parse_extents(std::istream& in, const std::string& name) {
  std::vector<extent> out;
  std::string line;
  std::size_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (auto s = parse_line(line, name, n, out); !s.ok()) return s;
  }
  return out;
}

result<std::vector<extent>> read_extents(int fd, const std::string& name, const std::atomic<bool>* cancel,
                                         const extents_file_limits& limits) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return errno_status(errno, name);
  if (S_ISDIR(st.st_mode)) return status(errc::invalid_argument, fmt::format("{}: is a directory", name), EISDIR);
  const bool regular = S_ISREG(st.st_mode);
  if (regular && static_cast<std::uint64_t>(st.st_size) > limits.max_bytes)
    return status(errc::invalid_argument, fmt::format("{}: {} bytes, more than an extents file may have ({})", name,
                                                      st.st_size, limits.max_bytes));
  // Waiting for data: poll in steps of 100 ms so a stop request and the idle limit are seen.
  const bool may_idle = !regular && limits.idle_timeout.count() > 0 && ::isatty(fd) == 0;
  std::vector<extent> out;
  std::string line;
  std::size_t lines = 0;
  std::uint64_t total = 0;
  char buf[65536];
  auto idle_since = std::chrono::steady_clock::now();
  for (;;) {
    if (cancel != nullptr && cancel->load()) return status(errc::cancelled, fmt::format("{}: reading stopped", name));
    if (!regular) {
      pollfd p{fd, POLLIN, 0};
      int r = ::poll(&p, 1, 100);
      if (r < 0 && errno != EINTR) return errno_status(errno, name + ": poll");
      if (r <= 0) {
        if (may_idle && std::chrono::steady_clock::now() - idle_since >= limits.idle_timeout)
          return status(errc::invalid_argument,
                        fmt::format("{}: no data for {} s (a FIFO or pipe nobody writes to or closes?)", name,
                                    limits.idle_timeout.count() / 1000));
        continue;
      }
    }
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return errno_status(errno, name + ": read");
    }
    if (n == 0) break;
    idle_since = std::chrono::steady_clock::now();
    total += static_cast<std::uint64_t>(n);
    if (total > limits.max_bytes)
      return status(errc::invalid_argument, fmt::format("{}: more than {} bytes", name, limits.max_bytes));
    for (std::string_view chunk(buf, static_cast<std::size_t>(n)); !chunk.empty();) {
      const std::size_t nl = chunk.find('\n');
      const std::string_view part = chunk.substr(0, nl);
      if (line.size() + part.size() > limits.max_line_bytes)
        return status(errc::invalid_argument, fmt::format("{}:{}: line longer than {} bytes (no newline?)", name,
                                                          lines + 1, limits.max_line_bytes));
      line.append(part);
      if (nl == std::string_view::npos) break;
      chunk.remove_prefix(nl + 1);
      if (++lines > limits.max_lines)
        return status(errc::invalid_argument, fmt::format("{}: more than {} lines", name, limits.max_lines));
      if (auto s = parse_line(line, name, lines, out); !s.ok()) return s;
      line.clear();
    }
  }
  if (!line.empty()) {
    if (++lines > limits.max_lines)
      return status(errc::invalid_argument, fmt::format("{}: more than {} lines", name, limits.max_lines));
    if (auto s = parse_line(line, name, lines, out); !s.ok()) return s;
  }
  return out;
}

}  // namespace offcopy::cli
