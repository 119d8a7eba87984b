// Text and JSON renderings of capabilities, plans and reports. Every text goes through
// detail::terminal_safe and every JSON through detail::dump_json: paths and device strings are
// untrusted bytes.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "offcopy/device.hpp"
#include "offcopy/plan.hpp"
#include "offcopy/report.hpp"
#include "src/core/format.hpp"
#include "src/core/text.hpp"

namespace offcopy {
namespace detail {

nlohmann::json limits_to_json(const copy_limits& l) {
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

nlohmann::json status_to_json(const status& s) {
  nlohmann::json j{{"code", to_string(s.code())}, {"message", s.message()}};
  if (s.sys_errno()) j["errno"] = s.sys_errno();
  if (const auto& n = s.nvme()) {
    j["nvme"] = {{"sct", n->sct},           {"sc", n->sc},    {"dnr", n->dnr}, {"dw0", n->dw0},
                 {"status", n->raw_status}, {"name", n->name}};
  }
  if (const auto& c = s.scsi()) {
    j["scsi"] = {
        {"status", c->status}, {"sense_key", c->sense_key}, {"asc", c->asc}, {"ascq", c->ascq}, {"text", c->text}};
    if (c->information_valid) j["scsi"]["information"] = c->information;
  }
  return j;
}

nlohmann::json timings_to_json(const timings& t) {
  return {{"open_seconds", t.open_seconds},   {"probe_seconds", t.probe_seconds}, {"plan_seconds", t.plan_seconds},
          {"flush_seconds", t.flush_seconds}, {"copy_seconds", t.copy_seconds},   {"verify_seconds", t.verify_seconds}};
}

std::string timings_to_text(const timings& t) {
  return fmt::format(
      "time: open {:.3f} s, probe {:.3f} s, plan {:.3f} s, flush {:.3f} s, copy {:.3f} s, verify {:.3f} s",
      t.open_seconds, t.probe_seconds, t.plan_seconds, t.flush_seconds, t.copy_seconds, t.verify_seconds);
}

nlohmann::json capabilities_to_json(const capabilities& c) {
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
    off.push_back({{"backend", m.backend},
                   {"available", m.available},
                   {"reason", m.reason},
                   {"limits", limits_to_json(m.limits)},
                   {"details", d}});
  }
  if (!c.pieces.empty()) {
    auto& pieces = j["pieces"] = nlohmann::json::array();
    for (const auto& p : c.pieces) {
      nlohmann::json o{{"offset_bytes", p.offset_bytes},
                       {"length_bytes", p.length_bytes},
                       {"medium", p.medium},
                       {"medium_offset_bytes", p.medium_offset_bytes},
                       {"via", p.via}};
      if (!p.opaque.empty()) o["opaque"] = p.opaque;
      pieces.push_back(std::move(o));
    }
    j["pieces_total"] = c.pieces_total;
    auto& media = j["media"] = nlohmann::json::array();
    for (const auto& m : c.media) media.push_back(capabilities_to_json(m));
  }
  return j;
}

namespace {

std::string indented(const std::string& text, const std::string& by) {
  std::string out;
  std::size_t i = 0;
  while (i < text.size()) {
    const std::size_t nl = text.find('\n', i);
    const std::size_t end = nl == std::string::npos ? text.size() : nl + 1;
    out += by + text.substr(i, end - i);
    i = end;
  }
  return out;
}

bool is_own_medium(const capabilities& c) {
  return c.pieces.size() == 1 && c.pieces_total == 1 && c.pieces[0].via.empty() && c.pieces[0].opaque.empty() &&
         c.media.empty();
}

}  // namespace

std::string capabilities_to_text(const capabilities& c) {
  std::string out =
      fmt::format("{}: {}, {} bytes, {}-byte logical blocks ({} physical){}\n", c.path, to_string(c.kind), c.size_bytes,
                  c.logical_block_bytes, c.physical_block_bytes, c.read_only ? ", read-only" : "");
  if (c.block_path != c.path && !c.block_path.empty()) out += fmt::format("  data through {}\n", c.block_path);
  if (!c.parent_path.empty())
    out += fmt::format("  partition of {} starting at byte {}\n", c.parent_path, c.partition_start_bytes);
  if (c.offload.empty()) out += "  no offload mechanism\n";
  for (const auto& m : c.offload) {
    out += fmt::format("  {}: {}\n", m.backend, m.available ? "available" : "not available: " + m.reason);
    if (m.available)
      out += fmt::format("    limits: {} segments/command, {} blocks/segment, {} blocks/command{}\n",
                         m.limits.max_segments_per_command, m.limits.max_segment_blocks, m.limits.max_command_blocks,
                         m.limits.contiguous_destination ? ", contiguous destination" : "");
    for (const auto& [k, v] : m.details) out += fmt::format("    {}: {}\n", k, v);
  }
  if (!c.pieces.empty() && !is_own_medium(c)) {
    out += fmt::format("  resolution: {} piece{} on {} medi{}\n", c.pieces_total, c.pieces_total == 1 ? "" : "s",
                       c.media.size(), c.media.size() == 1 ? "um" : "a");
    for (const auto& p : c.pieces)
      out += fmt::format("    [{}, {}) -> {} at {}{}{}\n", p.offset_bytes, p.offset_bytes + p.length_bytes, p.medium,
                         p.medium_offset_bytes, p.via.empty() ? "" : ", via " + p.via,
                         p.opaque.empty() ? "" : ", opaque: " + p.opaque + " (copied by a fallback)");
    if (c.pieces.size() < c.pieces_total) out += fmt::format("    ... {} more\n", c.pieces_total - c.pieces.size());
    for (const auto& m : c.media) out += "  medium " + indented(capabilities_to_text(m), "  ").substr(2);
  }
  return terminal_safe(out);
}

nlohmann::json plan_to_json(const plan& p, std::size_t max_commands) {
  nlohmann::json j;
  j["backend"] = p.backend;
  j["block_bytes"] = p.block_bytes;
  j["total_bytes"] = p.total_bytes();
  j["commands_total"] = p.batches.size();
  j["segments_total"] = p.segments.size();
  j["ordered"] = p.ordered;
  j["limits"] = limits_to_json(p.limits);
  if (!p.fallback_reason.empty()) j["fallback_reason"] = p.fallback_reason;
  auto& cons = j["considered"] = nlohmann::json::array();
  for (const auto& c : p.considered)
    cons.push_back({{"backend", c.backend}, {"chosen", c.chosen}, {"reason", c.reason}});
  auto& parts = j["parts"] = nlohmann::json::array();
  for (const plan_part& part : p.parts) {
    nlohmann::json o{{"backend", part.backend},
                     {"block_bytes", part.block_bytes},
                     {"limits", limits_to_json(part.limits)},
                     {"source_medium", part.source_medium},
                     {"destination_medium", part.destination_medium},
                     {"bytes", part.bytes}};
    auto& pc = o["considered"] = nlohmann::json::array();
    for (const auto& c : part.considered)
      pc.push_back({{"backend", c.backend}, {"chosen", c.chosen}, {"reason", c.reason}});
    if (!part.fallback_reason.empty()) o["fallback_reason"] = part.fallback_reason;
    o["source"] = part.source;
    if (!part.gathered.empty()) {
      auto& g = o["gathered"] = nlohmann::json::array();
      for (std::size_t k = 0; k < part.gathered.size(); ++k)
        g.push_back({{"medium", part.gathered[k]},
                     {"source", part.gathered_sources[k]},
                     {"max_segment_blocks", part.gathered_segment_blocks[k]}});
    }
    auto& ranges = o["ranges"] = nlohmann::json::array();
    const std::size_t nr = max_commands == 0 ? part.ranges.size() : std::min(max_commands, part.ranges.size());
    for (std::size_t i = 0; i < nr; ++i)
      ranges.push_back(part.ranges[i].source == 0
                           ? nlohmann::json{part.ranges[i].src_offset_bytes, part.ranges[i].dst_offset_bytes,
                                            part.ranges[i].length_bytes}
                           : nlohmann::json{part.ranges[i].src_offset_bytes, part.ranges[i].dst_offset_bytes,
                                            part.ranges[i].length_bytes, part.ranges[i].source});
    o["ranges_total"] = part.ranges.size();
    parts.push_back(std::move(o));
  }
  auto& cmds = j["commands"] = nlohmann::json::array();
  std::size_t n = max_commands == 0 ? p.batches.size() : std::min(max_commands, p.batches.size());
  for (std::size_t i = 0; i < n; ++i) {
    const plan_batch& b = p.batches[i];
    nlohmann::json segs = nlohmann::json::array();
    const bool gather = b.part < p.parts.size() && !p.parts[b.part].gathered.empty();
    for (std::uint32_t k = 0; k < b.segment_count; ++k) {
      const plan_segment& s = p.segments[b.first_segment + k];
      // A gathering part's segment names the medium it reads: index into the part's "gathered".
      segs.push_back(gather ? nlohmann::json{s.src_block, s.dst_block, s.blocks, s.source}
                            : nlohmann::json{s.src_block, s.dst_block, s.blocks});
    }
    nlohmann::json cmd{{"barrier", b.barrier}, {"segments", std::move(segs)}};
    if (b.order != copy_order::any) cmd["order"] = to_string(b.order);
    if (!p.parts.empty()) cmd["part"] = b.part;
    cmds.push_back(std::move(cmd));
  }
  return j;
}

nlohmann::json report_to_json(const report& r) {
  nlohmann::json j;
  j["status"] = r.result.ok() ? "ok" : "error";
  j["bytes_requested"] = r.bytes_requested;
  j["bytes_copied"] = r.bytes_copied;
  auto& be = j["backends"] = nlohmann::json::object();
  for (const auto& [name, u] : r.usage) {
    if (u.commands == 0 && u.bytes == 0) continue;
    be[name] = {{"bytes", u.bytes}, {"commands", u.commands}, {"retries", u.retries}};
    if (u.cloned_bytes) be[name]["cloned_bytes"] = u.cloned_bytes;
  }
  if (!r.fallback_reasons.empty()) {
    j["fallback_reason"] = r.fallback_reasons.front();
    j["fallback_reasons"] = r.fallback_reasons;
  }
  j["elapsed_seconds"] = r.elapsed_seconds;
  j["timings"] = timings_to_json(r.time);
  j["verified"] = r.verified;
  if (r.verify_skipped) j["verify_skipped"] = "source and destination overlap on one device";
  if (r.first_mismatch_offset >= 0) j["first_mismatch_offset"] = r.first_mismatch_offset;
  if (!r.gathered_sources.empty()) j["gathered_sources"] = r.gathered_sources;
  if (!r.result.ok()) j["error"] = status_to_json(r.result);
  return j;
}

}  // namespace detail

namespace v0 {

std::string capabilities::to_json() const { return detail::dump_json(detail::capabilities_to_json(*this)); }
std::string capabilities::to_text() const { return detail::capabilities_to_text(*this); }

std::uint64_t plan::batch_blocks(const plan_batch& b) const noexcept {
  std::uint64_t n = 0;
  for (std::uint32_t i = 0; i < b.segment_count; ++i) n += segments[b.first_segment + i].blocks;
  return n;
}

std::uint32_t plan::batch_block_bytes(const plan_batch& b) const noexcept {
  return b.part < parts.size() ? parts[b.part].block_bytes : block_bytes;
}

std::uint64_t plan::total_bytes() const noexcept {
  std::uint64_t n = 0;
  if (parts.size() <= 1) {
    for (const auto& s : segments) n += s.blocks;
    return n * block_bytes;
  }
  for (const plan_batch& b : batches) n += batch_blocks(b) * batch_block_bytes(b);
  return n;
}

std::string plan::to_text(std::size_t max_commands) const {
  if (parts.size() > 1) {
    std::string names;
    for (const plan_part& part : parts)
      if (names.find(part.backend) == std::string::npos) names += (names.empty() ? "" : " + ") + part.backend;
    std::string out =
        fmt::format("{} parts ({}), {} command{}, {} segment{}, {} ({} bytes){}\n", parts.size(), names, batches.size(),
                    batches.size() == 1 ? "" : "s", segments.size(), segments.size() == 1 ? "" : "s",
                    detail::human_bytes(static_cast<double>(total_bytes())), total_bytes(),
                    ordered ? ", ordered (overlapping)" : "");
    return detail::terminal_safe(out + detail::plan_body_text(*this, max_commands));
  }
  std::string out =
      fmt::format("backend {}, {} command{}, {} segment{}, {} ({} bytes) in {}-byte blocks{}\n", backend,
                  batches.size(), batches.size() == 1 ? "" : "s", segments.size(), segments.size() == 1 ? "" : "s",
                  detail::human_bytes(static_cast<double>(total_bytes())), total_bytes(), block_bytes,
                  ordered ? ", ordered (overlapping)" : "");
  out += fmt::format("limits: segments/command {}, blocks/segment {}, blocks/command {}{}\n",
                     limits.max_segments_per_command ? std::to_string(limits.max_segments_per_command) : "-",
                     limits.max_segment_blocks ? std::to_string(limits.max_segment_blocks) : "-",
                     limits.max_command_blocks ? std::to_string(limits.max_command_blocks) : "-",
                     limits.contiguous_destination ? ", contiguous destination per command" : "");
  return detail::terminal_safe(out + detail::plan_body_text(*this, max_commands));
}

}  // namespace v0

namespace detail {

std::string part_sources_text(const plan_part& part) {
  if (part.gathered.empty()) return part.source_medium;
  // "gather [1] /dev/nvme0n1 (source 1) + [2] ..." : the [k] tags the command listing uses.
  std::string out = "gather";
  for (std::size_t k = 0; k < part.gathered.size(); ++k)
    out += fmt::format("{} [{}] {} (source {})", k == 0 ? "" : " +", k + 1, part.gathered[k], part.gathered_sources[k]);
  return out;
}

std::string plan_body_text(const plan& p, std::size_t max_commands) {
  const auto& parts = p.parts;
  const auto& considered = p.considered;
  const auto& fallback_reason = p.fallback_reason;
  const auto& batches = p.batches;
  const auto& segments = p.segments;
  std::string out;
  if (parts.size() > 1) {
    for (std::size_t k = 0; k < parts.size(); ++k) {
      const plan_part& part = parts[k];
      out += fmt::format("part {}: {}, {} -> {}, {} ({} bytes) in {}-byte blocks, {} range{}\n", k + 1, part.backend,
                         detail::part_sources_text(part), part.destination_medium,
                         detail::human_bytes(static_cast<double>(part.bytes)), part.bytes, part.block_bytes,
                         part.ranges.size(), part.ranges.size() == 1 ? "" : "s");
      const std::size_t nr = max_commands == 0 ? part.ranges.size() : std::min(max_commands, part.ranges.size());
      for (std::size_t i = 0; i < nr; ++i)
        out +=
            fmt::format("    {}src {} -> dst {} x {} bytes\n",
                        part.ranges[i].source == 0 ? std::string() : fmt::format("source {}: ", part.ranges[i].source),
                        part.ranges[i].src_offset_bytes, part.ranges[i].dst_offset_bytes, part.ranges[i].length_bytes);
      if (nr < part.ranges.size()) out += fmt::format("    ... {} more ranges\n", part.ranges.size() - nr);
      for (const auto& c : part.considered)
        out += fmt::format("  {} {}{}\n", c.chosen ? "*" : "-", c.backend, c.reason.empty() ? "" : ": " + c.reason);
      if (!part.fallback_reason.empty()) out += fmt::format("  fallback: {}\n", part.fallback_reason);
    }
  } else {
    if (parts.size() == 1 && (parts[0].source_medium != "" || parts[0].destination_medium != ""))
      out += fmt::format("media: {} -> {}\n", detail::part_sources_text(parts[0]), parts[0].destination_medium);
    for (const auto& c : considered)
      out += fmt::format("  {} {}{}\n", c.chosen ? "*" : "-", c.backend, c.reason.empty() ? "" : ": " + c.reason);
    if (!fallback_reason.empty()) out += fmt::format("fallback: {}\n", fallback_reason);
  }
  std::size_t n = max_commands == 0 ? batches.size() : std::min(max_commands, batches.size());
  for (std::size_t i = 0; i < n; ++i) {
    const plan_batch& b = batches[i];
    out += fmt::format("command {}{}: {} segment{}, {} blocks{}{}\n", i + 1,
                       parts.size() > 1 ? fmt::format(" (part {})", b.part + 1) : std::string(), b.segment_count,
                       b.segment_count == 1 ? "" : "s", p.batch_blocks(b), b.barrier ? " (after all before it)" : "",
                       b.order == copy_order::descending  ? ", memmove order from the end"
                       : b.order == copy_order::ascending ? ", memmove order from the start"
                                                          : "");
    for (std::uint32_t k = 0; k < b.segment_count; ++k) {
      const plan_segment& s = segments[b.first_segment + k];
      const bool gather = b.part < parts.size() && !parts[b.part].gathered.empty();
      out += fmt::format("  {}src {} -> dst {} x {}\n", gather ? fmt::format("[{}] ", s.source + 1) : std::string(),
                         s.src_block, s.dst_block, s.blocks);
    }
  }
  if (n < batches.size()) out += fmt::format("... {} more commands\n", batches.size() - n);
  return out;
}

}  // namespace detail

namespace v0 {

std::string plan::to_json(std::size_t max_commands) const {
  return detail::dump_json(detail::plan_to_json(*this, max_commands));
}

std::string report::to_text() const {
  std::string out;
  double rate = elapsed_seconds > 0 ? static_cast<double>(bytes_copied) / elapsed_seconds : 0;
  out += fmt::format("{}: {} of {} copied ({} bytes) in {:.3f} s, {}/s\n", result.ok() ? "done" : "FAILED",
                     detail::human_bytes(static_cast<double>(bytes_copied)),
                     detail::human_bytes(static_cast<double>(bytes_requested)), bytes_copied, elapsed_seconds,
                     detail::human_bytes(rate));
  for (const auto& [name, u] : usage) {
    if (u.commands == 0 && u.bytes == 0) continue;
    out += fmt::format("  {}: {} bytes in {} command{}{}{}\n", name, u.bytes, u.commands, u.commands == 1 ? "" : "s",
                       u.retries ? fmt::format(" ({} re-sent smaller)", u.retries) : "",
                       u.cloned_bytes ? fmt::format(", {} bytes of them cloned (shared blocks)", u.cloned_bytes) : "");
  }
  for (const auto& r : fallback_reasons) out += fmt::format("  fallback: {}\n", r);
  if (!gathered_sources.empty()) {
    std::string list;
    for (const auto& g : gathered_sources) list += (list.empty() ? "" : ", ") + g;
    out += fmt::format("  gathered in one command per destination run: {}\n", list);
  }
  if (verified) out += "  verify: source and destination match\n";
  if (verify_skipped) out += "  verify: skipped: source and destination overlap on one device\n";
  out += "  " + detail::timings_to_text(time) + "\n";
  if (!result.ok()) {
    out += fmt::format("  error: {}\n", result.to_string());
    out += fmt::format("  bytes known done: {}\n", bytes_copied);
  }
  return detail::terminal_safe(out);
}

std::string report::to_json() const { return detail::dump_json(detail::report_to_json(*this)); }

}  // namespace v0
}  // namespace offcopy
