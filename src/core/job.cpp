// The job API: the one implementation behind every front end (CLI, Python, C). Opening the pair,
// the policy from option strings, creating a missing destination, running, classifying the
// outcome and rendering the result all happen here, once.
#include "offcopy/job.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <ctime>
#include <exception>

#include <fmt/format.h>

#include "offcopy/copy.hpp"
#include "src/core/backend.hpp"
#include "src/core/device_state.hpp"
#include "src/core/format.hpp"
#include "src/core/journal.hpp"
#include "src/core/observer.hpp"
#include "src/core/sys.hpp"
#include "src/core/text.hpp"
#include "src/core/verify.hpp"
#include "src/fallback/buffered.hpp"

namespace offcopy {
namespace detail {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

constexpr std::uint64_t max_buffer_memory_bytes = 1ULL << 30;

/// The policy a job's option strings describe. Errors: invalid_argument, naming the option.
result<policy> policy_of(const job_options& o) {
  policy pol;
  if (o.mode == "auto") {
    pol.mode = copy_mode::automatic;
  } else if (o.mode == "offload") {
    pol.mode = copy_mode::offload;
  } else if (o.mode == "fallback") {
    pol.mode = copy_mode::fallback;
  } else {
    return status(errc::invalid_argument, fmt::format("mode '{}': expected auto, offload or fallback", o.mode));
  }
  for (const std::string& name : o.backends) {
    if (find_row(name) == nullptr) {
      std::string known;
      for (const backend_row& r : registry()) known += fmt::format("{}{}", known.empty() ? "" : ", ", r.name);
      return status(errc::invalid_argument, fmt::format("backend '{}': unknown (known: {})", name, known));
    }
  }
  pol.backends = o.backends;
  if (o.submit == "auto") {
    pol.submit = submission::automatic;
  } else if (o.submit == "sync") {
    pol.submit = submission::synchronous;
  } else if (o.submit == "async") {
    pol.submit = submission::asynchronous;
  } else {
    return status(errc::invalid_argument, fmt::format("submit '{}': expected auto, sync or async", o.submit));
  }
  if (o.commands_in_flight == 0) return status(errc::invalid_argument, "in-flight: must be at least 1");
  if (o.buffer_bytes > (1U << 30)) return status(errc::invalid_argument, "buffer-size: 1 byte to 1 GiB");
  // The buffered copier allocates (and touches) all its buffers up front: a request for more than
  // max_buffer_memory_bytes is refused rather than left to the OOM killer.
  {
    const std::uint64_t size = o.buffer_bytes != 0 ? o.buffer_bytes : default_buffer_bytes;
    const std::uint64_t count = o.buffers_in_flight != 0 ? o.buffers_in_flight : default_buffers_in_flight;
    if (size * count > max_buffer_memory_bytes)
      return status(errc::invalid_argument,
                    fmt::format("buffer-size x buffers: {} x {} bytes of buffers, more than {} (1 GiB)", size, count,
                                max_buffer_memory_bytes));
  }
  pol.commands_in_flight = o.commands_in_flight;
  pol.limit_override = o.limit_override;
  pol.verify = o.verify;
  pol.allow_overlap = o.allow_overlap;
  pol.sync = o.sync;
  pol.buffer_bytes = o.buffer_bytes;
  pol.buffers_in_flight = o.buffers_in_flight;
  pol.on_progress = o.on_progress;
  pol.cancel = o.cancel;
  return pol;
}

/// The source of a plan or copy: given, or opened read-only. Its size must be known.
result<std::shared_ptr<device>> open_source(const job& j) {
  std::shared_ptr<device> dev = j.source_device;
  if (!dev) {
    auto d = open_device(j.source, open_intent::read, false);
    if (!d.ok()) return std::move(d).error();
    dev = d.value();
  }
  const capabilities& c = dev->caps();
  if (c.kind != device_kind::regular_file && c.kind != device_kind::block_device && c.block_path.empty() &&
      c.size_bytes == 0)
    return status(errc::invalid_argument, c.path + ": size unknown");
  return dev;
}

/// The job's further sources (job::sources / source_devices), each opened read-only as the source is.
result<std::vector<std::shared_ptr<device>>> open_sources(const job& j) {
  std::vector<std::shared_ptr<device>> out;
  const std::size_t n = std::max(j.sources.size(), j.source_devices.size());
  for (std::size_t i = 0; i < n; ++i) {
    job one;
    one.source = i < j.sources.size() ? j.sources[i] : std::string();
    one.source_device = i < j.source_devices.size() ? j.source_devices[i] : nullptr;
    auto d = open_source(one);
    if (!d.ok()) return std::move(d).error().prefix(fmt::format("source {}", i + 1));
    out.push_back(d.value());
  }
  return out;
}

/// The first string of a job that the OS would read cut at a NUL byte, named; empty when none.
std::string string_with_nul(const job& j) {
  auto has = [](const std::string& s) { return s.find('\0') != std::string::npos; };
  if (has(j.source)) return "source path";
  for (const std::string& s : j.sources)
    if (has(s)) return "source path";
  if (j.op != operation::probe && has(j.destination)) return "destination path";
  if (has(j.options.journal)) return "journal path";
  if (has(j.options.mode)) return "mode";
  if (has(j.options.submit)) return "submit";
  for (const std::string& b : j.options.backends)
    if (has(b)) return "backend name";
  return {};
}

bool cancelled(const job_options& o) noexcept { return o.cancel != nullptr && o.cancel->load(); }

status cancelled_before_start() {
  return status(errc::cancelled, "cancelled by the caller before anything was written");
}

/// The mode a job's option string names (automatic for anything else: a bad mode string fails as
/// invalid_argument before it matters).
copy_mode mode_of(const job_options& o) noexcept {
  if (o.mode == "offload") return copy_mode::offload;
  if (o.mode == "fallback") return copy_mode::fallback;
  return copy_mode::automatic;
}

/// While a copy runs, SIGXFSZ is blocked on this thread: writing past RLIMIT_FSIZE is then an
/// EFBIG error the report carries (exit 1), never the default action (the process's death). A
/// SIGXFSZ raised meanwhile is consumed before the mask is restored, unless one was pending
/// before (the caller's own).
class xfsz_guard {
 public:
  xfsz_guard() noexcept {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGXFSZ);
    blocked_ = pthread_sigmask(SIG_BLOCK, &s, &old_) == 0;
    sigset_t p;
    sigemptyset(&p);
    pending_before_ = sigpending(&p) == 0 && sigismember(&p, SIGXFSZ) == 1;
  }
  ~xfsz_guard() {
    if (!blocked_) return;
    if (!pending_before_) {
      sigset_t s;
      sigemptyset(&s);
      sigaddset(&s, SIGXFSZ);
      const timespec zero{};
      while (sigtimedwait(&s, nullptr, &zero) == SIGXFSZ) {}
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  xfsz_guard(const xfsz_guard&) = delete;
  xfsz_guard& operator=(const xfsz_guard&) = delete;

 private:
  sigset_t old_{};
  bool blocked_ = false;
  bool pending_before_ = false;
};

/// The fd whose fdatasync makes the destination's written bytes durable: the device's own for a
/// file or block device, else its block device's (opened here, owned by the holder).
class data_sync_fd {
 public:
  explicit data_sync_fd(const device& d) {
    const capabilities& c = d.caps();
    if (c.kind == device_kind::regular_file || c.kind == device_kind::block_device) {
      fd_ = d.fd();
    } else if (!c.block_path.empty()) {
      fd_ = sys().open(c.block_path.c_str(), O_RDONLY | O_CLOEXEC, 0);
      own_ = fd_ >= 0;
    }
  }
  ~data_sync_fd() {
    if (own_) sys().close(fd_);
  }
  data_sync_fd(const data_sync_fd&) = delete;
  data_sync_fd& operator=(const data_sync_fd&) = delete;
  [[nodiscard]] int fd() const noexcept { return fd_; }

 private:
  int fd_ = -1;
  bool own_ = false;
};

std::int64_t medium_delta(const device& src, const device& dst) {
  return static_cast<std::int64_t>(dst.caps().identity_offset_bytes) -
         static_cast<std::int64_t>(src.caps().identity_offset_bytes);
}

bool missing(const std::string& path) {
  struct stat st {};
  return sys().stat(path.c_str(), &st) != 0 && errno == ENOENT;
}

/// Removes the destination a copy created, unless the copy may have written to it.
class created_file {
 public:
  created_file() = default;
  ~created_file() {
    if (!path_.empty()) (void)sys().unlink(path_.c_str());
  }
  created_file(const created_file&) = delete;
  created_file& operator=(const created_file&) = delete;
  void track(std::string path) noexcept { path_ = std::move(path); }
  void keep() noexcept { path_.clear(); }

 private:
  std::string path_;
};

void run_probe(const job& j, job_result& r) {
  auto t0 = std::chrono::steady_clock::now();
  std::shared_ptr<device> dev = j.source_device;
  if (!dev) {
    auto d = open_device(j.source, open_intent::read, false);
    if (!d.ok()) {
      r.error = std::move(d).error();
      return;
    }
    dev = d.value();
  }
  r.time.open_seconds = seconds_since(t0);
  auto t1 = std::chrono::steady_clock::now();
  r.probed = dev->probe();
  r.time.probe_seconds = seconds_since(t1);
}

void run_plan(const job& j, job_result& r) {
  auto pol = policy_of(j.options);
  if (!pol.ok()) {
    r.error = std::move(pol).error();
    return;
  }
  auto t0 = std::chrono::steady_clock::now();
  auto src = open_source(j);
  if (!src.ok()) {
    r.error = std::move(src).error();
    return;
  }
  auto more = open_sources(j);
  if (!more.ok()) {
    r.error = std::move(more).error();
    return;
  }
  // Never created, never opened for writing: an existing destination is checked writable, a
  // missing one is planned as the new empty file a copy would create.
  std::shared_ptr<device> dst = j.destination_device;
  if (!dst) {
    auto d = missing(j.destination) ? planned_new_file(j.destination)
                                    : open_device(j.destination, open_intent::plan_write, false);
    if (!d.ok()) {
      r.error = std::move(d).error();
      return;
    }
    dst = d.value();
  }
  r.time.open_seconds = seconds_since(t0);
  request req{src.value(), dst, j.extents, more.value()};
  auto p = make_plan(req, pol.value());
  if (!p.ok()) {
    r.error = std::move(p).error();
    return;
  }
  if (!j.options.journal.empty()) {
    // What a resume would copy: the journal is read, never created or changed.
    auto jr = journal::open(j.options.journal, journal_fingerprint(src.value()->caps(), dst->caps(), j.extents),
                            journal::access::read, {});
    if (!jr.ok()) {
      r.error = std::move(jr).error();
      return;
    }
    r.journal = j.options.journal;
    if (jr.value()->resumed()) {
      auto rest = jr.value()->remaining(j.extents, src.value()->caps().size_bytes, medium_delta(*src.value(), *dst));
      if (!rest.ok()) {
        r.error = std::move(rest).error();
        return;
      }
      r.resumed_bytes = rest.value().done_bytes;
      if (rest.value().extents.empty()) {
        p.value().segments.clear();
        p.value().batches.clear();
      } else {
        p = make_plan(request{src.value(), dst, rest.value().extents}, pol.value());
        if (!p.ok()) {
          r.error = std::move(p).error();
          return;
        }
      }
    }
  }
  r.planned = std::move(p).value();
  r.time.probe_seconds = r.planned->time.probe_seconds;
  r.time.plan_seconds = r.planned->time.plan_seconds;
}

void run_copy(const job& j, job_result& r) {
  auto pol = policy_of(j.options);
  if (!pol.ok()) {
    r.error = std::move(pol).error();
    return;
  }
  // A stop asked for before anything is written leaves nothing behind (issue 8.4).
  if (cancelled(j.options)) {
    r.error = cancelled_before_start();
    return;
  }
  auto t0 = std::chrono::steady_clock::now();
  auto src = open_source(j);
  if (!src.ok()) {
    r.error = std::move(src).error();
    return;
  }
  auto more = open_sources(j);
  if (!more.ok()) {
    r.error = std::move(more).error();
    return;
  }
  // A missing regular-file destination is created (as cp and dd do), and removed again unless
  // the copy wrote to it.
  std::shared_ptr<device> dst = j.destination_device;
  created_file created;
  if (!dst) {
    if (missing(j.destination)) {
      if (cancelled(j.options)) {
        r.error = cancelled_before_start();
        return;
      }
      int fd = sys().open(j.destination.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (fd < 0) {
        r.error = errno_status(errno, "create " + j.destination);
        return;
      }
      sys().close(fd);
      created.track(j.destination);
    }
    auto d = open_device(j.destination, open_intent::write, !j.options.force);
    if (!d.ok()) {
      r.error = std::move(d).error();
      return;
    }
    dst = d.value();
  }
  r.time.open_seconds = seconds_since(t0);
  const request req{src.value(), dst, j.extents, more.value()};
  // The whole request is validated and planned even when a journal says part of it is done.
  auto p = make_plan(req, pol.value());
  if (!p.ok()) {
    r.error = std::move(p).error();
    return;
  }

  // Resumable copies (issue 8.8): the journal is opened (or created, durably) before any write.
  std::unique_ptr<journal> jr;
  request todo = req;
  policy run_pol = pol.value();
  bool verify_whole = false;
  if (!j.options.journal.empty()) {
    // The journal records the endpoints' offsets; the engine maps a part back to them by one
    // shift (a partition, a one-target dm device). Bytes cut from several pieces (an LV over two
    // segments, a striped table) are not journalled: refused before anything is written.
    for (const plan_part& part : p.value().parts) {
      if (part.cut_from_pieces || p.value().parts.size() > 1) {
        r.error =
            status(errc::invalid_argument,
                   fmt::format("journal {}: the request is cut into {} parts over stacked devices ({} -> {}); a "
                               "journal can resume only a copy that moves as a whole (copy without --journal, "
                               "or one piece at a time)",
                               j.options.journal, p.value().parts.size(), part.source_medium, part.destination_medium));
        return;
      }
    }
    auto opened = journal::open(j.options.journal, journal_fingerprint(src.value()->caps(), dst->caps(), j.extents),
                                journal::access::write, {src.value()->caps().identity, dst->caps().identity});
    if (!opened.ok()) {
      r.error = std::move(opened).error();
      return;
    }
    jr = std::move(opened).value();
    r.journal = j.options.journal;
    if (jr->resumed()) {
      auto rest = jr->remaining(j.extents, src.value()->caps().size_bytes, medium_delta(*src.value(), *dst));
      if (!rest.ok()) {
        r.error = std::move(rest).error();
        return;
      }
      r.resumed_bytes = rest.value().done_bytes;
      todo.extents = std::move(rest).value().extents;
      verify_whole = r.resumed_bytes > 0 && run_pol.verify;
      if (verify_whole) run_pol.verify = false;
      if (todo.extents.empty()) {
        p.value().segments.clear();
        p.value().batches.clear();
      } else if (r.resumed_bytes > 0) {
        p = make_plan(todo, run_pol);
        if (!p.ok()) {
          r.error = std::move(p).error();
          return;
        }
      }
    }
  }
  r.planned = std::move(p).value();

  report rep;
  if (todo.extents.empty() && jr && jr->resumed()) {
    // Everything was done by earlier runs: nothing to copy.
    rep.time = r.planned->time;
  } else {
    data_sync_fd sync_fd(*dst);
    if (jr) jr->bind(sync_fd.fd(), r.planned->ordered, medium_delta(*src.value(), *dst));
    rep = execute_observed(todo, *r.planned, run_pol, jr.get());
  }
  // A resumed copy is verified whole: the earlier runs' bytes too.
  if (verify_whole) verify_copy(req, *r.planned, run_pol.cancel, rep);
  rep.time.open_seconds = r.time.open_seconds;
  r.time = rep.time;
  outcome o = classify(rep.result, rep.bytes_copied, run_pol.mode);
  if (jr) {
    status js;
    if (o == outcome::done) {
      js = jr->remove();
    } else if (!jr->resumed() && rep.bytes_copied == 0 && jr->done().empty()) {
      js = jr->remove();  // nothing done: a re-run starts afresh, as without a journal
    } else {
      js = jr->commit();  // what is done, durable, for the next run
    }
    if (!js.ok() && rep.result.ok()) rep.result = std::move(js);
  }
  r.error = rep.result;
  // A destination this copy created and never wrote to is removed: refused, failed or cancelled.
  if (o == outcome::done || rep.bytes_copied > 0) created.keep();
  r.copied = std::move(rep);
}

}  // namespace
}  // namespace detail

namespace v0 {

const char* to_string(operation op) noexcept {
  switch (op) {
    case operation::probe: return "probe";
    case operation::plan: return "plan";
    case operation::copy: return "copy";
  }
  return "unknown";
}

const char* to_string(outcome o) noexcept {
  switch (o) {
    case outcome::done: return "done";
    case outcome::device_error: return "device-error";
    case outcome::bad_input: return "bad-input";
    case outcome::offload_impossible: return "offload-impossible";
    case outcome::cancelled: return "cancelled";
  }
  return "unknown";
}

outcome classify(const status& s, std::uint64_t bytes_written, copy_mode mode) noexcept {
  // What only mode offload forbids: a fallback could carry it out (DESIGN §5, exit 3).
  const outcome offload_only = mode == copy_mode::offload ? outcome::offload_impossible : outcome::bad_input;
  switch (s.code()) {
    case errc::ok: return outcome::done;
    case errc::invalid_argument:
    case errc::not_found:
    case errc::out_of_range:
    case errc::zero_length:
    case errc::overlap:
    case errc::read_only:
    case errc::busy: return bytes_written ? outcome::device_error : outcome::bad_input;
    case errc::misaligned:
    case errc::block_size_mismatch:
    case errc::not_supported: return bytes_written ? outcome::device_error : offload_only;
    case errc::cancelled: return outcome::cancelled;
    default: return outcome::device_error;
  }
}

outcome classify(const status& s, std::uint64_t bytes_written) noexcept {
  return classify(s, bytes_written, copy_mode::offload);
}

int exit_status(outcome o) noexcept {
  switch (o) {
    case outcome::done: return 0;
    case outcome::bad_input: return 2;
    case outcome::offload_impossible: return 3;
    case outcome::device_error:
    case outcome::cancelled: return 1;
  }
  return 1;
}

job_result job_result::failed(operation op, status error) {
  job_result r;
  r.op = op;
  if (error.ok()) error = status(errc::internal, "job_result::failed without an error");
  r.error = std::move(error);
  // A front end's own argument errors: no mode was involved.
  r.end = classify(r.error, 0, copy_mode::automatic);
  return r;
}

std::string job_result::to_json() const {
  nlohmann::json j;
  if (op == operation::copy && copied) {
    j = detail::report_to_json(*copied);
    j["source"] = source;
    j["destination"] = destination;
    j["mode"] = mode;
    j["planned_backend"] = planned ? planned->backend : std::string();
    j["planned_commands"] = planned ? planned->batches.size() : 0;
  } else if (!error.ok()) {
    j = {{"status", "error"}, {"bytes_copied", 0}, {"error", detail::status_to_json(error)}};
  } else if (op == operation::probe && probed) {
    j = detail::capabilities_to_json(*probed);
    j["status"] = "ok";
  } else if (op == operation::plan && planned) {
    j = detail::plan_to_json(*planned, 0);
    j["status"] = "ok";
  } else {
    j = {{"status", "error"},
         {"bytes_copied", 0},
         {"error", detail::status_to_json(status(errc::internal, "job produced no result"))}};
  }
  if (!journal.empty()) {
    j["journal"] = journal;
    j["resumed_bytes"] = resumed_bytes;
  }
  j["operation"] = to_string(op);
  j["outcome"] = to_string(end);
  j["exit_status"] = exit_status();
  return detail::dump_json(j);
}

std::string job_result::to_text(std::size_t max_commands) const {
  if (op == operation::copy && copied) {
    std::size_t commands = planned ? planned->batches.size() : 0;
    std::string head = fmt::format("{} -> {}: planned {} command{} on {}\n", source, destination, commands,
                                   commands == 1 ? "" : "s", planned ? planned->backend : "-");
    return detail::terminal_safe(head) + copied->to_text();
  }
  if (!error.ok()) return {};
  if (op == operation::probe && probed) return probed->to_text();
  if (op == operation::plan && planned) return planned->to_text(max_commands);
  return {};
}

std::string job_result::error_line() const { return error.ok() ? std::string() : error.to_string(); }

job_result run(const job& j) noexcept {
  job_result r;
  try {
    r.op = j.op;
    r.source = j.source_device ? j.source_device->path() : j.source;
    r.destination = j.destination_device ? j.destination_device->path() : j.destination;
    r.mode = j.options.mode;
    if (std::string what = detail::string_with_nul(j); !what.empty()) {
      // The OS would read the string cut at the NUL: 'victim\0.new' would open 'victim'.
      r.error = status(errc::invalid_argument, fmt::format("{} contains a NUL byte", what));
    } else if (j.op != operation::probe && !j.destination_device && j.destination.empty()) {
      r.error = status(errc::invalid_argument, "empty destination path");
    } else if (!j.source_device && j.source.empty()) {
      r.error = status(errc::invalid_argument, "empty source path");
    } else if (j.op != operation::probe && !j.options.journal.empty() &&
               (!j.sources.empty() || !j.source_devices.empty())) {
      // The journal's fingerprint and resume ranges name one source (issue 8.8).
      r.error = status(errc::invalid_argument, "--journal with several sources (--source) is not supported");
    } else {
      switch (j.op) {
        case operation::probe: detail::run_probe(j, r); break;
        case operation::plan: detail::run_plan(j, r); break;
        case operation::copy: {
          detail::xfsz_guard guard;
          detail::run_copy(j, r);
          break;
        }
      }
    }
    r.end = classify(r.error, r.bytes_copied(), detail::mode_of(j.options));
  } catch (const std::exception& e) {
    r.error = status(errc::internal, fmt::format("{}: {}", to_string(j.op), e.what()));
    r.end = classify(r.error, r.bytes_copied(), detail::mode_of(j.options));
  } catch (...) {
    r.error = status(errc::internal, fmt::format("{}: unknown exception", to_string(j.op)));
    r.end = outcome::device_error;
  }
  return r;
}

}  // namespace v0
}  // namespace offcopy
