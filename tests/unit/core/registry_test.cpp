// The backend registry (src/core/registry.cpp): one row per backend carries its name, role, the device
// kinds it discovers and its factory; the order of preference, "is offload" and the fallback chain
// come from the rows and nowhere else.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "offcopy/offcopy.hpp"
#include "src/core/backend.hpp"
#include "tests/unit/core/fake_backend.hpp"

using namespace offcopy;

TEST_CASE("registry: rows in order of preference, roles, lookups") {
  std::vector<std::string> names;
  for (const detail::backend_row& r : detail::registry()) {
    names.emplace_back(r.name);
    CHECK(detail::find_row(r.name) == &r);
    CHECK(detail::find_backend(r.name) == &r.factory());
    CHECK(detail::is_offload(r.name) == (r.role == detail::backend_role::offload));
  }
  CHECK(names == std::vector<std::string>{"nvme-copy", "scsi-xcopy", "scsi-token", "copy-file-range", "buffered"});
  CHECK(detail::find_row("teleport") == nullptr);
  CHECK(detail::find_backend("teleport") == nullptr);
  CHECK_FALSE(detail::is_offload("teleport"));
  // Every offload row precedes every fallback row: the default order tries offload first.
  bool fallback_seen = false;
  for (const detail::backend_row& r : detail::registry()) {
    if (r.role == detail::backend_role::fallback) fallback_seen = true;
    CHECK_FALSE((fallback_seen && r.role == detail::backend_role::offload));
  }
  // Discovery is asked only for the kinds a backend can recognise.
  auto discovers = [](std::string_view n, device_kind k) {
    return (detail::find_row(n)->discovers & detail::kind_bit(k)) != 0;
  };
  CHECK(discovers("nvme-copy", device_kind::block_device));
  CHECK(discovers("nvme-copy", device_kind::nvme_char));
  CHECK_FALSE(discovers("nvme-copy", device_kind::regular_file));
  CHECK_FALSE(discovers("scsi-xcopy", device_kind::regular_file));
  CHECK(discovers("scsi-token", device_kind::scsi_generic));
  CHECK(discovers("copy-file-range", device_kind::regular_file));
}

TEST_CASE("registry: a policy names backends, an unknown name is invalid input listing the known ones") {
  core_test::file_pair f(4096);
  policy pol;
  pol.backends = {"buffered", "teleport"};
  auto p = make_plan(request{f.src, f.dst, {}}, pol);
  REQUIRE_FALSE(p.ok());
  CHECK(p.error().code() == errc::invalid_argument);
  CHECK(p.error().message().find("'teleport'") != std::string::npos);
  CHECK(p.error().message().find("copy-file-range") != std::string::npos);
  pol.backends = {"buffered"};
  auto q = make_plan(request{f.src, f.dst, {}}, pol);
  REQUIRE(q.ok());
  CHECK(q.value().backend == "buffered");
}

TEST_CASE("registry: the engine's fallback chain is the registry's fallback rows, in order") {
  // The fake offload backend refuses its session: auto mode falls back to the first fallback row
  // that accepts the pair (copy-file-range for two files), and the report names it.
  core_test::fake_backend fake;
  fake.cfg.open_error = status(errc::not_supported, "fake: no session");
  core_test::backend_swap swap(fake);
  core_test::file_pair f(64 * 1024);
  request req{f.src, f.dst, {{0, 0, 8192}}};
  auto p = make_plan(req);
  REQUIRE(p.ok());
  CHECK(p.value().backend == "nvme-copy");
  report rep = execute(req, p.value());
  REQUIRE_MESSAGE(rep.result.ok(), rep.result.to_string());
  CHECK(rep.of("nvme-copy").bytes == 0);
  CHECK(rep.of("copy-file-range").bytes == 8192);
  REQUIRE(rep.usage.size() >= 1);
  CHECK(rep.of("buffered").bytes == 0);
  REQUIRE(rep.fallback_reasons.size() == 1);
  CHECK(rep.fallback_reasons[0].find("nvme-copy: fake: no session") == 0);
}
