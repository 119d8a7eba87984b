// The job API: the one implementation behind every front end (CLI, Python, C). Opening the pair,
// the policy from option strings, creating a missing destination, running, classifying the
// outcome and rendering the result all happen here, once.
#include "offcopy/job.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <exception>

#include <fmt/format.h>

#include "offcopy/copy.hpp"
#include "src/core/backend.hpp"
#include "src/core/device_state.hpp"
#include "src/core/format.hpp"
#include "src/core/sys.hpp"
#include "src/core/text.hpp"

namespace offcopy {
namespace detail {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

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
  auto p = make_plan(request{src.value(), dst, j.extents, more.value()}, pol.value());
  if (!p.ok()) {
    r.error = std::move(p).error();
    return;
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
  // the copy may have written to it.
  std::shared_ptr<device> dst = j.destination_device;
  created_file created;
  if (!dst) {
    if (missing(j.destination)) {
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
  request req{src.value(), dst, j.extents, more.value()};
  auto p = make_plan(req, pol.value());
  if (!p.ok()) {
    r.error = std::move(p).error();
    return;
  }
  r.planned = std::move(p).value();
  report rep = execute(req, *r.planned, pol.value());
  rep.time.open_seconds = r.time.open_seconds;
  r.time = rep.time;
  r.error = rep.result;
  outcome o = classify(rep.result, rep.bytes_copied);
  if (o != outcome::bad_input && o != outcome::offload_impossible) created.keep();
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

outcome classify(const status& s, std::uint64_t bytes_written) noexcept {
  switch (s.code()) {
    case errc::ok: return outcome::done;
    case errc::invalid_argument:
    case errc::not_found:
    case errc::out_of_range:
    case errc::misaligned:
    case errc::zero_length:
    case errc::overlap:
    case errc::block_size_mismatch:
    case errc::read_only:
    case errc::busy: return bytes_written ? outcome::device_error : outcome::bad_input;
    case errc::not_supported: return bytes_written ? outcome::device_error : outcome::offload_impossible;
    case errc::cancelled: return outcome::cancelled;
    default: return outcome::device_error;
  }
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
  r.end = classify(r.error, 0);
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
    switch (j.op) {
      case operation::probe: detail::run_probe(j, r); break;
      case operation::plan: detail::run_plan(j, r); break;
      case operation::copy: detail::run_copy(j, r); break;
    }
    r.end = classify(r.error, r.bytes_copied());
  } catch (const std::exception& e) {
    r.error = status(errc::internal, fmt::format("{}: {}", to_string(j.op), e.what()));
    r.end = classify(r.error, r.bytes_copied());
  } catch (...) {
    r.error = status(errc::internal, fmt::format("{}: unknown exception", to_string(j.op)));
    r.end = outcome::device_error;
  }
  return r;
}

}  // namespace v0
}  // namespace offcopy
