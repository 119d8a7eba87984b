// _offcopy: the C++ half of the Python package `offcopy` (bindings/python/offcopy/__init__.py).
//
// Glue only: run() turns its arguments into an offcopy::job, runs it through the library with the
// GIL released, and returns (result dict, outcome name). The dict is the library's own JSON (the
// object `offload-copy ... --json` prints, from the same job_result::to_json), loaded with
// json.loads; the outcome ("done", "bad-input", ...) is the library's classification, which
// __init__.py maps to an exception class. No policy, no outcome logic and no JSON of its own.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <optional>
#include <string>
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

using extent_tuple = std::tuple<std::uint64_t, std::uint64_t, std::uint64_t, std::uint32_t>;  // src, dst, length, source

// Looked up per call (a sys.modules hit): a static py::object would outlive the interpreter.
py::object json_to_py(const std::string& text) { return py::module_::import("json").attr("loads")(text); }

/// Calls the Python progress callable with the GIL held; an exception it raises (or a pending
/// signal such as Ctrl-C) cancels the copy between commands and is re-raised once it has stopped.
class progress_bridge {
 public:
  explicit progress_bridge(py::object callback) : callback_(std::move(callback)) {}

  void operator()(const progress& p) {
    // With no callback only signals are checked, at most every 100 ms, so a copy without
    // progress does not contend for the GIL once per command.
    auto now = std::chrono::steady_clock::now();
    if (callback_.is_none() && now - last_signal_check_ < std::chrono::milliseconds(100)) return;
    last_signal_check_ = now;
    py::gil_scoped_acquire gil;
    if (pending_ || pending_other_) return;
    try {
      if (PyErr_CheckSignals() != 0) throw py::error_already_set();
      if (!callback_.is_none()) callback_(p.bytes_done, p.bytes_total);
    } catch (py::error_already_set& e) {
      pending_.emplace(std::move(e));
      cancel.store(true);
    } catch (...) {
      pending_other_ = std::current_exception();
      cancel.store(true);
    }
  }

  /// Re-raises what the callback raised, if anything. Needs the GIL.
  void rethrow() {
    if (pending_) {
      py::error_already_set e = std::move(*pending_);
      pending_.reset();
      throw e;
    }
    if (pending_other_) std::rethrow_exception(std::exchange(pending_other_, nullptr));
  }

  std::atomic<bool> cancel{false};

 private:
  py::object callback_;
  std::optional<py::error_already_set> pending_;
  std::exception_ptr pending_other_;
  std::chrono::steady_clock::time_point last_signal_check_{};
};

operation operation_of(const std::string& name) {
  if (name == "probe") return operation::probe;
  if (name == "plan") return operation::plan;
  if (name == "copy") return operation::copy;
  throw py::value_error("operation must be 'probe', 'plan' or 'copy'");
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
  progress_bridge bridge(std::move(progress_cb));
  if (j.op == operation::copy) {
    j.options.on_progress = [&bridge](const progress& p) { bridge(p); };
    j.options.cancel = &bridge.cancel;
  }
  std::optional<job_result> r;
  {
    py::gil_scoped_release nogil;
    r.emplace(run(j));
  }
  // bridge must be destroyed with the GIL held (it owns Python objects): it lives in this scope.
  bridge.rethrow();
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
      .def_readwrite("sync", &job_options::sync);

  m.def("run", &py_run, py::arg("operation"), py::arg("src"), py::arg("dst"), py::arg("extents"), py::arg("options"),
        py::arg("progress"), py::arg("sources") = std::vector<std::string>{});
  m.def(
      "classify",
      [](const std::string& code, std::uint64_t bytes_written) {
        for (int c = 0; c <= static_cast<int>(errc::internal); ++c)
          if (code == to_string(static_cast<errc>(c)))
            return std::string(to_string(classify(status(static_cast<errc>(c), ""), bytes_written)));
        throw py::value_error("unknown error code: " + code);
      },
      py::arg("code"), py::arg("bytes_written"));
  m.def("backends", [] {
    std::vector<std::string> names;
    for (const backend_info& b : registered_backends()) names.push_back(b.name);
    return names;
  });
  m.def("version", [] { return std::string(offcopy::version()); });
}
