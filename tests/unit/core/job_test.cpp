// The job API (src/core/job.cpp): the one entry point behind the CLI, Python and C. Its outcome
// classification and exit statuses, what each operation may touch, the JSON it renders.
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "offcopy/offcopy.hpp"
#include "src/core/sys.hpp"
#include "tests/unit/core/fake_backend.hpp"

using namespace offcopy;
using core_test::file_pair;
using nlohmann::json;

namespace {

job copy_job(const file_pair& f, std::vector<extent> extents = {}) {
  job j;
  j.op = operation::copy;
  j.source = f.src_path;
  j.destination = f.dst_path;
  j.extents = std::move(extents);
  return j;
}

bool exists(const std::string& p) { return std::filesystem::exists(p); }

}  // namespace

TEST_CASE("job: outcome and exit status: 0 done, 2 no mode could, 3 only mode offload forbade it, else 1") {
  CHECK(classify(status(), 0) == outcome::done);
  CHECK(exit_status(outcome::done) == 0);
  for (copy_mode m : {copy_mode::automatic, copy_mode::offload, copy_mode::fallback}) {
    for (errc c : {errc::invalid_argument, errc::not_found, errc::out_of_range, errc::zero_length, errc::overlap,
                   errc::read_only, errc::busy}) {
      CAPTURE(to_string(c));
      CHECK(classify(status(c, "x"), 0, m) == outcome::bad_input);
      CHECK(exit_status(classify(status(c, "x"), 0, m)) == 2);
      CHECK(classify(status(c, "x"), 512, m) == outcome::device_error);  // something was written
      CHECK(exit_status(classify(status(c, "x"), 512, m)) == 1);
    }
    // What a fallback could do: exit 3 only when mode offload forbade the fallback, else 2 (a
    // backend list that cannot serve the pair in auto mode is bad input, never "offload impossible").
    for (errc c : {errc::not_supported, errc::misaligned, errc::block_size_mismatch}) {
      CAPTURE(to_string(c));
      CHECK(classify(status(c, "x"), 0, m) ==
            (m == copy_mode::offload ? outcome::offload_impossible : outcome::bad_input));
      CHECK(classify(status(c, "x"), 1, m) == outcome::device_error);
    }
    for (errc c :
         {errc::size_limit_exceeded, errc::io_error, errc::device_error, errc::verify_mismatch, errc::internal}) {
      CAPTURE(to_string(c));
      CHECK(classify(status(c, "x"), 0, m) == outcome::device_error);
      CHECK(exit_status(classify(status(c, "x"), 0, m)) == 1);
    }
    CHECK(classify(status(errc::cancelled, "x"), 0, m) == outcome::cancelled);
  }
  // Without a mode: as mode offload (the only mode that reports those codes with nothing written).
  CHECK(classify(status(errc::not_supported, "x"), 0) == outcome::offload_impossible);
  CHECK(classify(status(errc::block_size_mismatch, "x"), 0) == outcome::offload_impossible);
  CHECK(classify(status(errc::out_of_range, "x"), 0) == outcome::bad_input);
  CHECK(exit_status(outcome::offload_impossible) == 3);
  CHECK(exit_status(outcome::cancelled) == 1);
  CHECK(std::string(to_string(outcome::offload_impossible)) == "offload-impossible");
  CHECK(std::string(to_string(operation::plan)) == "plan");
}

TEST_CASE("job: a copy of two files: done, the bytes, the report with plan facts and the timing breakdown") {
  file_pair f(256 * 1024);
  std::vector<extent> ext{{0, 4096, 65536}, {100000, 200000, 333}};
  job_result r = run(copy_job(f, ext));
  REQUIRE_MESSAGE(r.ok(), r.error_line());
  CHECK(r.exit_status() == 0);
  CHECK(r.error_line().empty());
  CHECK(core_test::read_file(f.dst_path) == f.expected(ext));
  REQUIRE(r.planned);
  REQUIRE(r.copied);
  CHECK(r.bytes_copied() == 65536 + 333);
  CHECK(r.copied->time.open_seconds == r.time.open_seconds);
  json j = json::parse(r.to_json());
  CHECK(j["operation"] == "copy");
  CHECK(j["outcome"] == "done");
  CHECK(j["exit_status"] == 0);
  CHECK(j["status"] == "ok");
  CHECK(j["planned_backend"] == r.planned->backend);
  CHECK(j["planned_commands"] == r.planned->batches.size());
  CHECK(j["source"] == f.src_path);
  for (const char* k :
       {"open_seconds", "probe_seconds", "plan_seconds", "flush_seconds", "copy_seconds", "verify_seconds"}) {
    CAPTURE(k);
    REQUIRE(j["timings"].contains(k));
    CHECK(j["timings"][k].get<double>() >= 0);
  }
  std::string text = r.to_text();
  CHECK(text.find("planned 1 command on ") != std::string::npos);
  CHECK(text.find("time: open ") != std::string::npos);
}

TEST_CASE("job: options are checked by the library, before anything is opened or created") {
  file_pair f(4096);
  std::string missing = f.dir.file("new.bin");
  struct bad_option {
    const char* what;
    void (*set)(job_options&);
  };
  const bad_option cases[] = {
      {"mode 'sideways'", [](job_options& o) { o.mode = "sideways"; }},
      {"backend 'teleport'",
       [](job_options& o) {
         o.backends = {"buffered", "teleport"};
       }},
      {"submit 'later'", [](job_options& o) { o.submit = "later"; }},
      {"in-flight", [](job_options& o) { o.commands_in_flight = 0; }},
      {"buffer-size", [](job_options& o) { o.buffer_bytes = (1U << 30) + 1; }},
  };
  for (const auto& c : cases) {
    CAPTURE(c.what);
    for (operation op : {operation::plan, operation::copy}) {
      job j = copy_job(f);
      j.op = op;
      j.destination = missing;
      c.set(j.options);
      job_result r = run(j);
      CHECK(r.end == outcome::bad_input);
      CHECK(r.exit_status() == 2);
      CHECK(r.error.code() == errc::invalid_argument);
      CHECK(r.error_line().find(c.what) != std::string::npos);
      CHECK_FALSE(exists(missing));
      CHECK(r.to_text().empty());
    }
  }
}

TEST_CASE("job: plan never creates, opens for writing or changes the destination") {
  file_pair f(64 * 1024);
  std::string missing = f.dir.file("new.bin");
  struct stat before {};
  REQUIRE(::stat(f.dir.path().c_str(), &before) == 0);
  job j = copy_job(f, {{0, 0, 4096}});
  j.op = operation::plan;
  j.destination = missing;
  job_result r = run(j);
  REQUIRE_MESSAGE(r.ok(), r.error_line());
  REQUIRE(r.planned);
  CHECK(r.planned->backend == "copy-file-range");  // what a copy to the new file would use
  CHECK_FALSE(exists(missing));
  struct stat after {};
  REQUIRE(::stat(f.dir.path().c_str(), &after) == 0);
  CHECK(after.st_mtim.tv_sec == before.st_mtim.tv_sec);  // nothing created and removed either
  CHECK(after.st_mtim.tv_nsec == before.st_mtim.tv_nsec);

  // Bad input is judged as a copy would judge it: past the source's end, a missing directory.
  j.extents = {{60 * 1024, 0, 8192}};
  r = run(j);
  CHECK(r.end == outcome::bad_input);
  CHECK(r.error.code() == errc::out_of_range);
  j.extents.clear();
  j.destination = f.dir.file("no-such-dir/new.bin");
  r = run(j);
  CHECK(r.end == outcome::bad_input);
  CHECK(r.error.code() == errc::not_found);
  CHECK(r.error_line().find("no-such-dir") != std::string::npos);

  // An existing destination is left as it was, byte for byte.
  j.destination = f.dst_path;
  r = run(j);
  REQUIRE(r.ok());
  CHECK(core_test::read_file(f.dst_path) == f.dst_data);
}

TEST_CASE("job: a refused copy removes the destination it created, one that ran keeps it") {
  file_pair f(64 * 1024);
  std::string missing = f.dir.file("new.bin");
  job j = copy_job(f, {{0, 0, 0}});
  j.destination = missing;
  job_result r = run(j);
  CHECK(r.end == outcome::bad_input);
  CHECK(r.error.code() == errc::zero_length);
  CHECK_FALSE(exists(missing));
  json e = json::parse(r.to_json());
  CHECK(e["status"] == "error");
  CHECK(e["bytes_copied"] == 0);
  CHECK(e["error"]["code"] == "zero-length");
  CHECK(e["exit_status"] == 2);

  j.extents.clear();
  j.options.mode = "offload";
  r = run(j);
  CHECK(r.end == outcome::offload_impossible);
  CHECK(r.exit_status() == 3);
  CHECK(r.error.message().find("offload impossible") != std::string::npos);
  CHECK_FALSE(exists(missing));

  j.options.mode = "auto";
  r = run(j);
  REQUIRE_MESSAGE(r.ok(), r.error_line());
  CHECK(core_test::read_file(missing) == f.src_data);
}

TEST_CASE("job: an I/O error after bytes were written is a device error (exit 1) with the errno and bytes done") {
  file_pair f(1 << 20);
  static std::atomic<int> calls{0};
  calls = 0;
  detail::sys_table t = detail::real_sys();
  t.copy_file_range = [](int in, off_t* oi, int out, off_t* oo, size_t len, unsigned flags) -> ssize_t {
    if (calls++ == 0) return detail::real_sys().copy_file_range(in, oi, out, oo, std::min<size_t>(len, 4096), flags);
    errno = EIO;
    return -1;
  };
  detail::scoped_sys_override seam(t);
  job j = copy_job(f);
  j.options.backends = {"copy-file-range"};
  job_result r = run(j);
  CHECK(r.end == outcome::device_error);
  CHECK(r.exit_status() == 1);
  CHECK(r.error.code() == errc::io_error);
  CHECK(r.error.sys_errno() == EIO);
  CHECK(r.bytes_copied() == 4096);
  json j2 = json::parse(r.to_json());
  CHECK(j2["status"] == "error");
  CHECK(j2["error"]["errno"] == EIO);
  CHECK(j2["bytes_copied"] == 4096);
  CHECK(j2["backends"]["copy-file-range"]["bytes"] == 4096);
}

TEST_CASE("job: cancellation and a throwing progress callback stop the copy, never unwind through the library") {
  file_pair f(1 << 20);
  std::atomic<bool> cancel{true};
  job j = copy_job(f);
  j.options.cancel = &cancel;
  job_result r = run(j);
  CHECK(r.end == outcome::cancelled);
  CHECK(r.exit_status() == 1);
  CHECK(r.error.code() == errc::cancelled);
  CHECK(r.bytes_copied() == 0);

  // A move of a file onto itself by 4 KiB, one extent per block in memmove order (from the end):
  // each extent is its own ordered command, so many callbacks.
  job m;
  m.op = operation::copy;
  m.source = m.destination = f.src_path;
  for (std::uint64_t i = (1 << 20) / 4096 - 1; i-- > 0;) m.extents.push_back({i * 4096, (i + 1) * 4096, 4096});
  int calls = 0;
  m.options.on_progress = [&](const progress&) {
    if (++calls == 3) throw std::runtime_error("enough");
  };
  r = run(m);
  CHECK(calls == 3);  // never called again once it threw
  CHECK(r.error.code() == errc::internal);
  CHECK(r.error.message().find("enough") != std::string::npos);
  CHECK(r.end == outcome::device_error);
  CHECK(r.bytes_copied() > 0);
}

TEST_CASE("job: devices the caller opened are used as they are, probe reports every backend's answer") {
  file_pair f(64 * 1024);
  job j;
  j.op = operation::copy;
  j.source_device = f.src;
  j.destination_device = f.dst;
  j.extents = {{0, 0, 4096}};
  job_result r = run(j);
  REQUIRE_MESSAGE(r.ok(), r.error_line());
  CHECK(r.source == f.src_path);

  job p;
  p.op = operation::probe;
  p.source = f.src_path;
  r = run(p);
  REQUIRE(r.ok());
  REQUIRE(r.probed);
  CHECK(r.probed->size_bytes == 64 * 1024);
  CHECK(r.probed->find("copy-file-range") != nullptr);
  json j2 = json::parse(r.to_json());
  CHECK(j2["operation"] == "probe");
  CHECK(j2["kind"] == "regular-file");
  CHECK(r.to_text().find("regular-file, 65536 bytes") != std::string::npos);

  p.source = f.dir.path();
  r = run(p);
  CHECK(r.end == outcome::bad_input);
  CHECK(r.error.message().find("is a directory") != std::string::npos);
}

TEST_CASE("job: failed() is the front ends' own argument error, rendered like the library's") {
  job_result r = job_result::failed(operation::plan, status(errc::invalid_argument, "extent '1:2': expected ..."));
  CHECK(r.end == outcome::bad_input);
  CHECK(r.exit_status() == 2);
  json j = json::parse(r.to_json());
  CHECK(j == json{{"status", "error"},
                  {"bytes_copied", 0},
                  {"error", {{"code", "invalid-argument"}, {"message", "extent '1:2': expected ..."}}},
                  {"operation", "plan"},
                  {"outcome", "bad-input"},
                  {"exit_status", 2}});
  CHECK(job_result::failed(operation::copy, status()).error.code() == errc::internal);
}
