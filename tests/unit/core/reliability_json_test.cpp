// Issue 8.3: every byte string a user or a device supplies comes out of the job's JSON as valid
// UTF-8 that parses, and out of its text and error line without a control byte a terminal would
// act on -- random bytes (NUL, invalid UTF-8, C0/C1 controls, escapes) in every input string.
#include <doctest/doctest.h>

#include <random>
#include <string>

#include <nlohmann/json.hpp>

#include "offcopy/offcopy.hpp"
#include "src/core/text.hpp"

using namespace offcopy;

namespace {

std::string random_bytes(std::mt19937_64& rng, std::size_t max_len) {
  static const std::string specials[] = {
      "\x1b]0;x\x07", "\xc2\x9b", "\xed\xa0\x80", "\xf4\x90\x80\x80", std::string("\0", 1), "\xff", "\xc0\xaf", "\\",
      "\"",           "\n"};
  std::string s;
  std::size_t n = rng() % max_len;
  while (s.size() < n) {
    if (rng() % 4 == 0) {
      s += specials[rng() % std::size(specials)];
    } else {
      s.push_back(static_cast<char>(rng() & 0xff));
    }
  }
  return s;
}

bool terminal_safe(const std::string& s) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) return false;
    if (c == 0xc2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) < 0xa0) return false;  // C1
  }
  return detail::valid_utf8(s) == s;
}

void check_outputs(const job_result& r) {
  const std::string j = r.to_json();
  CHECK(detail::valid_utf8(j) == j);
  nlohmann::json parsed = nlohmann::json::parse(j);  // throws on invalid UTF-8 or syntax
  CHECK(parsed.contains("outcome"));
  CHECK(parsed["exit_status"] == r.exit_status());
  CHECK(terminal_safe(r.error_line()));
  CHECK(terminal_safe(r.to_text()));
}

}  // namespace

TEST_CASE("json: random hostile bytes in paths, options and extents never break the JSON or the text") {
  std::mt19937_64 rng(0x8B17E5);
  for (int i = 0; i < 400; ++i) {
    job j;
    j.op = static_cast<operation>(rng() % 3);
    j.source = "/nonexistent/" + random_bytes(rng, 40);
    j.destination = "/nonexistent/" + random_bytes(rng, 40);
    if (rng() % 3 == 0) j.options.mode = random_bytes(rng, 12);
    if (rng() % 3 == 0) j.options.backends = {random_bytes(rng, 12)};
    if (rng() % 4 == 0) j.options.journal = random_bytes(rng, 20);
    if (rng() % 4 == 0) j.options.submit = random_bytes(rng, 8);
    job_result r = run(j);
    CHECK_FALSE(r.ok());
    CHECK((r.exit_status() == 2 || r.exit_status() == 1));
    check_outputs(r);
    check_outputs(job_result::failed(j.op, status(errc::invalid_argument, random_bytes(rng, 200))));
  }
}
