// The JSON shapes scripts rely on (DESIGN §5): plan::to_json and report::to_json, parsed back.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "offcopy/offcopy.hpp"

using namespace offcopy;
using nlohmann::json;

TEST_CASE("plan JSON: backend, geometry, limits, considered backends, commands with segments") {
  plan p;
  p.backend = "nvme-copy";
  p.block_bytes = 512;
  p.limits = {128, 128, 256, true};
  p.segments = {{0, 100, 8}, {50, 108, 2}, {1000, 2000, 1}};
  p.batches = {{0, 2, false}, {2, 1, true}};
  p.considered = {{"nvme-copy", true, ""}};
  p.fallback_reason = "";
  p.ordered = true;
  json j = json::parse(p.to_json());
  CHECK(j["backend"] == "nvme-copy");
  CHECK(j["block_bytes"] == 512);
  CHECK(j["total_bytes"] == 11 * 512);
  CHECK(j["commands_total"] == 2);
  CHECK(j["segments_total"] == 3);
  CHECK(j["ordered"] == true);
  CHECK(j["limits"] == json{{"max_segments_per_command", 128},
                            {"max_segment_blocks", 128},
                            {"max_command_blocks", 256},
                            {"contiguous_destination", true}});
  CHECK_FALSE(j.contains("fallback_reason"));
  REQUIRE(j["considered"].is_array());
  CHECK(j["considered"][0] == json{{"backend", "nvme-copy"}, {"chosen", true}, {"reason", ""}});
  REQUIRE(j["commands"].size() == 2);
  CHECK(j["commands"][0]["barrier"] == false);
  CHECK(j["commands"][0]["segments"] == json::array({json::array({0, 100, 8}), json::array({50, 108, 2})}));
  CHECK(j["commands"][1]["barrier"] == true);
  CHECK(j["commands"][1]["segments"] == json::array({json::array({1000, 2000, 1})}));
  CHECK(j["commands"][1].size() == 2);

  // Truncated listing keeps the totals.
  json t = json::parse(p.to_json(1));
  CHECK(t["commands"].size() == 1);
  CHECK(t["commands_total"] == 2);

  p.fallback_reason = "nvme-copy: not an NVMe namespace";
  CHECK(json::parse(p.to_json())["fallback_reason"] == "nvme-copy: not an NVMe namespace");
}

TEST_CASE("report JSON: success with a fallback") {
  report r;
  r.bytes_requested = 4096;
  r.bytes_copied = 4096;
  r.of("nvme-copy") = {1024, 2, 1};
  r.of("buffered") = {3072, 1, 0};
  r.fallback_reasons = {"nvme-copy: not-supported: Invalid Opcode"};
  r.elapsed_seconds = 0.5;
  r.verified = true;
  json j = json::parse(r.to_json());
  CHECK(j["status"] == "ok");
  CHECK(j["bytes_requested"] == 4096);
  CHECK(j["bytes_copied"] == 4096);
  CHECK(j["backends"] == json{{"nvme-copy", {{"bytes", 1024}, {"commands", 2}, {"retries", 1}}},
                              {"buffered", {{"bytes", 3072}, {"commands", 1}, {"retries", 0}}}});
  CHECK(j["fallback_reason"] == "nvme-copy: not-supported: Invalid Opcode");
  CHECK(j["fallback_reasons"] == json::array({"nvme-copy: not-supported: Invalid Opcode"}));
  CHECK(j["elapsed_seconds"] == 0.5);
  CHECK(j["verified"] == true);
  CHECK_FALSE(j.contains("error"));
  CHECK_FALSE(j.contains("first_mismatch_offset"));
}

TEST_CASE("report JSON: an error keeps its code, errno and device detail, unused backends are absent") {
  report r;
  r.bytes_requested = 8192;
  r.bytes_copied = 1536;
  r.of("nvme-copy") = {1536, 1, 0};
  nvme_status_detail n;
  n.raw_status = 0x4183;
  n.sct = 1;
  n.sc = 0x83;
  n.dnr = true;
  n.dw0 = 3;
  n.name = "Command Size Limit Exceeded";
  r.result = status(errc::device_error, "Copy failed", 5).with_nvme(n);
  json j = json::parse(r.to_json());
  CHECK(j["status"] == "error");
  CHECK(j["bytes_copied"] == 1536);
  CHECK(j["backends"].size() == 1);
  CHECK_FALSE(j.contains("fallback_reason"));
  CHECK(j["error"]["code"] == "device-error");
  CHECK(j["error"]["message"] == "Copy failed");
  CHECK(j["error"]["errno"] == 5);
  CHECK(j["error"]["nvme"] == json{{"sct", 1},
                                   {"sc", 0x83},
                                   {"dnr", true},
                                   {"dw0", 3},
                                   {"status", 0x4183},
                                   {"name", "Command Size Limit Exceeded"}});

  report s;
  scsi_status_detail d;
  d.status = 2;
  d.sense_key = 0x0a;
  d.asc = 0x0d;
  d.ascq = 0x02;
  d.information_valid = true;
  d.information = 77;
  d.text = "Copy aborted";
  s.result = status(errc::device_error, "XCOPY failed").with_scsi(d);
  s.first_mismatch_offset = 12;
  json k = json::parse(s.to_json());
  CHECK(k["backends"] == json::object());
  CHECK_FALSE(k["error"].contains("errno"));
  CHECK(
      k["error"]["scsi"] ==
      json{{"status", 2}, {"sense_key", 10}, {"asc", 13}, {"ascq", 2}, {"text", "Copy aborted"}, {"information", 77}});
  CHECK(k["first_mismatch_offset"] == 12);
}

TEST_CASE("names are stable: the registry's backends, in order, and the error codes") {
  std::vector<std::string> names;
  std::vector<bool> offload;
  for (const backend_info& b : registered_backends()) {
    names.push_back(b.name);
    offload.push_back(b.offload);
  }
  CHECK(names == std::vector<std::string>{"nvme-copy", "scsi-xcopy", "scsi-token", "copy-file-range", "buffered"});
  CHECK(offload == std::vector<bool>{true, true, true, false, false});
  CHECK(std::string(to_string(errc::out_of_range)) == "out-of-range");
  CHECK(status(errc::busy, "x").to_string() == "busy: x");
  CHECK(status().to_string() == "ok");
}
