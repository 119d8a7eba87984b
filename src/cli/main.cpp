// offload-copy: probe, plan and copy from the command line (DESIGN §5). Glue only: it parses the
// arguments into an offcopy::job, runs it through the library, prints what the library renders
// (text or JSON) and exits with the library's exit status. Opening devices, policy, outcome
// classification and the report all belong to the library (src/core/job.cpp).
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "offcopy/offcopy.hpp"
#include "src/cli/guard.hpp"
#include "src/cli/parse.hpp"

namespace {

using namespace offcopy;

// ---- signals and output (issue 8.4) ---------------------------------------------------------

std::atomic<bool> g_cancel{false};
static_assert(std::atomic<bool>::is_always_lock_free, "set from a signal handler");

/// SIGINT, SIGTERM, SIGHUP: ask the copy to stop (it reports what it did, exit 1). The handler is
/// one-shot (SA_RESETHAND): a second signal ends the process at once.
extern "C" void on_stop_signal(int) { g_cancel.store(true); }

/// Installed first thing, before anything is opened or created: a signal at any moment either
/// stops the job before it writes (nothing created is left behind) or is the second one. A signal
/// ignored when the program starts (nohup, a background job of a non-interactive shell) stays
/// ignored.
void install_signal_handlers() {
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    struct sigaction old {};
    if (sigaction(sig, nullptr, &old) == 0 && old.sa_handler == SIG_IGN) continue;
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND | SA_RESTART;
    sigaction(sig, &sa, nullptr);
  }
  // Output to a closed pipe is an EPIPE error (ignored), not death by SIGPIPE; a write past
  // RLIMIT_FSIZE is EFBIG in the report (exit 1), not death by SIGXFSZ.
  signal(SIGPIPE, SIG_IGN);
  signal(SIGXFSZ, SIG_IGN);
}

/// Descriptors 0-2 closed by the caller (`>&-`) are opened on /dev/null: otherwise the next open
/// (the destination!) would become "standard output" and the report would be written into it.
void ensure_standard_fds() {
  for (int fd = 0; fd <= 2; ++fd) {
    if (fcntl(fd, F_GETFD) != -1 || errno != EBADF) continue;
    int n = open("/dev/null", O_RDWR);
    if (n >= 0 && n != fd) {
      dup2(n, fd);
      close(n);
    }
  }
}

using cli::write_all;

void print_error(const std::string& line) { (void)write_all(STDERR_FILENO, "offload-copy: " + line + "\n"); }

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
  std::string journal;
  CLI::Option* journal_option = nullptr;
  unsigned extents_timeout_seconds = 30;
};

/// Prints a job's result: stdout (text or JSON), one line on stderr when it failed.
int finish(const job_result& r, bool json, std::size_t show_commands) {
  std::cout.flush();  // CLI11's own output, if any, first
  (void)write_all(STDOUT_FILENO, json ? r.to_json() + "\n" : r.to_text(show_commands));
  if (!r.ok()) print_error(r.error_line());
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
    cli::extents_file_limits limits;
    limits.idle_timeout = std::chrono::seconds(a.extents_timeout_seconds);
    result<std::vector<extent>> list = status();
    if (a.extents_file == "-") {
      list = cli::read_extents(STDIN_FILENO, "stdin", &g_cancel, limits);
    } else {
      // O_NONBLOCK: opening a FIFO nobody writes to must not hang here (read_extents polls).
      int fd = ::open(a.extents_file.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
      if (fd < 0) return errno_status(errno, "--extents-file " + a.extents_file);
      list = cli::read_extents(fd, a.extents_file, &g_cancel, limits);
      ::close(fd);
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
  if (a.journal_option != nullptr && a.journal_option->count() > 0 && a.journal.empty())
    return status(errc::invalid_argument, "--journal: empty path");
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
  o.journal = a.journal;
  return {};
}

/// A progress bar on stderr, redrawn at most every 100 ms. A stderr that cannot be written
/// (closed pipe, /dev/full) turns it off; it never throws.
class progress_bar {
 public:
  void update(const progress& p) noexcept {
    if (broken_) return;
    auto now = std::chrono::steady_clock::now();
    if (p.bytes_done < p.bytes_total && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    double rate = p.elapsed_seconds > 0 ? static_cast<double>(p.bytes_done) / p.elapsed_seconds : 0;
    double pct = p.bytes_total ? 100.0 * static_cast<double>(p.bytes_done) / static_cast<double>(p.bytes_total) : 100;
    double eta = rate > 0 ? static_cast<double>(p.bytes_total - p.bytes_done) / rate : 0;
    char line[160];
    int n = std::snprintf(line, sizeof line, "\r%5.1f%% %10llu / %-10llu %9.1f MiB/s ETA %5.0fs  ", pct,
                          static_cast<unsigned long long>(p.bytes_done), static_cast<unsigned long long>(p.bytes_total),
                          rate / (1 << 20), eta);
    if (n > 0 && !write_all(STDERR_FILENO, std::string_view(line, std::min<std::size_t>(sizeof line - 1, n))))
      broken_ = true;
    drawn_ = true;
  }
  void done() noexcept {
    if (drawn_ && !broken_) (void)write_all(STDERR_FILENO, "\n");
  }

 private:
  bool drawn_ = false;
  bool broken_ = false;
  std::chrono::steady_clock::time_point last_{};
};

int plan_or_copy(cli_args a, operation op, bool json) {
  a.json = a.json || json;
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
  }
  job_result r = run(j);
  bar.done();
  if (op != operation::copy && g_cancel.load() && r.ok())
    r = job_result::failed(op, status(errc::cancelled, "stopped by a signal"));
  return finish(r, a.json, a.show_commands);
}

/// Which named options to build. CLI11 costs ~10k instructions per option (it builds each twice
/// and checks it against every one before it), ~9 ns each in the emulated guest: building all of
/// copy's 25 options was 2.7 ms of every invocation (issue 11 fixed cost). An option absent from
/// the command line cannot change how it parses, so only those named are built -- all of them
/// for --help, whose text lists them.
struct option_filter {
  int argc = 0;
  char** argv = nullptr;
  bool all = true;

  option_filter(int c, char** v) : argc(c), argv(v), all(false) {
    for (int i = 1; i < argc; ++i) {
      const std::string_view a = argv[i];
      if (a == "-h" || a == "--help") all = true;
    }
  }
  [[nodiscard]] bool operator()(std::string_view name) const {
    if (all) return true;
    for (int i = 1; i < argc; ++i) {
      const std::string_view a = argv[i];
      if (a.starts_with(name) && (a.size() == name.size() || a[name.size()] == '=')) return true;
    }
    return false;
  }
};

void add_copy_options(CLI::App* cmd, cli_args& a, const option_filter& named) {
  cmd->add_option("SRC", a.src, "source file or device")->required();
  cmd->add_option("DST", a.dst, "destination file or device")->required();
  cmd->add_option("EXTENT", a.extents,
                  "[SOURCE@]SRC_OFFSET:DST_OFFSET:LENGTH in bytes; suffixes K M G T (1024^n), s (512-byte sectors). "
                  "SOURCE: 0 (default) = SRC, k = the k-th --source. None: the whole source to offset 0");
  if (named("--source")) {
    cmd->add_option("--source", a.sources,
                    "another source device or file (repeatable; extents name the k-th as k@...): NVMe namespaces of "
                    "the destination's controller are gathered into one Copy per destination run")
        ->allow_extra_args(false);  // one value per --source: what follows is an EXTENT
  }
  if (named("--extents-file"))
    cmd->add_option("--extents-file", a.extents_file, "read extents, one per line ('-' = stdin)");
  if (named("--mode")) {
    cmd->add_option("--mode", a.mode, "auto (offload, else fall back), offload (fail rather than fall back), fallback")
        ->capture_default_str();
  }
  if (named("--backend")) {
    std::string names;
    for (const backend_info& b : registered_backends()) names += (names.empty() ? "" : ", ") + b.name;
    cmd->add_option("--backend", a.backends, "backends to try, in order (" + names + ")");
  }
  if (named("--in-flight"))
    cmd->add_option("--in-flight", a.in_flight, "offload commands in flight")->capture_default_str();
  if (named("--submit")) {
    cmd->add_option("--submit", a.submit, "NVMe submission: auto, sync (ioctl) or async (io_uring)")
        ->capture_default_str();
  }
  if (named("--max-segments"))
    cmd->add_option("--max-segments", a.max_segments, "at most this many segments per command (tightens the device's)");
  if (named("--max-segment-blocks"))
    cmd->add_option("--max-segment-blocks", a.max_segment_blocks, "at most this many blocks per segment");
  if (named("--max-command-blocks"))
    cmd->add_option("--max-command-blocks", a.max_command_blocks, "at most this many blocks per command");
  if (named("--no-overlap"))
    cmd->add_flag("--no-overlap", a.no_overlap, "refuse a source overlapping its destination on one device");
  if (named("--journal")) {
    a.journal_option =
        cmd->add_option("--journal", a.journal,
                        "resumable copy: record completed work in FILE; the same command again copies only what is "
                        "missing (plan: show what it would copy)");
  }
  if (named("--extents-timeout")) {
    cmd->add_option("--extents-timeout", a.extents_timeout_seconds,
                    "seconds an --extents-file pipe or FIFO may send nothing before it is an error (0: wait)")
        ->capture_default_str();
  }
  if (named("--json")) cmd->add_flag("--json", a.json, "print one JSON object");
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

/// The subcommand named on the command line: the first argument that is not an option (the
/// program itself has no option taking a value), when it is one; else empty.
std::string_view named_subcommand(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a.starts_with("-")) continue;
    if (a == "probe" || a == "plan" || a == "copy") return a;
    return {};
  }
  return {};
}

int run_cli(int argc, char** argv) {
  CLI::App app{"offload-copy: copy inside storage (NVMe Copy, SCSI XCOPY / token copy), with a fast fallback"};
  app.set_version_flag("--version", std::string("offload-copy ") + offcopy::version());
  app.require_subcommand(1);
  // Only the subcommand named is built (all of them for the program's own --help or an error):
  // CLI11 checks each new option against the ones before it, and building the two unused
  // subcommands was a third of every invocation's instructions, which the emulated guest pays
  // at ~10 ns each (issue 11 fixed cost, docs/benchmarks.md).
  const std::string_view sub = named_subcommand(argc, argv);
  auto wanted = [&](std::string_view name) { return sub.empty() || sub == name; };
  const option_filter named(argc, argv);

  cli_args probe_args;
  CLI::App* probe = nullptr;
  if (wanted("probe")) {
    probe = app.add_subcommand("probe", "show what a device is and which copy offloads it offers");
    probe->add_option("DEVICE", probe_args.src, "file, block device, /dev/ngXnY or /dev/sgN")->required();
    probe->add_flag("--json", probe_args.json, "print one JSON object");
  }

  cli_args plan_args;
  CLI::App* plan_cmd = nullptr;
  if (wanted("plan")) {
    plan_cmd = app.add_subcommand("plan", "print the commands a copy would send; writes nothing");
    add_copy_options(plan_cmd, plan_args, named);
    if (named("--show"))
      plan_cmd->add_option("--show", plan_args.show_commands, "commands to list in text output (0 = all)")
          ->capture_default_str();
  }

  cli_args copy_args;
  if (wanted("copy")) {
    auto* copy_cmd = app.add_subcommand("copy", "copy, offloaded where possible, and report what ran");
    add_copy_options(copy_cmd, copy_args, named);
    if (named("--verify"))
      copy_cmd->add_flag("--verify", copy_args.verify, "read both sides back (O_DIRECT) and compare");
    if (named("--force"))
      copy_cmd->add_flag("--force", copy_args.force, "write to a block device even when it is mounted or in use");
    if (named("--progress"))
      copy_cmd->add_flag("--progress", copy_args.progress, "show a progress bar even when stderr is not a terminal");
    if (named("--no-progress")) copy_cmd->add_flag("--no-progress", copy_args.no_progress, "never show a progress bar");
    if (named("--buffer-size"))
      copy_cmd->add_option("--buffer-size", copy_args.buffer_size, "fallback: bytes per I/O (e.g. 1M)");
    if (named("--buffers")) copy_cmd->add_option("--buffers", copy_args.buffers, "fallback: I/Os in flight");
    if (named("--no-sync"))
      copy_cmd->add_flag("--no-sync", copy_args.no_sync, "do not fdatasync the destination before reporting success");
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) {  // --help, --version
      int rc = app.exit(e);
      std::cout.flush();
      return rc;
    }
    if (!json_requested(argc, argv)) {
      // One line on stderr, like every other error (CLI11's own usage text would be several).
      print_error(status(errc::invalid_argument, e.what()).to_string() + " (--help lists the options)");
      return 2;
    }
    // Under --json even a usage error is one JSON object (exit 2).
    return finish(job_result::failed(operation_in(argc, argv), status(errc::invalid_argument, e.what())), true, 0);
  }
  if (probe != nullptr && *probe) {
    job j;
    j.op = operation::probe;
    j.source = probe_args.src;
    job_result r = run(j);
    if (g_cancel.load() && r.ok())
      r = job_result::failed(operation::probe, status(errc::cancelled, "stopped by a signal"));
    return finish(r, probe_args.json || json_requested(argc, argv), 0);
  }
  // "--json" anywhere asks for JSON, also where the parser took it as another option's value.
  const bool json = json_requested(argc, argv);
  if (plan_cmd != nullptr && *plan_cmd) return plan_or_copy(plan_args, operation::plan, json);
  return plan_or_copy(copy_args, operation::copy, json);
}

}  // namespace

int main(int argc, char** argv) {
  ensure_standard_fds();
  install_signal_handlers();
  // Nothing may end the program with an abort: whatever escapes is exit 1 with a message (and,
  // under --json, one JSON object), src/cli/guard.hpp.
  cli::guard_output out;
  out.op = operation_in(argc, argv);
  out.json = json_requested(argc, argv);
  return cli::run_guarded([&] { return run_cli(argc, argv); }, out);
}
