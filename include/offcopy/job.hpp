// offcopy/job.hpp: the library's one entry point for front ends (the CLI, the Python module, the
// C API). A job takes the request as a user gives it (paths or open devices, extents, options as
// strings) and returns everything a front end prints: the outcome, the exit status, the report
// (plan facts, fallback reasons, every error field, a timing breakdown) as JSON and as text.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "offcopy/device.hpp"
#include "offcopy/export.h"
#include "offcopy/plan.hpp"
#include "offcopy/policy.hpp"
#include "offcopy/report.hpp"
#include "offcopy/request.hpp"
#include "offcopy/status.hpp"
#include "offcopy/timings.hpp"

namespace offcopy {
inline namespace v0 {

/// What a job does: `offload-copy probe`, `plan` or `copy`.
enum class operation : std::uint8_t { probe, plan, copy };

/// "probe", "plan", "copy".
[[nodiscard]] OFFCOPY_API const char* to_string(operation op) noexcept;

/// How a job ended. Decides the CLI's exit status and the Python exception.
enum class outcome : std::uint8_t {
  done,                ///< exit 0
  device_error,        ///< exit 1: a device, I/O or verify error, or any error once bytes were written
  bad_input,           ///< exit 2: a request no mode could carry out; nothing was written
  offload_impossible,  ///< exit 3: a fallback could, but mode "offload" forbids it; nothing was written
  cancelled,           ///< exit 1: stopped by the caller; bytes_copied says how far it got
};

/// "done", "device-error", "bad-input", "offload-impossible", "cancelled".
[[nodiscard]] OFFCOPY_API const char* to_string(outcome o) noexcept;

/// The outcome of a final status when `bytes_written` bytes reached the destination, for a request
/// made in `mode` (DESIGN §5, one rule for every front end):
///   - nothing written and no mode could carry the request out (invalid_argument, not_found,
///     out_of_range, zero_length, overlap, read_only, busy; and not_supported outside mode offload:
///     no backend in the list can serve the pair) -> bad_input (exit 2);
///   - nothing written and only mode offload made it impossible (not_supported, misaligned,
///     block_size_mismatch under copy_mode::offload) -> offload_impossible (exit 3);
///   - any of those with bytes written -> device_error (the destination changed; exit 1);
///   - cancelled -> cancelled (exit 1); ok -> done; the rest -> device_error.
[[nodiscard]] OFFCOPY_API outcome classify(const status& s, std::uint64_t bytes_written, copy_mode mode) noexcept;
/// classify() of a status whose request's mode is not known: as if made in mode offload (the only
/// mode that reports not_supported, misaligned or block_size_mismatch with nothing written).
[[nodiscard]] OFFCOPY_API outcome classify(const status& s, std::uint64_t bytes_written) noexcept;

/// The CLI's exit status of an outcome: 0, 1, 2 or 3.
[[nodiscard]] OFFCOPY_API int exit_status(outcome o) noexcept;

/// A job's options, as front ends receive them. Thread safety: a plain value.
struct job_options {
  std::string mode = "auto";          ///< "auto", "offload" or "fallback"
  std::vector<std::string> backends;  ///< names to try, in order (empty: the registry's order)
  std::string submit = "auto";        ///< NVMe submission: "auto", "sync" or "async"
  unsigned commands_in_flight = 32;   ///< at least 1
  copy_limits limit_override;         ///< can only tighten the device's limits
  bool verify = false;                ///< read both sides back and compare
  bool allow_overlap = true;          ///< false: refuse an overlapping same-device move
  bool sync = true;                   ///< make the destination durable before success
  bool force = false;                 ///< copy: do not open a block-device destination exclusively
  std::uint32_t buffer_bytes = 0;     ///< fallback I/O size, 1 B to 1 GiB (0: default)
  unsigned buffers_in_flight = 0;     ///< fallback I/Os in flight (0: default)
  /// See policy::on_progress: runs on the thread that called run(), between commands.
  std::function<void(const progress&)> on_progress;
  /// See policy::cancel: polled between commands and between the I/Os of the fallback copiers and
  /// of verification; may be set from any thread or a signal handler. Set before run() starts, the
  /// job stops before it creates or writes anything.
  const std::atomic<bool>* cancel = nullptr;
  /// copy and plan: a journal file that makes the copy resumable (docs/reliability.md). copy
  /// records the destination ranges known done as they complete; run again with the same request
  /// and journal, it copies only what is missing. Refused (invalid_argument) when the request, a
  /// device's identity or size, or a file source changed. Removed when the copy ends done. plan
  /// reads it (never creates or changes it) and plans what a resume would copy. Empty: none.
  std::string journal;
};

/// One probe, plan or copy. The source and destination are paths, or devices the caller opened
/// (used instead of the path when set). Thread safety: a plain value; run() does not modify it.
struct job {
  operation op = operation::copy;
  std::string source;       ///< probe: the device; plan/copy: what to read
  std::string destination;  ///< plan/copy: what to write; a missing regular file is created by copy
  std::shared_ptr<device> source_device;
  std::shared_ptr<device> destination_device;
  std::vector<extent> extents;  ///< none: the whole source to offset 0 of the destination
  job_options options;
  /// More sources (plan/copy), read-only: extent::source k reads sources[k - 1] (a device the
  /// caller opened in source_devices[k - 1] is used instead when set). With any, extents are
  /// required (docs/architecture.md §4b).
  std::vector<std::string> sources;
  std::vector<std::shared_ptr<device>> source_devices;
};

/// What a job did. Thread safety: a plain value.
struct OFFCOPY_API job_result {
  operation op = operation::copy;
  outcome end = outcome::done;
  /// The one error, ok when done. For a copy that ran, the same as copied->result.
  status error;
  std::string source;  ///< the paths as given
  std::string destination;
  std::string mode;                    ///< the mode as given
  std::optional<capabilities> probed;  ///< probe: every backend's answer
  std::optional<plan> planned;         ///< plan, and copy once planned
  std::optional<report> copied;        ///< copy, once it ran
  timings time;                        ///< open, probe, plan, flush, copy, verify
  std::string journal;                 ///< the journal used (options.journal), empty without one
  /// With a journal: bytes of the request already done by earlier runs (not copied again); the
  /// request's total is this plus the plan's (or the report's bytes_requested).
  std::uint64_t resumed_bytes = 0;

  [[nodiscard]] bool ok() const noexcept { return end == outcome::done; }
  [[nodiscard]] int exit_status() const noexcept { return v0::exit_status(end); }
  /// Bytes known to be at the destination (0 unless a copy ran).
  [[nodiscard]] std::uint64_t bytes_copied() const noexcept { return copied ? copied->bytes_copied : 0; }
  /// The `--json` object (docs/offload-copy.schema.json): the probe, plan or report object plus
  /// operation, outcome and exit_status; on a failure before anything ran, status "error",
  /// bytes_copied 0 and the error. One line, valid UTF-8, no trailing newline.
  [[nodiscard]] std::string to_json() const;
  /// What the CLI prints on stdout without --json (empty for a failure before anything ran);
  /// `max_commands` limits a plan's listing (0 = all). Terminal-safe.
  [[nodiscard]] std::string to_text(std::size_t max_commands = 20) const;
  /// One line for stderr when not ok ("io-error: ..."), empty when ok. Terminal-safe.
  [[nodiscard]] std::string error_line() const;

  /// The result of a job that could not start (a front end's own argument errors).
  [[nodiscard]] static job_result failed(operation op, status error);
};

/// Runs a job on the calling thread: opens what is not open yet, builds the policy from the
/// options, probes / plans / copies, classifies the outcome. Never throws.
///   probe: the device's classification and every backend's answer (nothing written);
///   plan: the commands a copy would send; never creates, opens for writing or changes the
///         destination (a missing file is planned as a new empty file);
///   copy: creates a missing regular-file destination (removed again when the job ends without
///         having written anything: refused, failed, or cancelled), opens it exclusively unless
///         options.force, copies, verifies.
/// A path or option string holding a NUL byte is invalid_argument before anything is opened (the
/// OS would read it cut at the NUL). SIGXFSZ is blocked on the calling thread while a copy runs
/// (a file size limit is an EFBIG error in the report, exit 1, never the process's death) and a
/// SIGXFSZ raised meanwhile is consumed; other signal dispositions are the caller's.
[[nodiscard]] OFFCOPY_API job_result run(const job& j) noexcept;

}  // namespace v0
}  // namespace offcopy
