// Issue 8.3: the extents-file reader of the CLI (src/cli/parse.cpp read_extents) in bounded
// memory: a line without end, too many lines or bytes, a directory, a silent pipe, a stop request.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

#include "src/cli/parse.hpp"

using namespace offcopy;
using namespace offcopy::cli;

namespace {

/// A pipe whose write end the test feeds; the read end is given to read_extents.
struct pipe_pair {
  int r = -1, w = -1;
  pipe_pair() {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    r = fds[0];
    w = fds[1];
  }
  ~pipe_pair() {
    if (r >= 0) ::close(r);
    if (w >= 0) ::close(w);
  }
  void put(const std::string& s) const { REQUIRE(::write(w, s.data(), s.size()) == static_cast<ssize_t>(s.size())); }
  void close_write() {
    ::close(w);
    w = -1;
  }
};

result<std::vector<extent>> read_text(const std::string& text, const extents_file_limits& limits = {}) {
  pipe_pair p;
  std::thread writer([&] {
    std::size_t at = 0;
    while (at < text.size()) {
      ssize_t n = ::write(p.w, text.data() + at, text.size() - at);
      if (n <= 0) break;
      at += static_cast<std::size_t>(n);
    }
    p.close_write();
  });
  auto r = read_extents(p.r, "list", nullptr, limits);
  ::close(p.r);  // unblocks a writer the reader stopped listening to
  p.r = -1;
  writer.join();
  return r;
}

}  // namespace

TEST_CASE("extents file: lines, comments, CRLF, a last line without newline") {
  auto r = read_text("# c\n0:0:4K\r\n\n  8s:16K:0x1000  \n1M:2M:1");
  REQUIRE(r.ok());
  REQUIRE(r.value().size() == 3);
  CHECK(r.value()[1].src_offset_bytes == 4096);
  CHECK(r.value()[2].length_bytes == 1);
}

TEST_CASE("extents file: the first bad line is named, NUL and invalid bytes are errors, quotes are cut") {
  auto r = read_text("0:0:4K\n0:0:4Q\n");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message().find("list:2") != std::string::npos);
  r = read_text(std::string("0:0:4K\0\n", 8));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == errc::invalid_argument);
  r = read_text("0:0:" + std::string(3000, '9') + "\n");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message().size() < 300);
}

TEST_CASE("extents file: a line longer than the limit, more lines or bytes than allowed: errors at once") {
  extents_file_limits small;
  small.max_line_bytes = 16;
  small.max_lines = 5;
  small.max_bytes = 1000;
  auto r = read_text(std::string(17, '1'), small);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message().find("longer than 16 bytes") != std::string::npos);
  r = read_text("0:0:1\n0:0:1\n0:0:1\n0:0:1\n0:0:1\n0:0:1\n", small);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message().find("more than 5 lines") != std::string::npos);
  std::string many;
  for (int i = 0; i < 200; ++i) many += "\n";
  small.max_lines = 1000;
  r = read_text(many + many + many + many + many + many, small);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message().find("more than 1000 bytes") != std::string::npos);
  // The default limits: /dev/zero is refused after 4 KiB, not after memory runs out.
  int z = ::open("/dev/zero", O_RDONLY);
  REQUIRE(z >= 0);
  auto t0 = std::chrono::steady_clock::now();
  r = read_extents(z, "/dev/zero", nullptr);
  ::close(z);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message().find("line longer than 4096 bytes") != std::string::npos);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(2));
}

TEST_CASE("extents file: a directory, a regular file over the size limit") {
  int d = ::open("/", O_RDONLY | O_DIRECTORY);
  REQUIRE(d >= 0);
  auto r = read_extents(d, "/", nullptr);
  ::close(d);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message().find("is a directory") != std::string::npos);
  char tmpl[] = "/tmp/offcopy-extents-XXXXXX";
  int f = ::mkstemp(tmpl);
  REQUIRE(f >= 0);
  ::unlink(tmpl);
  REQUIRE(::ftruncate(f, 1 << 20) == 0);
  extents_file_limits small;
  small.max_bytes = 1000;
  r = read_extents(f, "big", nullptr, small);
  ::close(f);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message().find("more than an extents file may have") != std::string::npos);
}

TEST_CASE("extents file: a pipe that sends nothing times out, a stop request ends the wait") {
  pipe_pair p;
  p.put("0:0:1\n");
  extents_file_limits quick;
  quick.idle_timeout = std::chrono::milliseconds(300);
  auto t0 = std::chrono::steady_clock::now();
  auto r = read_extents(p.r, "fifo", nullptr, quick);
  auto dt = std::chrono::steady_clock::now() - t0;
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message().find("no data for") != std::string::npos);
  CHECK(dt >= std::chrono::milliseconds(300));
  CHECK(dt < std::chrono::seconds(3));

  pipe_pair q;
  std::atomic<bool> stop{false};
  extents_file_limits forever;
  forever.idle_timeout = std::chrono::milliseconds(0);
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    stop = true;
  });
  t0 = std::chrono::steady_clock::now();
  r = read_extents(q.r, "fifo", &stop, forever);
  dt = std::chrono::steady_clock::now() - t0;
  stopper.join();
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == errc::cancelled);
  CHECK(dt < std::chrono::milliseconds(200 + 300));
}
