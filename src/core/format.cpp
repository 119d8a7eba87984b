// Text and JSON renderings of plans and reports.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "offcopy/device.hpp"
#include "offcopy/plan.hpp"
#include "offcopy/report.hpp"

namespace offcopy {
namespace {

nlohmann::json limits_json(const copy_limits& l) {
  return {{"max_segments_per_command", l.max_segments_per_command},
          {"max_segment_blocks", l.max_segment_blocks},
          {"max_command_blocks", l.max_command_blocks},
          {"contiguous_destination", l.contiguous_destination}};
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{:.0f} {}", b, units[u]) : fmt::format("{:.1f} {}", b, units[u]);
}

nlohmann::json status_json(const status& s) {
  nlohmann::json j{{"code", to_string(s.code())}, {"message", s.message()}};
  if (s.sys_errno()) j["errno"] = s.sys_errno();
  if (const auto& n = s.nvme()) {
    j["nvme"] = {{"sct", n->sct}, {"sc", n->sc}, {"dnr", n->dnr}, {"dw0", n->dw0}, {"status", n->raw_status},
                 {"name", n->name}};
  }
  if (const auto& c = s.scsi()) {
    j["scsi"] = {{"status", c->status}, {"sense_key", c->sense_key}, {"asc", c->asc}, {"ascq", c->ascq},
                 {"text", c->text}};
    if (c->information_valid) j["scsi"]["information"] = c->information;
  }
  return j;
}

}  // namespace

std::string capabilities::to_json() const {
  const capabilities& c = *this;
  nlohmann::json j{{"path", c.path},
                   {"kind", to_string(c.kind)},
                   {"size_bytes", c.size_bytes},
                   {"logical_block_bytes", c.logical_block_bytes},
                   {"physical_block_bytes", c.physical_block_bytes},
                   {"read_only", c.read_only},
                   {"block_path", c.block_path},
                   {"identity", c.identity}};
  if (!c.parent_path.empty()) {
    j["parent_path"] = c.parent_path;
    j["partition_start_bytes"] = c.partition_start_bytes;
  }
  auto& off = j["offload"] = nlohmann::json::array();
  for (const auto& m : c.offload) {
    nlohmann::json d = nlohmann::json::object();
    for (const auto& [k, v] : m.details) d[k] = v;
    off.push_back({{"backend", to_string(m.backend)},
                   {"available", m.available},
                   {"reason", m.reason},
                   {"limits",
                    {{"max_segments_per_command", m.limits.max_segments_per_command},
                     {"max_segment_blocks", m.limits.max_segment_blocks},
                     {"max_command_blocks", m.limits.max_command_blocks},
                     {"contiguous_destination", m.limits.contiguous_destination}}},
                   {"details", d}});
  }
  return j.dump();
}

std::uint64_t plan::batch_blocks(const plan_batch& b) const noexcept {
  std::uint64_t n = 0;
  for (std::uint32_t i = 0; i < b.segment_count; ++i) n += segments[b.first_segment + i].blocks;
  return n;
}

std::uint64_t plan::total_bytes() const noexcept {
  std::uint64_t n = 0;
  for (const auto& s : segments) n += s.blocks;
  return n * block_bytes;
}

std::string plan::to_text(std::size_t max_commands) const {
  std::string out = fmt::format("backend {}, {} command{}, {} segment{}, {} ({} bytes) in {}-byte blocks{}\n",
                                to_string(backend), batches.size(), batches.size() == 1 ? "" : "s", segments.size(),
                                segments.size() == 1 ? "" : "s", human_bytes(static_cast<double>(total_bytes())),
                                total_bytes(), block_bytes, ordered ? ", ordered (overlapping)" : "");
  out += fmt::format("limits: segments/command {}, blocks/segment {}, blocks/command {}{}\n",
                     limits.max_segments_per_command ? std::to_string(limits.max_segments_per_command) : "-",
                     limits.max_segment_blocks ? std::to_string(limits.max_segment_blocks) : "-",
                     limits.max_command_blocks ? std::to_string(limits.max_command_blocks) : "-",
                     limits.contiguous_destination ? ", contiguous destination per command" : "");
  for (const auto& c : considered)
    out += fmt::format("  {} {}{}\n", c.chosen ? "*" : "-", to_string(c.backend), c.reason.empty() ? "" : ": " + c.reason);
  if (!fallback_reason.empty()) out += fmt::format("fallback: {}\n", fallback_reason);
  std::size_t n = max_commands == 0 ? batches.size() : std::min(max_commands, batches.size());
  for (std::size_t i = 0; i < n; ++i) {
    const plan_batch& b = batches[i];
    out += fmt::format("command {}: {} segment{}, {} blocks{}{}\n", i + 1, b.segment_count, b.segment_count == 1 ? "" : "s",
                       batch_blocks(b), b.barrier ? " (after all before it)" : "",
                       b.order == copy_order::descending  ? ", memmove order from the end"
                       : b.order == copy_order::ascending ? ", memmove order from the start"
                                                          : "");
    for (std::uint32_t k = 0; k < b.segment_count; ++k) {
      const plan_segment& s = segments[b.first_segment + k];
      out += fmt::format("  src {} -> dst {} x {}\n", s.src_block, s.dst_block, s.blocks);
    }
  }
  if (n < batches.size()) out += fmt::format("... {} more commands\n", batches.size() - n);
  return out;
}

std::string plan::to_json(std::size_t max_commands) const {
  nlohmann::json j;
  j["backend"] = to_string(backend);
  j["block_bytes"] = block_bytes;
  j["total_bytes"] = total_bytes();
  j["commands_total"] = batches.size();
  j["segments_total"] = segments.size();
  j["ordered"] = ordered;
  j["limits"] = limits_json(limits);
  if (!fallback_reason.empty()) j["fallback_reason"] = fallback_reason;
  auto& cons = j["considered"] = nlohmann::json::array();
  for (const auto& c : considered) cons.push_back({{"backend", to_string(c.backend)}, {"chosen", c.chosen}, {"reason", c.reason}});
  auto& cmds = j["commands"] = nlohmann::json::array();
  std::size_t n = max_commands == 0 ? batches.size() : std::min(max_commands, batches.size());
  for (std::size_t i = 0; i < n; ++i) {
    const plan_batch& b = batches[i];
    nlohmann::json segs = nlohmann::json::array();
    for (std::uint32_t k = 0; k < b.segment_count; ++k) {
      const plan_segment& s = segments[b.first_segment + k];
      segs.push_back({s.src_block, s.dst_block, s.blocks});
    }
    nlohmann::json cmd{{"barrier", b.barrier}, {"segments", std::move(segs)}};
    if (b.order != copy_order::any) cmd["order"] = to_string(b.order);
    cmds.push_back(std::move(cmd));
  }
  return j.dump();
}

std::string report::to_text() const {
  std::string out;
  double rate = elapsed_seconds > 0 ? static_cast<double>(bytes_copied) / elapsed_seconds : 0;
  out += fmt::format("{}: {} of {} copied ({} bytes) in {:.3f} s, {}/s\n", result.ok() ? "done" : "FAILED",
                     human_bytes(static_cast<double>(bytes_copied)), human_bytes(static_cast<double>(bytes_requested)),
                     bytes_copied, elapsed_seconds, human_bytes(rate));
  for (std::size_t i = 0; i < usage.size(); ++i) {
    const auto& u = usage[i];
    if (u.commands == 0 && u.bytes == 0) continue;
    out += fmt::format("  {}: {} bytes in {} command{}{}{}\n", to_string(static_cast<backend_kind>(i)), u.bytes,
                       u.commands, u.commands == 1 ? "" : "s",
                       u.retries ? fmt::format(" ({} re-sent smaller)", u.retries) : "",
                       u.cloned_bytes ? fmt::format(", {} bytes of them cloned (shared blocks)", u.cloned_bytes) : "");
  }
  for (const auto& r : fallback_reasons) out += fmt::format("  fallback: {}\n", r);
  if (verified) out += "  verify: source and destination match\n";
  if (!result.ok()) {
    out += fmt::format("  error: {}\n", result.to_string());
    out += fmt::format("  bytes known done: {}\n", bytes_copied);
  }
  return out;
}

std::string report::to_json() const {
  nlohmann::json j;
  j["status"] = result.ok() ? "ok" : "error";
  j["bytes_requested"] = bytes_requested;
  j["bytes_copied"] = bytes_copied;
  auto& be = j["backends"] = nlohmann::json::object();
  for (std::size_t i = 0; i < usage.size(); ++i) {
    const auto& u = usage[i];
    if (u.commands == 0 && u.bytes == 0) continue;
    be[to_string(static_cast<backend_kind>(i))] = {{"bytes", u.bytes}, {"commands", u.commands}, {"retries", u.retries}};
    if (u.cloned_bytes) be[to_string(static_cast<backend_kind>(i))]["cloned_bytes"] = u.cloned_bytes;
  }
  if (!fallback_reasons.empty()) {
    j["fallback_reason"] = fallback_reasons.front();
    j["fallback_reasons"] = fallback_reasons;
  }
  j["elapsed_seconds"] = elapsed_seconds;
  j["verified"] = verified;
  if (first_mismatch_offset >= 0) j["first_mismatch_offset"] = first_mismatch_offset;
  if (!result.ok()) j["error"] = status_json(result);
  return j.dump();
}

}  // namespace offcopy
