// offload-copy: probe, plan and copy from the command line (DESIGN §5).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "offcopy/offcopy.hpp"
#include "src/cli/parse.hpp"

namespace {

using namespace offcopy;

std::atomic<bool> g_cancel{false};
void on_signal(int) { g_cancel.store(true); }

struct copy_args {
  std::string src, dst;
  std::vector<std::string> extents;
  std::string extents_file;
  std::string mode = "auto";
  std::vector<std::string> backends;
  unsigned in_flight = 32;
  std::string submit = "auto";
  std::uint32_t max_segments = 0;
  std::uint64_t max_segment_blocks = 0, max_command_blocks = 0;
  std::string buffer_size;
  unsigned buffers = 0;
  bool no_overlap = false, json = false, verify = false, force = false, no_sync = false;
  bool progress = false, no_progress = false;
  std::size_t show_commands = 20;
};

int fail(const status& s, bool json, std::uint64_t written = 0) {
  if (json) {
    nlohmann::json j{{"status", "error"}, {"bytes_copied", written},
                     {"error", {{"code", to_string(s.code())}, {"message", s.message()}}}};
    std::cout << j.dump() << "\n";
  }
  std::cerr << "offload-copy: " << s.to_string() << "\n";
  return cli::exit_code(s, written);
}

int do_probe(const std::string& path, bool json) {
  auto dev = device::open(path);
  if (!dev.ok()) return fail(dev.error(), json);
  const capabilities& c = dev.value()->caps();
  if (json) {
    std::cout << c.to_json() << "\n";
    return 0;
  }
  fmt::print("{}: {}, {} bytes, {}-byte logical blocks ({} physical){}\n", c.path, to_string(c.kind), c.size_bytes,
             c.logical_block_bytes, c.physical_block_bytes, c.read_only ? ", read-only" : "");
  if (c.block_path != c.path && !c.block_path.empty()) fmt::print("  data through {}\n", c.block_path);
  if (!c.parent_path.empty()) fmt::print("  partition of {} starting at byte {}\n", c.parent_path, c.partition_start_bytes);
  if (c.offload.empty()) fmt::print("  no offload mechanism\n");
  for (const auto& m : c.offload) {
    fmt::print("  {}: {}\n", m.backend, m.available ? "available" : "not available: " + m.reason);
    if (m.available)
      fmt::print("    limits: {} segments/command, {} blocks/segment, {} blocks/command{}\n",
                 m.limits.max_segments_per_command, m.limits.max_segment_blocks, m.limits.max_command_blocks,
                 m.limits.contiguous_destination ? ", contiguous destination" : "");
    for (const auto& [k, v] : m.details) fmt::print("    {}: {}\n", k, v);
  }
  return 0;
}

/// Builds policy and extents from the arguments.
status build(const copy_args& a, policy& pol, std::vector<extent>& extents) {
  if (a.mode == "auto") pol.mode = copy_mode::automatic;
  else if (a.mode == "offload") pol.mode = copy_mode::offload;
  else if (a.mode == "fallback") pol.mode = copy_mode::fallback;
  else return status(errc::invalid_argument, fmt::format("--mode '{}': expected auto, offload or fallback", a.mode));
  pol.backends = a.backends;
  if (a.submit == "auto") pol.submit = submission::automatic;
  else if (a.submit == "sync") pol.submit = submission::synchronous;
  else if (a.submit == "async") pol.submit = submission::asynchronous;
  else return status(errc::invalid_argument, fmt::format("--submit '{}': expected auto, sync or async", a.submit));
  if (a.in_flight == 0) return status(errc::invalid_argument, "--in-flight must be at least 1");
  pol.commands_in_flight = a.in_flight;
  pol.limit_override.max_segments_per_command = a.max_segments;
  pol.limit_override.max_segment_blocks = a.max_segment_blocks;
  pol.limit_override.max_command_blocks = a.max_command_blocks;
  pol.allow_overlap = !a.no_overlap;
  pol.verify = a.verify;
  pol.sync = !a.no_sync;
  pol.buffers_in_flight = a.buffers;
  if (!a.buffer_size.empty()) {
    auto b = cli::parse_size(a.buffer_size);
    if (!b.ok()) return std::move(b).error().prefix("--buffer-size");
    if (b.value() == 0 || b.value() > (1U << 30)) return status(errc::invalid_argument, "--buffer-size: 1 byte to 1 GiB");
    pol.buffer_bytes = static_cast<std::uint32_t>(b.value());
  }
  for (const auto& t : a.extents) {
    auto e = cli::parse_extent(t);
    if (!e.ok()) return std::move(e).error();
    extents.push_back(e.value());
  }
  if (!a.extents_file.empty()) {
    result<std::vector<extent>> list = status();
    if (a.extents_file == "-") {
      list = cli::parse_extents(std::cin, "stdin");
    } else {
      std::ifstream f(a.extents_file);
      if (!f) return status(errc::not_found, fmt::format("--extents-file {}: cannot open", a.extents_file));
      list = cli::parse_extents(f, a.extents_file);
    }
    if (!list.ok()) return std::move(list).error();
    extents.insert(extents.end(), list.value().begin(), list.value().end());
    if (list.value().empty() && extents.empty())
      return status(errc::zero_length, fmt::format("--extents-file {}: no extents", a.extents_file));
  }
  return {};
}

class progress_bar {
 public:
  explicit progress_bar(bool on) : on_(on) {}
  void update(const progress& p) {
    if (!on_) return;
    auto now = std::chrono::steady_clock::now();
    if (p.bytes_done < p.bytes_total && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    double rate = p.elapsed_seconds > 0 ? static_cast<double>(p.bytes_done) / p.elapsed_seconds : 0;
    double pct = p.bytes_total ? 100.0 * static_cast<double>(p.bytes_done) / static_cast<double>(p.bytes_total) : 100;
    double eta = rate > 0 ? static_cast<double>(p.bytes_total - p.bytes_done) / rate : 0;
    fmt::print(stderr, "\r{:5.1f}% {:>10} / {:<10} {:>9.1f} MiB/s ETA {:>5.0f}s  ", pct, p.bytes_done, p.bytes_total,
               rate / (1 << 20), eta);
    drawn_ = true;
  }
  void done() {
    if (drawn_) fmt::print(stderr, "\n");
  }

 private:
  bool on_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_{};
};

int do_plan_or_copy(const copy_args& a, bool execute_it) {
  policy pol;
  std::vector<extent> extents;
  if (auto s = build(a, pol, extents); !s.ok()) return fail(s, a.json);

  auto src = device::open(a.src);
  if (!src.ok()) return fail(src.error(), a.json);
  if (src.value()->caps().kind != device_kind::regular_file && src.value()->caps().kind != device_kind::block_device &&
      src.value()->caps().block_path.empty() && src.value()->caps().size_bytes == 0)
    return fail(status(errc::invalid_argument, a.src + ": size unknown"), a.json);

  // A missing regular-file destination is created (as cp and dd do) and removed again on bad input
  // (and after `plan`, which only needs it to exist while planning).
  bool created = false;
  struct stat st {};
  if (::stat(a.dst.c_str(), &st) != 0 && errno == ENOENT) {
    int fd = ::open(a.dst.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return fail(errno_status(errno, "create " + a.dst), a.json);
    ::close(fd);
    created = true;
  }
  auto remove_created = [&] {
    if (created) ::unlink(a.dst.c_str());
  };
  open_options dopt;
  dopt.writable = true;
  dopt.exclusive = execute_it && !a.force;
  auto dst = device::open(a.dst, dopt);
  if (!dst.ok()) {
    remove_created();
    return fail(dst.error(), a.json);
  }
  request req{src.value(), dst.value(), extents};
  auto p = make_plan(req, pol);
  if (!p.ok()) {
    remove_created();
    return fail(p.error(), a.json);
  }
  if (!execute_it) {
    remove_created();
    if (a.json)
      std::cout << p.value().to_json(0) << "\n";
    else
      std::cout << p.value().to_text(a.show_commands);
    return 0;
  }

  bool bar_on = a.progress || (!a.no_progress && !a.json && ::isatty(STDERR_FILENO));
  progress_bar bar(bar_on);
  pol.on_progress = [&](const progress& pr) { bar.update(pr); };
  pol.cancel = &g_cancel;
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  report rep = execute(req, p.value(), pol);
  bar.done();
  if (a.json) {
    auto j = nlohmann::json::parse(rep.to_json());
    j["source"] = a.src;
    j["destination"] = a.dst;
    j["mode"] = a.mode;
    j["planned_backend"] = p.value().backend;
    j["planned_commands"] = p.value().batches.size();
    if (a.verify && p.value().ordered) j["verify_skipped"] = "source and destination overlap on one device";
    std::cout << j.dump() << "\n";
  } else {
    fmt::print("{} -> {}: planned {} command{} on {}\n", a.src, a.dst, p.value().batches.size(),
               p.value().batches.size() == 1 ? "" : "s", p.value().backend);
    std::cout << rep.to_text();
    if (a.verify && p.value().ordered && rep.result.ok())
      std::cout << "  verify: skipped: source and destination overlap on one device\n";
  }
  if (!rep.result.ok()) {
    std::cerr << "offload-copy: " << rep.result.to_string() << "\n";
    return cli::exit_code(rep.result, rep.bytes_copied);
  }
  return 0;
}

void add_copy_options(CLI::App* cmd, copy_args& a) {
  cmd->add_option("SRC", a.src, "source file or device")->required();
  cmd->add_option("DST", a.dst, "destination file or device")->required();
  cmd->add_option("EXTENT", a.extents,
                  "SRC_OFFSET:DST_OFFSET:LENGTH in bytes; suffixes K M G T (1024^n), s (512-byte sectors). "
                  "None: the whole source to offset 0");
  cmd->add_option("--extents-file", a.extents_file, "read extents, one per line ('-' = stdin)");
  cmd->add_option("--mode", a.mode, "auto (offload, else fall back), offload (fail rather than fall back), fallback")
      ->capture_default_str();
  cmd->add_option("--backend", a.backends,
                  "backends to try, in order (nvme-copy, scsi-xcopy, scsi-token, copy-file-range, buffered)");
  cmd->add_option("--in-flight", a.in_flight, "offload commands in flight")->capture_default_str();
  cmd->add_option("--submit", a.submit, "NVMe submission: auto, sync (ioctl) or async (io_uring)")->capture_default_str();
  cmd->add_option("--max-segments", a.max_segments, "at most this many segments per command (tightens the device's)");
  cmd->add_option("--max-segment-blocks", a.max_segment_blocks, "at most this many blocks per segment");
  cmd->add_option("--max-command-blocks", a.max_command_blocks, "at most this many blocks per command");
  cmd->add_flag("--no-overlap", a.no_overlap, "refuse a source overlapping its destination on one device");
  cmd->add_flag("--json", a.json, "print one JSON object");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"offload-copy: copy inside storage (NVMe Copy, SCSI XCOPY / token copy), with a fast fallback"};
  app.set_version_flag("--version", std::string("offload-copy ") + offcopy::version());
  app.require_subcommand(1);

  std::string probe_path;
  bool probe_json = false;
  auto* probe = app.add_subcommand("probe", "show what a device is and which copy offloads it offers");
  probe->add_option("DEVICE", probe_path, "file, block device, /dev/ngXnY or /dev/sgN")->required();
  probe->add_flag("--json", probe_json, "print one JSON object");

  copy_args plan_args;
  auto* plan_cmd = app.add_subcommand("plan", "print the commands a copy would send; writes nothing");
  add_copy_options(plan_cmd, plan_args);
  plan_cmd->add_option("--show", plan_args.show_commands, "commands to list in text output (0 = all)")
      ->capture_default_str();

  copy_args copy_a;
  auto* copy_cmd = app.add_subcommand("copy", "copy, offloaded where possible, and report what ran");
  add_copy_options(copy_cmd, copy_a);
  copy_cmd->add_flag("--verify", copy_a.verify, "read both sides back (O_DIRECT) and compare");
  copy_cmd->add_flag("--force", copy_a.force, "write to a block device even when it is mounted or in use");
  copy_cmd->add_flag("--progress", copy_a.progress, "show a progress bar even when stderr is not a terminal");
  copy_cmd->add_flag("--no-progress", copy_a.no_progress, "never show a progress bar");
  copy_cmd->add_option("--buffer-size", copy_a.buffer_size, "fallback: bytes per I/O (e.g. 1M)");
  copy_cmd->add_option("--buffers", copy_a.buffers, "fallback: I/Os in flight");
  copy_cmd->add_flag("--no-sync", copy_a.no_sync, "do not fdatasync the destination before reporting success");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  if (*probe) return do_probe(probe_path, probe_json);
  if (*plan_cmd) return do_plan_or_copy(plan_args, false);
  return do_plan_or_copy(copy_a, true);
}
