// The CLI's catch-all: an unexpected exception is exit 1 with one line on stderr and, under
// --json, one JSON object on stdout.
#include "src/cli/guard.hpp"

#include <cerrno>
#include <exception>
#include <new>
#include <string>

namespace offcopy::cli {
namespace {

/// job_result::failed(op, internal).to_json() as fixed text, for when memory is too short to
/// render it (docs/offload-copy.schema.json; tests/unit/cli/guard_test.cpp checks they agree).
const char* fixed_json(operation op) noexcept {
  switch (op) {
    case operation::probe:
      return R"({"bytes_copied":0,"error":{"code":"internal","message":"unexpected error"},"exit_status":1,)"
             R"("operation":"probe","outcome":"device-error","status":"error"})"
             "\n";
    case operation::plan:
      return R"({"bytes_copied":0,"error":{"code":"internal","message":"unexpected error"},"exit_status":1,)"
             R"("operation":"plan","outcome":"device-error","status":"error"})"
             "\n";
    case operation::copy: break;
  }
  return R"({"bytes_copied":0,"error":{"code":"internal","message":"unexpected error"},"exit_status":1,)"
         R"("operation":"copy","outcome":"device-error","status":"error"})"
         "\n";
}

}  // namespace

bool write_all(int fd, std::string_view text) noexcept {
  while (!text.empty()) {
    ssize_t n = ::write(fd, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    text.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

int report_unexpected(const guard_output& out) noexcept {
  // What was thrown, without allocating: what() points into the exception object, which `thrown`
  // keeps alive.
  const std::exception_ptr thrown = std::current_exception();
  const char* what = "no exception";
  try {
    if (thrown) std::rethrow_exception(thrown);
  } catch (const std::bad_alloc&) {
    what = "out of memory (std::bad_alloc)";
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
    what = "unknown exception (not a std::exception)";
  }
  try {
    // Both texts are made before either is written: a failure half-way prints the fixed ones only.
    const status s(errc::internal, std::string("unexpected error: ") + what);
    const std::string json = out.json ? job_result::failed(out.op, s).to_json() + "\n" : std::string();
    const std::string line = "offload-copy: " + s.to_string() + "\n";
    if (out.json) (void)write_all(out.out_fd, json);
    (void)write_all(out.err_fd, line);
  } catch (...) {
    if (out.json) (void)write_all(out.out_fd, fixed_json(out.op));
    (void)write_all(out.err_fd, "offload-copy: internal: unexpected error\n");
  }
  return 1;
}

}  // namespace offcopy::cli
