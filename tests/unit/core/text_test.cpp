// Untrusted bytes on their way out (src/core/text.cpp): invalid UTF-8 replaced, control characters
// escaped, JSON always parseable. Expected outputs written from RFC 3629's table of well-formed
// sequences, not from the code.
#include <doctest/doctest.h>

#include <string>

#include <nlohmann/json.hpp>

#include "offcopy/offcopy.hpp"
#include "src/core/text.hpp"

using namespace offcopy;
using offcopy::detail::terminal_safe;
using offcopy::detail::valid_utf8;

namespace {
const std::string fffd = "\xEF\xBF\xBD";
}

TEST_CASE("valid_utf8: well-formed text is unchanged, every ill-formed byte becomes U+FFFD") {
  CHECK(valid_utf8("plain /dev/nvme0n1") == "plain /dev/nvme0n1");
  CHECK(valid_utf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80") == "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80");
  CHECK(valid_utf8(std::string("a\0b", 3)) == std::string("a\0b", 3));
  CHECK(valid_utf8("\xFF") == fffd);                                   // never valid
  CHECK(valid_utf8("\xC0\xAF") == fffd + fffd);                        // overlong '/'
  CHECK(valid_utf8("\xE0\x80\xAF") == fffd + fffd + fffd);             // overlong, 3 bytes
  CHECK(valid_utf8("\xED\xA0\x80") == fffd + fffd + fffd);             // UTF-16 surrogate D800
  CHECK(valid_utf8("\xF4\x90\x80\x80") == fffd + fffd + fffd + fffd);  // past U+10FFFF
  CHECK(valid_utf8("ab\xE2\x82") == "ab" + fffd + fffd);               // truncated at the end
  CHECK(valid_utf8("\x80x") == fffd + "x");                            // lone continuation byte
}

TEST_CASE("terminal_safe: control characters are escaped, newlines and tabs kept") {
  CHECK(terminal_safe("a\tb\nc") == "a\tb\nc");
  CHECK(terminal_safe("\x1b[31mred") == "\\x1b[31mred");
  CHECK(terminal_safe("bell\x07") == "bell\\x07");
  CHECK(terminal_safe("del\x7f") == "del\\x7f");
  CHECK(terminal_safe("c1\xC2\x9B") == "c1\\x9b");  // U+009B, the 8-bit CSI
  CHECK(terminal_safe("\xC2\xA0") == "\xC2\xA0");   // U+00A0 is printable
  CHECK(terminal_safe("\xFF\x1b") == fffd + "\\x1b");
}

TEST_CASE("every rendering of device and path bytes is valid JSON and terminal-safe") {
  const std::string evil = "serial-\xFF\xFE-\x1b]0;pwn\x07";
  capabilities c;
  c.path = "/dev/" + evil;
  c.identity = "nvme-ns:nvme0:" + evil + ":1";
  offload_mechanism m;
  m.backend = "nvme-copy";
  m.reason = evil;
  m.details = {{"model", evil}, {"serial", evil}};
  c.offload.push_back(m);
  auto j = nlohmann::json::parse(c.to_json());  // throws on invalid UTF-8
  CHECK(j["offload"][0]["details"]["serial"].get<std::string>().find(fffd) != std::string::npos);
  std::string text = c.to_text();
  CHECK(text.find('\x1b') == std::string::npos);
  CHECK(text.find('\x07') == std::string::npos);
  CHECK(text.find("\\x1b") != std::string::npos);

  scsi_status_detail d;
  d.text = "sense " + evil;
  report r;
  r.result = status(errc::device_error, "XCOPY /dev/" + evil).with_scsi(d);
  r.fallback_reasons = {evil};
  CHECK(nlohmann::json::parse(r.to_json())["error"]["scsi"]["text"].get<std::string>().find(fffd) != std::string::npos);
  CHECK(r.to_text().find('\x1b') == std::string::npos);
  CHECK(r.result.to_string().find('\x1b') == std::string::npos);
  nvme_status_detail n;
  n.name = evil;
  status s = status(errc::device_error, "x").with_nvme(n);
  CHECK(s.to_string().find('\x07') == std::string::npos);
  job_result jr = job_result::failed(operation::probe, status(errc::not_found, evil));
  CHECK(nlohmann::json::parse(jr.to_json())["error"]["message"].get<std::string>().find(fffd) != std::string::npos);
  CHECK(jr.error_line().find('\x1b') == std::string::npos);
  // One line: a newline in a message (a path, an exception's text) is escaped like any control.
  const status nl(errc::not_found, "/tmp/a\nb\n");
  CHECK(nl.to_string() == "not-found: /tmp/a\\x0ab\\x0a");
}
