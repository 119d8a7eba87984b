// offload-copy: probe, plan and copy from the command line (DESIGN §5). Glue only: it parses the
// arguments into an offcopy::job, runs it through the library, prints what the library renders
// (text or JSON) and exits with the library's exit status. Opening devices, policy, outcome
// classification and the report all belong to the library (src/core/job.cpp).
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "offcopy/offcopy.hpp"
#include "src/cli/parse.hpp"

namespace {

using namespace offcopy;

std::atomic<bool> g_cancel{false};
void on_signal(int) { g_cancel.store(true); }

/// What the command line says, before the library sees it.
struct cli_args {
  std::string src, dst;
  std::vector<std::string> sources;  ///< --source, numbered from 1 in extents (K@...)
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

/// Prints a job's result: stdout (text or JSON), one line on stderr when it failed.
int finish(const job_result& r, bool json, std::size_t show_commands) {
  std::string out = json ? r.to_json() + "\n" : r.to_text(show_commands);
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);
  if (!r.ok()) std::fprintf(stderr, "offload-copy: %s\n", r.error_line().c_str());
  return r.exit_status();
}

/// Extents from the arguments and --extents-file; --buffer-size.
status fill_job(const cli_args& a, job& j) {
  for (const auto& t : a.extents) {
    auto e = cli::parse_extent(t);
    if (!e.ok()) return std::move(e).error();
    j.extents.push_back(e.value());
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
    if (list.value().empty() && j.extents.empty())
      return status(errc::zero_length, fmt::format("--extents-file {}: no extents", a.extents_file));
    j.extents.insert(j.extents.end(), list.value().begin(), list.value().end());
  }
  if (!a.buffer_size.empty()) {
    auto b = cli::parse_size(a.buffer_size);
    if (!b.ok()) return std::move(b).error().prefix("--buffer-size");
    if (b.value() == 0 || b.value() > (1U << 30))
      return status(errc::invalid_argument, "--buffer-size: 1 byte to 1 GiB");
    j.options.buffer_bytes = static_cast<std::uint32_t>(b.value());
  }
  job_options& o = j.options;
  o.mode = a.mode;
  o.backends = a.backends;
  o.submit = a.submit;
  o.commands_in_flight = a.in_flight;
  o.limit_override.max_segments_per_command = a.max_segments;
  o.limit_override.max_segment_blocks = a.max_segment_blocks;
  o.limit_override.max_command_blocks = a.max_command_blocks;
  o.allow_overlap = !a.no_overlap;
  o.verify = a.verify;
  o.sync = !a.no_sync;
  o.force = a.force;
  o.buffers_in_flight = a.buffers;
  return {};
}

/// A progress bar on stderr, redrawn at most every 100 ms.
class progress_bar {
 public:
  void update(const progress& p) {
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
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_{};
};

int plan_or_copy(const cli_args& a, operation op) {
  job j;
  j.op = op;
  j.source = a.src;
  j.destination = a.dst;
  j.sources = a.sources;
  if (auto s = fill_job(a, j); !s.ok()) return finish(job_result::failed(op, std::move(s)), a.json, 0);
  progress_bar bar;
  if (op == operation::copy) {
    if (a.progress || (!a.no_progress && !a.json && ::isatty(STDERR_FILENO)))
      j.options.on_progress = [&bar](const progress& p) { bar.update(p); };
    j.options.cancel = &g_cancel;
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
  }
  job_result r = run(j);
  bar.done();
  return finish(r, a.json, a.show_commands);
}

void add_copy_options(CLI::App* cmd, cli_args& a) {
  std::string names;
  for (const backend_info& b : registered_backends()) names += (names.empty() ? "" : ", ") + b.name;
  cmd->add_option("SRC", a.src, "source file or device")->required();
  cmd->add_option("DST", a.dst, "destination file or device")->required();
  cmd->add_option("EXTENT", a.extents,
                  "[SOURCE@]SRC_OFFSET:DST_OFFSET:LENGTH in bytes; suffixes K M G T (1024^n), s (512-byte sectors). "
                  "SOURCE: 0 (default) = SRC, k = the k-th --source. None: the whole source to offset 0");
  cmd->add_option("--source", a.sources,
                  "another source device or file (repeatable; extents name the k-th as k@...): NVMe namespaces of "
                  "the destination's controller are gathered into one Copy per destination run")
      ->allow_extra_args(false);  // one value per --source: what follows is an EXTENT
  cmd->add_option("--extents-file", a.extents_file, "read extents, one per line ('-' = stdin)");
  cmd->add_option("--mode", a.mode, "auto (offload, else fall back), offload (fail rather than fall back), fallback")
      ->capture_default_str();
  cmd->add_option("--backend", a.backends, "backends to try, in order (" + names + ")");
  cmd->add_option("--in-flight", a.in_flight, "offload commands in flight")->capture_default_str();
  cmd->add_option("--submit", a.submit, "NVMe submission: auto, sync (ioctl) or async (io_uring)")
      ->capture_default_str();
  cmd->add_option("--max-segments", a.max_segments, "at most this many segments per command (tightens the device's)");
  cmd->add_option("--max-segment-blocks", a.max_segment_blocks, "at most this many blocks per segment");
  cmd->add_option("--max-command-blocks", a.max_command_blocks, "at most this many blocks per command");
  cmd->add_flag("--no-overlap", a.no_overlap, "refuse a source overlapping its destination on one device");
  cmd->add_flag("--json", a.json, "print one JSON object");
}

/// The operation named on the command line (for an error before parsing finished).
operation operation_in(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "probe") == 0) return operation::probe;
    if (std::strcmp(argv[i], "plan") == 0) return operation::plan;
    if (std::strcmp(argv[i], "copy") == 0) return operation::copy;
  }
  return operation::copy;
}

bool json_requested(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--json") == 0) return true;
  return false;
}

int run_cli(int argc, char** argv) {
  CLI::App app{"offload-copy: copy inside storage (NVMe Copy, SCSI XCOPY / token copy), with a fast fallback"};
  app.set_version_flag("--version", std::string("offload-copy ") + offcopy::version());
  app.require_subcommand(1);

  cli_args probe_args;
  auto* probe = app.add_subcommand("probe", "show what a device is and which copy offloads it offers");
  probe->add_option("DEVICE", probe_args.src, "file, block device, /dev/ngXnY or /dev/sgN")->required();
  probe->add_flag("--json", probe_args.json, "print one JSON object");

  cli_args plan_args;
  auto* plan_cmd = app.add_subcommand("plan", "print the commands a copy would send; writes nothing");
  add_copy_options(plan_cmd, plan_args);
  plan_cmd->add_option("--show", plan_args.show_commands, "commands to list in text output (0 = all)")
      ->capture_default_str();

  cli_args copy_args;
  auto* copy_cmd = app.add_subcommand("copy", "copy, offloaded where possible, and report what ran");
  add_copy_options(copy_cmd, copy_args);
  copy_cmd->add_flag("--verify", copy_args.verify, "read both sides back (O_DIRECT) and compare");
  copy_cmd->add_flag("--force", copy_args.force, "write to a block device even when it is mounted or in use");
  copy_cmd->add_flag("--progress", copy_args.progress, "show a progress bar even when stderr is not a terminal");
  copy_cmd->add_flag("--no-progress", copy_args.no_progress, "never show a progress bar");
  copy_cmd->add_option("--buffer-size", copy_args.buffer_size, "fallback: bytes per I/O (e.g. 1M)");
  copy_cmd->add_option("--buffers", copy_args.buffers, "fallback: I/Os in flight");
  copy_cmd->add_flag("--no-sync", copy_args.no_sync, "do not fdatasync the destination before reporting success");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    if (!json_requested(argc, argv)) return app.exit(e) == 0 ? 0 : 2;
    // Under --json even a usage error is one JSON object (exit 2).
    return finish(job_result::failed(operation_in(argc, argv), status(errc::invalid_argument, e.what())), true, 0);
  }
  if (*probe) {
    job j;
    j.op = operation::probe;
    j.source = probe_args.src;
    return finish(run(j), probe_args.json, 0);
  }
  if (*plan_cmd) return plan_or_copy(plan_args, operation::plan);
  return plan_or_copy(copy_args, operation::copy);
}

}  // namespace

int main(int argc, char** argv) {
  // Nothing may end the program with an abort: whatever escapes is exit 1 with a message.
  try {
    return run_cli(argc, argv);
  } catch (const std::exception& e) {
    status s(errc::internal, std::string("unexpected error: ") + e.what());
    if (json_requested(argc, argv)) {
      std::string out = job_result::failed(operation_in(argc, argv), s).to_json() + "\n";
      std::fwrite(out.data(), 1, out.size(), stdout);
    }
    std::fprintf(stderr, "offload-copy: %s\n", s.to_string().c_str());
    return 1;
  } catch (...) {
    std::fprintf(stderr, "offload-copy: internal: unexpected error\n");
    return 1;
  }
}
