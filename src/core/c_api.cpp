// The C API (include/offcopy/offcopy.h): opaque handles over offcopy::job and offcopy::job_result.
// Every entry point catches everything: a C caller never sees a C++ exception.
#include "offcopy/offcopy.h"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstddef>
#include <cstring>
#include <exception>
#include <limits>
#include <new>
#include <string>
#include <string_view>

#include "offcopy/job.hpp"
#include "offcopy/version.hpp"

struct offcopy_job {
  offcopy::job job;
  std::atomic<bool> cancel{false};
  offcopy_progress_fn progress = nullptr;
  void* user = nullptr;
  std::string error;
};

struct offcopy_result {
  offcopy::job_result result;
  std::string json;
  std::string text;
  std::string error;
};

namespace {

static_assert(static_cast<int>(offcopy::errc::internal) == OFFCOPY_E_INTERNAL, "offcopy.h mirrors errc");
static_assert(static_cast<int>(offcopy::outcome::cancelled) == OFFCOPY_CANCELLED, "offcopy.h mirrors outcome");
static_assert(static_cast<int>(offcopy::operation::copy) == OFFCOPY_COPY, "offcopy.h mirrors operation");
static_assert(offsetof(offcopy_summary, bytes_copied) + sizeof(std::uint64_t) == 40, "first summary version");

int fail(offcopy_job* j, std::string message) {
  j->error = std::move(message);
  return OFFCOPY_E_INVALID_ARGUMENT;
}

template <class T>
bool parse_number(std::string_view s, T& out) {
  std::uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, 10);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty() || v > std::numeric_limits<T>::max()) return false;
  out = static_cast<T>(v);
  return true;
}

bool parse_flag(std::string_view s, bool& out) {
  if (s == "1") {
    out = true;
  } else if (s == "0") {
    out = false;
  } else {
    return false;
  }
  return true;
}

int set_option(offcopy_job* j, std::string_view name, std::string_view value) {
  offcopy::job_options& o = j->job.options;
  auto number = [&](auto& field) {
    return parse_number(value, field) ? OFFCOPY_OK
                                      : fail(j, std::string(name) + ": '" + std::string(value) + "' is not a number");
  };
  auto flag = [&](bool& field) {
    return parse_flag(value, field) ? OFFCOPY_OK
                                    : fail(j, std::string(name) + ": '" + std::string(value) + "': expected 1 or 0");
  };
  if (name == "mode") {
    o.mode = value;
  } else if (name == "backend") {
    if (value.empty()) {
      o.backends.clear();
    } else {
      o.backends.emplace_back(value);
    }
  } else if (name == "submit") {
    o.submit = value;
  } else if (name == "journal") {
    o.journal = value;
  } else if (name == "in-flight") {
    return number(o.commands_in_flight);
  } else if (name == "max-segments") {
    return number(o.limit_override.max_segments_per_command);
  } else if (name == "max-segment-blocks") {
    return number(o.limit_override.max_segment_blocks);
  } else if (name == "max-command-blocks") {
    return number(o.limit_override.max_command_blocks);
  } else if (name == "buffer-bytes") {
    return number(o.buffer_bytes);
  } else if (name == "buffers") {
    return number(o.buffers_in_flight);
  } else if (name == "verify") {
    return flag(o.verify);
  } else if (name == "sync") {
    return flag(o.sync);
  } else if (name == "force") {
    return flag(o.force);
  } else if (name == "overlap") {
    return flag(o.allow_overlap);
  } else {
    return fail(j, "unknown option '" + std::string(name) + "'");
  }
  return OFFCOPY_OK;
}

}  // namespace

extern "C" {

const char* offcopy_version(void) { return offcopy::version(); }

const char* offcopy_error_name(int code) {
  if (code < 0 || code > OFFCOPY_E_INTERNAL) return "unknown";
  return offcopy::to_string(static_cast<offcopy::errc>(code));
}

offcopy_job* offcopy_job_new(int operation, const char* source, const char* destination) {
  if (operation < OFFCOPY_PROBE || operation > OFFCOPY_COPY || source == nullptr) return nullptr;
  try {
    auto* j = new offcopy_job;
    j->job.op = static_cast<offcopy::operation>(operation);
    j->job.source = source;
    if (destination != nullptr) j->job.destination = destination;
    j->job.options.cancel = &j->cancel;
    return j;
  } catch (...) {
    return nullptr;
  }
}

void offcopy_job_free(offcopy_job* job) { delete job; }

int offcopy_job_add_extent(offcopy_job* job, uint64_t src_offset, uint64_t dst_offset, uint64_t length) {
  if (job == nullptr) return OFFCOPY_E_INVALID_ARGUMENT;
  try {
    job->job.extents.push_back({src_offset, dst_offset, length});
    job->error.clear();
    return OFFCOPY_OK;
  } catch (...) {
    return OFFCOPY_E_INTERNAL;
  }
}

int offcopy_job_add_source(offcopy_job* job, const char* path) {
  if (job == nullptr || path == nullptr) return OFFCOPY_E_INVALID_ARGUMENT;
  try {
    job->job.sources.emplace_back(path);
    job->error.clear();
    return OFFCOPY_OK;
  } catch (...) {
    return OFFCOPY_E_INTERNAL;
  }
}

int offcopy_job_add_extent_from(offcopy_job* job, uint32_t source, uint64_t src_offset, uint64_t dst_offset,
                                uint64_t length) {
  if (job == nullptr) return OFFCOPY_E_INVALID_ARGUMENT;
  try {
    job->job.extents.push_back({src_offset, dst_offset, length, source});
    job->error.clear();
    return OFFCOPY_OK;
  } catch (...) {
    return OFFCOPY_E_INTERNAL;
  }
}

int offcopy_job_set(offcopy_job* job, const char* name, const char* value) {
  if (job == nullptr) return OFFCOPY_E_INVALID_ARGUMENT;
  try {
    if (name == nullptr || value == nullptr) return fail(job, "offcopy_job_set: name and value are required");
    job->error.clear();
    return set_option(job, name, value);
  } catch (...) {
    return OFFCOPY_E_INTERNAL;
  }
}

int offcopy_job_set_path(offcopy_job* job, int which, const char* bytes, size_t length) {
  if (job == nullptr) return OFFCOPY_E_INVALID_ARGUMENT;
  try {
    job->error.clear();
    if (bytes == nullptr && length != 0) return fail(job, "offcopy_job_set_path: NULL bytes");
    std::string path(bytes == nullptr ? "" : bytes, length);
    if (path.find('\0') != std::string::npos)
      return fail(job, "offcopy_job_set_path: the path contains a NUL byte (the OS would read it cut there)");
    switch (which) {
      case OFFCOPY_SOURCE: job->job.source = std::move(path); break;
      case OFFCOPY_DESTINATION: job->job.destination = std::move(path); break;
      case OFFCOPY_JOURNAL: job->job.options.journal = std::move(path); break;
      default: return fail(job, "offcopy_job_set_path: unknown path " + std::to_string(which));
    }
    return OFFCOPY_OK;
  } catch (...) {
    return OFFCOPY_E_INTERNAL;
  }
}

const char* offcopy_job_error(const offcopy_job* job) { return job == nullptr ? "" : job->error.c_str(); }

void offcopy_job_set_progress(offcopy_job* job, offcopy_progress_fn fn, void* user) {
  if (job == nullptr) return;
  job->progress = fn;
  job->user = user;
}

void offcopy_job_cancel(offcopy_job* job) {
  if (job != nullptr) job->cancel.store(true);
}

offcopy_result* offcopy_job_run(offcopy_job* job) {
  if (job == nullptr) return nullptr;
  try {
    auto* r = new offcopy_result;
    offcopy::job j = job->job;
    if (job->progress != nullptr) {
      offcopy_progress_fn fn = job->progress;
      void* user = job->user;
      j.options.on_progress = [fn, user](const offcopy::progress& p) { fn(p.bytes_done, p.bytes_total, user); };
    }
    r->result = offcopy::run(j);
    r->json = r->result.to_json();
    r->text = r->result.to_text(0);
    r->error = r->result.error_line();
    return r;
  } catch (...) {
    return nullptr;
  }
}

int offcopy_result_summary(const offcopy_result* result, struct offcopy_summary* out) {
  constexpr std::size_t first_version = offsetof(offcopy_summary, bytes_copied) + sizeof(std::uint64_t);
  if (result == nullptr || out == nullptr || out->size < first_version) return OFFCOPY_E_INVALID_ARGUMENT;
  const offcopy::job_result& r = result->result;
  offcopy_summary s{};
  s.size = static_cast<std::uint32_t>(std::min<std::size_t>(out->size, sizeof s));
  s.operation = static_cast<int>(r.op);
  s.outcome = static_cast<int>(r.end);
  s.exit_status = r.exit_status();
  s.error = static_cast<int>(r.error.code());
  s.sys_errno = r.error.sys_errno();
  if (r.copied) {
    s.bytes_requested = r.copied->bytes_requested;
    s.bytes_copied = r.copied->bytes_copied;
    for (const auto& [name, u] : r.copied->usage) s.commands += u.commands;
  } else if (r.planned) {
    s.bytes_requested = r.planned->total_bytes();
    s.commands = r.planned->batches.size();
  }
  s.open_seconds = r.time.open_seconds;
  s.probe_seconds = r.time.probe_seconds;
  s.plan_seconds = r.time.plan_seconds;
  s.flush_seconds = r.time.flush_seconds;
  s.copy_seconds = r.time.copy_seconds;
  s.verify_seconds = r.time.verify_seconds;
  std::memcpy(out, &s, s.size);
  return OFFCOPY_OK;
}

const char* offcopy_result_json(const offcopy_result* result) { return result == nullptr ? "" : result->json.c_str(); }

const char* offcopy_result_text(const offcopy_result* result) { return result == nullptr ? "" : result->text.c_str(); }

const char* offcopy_result_error_message(const offcopy_result* result) {
  return result == nullptr ? "" : result->error.c_str();
}

void offcopy_result_free(offcopy_result* result) { delete result; }

}  // extern "C"
