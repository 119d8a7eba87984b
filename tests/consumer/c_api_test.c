/* A C program using only <offcopy/offcopy.h>: copies a file range through the C API, checks the
 * bytes, the summary, the JSON and the error paths. Built with the C compiler against the shared
 * library (in-tree: consumer.c_api; installed: run_consumer.cmake).
 * Usage: c_api_test WORK_DIR   (exit 0 pass, 1 fail) */
#include <offcopy/offcopy.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                              \
    }                                                                          \
  } while (0)

static unsigned char pattern(size_t i) { return (unsigned char)(i * 131u + 7u + (i >> 9)); }

static int write_file(const char* path, size_t size) {
  FILE* f = fopen(path, "wb");
  if (f == NULL) return -1;
  for (size_t i = 0; i < size; ++i) fputc(pattern(i), f);
  return fclose(f);
}

static unsigned char* read_file(const char* path, size_t* size) {
  FILE* f = fopen(path, "rb");
  if (f == NULL) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char* buf = malloc(n > 0 ? (size_t)n : 1);
  *size = fread(buf, 1, (size_t)n, f);
  fclose(f);
  return buf;
}

struct progress_log {
  int calls;
  uint64_t last_done;
  int decreased;
};

static void on_progress(uint64_t done, uint64_t total, void* user) {
  struct progress_log* log = user;
  if (done < log->last_done || done > total) log->decreased = 1;
  log->last_done = done;
  ++log->calls;
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: c_api_test WORK_DIR\n");
    return 2;
  }
  char src[4096], dst[4096];
  snprintf(src, sizeof src, "%s/c-api-src.bin", argv[1]);
  snprintf(dst, sizeof dst, "%s/c-api-dst.bin", argv[1]);
  remove(dst);
  const size_t size = 256 * 1024;
  if (write_file(src, size) != 0) {
    fprintf(stderr, "cannot write %s\n", src);
    return 1;
  }
  CHECK(strchr(offcopy_version(), '.') != NULL);
  CHECK(strcmp(offcopy_error_name(OFFCOPY_E_OUT_OF_RANGE), "out-of-range") == 0);
  CHECK(strcmp(offcopy_error_name(99), "unknown") == 0);
  CHECK(offcopy_job_new(7, src, dst) == NULL);

  /* A range copy to a new file, with verify and a progress callback. */
  offcopy_job* job = offcopy_job_new(OFFCOPY_COPY, src, dst);
  CHECK(job != NULL);
  CHECK(offcopy_job_add_extent(job, 4096, 65536, 100000) == OFFCOPY_OK);
  CHECK(offcopy_job_set(job, "verify", "1") == OFFCOPY_OK);
  CHECK(offcopy_job_set(job, "in-flight", "4") == OFFCOPY_OK);
  CHECK(offcopy_job_set(job, "backend", "buffered") == OFFCOPY_OK);
  CHECK(offcopy_job_set(job, "in-flight", "lots") == OFFCOPY_E_INVALID_ARGUMENT);
  CHECK(strstr(offcopy_job_error(job), "lots") != NULL);
  CHECK(offcopy_job_set(job, "no-such-option", "1") == OFFCOPY_E_INVALID_ARGUMENT);
  struct progress_log log = {0, 0, 0};
  offcopy_job_set_progress(job, on_progress, &log);
  offcopy_result* r = offcopy_job_run(job);
  CHECK(r != NULL);
  struct offcopy_summary s;
  memset(&s, 0xff, sizeof s);
  s.size = sizeof s;
  CHECK(offcopy_result_summary(r, &s) == OFFCOPY_OK);
  CHECK(s.operation == OFFCOPY_COPY);
  CHECK(s.outcome == OFFCOPY_DONE);
  CHECK(s.exit_status == 0);
  CHECK(s.error == OFFCOPY_OK);
  CHECK(s.bytes_requested == 100000);
  CHECK(s.bytes_copied == 100000);
  CHECK(s.commands >= 1);
  CHECK(s.copy_seconds >= 0 && s.verify_seconds > 0);
  CHECK(log.calls >= 1 && log.last_done == 100000 && !log.decreased);
  const char* json = offcopy_result_json(r);
  CHECK(strstr(json, "\"outcome\":\"done\"") != NULL);
  CHECK(strstr(json, "\"verified\":true") != NULL);
  CHECK(strstr(json, "\"buffered\"") != NULL);
  CHECK(strstr(offcopy_result_text(r), "planned") != NULL);
  CHECK(strcmp(offcopy_result_error_message(r), "") == 0);
  offcopy_result_free(r);
  offcopy_job_free(job);

  size_t got_size = 0;
  unsigned char* got = read_file(dst, &got_size);
  CHECK(got != NULL && got_size == 65536 + 100000);
  if (got != NULL && got_size == 65536 + 100000) {
    int same = 1;
    for (size_t i = 0; i < 65536; ++i) same &= got[i] == 0; /* the new file's hole */
    for (size_t i = 0; i < 100000; ++i) same &= got[65536 + i] == pattern(4096 + i);
    CHECK(same);
  }
  free(got);

  /* Two sources into one destination: the job's own (0) and one added (1), the same file here. */
  {
    char dst2[4096];
    snprintf(dst2, sizeof dst2, "%s/c-api-dst2.bin", argv[1]);
    remove(dst2);
    offcopy_job* g = offcopy_job_new(OFFCOPY_COPY, src, dst2);
    CHECK(offcopy_job_add_source(g, NULL) == OFFCOPY_E_INVALID_ARGUMENT);
    CHECK(offcopy_job_add_source(g, src) == OFFCOPY_OK);
    CHECK(offcopy_job_add_extent_from(g, 0, 0, 0, 4096) == OFFCOPY_OK);
    CHECK(offcopy_job_add_extent_from(g, 1, 8192, 4096, 4096) == OFFCOPY_OK);
    offcopy_result* gr = offcopy_job_run(g);
    struct offcopy_summary gs;
    memset(&gs, 0, sizeof gs);
    gs.size = sizeof gs;
    CHECK(offcopy_result_summary(gr, &gs) == OFFCOPY_OK);
    CHECK(gs.outcome == OFFCOPY_DONE);
    CHECK(gs.bytes_copied == 8192);
    offcopy_result_free(gr);
    CHECK(offcopy_job_add_extent_from(g, 2, 0, 0, 1) == OFFCOPY_OK); /* no source 2: refused when run */
    gr = offcopy_job_run(g);
    CHECK(strstr(offcopy_result_error_message(gr), "source 2 does not exist") != NULL);
    offcopy_result_free(gr);
    offcopy_job_free(g);
    size_t n2 = 0;
    unsigned char* got2 = read_file(dst2, &n2);
    CHECK(got2 != NULL && n2 == 8192);
    if (got2 != NULL && n2 == 8192) {
      int same = 1;
      for (size_t i = 0; i < 4096; ++i) same &= got2[i] == pattern(i) && got2[4096 + i] == pattern(8192 + i);
      CHECK(same);
    }
    free(got2);
    remove(dst2);
  }

  /* Bad input: nothing written, exit status 2, the message and code. */
  job = offcopy_job_new(OFFCOPY_COPY, src, dst);
  CHECK(offcopy_job_add_extent(job, 0, 0, 2 * size) == OFFCOPY_OK);
  r = offcopy_job_run(job);
  s.size = sizeof s;
  CHECK(offcopy_result_summary(r, &s) == OFFCOPY_OK);
  CHECK(s.outcome == OFFCOPY_BAD_INPUT && s.exit_status == 2 && s.error == OFFCOPY_E_OUT_OF_RANGE);
  CHECK(s.bytes_copied == 0);
  CHECK(strstr(offcopy_result_error_message(r), "out-of-range") == offcopy_result_error_message(r));
  CHECK(strstr(offcopy_result_json(r), "\"exit_status\":2") != NULL);
  CHECK(strcmp(offcopy_result_text(r), "") == 0);
  offcopy_result_free(r);
  offcopy_job_free(job);

  /* Offload impossible on files: exit status 3. A summary struct of the first version works. */
  job = offcopy_job_new(OFFCOPY_COPY, src, dst);
  CHECK(offcopy_job_set(job, "mode", "offload") == OFFCOPY_OK);
  r = offcopy_job_run(job);
  struct offcopy_summary small;
  memset(&small, 0, sizeof small);
  small.size = 40;
  small.open_seconds = -1;
  CHECK(offcopy_result_summary(r, &small) == OFFCOPY_OK);
  CHECK(small.outcome == OFFCOPY_OFFLOAD_IMPOSSIBLE && small.exit_status == 3);
  CHECK(small.open_seconds == -1); /* past the caller's size: untouched */
  small.size = 8;
  CHECK(offcopy_result_summary(r, &small) == OFFCOPY_E_INVALID_ARGUMENT);
  offcopy_result_free(r);
  offcopy_job_free(job);

  /* Cancelled before it started: no command is sent. */
  job = offcopy_job_new(OFFCOPY_COPY, src, dst);
  offcopy_job_cancel(job);
  r = offcopy_job_run(job);
  s.size = sizeof s;
  CHECK(offcopy_result_summary(r, &s) == OFFCOPY_OK);
  CHECK(s.outcome == OFFCOPY_CANCELLED && s.exit_status == 1 && s.error == OFFCOPY_E_CANCELLED);
  CHECK(s.bytes_copied == 0);
  offcopy_result_free(r);
  offcopy_job_free(job);

  /* A counted path holding a NUL is refused, the job unchanged; the same name without it works
   * (issue 8.1: "victim\0.new" must never open "victim"). */
  job = offcopy_job_new(OFFCOPY_COPY, src, dst);
  {
    char victim[4200];
    int n = snprintf(victim, sizeof victim, "%s", dst);
    memcpy(victim + n, "\0.new", 5);
    CHECK(offcopy_job_set_path(job, OFFCOPY_DESTINATION, victim, (size_t)n + 5) == OFFCOPY_E_INVALID_ARGUMENT);
    CHECK(strstr(offcopy_job_error(job), "NUL") != NULL);
    CHECK(offcopy_job_set_path(job, OFFCOPY_JOURNAL, victim, (size_t)n + 5) == OFFCOPY_E_INVALID_ARGUMENT);
    CHECK(offcopy_job_set_path(job, 9, src, strlen(src)) == OFFCOPY_E_INVALID_ARGUMENT);
    CHECK(offcopy_job_set_path(job, OFFCOPY_SOURCE, src, strlen(src)) == OFFCOPY_OK);
  }
  offcopy_job_add_extent(job, 0, 0, 4096);
  r = offcopy_job_run(job);
  s.size = sizeof s;
  CHECK(offcopy_result_summary(r, &s) == OFFCOPY_OK);
  CHECK(s.outcome == OFFCOPY_DONE && s.bytes_copied == 4096);
  offcopy_result_free(r);
  offcopy_job_free(job);

  /* Probe and plan. */
  job = offcopy_job_new(OFFCOPY_PROBE, src, NULL);
  r = offcopy_job_run(job);
  CHECK(strstr(offcopy_result_json(r), "\"kind\":\"regular-file\"") != NULL);
  offcopy_result_free(r);
  offcopy_job_free(job);
  job = offcopy_job_new(OFFCOPY_PLAN, src, dst);
  offcopy_job_add_extent(job, 0, 0, 4096);
  r = offcopy_job_run(job);
  s.size = sizeof s;
  CHECK(offcopy_result_summary(r, &s) == OFFCOPY_OK);
  CHECK(s.outcome == OFFCOPY_DONE && s.commands == 1 && s.bytes_requested == 4096);
  offcopy_result_free(r);
  offcopy_job_free(job);

  CHECK(offcopy_job_run(NULL) == NULL);
  offcopy_job_free(NULL);
  offcopy_result_free(NULL);
  remove(src);
  remove(dst);
  if (failures != 0) {
    fprintf(stderr, "c_api_test: %d checks failed\n", failures);
    return 1;
  }
  printf("c_api_test: offcopy %s: all checks passed\n", offcopy_version());
  return 0;
}
