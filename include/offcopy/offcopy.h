/* offcopy/offcopy.h: the C API of liboffcopy (docs/c-api.md). What Rust, Go and C callers bind to.
 *
 * The same job the `offload-copy` CLI and the Python module run: build a job (an operation, a
 * source, a destination, extents, options as strings), run it, read the result as JSON text
 * (docs/offload-copy.schema.json), as the CLI's text, or as a small struct. Handles are opaque;
 * functions that can fail return an int error code (0 = OFFCOPY_OK, else an offcopy_error) with a
 * message to fetch; nothing throws, nothing aborts.
 *
 * Thread safety: a job is used by one thread at a time, except offcopy_job_cancel(), which any
 * thread (or a signal handler) may call while offcopy_job_run() runs. Results are independent
 * values; distinct jobs may run at once in different threads. The progress callback runs on the
 * thread that called offcopy_job_run(), between commands, never concurrently with itself. */
#ifndef OFFCOPY_OFFCOPY_H
#define OFFCOPY_OFFCOPY_H

#include <stddef.h>
#include <stdint.h>

#include "offcopy/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Error codes: the library's portable codes (offcopy::errc), same order and names. */
enum offcopy_error {
  OFFCOPY_OK = 0,
  OFFCOPY_E_INVALID_ARGUMENT = 1,     /* malformed request or option */
  OFFCOPY_E_NOT_FOUND = 2,            /* path does not exist */
  OFFCOPY_E_OUT_OF_RANGE = 3,         /* extent outside a device */
  OFFCOPY_E_MISALIGNED = 4,           /* not a multiple of the logical block size */
  OFFCOPY_E_ZERO_LENGTH = 5,          /* an extent of length 0 */
  OFFCOPY_E_OVERLAP = 6,              /* two extents write the same bytes (or overlap refused) */
  OFFCOPY_E_BLOCK_SIZE_MISMATCH = 7,  /* offload needs equal logical block sizes */
  OFFCOPY_E_READ_ONLY = 8,            /* destination cannot be written */
  OFFCOPY_E_BUSY = 9,                 /* destination mounted or held exclusively */
  OFFCOPY_E_NOT_SUPPORTED = 10,       /* offload impossible */
  OFFCOPY_E_SIZE_LIMIT_EXCEEDED = 11, /* a device refused a command as too large */
  OFFCOPY_E_IO_ERROR = 12,            /* a system call failed */
  OFFCOPY_E_DEVICE_ERROR = 13,        /* a device completed a command with an error */
  OFFCOPY_E_CANCELLED = 14,           /* stopped by offcopy_job_cancel() */
  OFFCOPY_E_VERIFY_MISMATCH = 15,     /* read-back differs from the source */
  OFFCOPY_E_INTERNAL = 16             /* a bug in offcopy, or memory exhausted */
};

/* What a job does: `offload-copy probe`, `plan` or `copy`. */
enum offcopy_operation { OFFCOPY_PROBE = 0, OFFCOPY_PLAN = 1, OFFCOPY_COPY = 2 };

/* How a job ended; exit_status is the CLI's for it (0, 1, 2 or 3). */
enum offcopy_outcome {
  OFFCOPY_DONE = 0,               /* exit 0 */
  OFFCOPY_DEVICE_ERROR = 1,       /* exit 1: device, I/O or verify error; bytes_copied says how far */
  OFFCOPY_BAD_INPUT = 2,          /* exit 2: no mode could carry it out; nothing written */
  OFFCOPY_OFFLOAD_IMPOSSIBLE = 3, /* exit 3: only mode "offload" forbade it; nothing written */
  OFFCOPY_CANCELLED = 4           /* exit 1: offcopy_job_cancel(); bytes_copied says how far */
};

typedef struct offcopy_job offcopy_job;       /* opaque */
typedef struct offcopy_result offcopy_result; /* opaque */

/* Called after each completed command with the bytes known done and the bytes requested. */
typedef void (*offcopy_progress_fn)(uint64_t bytes_done, uint64_t bytes_total, void* user);

/* "MAJOR.MINOR.PATCH" of the library actually linked. */
OFFCOPY_API const char* offcopy_version(void);

/* The stable name of an error code ("out-of-range"), "unknown" for anything else. */
OFFCOPY_API const char* offcopy_error_name(int code);

/* A new job. `operation` is an offcopy_operation; `destination` may be NULL for a probe. The
 * strings are copied (paths are bytes: they need not be UTF-8). NULL when `operation` is unknown,
 * `source` is NULL, or memory is exhausted. */
OFFCOPY_API offcopy_job* offcopy_job_new(int operation, const char* source, const char* destination);

/* Which path offcopy_job_set_path() sets. */
enum offcopy_path { OFFCOPY_SOURCE = 0, OFFCOPY_DESTINATION = 1, OFFCOPY_JOURNAL = 2 };

/* Sets the source, destination or journal path from `length` bytes: any bytes (not necessarily
 * UTF-8) except NUL. For bindings whose strings are counted (Go, Rust): converted to a C string, a
 * name holding a NUL would be cut there silently ("victim\0.new" would name "victim"); here it is
 * OFFCOPY_E_INVALID_ARGUMENT (message: offcopy_job_error) and the job is unchanged. */
OFFCOPY_API int offcopy_job_set_path(offcopy_job* job, int which, const char* bytes, size_t length);

/* Frees a job (NULL is fine). Not while offcopy_job_run() runs on it. */
OFFCOPY_API void offcopy_job_free(offcopy_job* job);

/* Adds an extent: `length` bytes from `src_offset` of the source to `dst_offset` of the
 * destination. No extents: the whole source to offset 0. Checked when the job runs. */
OFFCOPY_API int offcopy_job_add_extent(offcopy_job* job, uint64_t src_offset, uint64_t dst_offset, uint64_t length);

/* Adds another source (plan/copy), read-only; the first one added is source 1, the next 2, ...
 * (the job's own source is 0). OFFCOPY_E_INVALID_ARGUMENT for a NULL job or path. */
OFFCOPY_API int offcopy_job_add_source(offcopy_job* job, const char* path);

/* Adds an extent reading source `source` (0: the job's source, k: the k-th added with
 * offcopy_job_add_source). With several sources every extent says which one it reads, and NVMe
 * namespaces of the destination's controller are gathered into one Copy per destination run
 * (docs/c-api.md). Checked when the job runs. */
OFFCOPY_API int offcopy_job_add_extent_from(offcopy_job* job, uint32_t source, uint64_t src_offset, uint64_t dst_offset,
                                            uint64_t length);

/* Sets an option, by the CLI's long option name without the dashes, value as a string:
 *   "mode" auto|offload|fallback;  "backend" a backend name, appended to the order ("" clears it);
 *   "submit" auto|sync|async;  "journal" a file making the copy resumable (docs/reliability.md);
 *   "in-flight", "max-segments", "max-segment-blocks",
 *   "max-command-blocks", "buffer-bytes", "buffers": decimal numbers;
 *   "verify", "sync", "force", "overlap": "1" or "0".
 * OFFCOPY_E_INVALID_ARGUMENT for an unknown name or a malformed number (message: offcopy_job_error);
 * values such as a mode name are checked when the job runs, like the CLI's. */
OFFCOPY_API int offcopy_job_set(offcopy_job* job, const char* name, const char* value);

/* The message of the last call on `job` that failed, "" when none did. Valid until the next call. */
OFFCOPY_API const char* offcopy_job_error(const offcopy_job* job);

/* Installs (or with NULL removes) the progress callback of a copy. */
OFFCOPY_API void offcopy_job_set_progress(offcopy_job* job, offcopy_progress_fn fn, void* user);

/* Asks a running copy to stop (outcome OFFCOPY_CANCELLED): at the next I/O of the fallback
 * copiers and of verification, the next command of an offload. Any thread, and async-signal-safe.
 * A job cancelled before it runs stops before it opens or creates anything. */
OFFCOPY_API void offcopy_job_cancel(offcopy_job* job);

/* Runs the job on the calling thread (opening, discovery, planning, copying, verifying) and
 * returns its result; NULL only when `job` is NULL or memory is exhausted. SIGXFSZ is blocked on
 * the thread while a copy runs (a file size limit is an EFBIG error, OFFCOPY_DEVICE_ERROR, never
 * the process's death); other signal dispositions are the caller's. */
OFFCOPY_API offcopy_result* offcopy_job_run(offcopy_job* job);

/* The facts of a result. Set `size` to sizeof(struct offcopy_summary) before the call: a library
 * newer than the caller fills only the fields the caller knows. */
struct offcopy_summary {
  uint32_t size;
  int operation;   /* offcopy_operation */
  int outcome;     /* offcopy_outcome */
  int exit_status; /* 0, 1, 2 or 3 */
  int error;       /* offcopy_error, OFFCOPY_OK when done */
  int sys_errno;   /* errno of the failed system call, 0 if none */
  uint64_t bytes_requested;
  uint64_t bytes_copied; /* bytes known to be at the destination */
  uint64_t commands;     /* commands sent (copy), or planned (plan) */
  double open_seconds;
  double probe_seconds;
  double plan_seconds;
  double flush_seconds;
  double copy_seconds;
  double verify_seconds;
};

/* Fills `out` (see struct offcopy_summary). OFFCOPY_E_INVALID_ARGUMENT when an argument is NULL or
 * out->size is smaller than the first version of the struct (the 40 bytes up to bytes_copied). */
OFFCOPY_API int offcopy_result_summary(const offcopy_result* result, struct offcopy_summary* out);

/* The result as the CLI's --json object (one line, valid UTF-8). Owned by the result. */
OFFCOPY_API const char* offcopy_result_json(const offcopy_result* result);

/* The result as the CLI's text output (terminal-safe; "" for a failure before anything ran). */
OFFCOPY_API const char* offcopy_result_text(const offcopy_result* result);

/* One line describing the error ("out-of-range: extent 1 ..."), "" when the job is done. */
OFFCOPY_API const char* offcopy_result_error_message(const offcopy_result* result);

/* Frees a result (NULL is fine). */
OFFCOPY_API void offcopy_result_free(offcopy_result* result);

#ifdef __cplusplus
}
#endif

#endif /* OFFCOPY_OFFCOPY_H */
