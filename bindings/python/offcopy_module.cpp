// _offcopy: the C++ half of the Python package `offcopy` (bindings/python/offcopy/__init__.py).
//
// Deliberately thin: every function returns (value, failure). `value` is the same JSON object the
// CLI prints (probe --json, plan --json, copy --json), converted with json.loads so the two can
// never drift apart; `failure` is None or a report dict ({"status": "error", "bytes_copied", "error"})
// that __init__.py turns into the matching offcopy.Error subclass. Keeping exception classes and
// argument checking in Python keeps this file free of policy. The GIL is released around every
// call into the library (open probes devices; execute copies).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <pybind11/functional.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "offcopy/offcopy.hpp"

namespace py = pybind11;
using namespace offcopy;

namespace {

using extent_tuple = std::tuple<std::uint64_t, std::uint64_t, std::uint64_t>;

/// Copy-relevant knobs, checked by __init__.py before they get here.
struct copy_options {
  std::string mode = "auto";
  std::vector<std::string> backends;
  std::uint32_t max_segments_per_command = 0;
  std::uint64_t max_segment_blocks = 0;
  std::uint64_t max_command_blocks = 0;
  unsigned in_flight = 32;
  bool verify = false;
  bool force = false;
  bool sync = true;
};

// Looked up per call (a sys.modules hit): a static py::object would outlive the interpreter.
py::object json_to_py(const std::string& text) { return py::module_::import("json").attr("loads")(text); }

py::object json_to_py(const nlohmann::json& j) { return json_to_py(j.dump()); }

/// The same shape as report::to_json()'s "error" (src/core/format.cpp).
nlohmann::json status_json(const status& s) {
  nlohmann::json j{{"code", to_string(s.code())}, {"message", s.message()}};
  if (s.sys_errno()) j["errno"] = s.sys_errno();
  if (const auto& n = s.nvme())
    j["nvme"] = {{"sct", n->sct}, {"sc", n->sc}, {"dnr", n->dnr}, {"dw0", n->dw0}, {"status", n->raw_status},
                 {"name", n->name}};
  if (const auto& c = s.scsi()) {
    j["scsi"] = {{"status", c->status}, {"sense_key", c->sense_key}, {"asc", c->asc}, {"ascq", c->ascq},
                 {"text", c->text}};
    if (c->information_valid) j["scsi"]["information"] = c->information;
  }
  return j;
}

/// A failure before anything ran: the CLI's `fail()` JSON.
py::object failure(const status& s) {
  nlohmann::json j{{"status", "error"}, {"bytes_copied", 0}, {"error", status_json(s)}};
  return json_to_py(j);
}

status build_policy(const copy_options& o, policy& pol) {
  if (o.mode == "auto") pol.mode = copy_mode::automatic;
  else if (o.mode == "offload") pol.mode = copy_mode::offload;
  else if (o.mode == "fallback") pol.mode = copy_mode::fallback;
  else return status(errc::invalid_argument, "mode '" + o.mode + "': expected auto, offload or fallback");
  pol.backends = o.backends;
  if (o.in_flight == 0) return status(errc::invalid_argument, "in_flight must be at least 1");
  pol.commands_in_flight = o.in_flight;
  pol.limit_override.max_segments_per_command = o.max_segments_per_command;
  pol.limit_override.max_segment_blocks = o.max_segment_blocks;
  pol.limit_override.max_command_blocks = o.max_command_blocks;
  pol.verify = o.verify;
  pol.sync = o.sync;
  return {};
}

/// Source and destination opened as the CLI opens them, for as long as this lives. A missing
/// regular-file destination is created (as cp and dd do) and removed again by discard() or when
/// the caller never calls keep().
class opened_pair {
 public:
  ~opened_pair() { discard(); }

  status open(const std::string& src_path, const std::string& dst_path, bool exclusive) {
    auto src = device::open(src_path);
    if (!src.ok()) return src.error();
    const capabilities& sc = src.value()->caps();
    if (sc.kind != device_kind::regular_file && sc.kind != device_kind::block_device && sc.block_path.empty() &&
        sc.size_bytes == 0)
      return status(errc::invalid_argument, src_path + ": size unknown");
    struct stat st {};
    if (::stat(dst_path.c_str(), &st) != 0 && errno == ENOENT) {
      int fd = ::open(dst_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (fd < 0) return errno_status(errno, "create " + dst_path);
      ::close(fd);
      created_ = dst_path;
    }
    open_options dopt;
    dopt.writable = true;
    dopt.exclusive = exclusive;
    auto dst = device::open(dst_path, dopt);
    if (!dst.ok()) return dst.error();
    req.source = src.value();
    req.destination = dst.value();
    return {};
  }
  void keep() { created_.clear(); }
  void discard() {
    if (created_.empty()) return;
    req.destination.reset();
    ::unlink(created_.c_str());
    created_.clear();
  }

  request req;

 private:
  std::string created_;
};

/// The report of an execution that wrote nothing: the codes the CLI maps to exit status 2 or 3.
bool refused_before_writing(const report& rep) {
  if (rep.result.ok() || rep.bytes_copied != 0) return false;
  switch (rep.result.code()) {
    case errc::invalid_argument: case errc::not_found: case errc::out_of_range: case errc::misaligned:
    case errc::zero_length: case errc::overlap: case errc::block_size_mismatch: case errc::read_only:
    case errc::busy: case errc::not_supported:
      return true;
    default:
      return false;
  }
}

std::vector<extent> to_extents(const std::vector<extent_tuple>& in) {
  std::vector<extent> out;
  out.reserve(in.size());
  for (const auto& [s, d, n] : in) out.push_back({s, d, n});
  return out;
}

/// probe(path) -> (capabilities dict | None, failure | None)
py::tuple py_probe(const std::string& path) {
  std::optional<result<std::shared_ptr<device>>> dev;
  {
    py::gil_scoped_release nogil;
    dev.emplace(device::open(path));
  }
  if (!dev->ok()) return py::make_tuple(py::none(), failure(dev->error()));
  return py::make_tuple(json_to_py(nlohmann::json::parse(dev->value()->caps().to_json())), py::none());
}

/// plan(src, dst, extents, options) -> (plan dict | None, failure | None). Writes nothing.
py::tuple py_plan(const std::string& src, const std::string& dst, const std::vector<extent_tuple>& extents,
                  const copy_options& o) {
  std::optional<status> bad;
  std::string plan_json;
  {
    py::gil_scoped_release nogil;
    policy pol;
    opened_pair pair;
    if (auto s = build_policy(o, pol); !s.ok()) {
      bad = s;
    } else if (auto s2 = pair.open(src, dst, false); !s2.ok()) {
      bad = s2;
    } else {
      pair.req.extents = to_extents(extents);
      auto p = make_plan(pair.req, pol);
      if (!p.ok()) bad = p.error();
      else plan_json = p.value().to_json(0);
    }
    // pair goes out of scope here: a destination created only for planning is removed.
  }
  if (bad) return py::make_tuple(py::none(), failure(*bad));
  return py::make_tuple(json_to_py(plan_json), py::none());
}

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
      // Nothing may unwind through the engine (library code does not expect exceptions).
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

/// copy(src, dst, extents, options, progress) -> (report dict | None, failure | None).
/// On a failed execution both are the same report dict (it says how many bytes are done).
py::tuple py_copy(const std::string& src, const std::string& dst, const std::vector<extent_tuple>& extents,
                  const copy_options& o, py::object progress_cb) {
  std::optional<status> bad;
  std::string report_json;
  std::string planned_backend;
  std::size_t planned_commands = 0;
  progress_bridge bridge(std::move(progress_cb));
  {
    py::gil_scoped_release nogil;
    policy pol;
    opened_pair pair;
    if (auto s = build_policy(o, pol); !s.ok()) {
      bad = s;
    } else if (auto s2 = pair.open(src, dst, !o.force); !s2.ok()) {
      bad = s2;
    } else {
      pair.req.extents = to_extents(extents);
      auto p = make_plan(pair.req, pol);
      if (!p.ok()) {
        bad = p.error();
      } else {
        pol.on_progress = [&bridge](const progress& pr) { bridge(pr); };
        pol.cancel = &bridge.cancel;
        report rep = execute(pair.req, p.value(), pol);
        // A refusal before any byte moved ("bad input" or "offload impossible" codes, the CLI's
        // exit 2 and 3) leaves no new file behind; any other outcome may have written to it.
        if (!refused_before_writing(rep)) pair.keep();
        report_json = rep.to_json();
        planned_backend = p.value().backend;
        planned_commands = p.value().batches.size();
      }
    }
  }
  // bridge must be destroyed with the GIL held (it owns Python objects): it lives in this scope.
  if (bad) return py::make_tuple(py::none(), failure(*bad));
  bridge.rethrow();
  auto j = nlohmann::json::parse(report_json);
  j["source"] = src;
  j["destination"] = dst;
  j["mode"] = o.mode;
  j["planned_backend"] = planned_backend;
  j["planned_commands"] = planned_commands;
  py::object rep = json_to_py(j);
  if (j.value("status", "ok") != "ok") return py::make_tuple(rep, rep);
  return py::make_tuple(rep, py::none());
}

}  // namespace

PYBIND11_MODULE(_offcopy, m) {
  m.doc() = "C++ half of the offcopy package; use `import offcopy` instead.";

  py::class_<copy_options>(m, "CopyOptions")
      .def(py::init<>())
      .def_readwrite("mode", &copy_options::mode)
      .def_readwrite("backends", &copy_options::backends)
      .def_readwrite("max_segments_per_command", &copy_options::max_segments_per_command)
      .def_readwrite("max_segment_blocks", &copy_options::max_segment_blocks)
      .def_readwrite("max_command_blocks", &copy_options::max_command_blocks)
      .def_readwrite("in_flight", &copy_options::in_flight)
      .def_readwrite("verify", &copy_options::verify)
      .def_readwrite("force", &copy_options::force)
      .def_readwrite("sync", &copy_options::sync);

  m.def("probe", &py_probe, py::arg("path"));
  m.def("plan", &py_plan, py::arg("src"), py::arg("dst"), py::arg("extents"), py::arg("options"));
  m.def("copy", &py_copy, py::arg("src"), py::arg("dst"), py::arg("extents"), py::arg("options"),
        py::arg("progress"));
  m.def("version", [] { return std::string(offcopy::version()); });
}
