// The CLI's catch-all (src/cli/guard.cpp), driven with throwing bodies: exit 1, one terminal-safe
// line on stderr, and under --json one valid JSON object with error code internal. unit_cli's
// operator new is replaced (tests/unit/cli/failing_new.cpp: allocations fail while
// `fail_allocations` is set) to prove the fixed output when memory is too short even for the message.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <new>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "src/cli/guard.hpp"

namespace offcopy::cli_test {
extern std::atomic<bool> fail_allocations;  // tests/unit/cli/failing_new.cpp
}  // namespace offcopy::cli_test

using namespace offcopy;
using offcopy::cli_test::fail_allocations;

namespace {

/// What a guarded body printed: its exit status, stdout and stderr bytes.
struct captured {
  int rc = -1;
  std::string out, err;
};

std::string drain(int fd) {
  std::string s;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) s.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  return s;
}

template <class Body>
captured guarded(Body&& body, bool json, operation op = operation::copy) {
  int out[2], err[2];
  REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
  REQUIRE(::pipe2(err, O_CLOEXEC) == 0);
  cli::guard_output where;
  where.op = op;
  where.json = json;
  where.out_fd = out[1];
  where.err_fd = err[1];
  captured c;
  c.rc = cli::run_guarded(std::forward<Body>(body), where);  // output is small: the pipes hold it
  fail_allocations = false;
  ::close(out[1]);
  ::close(err[1]);
  c.out = drain(out[0]);
  c.err = drain(err[0]);
  return c;
}

bool valid_utf8(const std::string& s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size() || (n == 2 && c < 0xC2)) return false;
    std::uint32_t cp = n == 1 ? c : n == 2 ? c & 0x1F : n == 3 ? c & 0x0F : c & 0x07;
    for (std::size_t k = 1; k < n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d >> 6) != 2) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += n;
  }
  return true;
}

/// The one stderr line: "offload-copy: " first, one newline at the end, valid UTF-8, no byte a
/// terminal would act on. Returns it without the newline.
std::string one_line(const std::string& err) {
  REQUIRE_MESSAGE(err.size() > 1, err);
  CHECK(err.back() == '\n');
  CHECK(err.find('\n') == err.size() - 1);
  CHECK(err.rfind("offload-copy: internal: unexpected error", 0) == 0);
  CHECK(valid_utf8(err));
  for (std::size_t i = 0; i + 1 < err.size(); ++i) {
    const auto c = static_cast<unsigned char>(err[i]);
    CHECK_MESSAGE(((c >= 0x20 && c != 0x7F) || c == '\t'), "raw control byte ", int(c), " at ", i);
    if (c == 0xC2 && i + 1 < err.size()) CHECK(static_cast<unsigned char>(err[i + 1]) >= 0xA0);  // no C1
  }
  return err.substr(0, err.size() - 1);
}

/// The one JSON object on stdout: one line, parses (nlohmann rejects invalid UTF-8), the shape of
/// docs/offload-copy.schema.json's failure object (the schema itself is checked on the binary's
/// output by tests/cli/test_reliability_unexpected.py).
nlohmann::json one_object(const std::string& out, operation op) {
  REQUIRE_MESSAGE(!out.empty(), "no JSON on stdout");
  CHECK(out.back() == '\n');
  CHECK(out.find('\n') == out.size() - 1);
  CHECK(valid_utf8(out));
  nlohmann::json j = nlohmann::json::parse(out);
  CHECK(j["status"] == "error");
  CHECK(j["bytes_copied"] == 0);
  CHECK(j["error"]["code"] == "internal");
  CHECK(j["outcome"] == "device-error");
  CHECK(j["exit_status"] == 1);
  CHECK(j["operation"] == to_string(op));
  return j;
}

// Invalid UTF-8 (a lone byte, an overlong '/', a surrogate, past U+10FFFF, a cut sequence), C0 and
// C1 controls, terminal escapes, DEL, quotes and backslashes, CR and LF: everything but NUL.
const std::string hostile =
    "bad \xff\xfe \xc0\xaf \xed\xa0\x80 \xf4\x90\x80\x80 \xe2\x82 \"quoted\" back\\slash \x1b[31mred\x1b[0m "
    "\x1b]0;title\x07 \x7f\x01\x1f \xc2\x9b tab\there cr\rlf\nnext line \xf0\x9f\x92\xa9 end";

}  // namespace

TEST_CASE("guard: a body that returns is its exit status, and nothing is printed") {
  for (int want : {0, 1, 2, 3}) {
    captured c = guarded([want] { return want; }, true);
    CHECK(c.rc == want);
    CHECK(c.out.empty());
    CHECK(c.err.empty());
  }
}

TEST_CASE("guard: std::runtime_error with hostile bytes in what(): exit 1, one safe line, one valid object") {
  for (operation op : {operation::probe, operation::plan, operation::copy}) {
    CAPTURE(to_string(op));
    captured c = guarded([]() -> int { throw std::runtime_error(hostile); }, true, op);
    CHECK(c.rc == 1);
    const std::string line = one_line(c.err);
    CHECK(line.rfind("offload-copy: internal: unexpected error: bad ", 0) == 0);
    for (const char* kept : {"\"quoted\"", "back\\slash", "red", "tab\there", "\\x1b[31m", "\\x07", "\\x0a", "end"})
      CHECK_MESSAGE(line.find(kept) != std::string::npos, kept);
    nlohmann::json j = one_object(c.out, op);
    const std::string msg = j["error"]["message"].get<std::string>();
    CHECK(msg.rfind("unexpected error: bad ", 0) == 0);
    CHECK(msg.find("\xef\xbf\xbd") != std::string::npos);  // U+FFFD for the invalid bytes
    // The valid parts arrive as they were: quotes, controls (escaped by JSON itself), newline.
    for (const char* kept :
         {"\"quoted\"", "back\\slash", "\x1b[31mred", "\x07", "cr\rlf\nnext line", "\xf0\x9f\x92\xa9 end"})
      CHECK_MESSAGE(msg.find(kept) != std::string::npos, kept);
  }
}

TEST_CASE("guard: without --json, the line only") {
  captured c = guarded([]() -> int { throw std::logic_error("a bug"); }, false);
  CHECK(c.rc == 1);
  CHECK(c.out.empty());
  CHECK(one_line(c.err) == "offload-copy: internal: unexpected error: a bug");
}

TEST_CASE("guard: std::bad_alloc") {
  captured c = guarded([]() -> int { throw std::bad_alloc(); }, true);
  CHECK(c.rc == 1);
  CHECK(one_line(c.err) == "offload-copy: internal: unexpected error: out of memory (std::bad_alloc)");
  CHECK(one_object(c.out, operation::copy)["error"]["message"] == "unexpected error: out of memory (std::bad_alloc)");
}

TEST_CASE("guard: an exception that is not a std::exception (throw 42)") {
  captured c = guarded([]() -> int { throw 42; }, true, operation::plan);
  CHECK(c.rc == 1);
  CHECK(one_line(c.err) == "offload-copy: internal: unexpected error: unknown exception (not a std::exception)");
  CHECK(one_object(c.out, operation::plan)["error"]["message"] ==
        "unexpected error: unknown exception (not a std::exception)");
}

TEST_CASE("guard: memory too short even for the message: fixed text of the same shape") {
  for (operation op : {operation::probe, operation::plan, operation::copy}) {
    CAPTURE(to_string(op));
    const std::runtime_error e("lost for want of memory");
    captured c = guarded(
        [&e]() -> int {
          fail_allocations = true;  // every operator new from here until guarded() returns throws
          throw e;
        },
        true, op);
    CHECK(c.rc == 1);
    CHECK(c.err == "offload-copy: internal: unexpected error\n");
    // Exactly what the library renders for that error (the fixed text cannot drift from it).
    CHECK(c.out == job_result::failed(op, status(errc::internal, "unexpected error")).to_json() + "\n");
    one_object(c.out, op);
  }
}
