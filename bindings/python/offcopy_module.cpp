// _offcopy: the C++ half of the Python package `offcopy` (bindings/python/offcopy/__init__.py).
//
// Glue only: run() turns its arguments into an offcopy::job, runs it through the library with the
// GIL released, and returns (result dict, outcome name). The dict is the library's own JSON (the
// object `offload-copy ... --json` prints, from the same job_result::to_json), loaded with
// json.loads; the outcome ("done", "bad-input", ...) is the library's classification, which
// __init__.py maps to an exception class. No policy, no outcome logic and no JSON of its own.
//
// A copy runs on a worker thread with every signal blocked, while the calling thread waits with
// the GIL released and wakes at least every 50 ms: it runs Python's signal handlers
// (PyErr_CheckSignals: Ctrl-C is a KeyboardInterrupt within 50 ms even inside a long command) and
// calls the progress callback, on the calling thread, for each completed command while the
// worker waits for it. Whatever either raises sets the job's cancel flag: the copy stops at the
// next I/O (fallback copiers, verify) or command (offload) and the exception propagates with the
// report of what was done attached (`offcopy_report`). A SIGXFSZ of a file size limit is blocked
// in the worker: the copy reports EFBIG instead of killing the interpreter.
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include <pybind11/functional.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "offcopy/offcopy.hpp"

namespace py = pybind11;
using namespace offcopy;

namespace {

using extent_tuple =
    std::tuple<std::uint64_t, std::uint64_t, std::uint64_t, std::uint32_t>;  // src, dst, length, source

// Looked up per call (a sys.modules hit): a static py::object would outlive the interpreter.
py::object json_to_py(const std::string& text) { return py::module_::import("json").attr("loads")(text); }

/// What the worker thread that runs a copy and the calling thread share.
struct copy_bridge {
  std::mutex m;
  std::condition_variable cv;
  bool finished = false;      ///< the worker's run() returned
  bool has_progress = false;  ///< `latest` waits for the calling thread to deliver it
  bool stopped = false;       ///< the calling thread raised: no more callbacks, the copy stops
  progress latest;
  std::atomic<bool> cancel{false};
};

/// How often the calling thread runs Python's signal handlers while a copy runs.
constexpr std::chrono::milliseconds signal_poll_interval{50};

operation operation_of(const std::string& name) {
  if (name == "probe") return operation::probe;
  if (name == "plan") return operation::plan;
  if (name == "copy") return operation::copy;
  throw py::value_error("operation must be 'probe', 'plan' or 'copy'");
}

/// Runs a copy job on a worker thread (see the file comment). Needs the GIL; returns with it.
job_result run_copy(job& j, const py::object& callback) {
  copy_bridge b;
  j.options.cancel = &b.cancel;
  if (!callback.is_none()) {
    j.options.on_progress = [&b](const progress& p) {
      std::unique_lock l(b.m);
      if (b.stopped) return;
      b.latest = p;
      b.has_progress = true;
      b.cv.notify_all();
      b.cv.wait(l, [&] { return !b.has_progress || b.stopped; });
    };
  }
  std::optional<job_result> result;
  std::optional<py::error_already_set> raised;  // created and destroyed with the GIL held
  std::exception_ptr raised_other;
  {
    py::gil_scoped_release nogil;
    std::thread worker([&] {
      // Signals go to the calling thread (Python's handlers run there); SIGXFSZ stays pending
      // here and the write fails with EFBIG.
      sigset_t all;
      sigfillset(&all);
      pthread_sigmask(SIG_BLOCK, &all, nullptr);
      job_result r = run(j);
      std::lock_guard l(b.m);
      result.emplace(std::move(r));
      b.finished = true;
      b.cv.notify_all();
    });
    std::unique_lock l(b.m);
    while (!b.finished) {
      b.cv.wait_for(l, signal_poll_interval, [&] { return b.finished || b.has_progress; });
      if (b.finished) break;
      std::optional<progress> p;
      if (b.has_progress) p = b.latest;
      l.unlock();
      bool stop = false;
      {
        py::gil_scoped_acquire gil;
        try {
          if (PyErr_CheckSignals() != 0) throw py::error_already_set();
          if (p && !raised && !raised_other) callback(p->bytes_done, p->bytes_total);
        } catch (py::error_already_set& e) {
          if (!raised) raised.emplace(std::move(e));
          stop = true;
        } catch (...) {
          if (!raised_other) raised_other = std::current_exception();
          stop = true;
        }
      }
      l.lock();
      if (stop) {
        b.stopped = true;
        b.cancel.store(true);
      }
      if (p) b.has_progress = false;
      b.cv.notify_all();
    }
    l.unlock();
    worker.join();
  }
  if (raised || raised_other) {
    // The exception carries what the copy did before it stopped.
    py::object report = json_to_py(result->to_json());
    if (raised) {
      try {
        py::object exc = raised->value();
        py::setattr(exc, "offcopy_report", report);
        if (py::hasattr(exc, "add_note"))
          exc.attr("add_note")(py::str("offcopy: the copy stopped after {} of {} bytes")
                                   .format(report["bytes_copied"], report.attr("get")("bytes_requested", 0)));
      } catch (py::error_already_set&) {
        // An exception object that takes no attributes: raised as it is.
      }
      py::error_already_set e = std::move(*raised);
      raised.reset();
      throw e;
    }
    std::rethrow_exception(raised_other);
  }
  return std::move(*result);
}

/// run(operation, src, dst, extents, options, progress, sources) -> (dict, outcome name).
/// Paths are bytes or str (bytes keep file names that are not UTF-8). extents: (src_offset,
/// dst_offset, length, source) with source 0 = src, k = sources[k - 1].
py::tuple py_run(const std::string& op, const std::string& src, const std::string& dst,
                 const std::vector<extent_tuple>& extents, const job_options& options, py::object progress_cb,
                 const std::vector<std::string>& sources) {
  job j;
  j.op = operation_of(op);
  j.source = src;
  j.destination = dst;
  j.sources = sources;
  for (const auto& [s, d, n, k] : extents) j.extents.push_back({s, d, n, k});
  j.options = options;
  std::optional<job_result> r;
  if (j.op == operation::copy) {
    r.emplace(run_copy(j, progress_cb));
  } else {
    py::gil_scoped_release nogil;
    r.emplace(run(j));
  }
  return py::make_tuple(json_to_py(r->to_json()), std::string(to_string(r->end)));
}

}  // namespace

PYBIND11_MODULE(_offcopy, m) {
  m.doc() = "C++ half of the offcopy package; use `import offcopy` instead.";

  py::class_<job_options>(m, "CopyOptions")
      .def(py::init<>())
      .def_readwrite("mode", &job_options::mode)
      .def_readwrite("backends", &job_options::backends)
      .def_property(
          "max_segments_per_command", [](const job_options& o) { return o.limit_override.max_segments_per_command; },
          [](job_options& o, std::uint32_t v) { o.limit_override.max_segments_per_command = v; })
      .def_property(
          "max_segment_blocks", [](const job_options& o) { return o.limit_override.max_segment_blocks; },
          [](job_options& o, std::uint64_t v) { o.limit_override.max_segment_blocks = v; })
      .def_property(
          "max_command_blocks", [](const job_options& o) { return o.limit_override.max_command_blocks; },
          [](job_options& o, std::uint64_t v) { o.limit_override.max_command_blocks = v; })
      .def_readwrite("in_flight", &job_options::commands_in_flight)
      .def_readwrite("verify", &job_options::verify)
      .def_readwrite("force", &job_options::force)
      .def_readwrite("sync", &job_options::sync)
      .def_property(
          "journal", [](const job_options& o) { return py::bytes(o.journal); },
          [](job_options& o, const std::string& v) { o.journal = v; });

  m.def("run", &py_run, py::arg("operation"), py::arg("src"), py::arg("dst"), py::arg("extents"), py::arg("options"),
        py::arg("progress"), py::arg("sources") = std::vector<std::string>{});
  m.def(
      "classify",
      [](const std::string& code, std::uint64_t bytes_written, const std::string& mode) {
        copy_mode cm = copy_mode::offload;
        if (mode == "auto") {
          cm = copy_mode::automatic;
        } else if (mode == "fallback") {
          cm = copy_mode::fallback;
        } else if (mode != "offload") {
          throw py::value_error("mode must be 'auto', 'offload' or 'fallback'");
        }
        for (int c = 0; c <= static_cast<int>(errc::internal); ++c)
          if (code == to_string(static_cast<errc>(c)))
            return std::string(to_string(classify(status(static_cast<errc>(c), ""), bytes_written, cm)));
        throw py::value_error("unknown error code: " + code);
      },
      py::arg("code"), py::arg("bytes_written"), py::arg("mode") = "offload");
  m.def("backends", [] {
    std::vector<std::string> names;
    for (const backend_info& b : registered_backends()) names.push_back(b.name);
    return names;
  });
  m.def("version", [] { return std::string(offcopy::version()); });
}
