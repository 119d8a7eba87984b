// Discovery on demand (src/core/discovery.cpp): open() only classifies; a plan asks backends in
// policy order and stops at the first that accepts; answers are cached per device node for the
// life of the process and reused by a second device object; probe() still shows every backend.
#include <doctest/doctest.h>

#include <chrono>
#include <thread>

#include "offcopy/offcopy.hpp"
#include "src/core/backend.hpp"
#include "src/core/device_state.hpp"
#include "tests/unit/core/fake_backend.hpp"

using namespace offcopy;
using core_test::file_pair;

namespace {

/// Wraps a registered backend, counting discoveries (optionally slow ones) and delegating the rest.
class spy_backend final : public detail::backend {
 public:
  explicit spy_backend(std::string name) : name_(std::move(name)), inner_(detail::find_backend(name_)) {
    REQUIRE(inner_ != nullptr);
    REQUIRE(detail::replace_backend(name_, this) == inner_);
  }
  ~spy_backend() override { detail::replace_backend(name_, inner_); }
  spy_backend(const spy_backend&) = delete;
  spy_backend& operator=(const spy_backend&) = delete;

  void probe(detail::device_state& dev) override {
    ++probes;
    if (delay.count() > 0) std::this_thread::sleep_for(delay);
    inner_->probe(dev);
  }
  [[nodiscard]] detail::pair_support check(const detail::device_state& s, const detail::device_state& d,
                                           const policy& pol) const override {
    ++checks;
    return inner_->check(s, d, pol);
  }
  [[nodiscard]] result<std::unique_ptr<detail::copy_session>> open_session(detail::device_state& s,
                                                                           detail::device_state& d,
                                                                           const policy& pol) override {
    return inner_->open_session(s, d, pol);
  }

  int probes = 0;
  mutable int checks = 0;
  std::chrono::milliseconds delay{0};

 private:
  std::string name_;
  detail::backend* inner_;
};

}  // namespace

TEST_CASE("discovery: open() only classifies, probe() asks every backend that can recognise the device") {
  spy_backend cfr("copy-file-range");
  file_pair f(8192);
  CHECK(cfr.probes == 0);
  CHECK(f.src->caps().offload.empty());
  CHECK(f.src->caps().size_bytes == 8192);
  capabilities c = f.src->probe();
  CHECK(cfr.probes == 1);
  REQUIRE(c.find("copy-file-range") != nullptr);
  CHECK(c.find("copy-file-range")->available);
  CHECK(f.src->caps().offload.empty());  // caps() stays what open() found
  (void)f.src->probe();
  CHECK(cfr.probes == 1);  // once per device
}

TEST_CASE("discovery: plan and copy of two regular files never run NVMe or SCSI discovery") {
  spy_backend nvme("nvme-copy"), xcopy("scsi-xcopy"), token("scsi-token");
  file_pair f(64 * 1024);
  request req{f.src, f.dst, {{0, 0, 4096}}};
  auto p = make_plan(req);
  REQUIRE(p.ok());
  CHECK(p.value().backend == "copy-file-range");
  report rep = execute(req, p.value());
  REQUIRE_MESSAGE(rep.result.ok(), rep.result.to_string());
  job_result r = run(job{operation::copy, f.src_path, f.dst_path, nullptr, nullptr, {{0, 8192, 4096}}, {}});
  REQUIRE(r.ok());
  CHECK(nvme.probes == 0);
  CHECK(xcopy.probes == 0);
  CHECK(token.probes == 0);
  CHECK(nvme.checks == 2);  // asked (a pure check, no device I/O) and refused, in policy order
  // Nor does probe() of a file.
  (void)f.src->probe();
  CHECK(nvme.probes + xcopy.probes + token.probes == 0);
}

TEST_CASE("discovery: stops at the first backend that accepts the pair") {
  spy_backend cfr("copy-file-range");
  file_pair f(64 * 1024);
  // copy-file-range accepts two files: the buffered copier, after it, is never asked.
  spy_backend buffered("buffered");
  auto p = make_plan(request{f.src, f.dst, {}});
  REQUIRE(p.ok());
  CHECK(p.value().backend == "copy-file-range");
  CHECK(cfr.probes == 2);  // source and destination
  CHECK(buffered.checks == 0);
  CHECK(p.value().considered.back().backend == "copy-file-range");
}

TEST_CASE("discovery: cached per device node, reused by another device object, timed in the plan") {
  spy_backend cfr("copy-file-range");
  cfr.delay = std::chrono::milliseconds(30);
  file_pair f(64 * 1024);
  auto p1 = make_plan(request{f.src, f.dst, {}});
  REQUIRE(p1.ok());
  CHECK(cfr.probes == 2);
  CHECK(p1.value().time.probe_seconds >= 0.055);  // two slow discoveries
  // The same two nodes opened again: nothing is asked, the answers are replayed.
  auto src2 = core_test::open_device(f.src_path, false);
  auto dst2 = core_test::open_device(f.dst_path, true);
  auto p2 = make_plan(request{src2, dst2, {}});
  REQUIRE(p2.ok());
  CHECK(cfr.probes == 2);
  CHECK(p2.value().time.probe_seconds < 0.02);
  CHECK(p2.value().backend == p1.value().backend);
  capabilities c = src2->probe();
  REQUIRE(c.find("copy-file-range") != nullptr);
  CHECK(c.path == f.src_path);
  CHECK(cfr.probes == 2);
  // A changed file is another key (its change time moved): asked again.
  core_test::write_file(f.src_path, core_test::random_bytes(64 * 1024, 9));
  auto src3 = core_test::open_device(f.src_path, false);
  (void)src3->probe();
  CHECK(cfr.probes == 3);
}

TEST_CASE("discovery: concurrent plans on one device ask each backend once") {
  spy_backend cfr("copy-file-range");
  cfr.delay = std::chrono::milliseconds(20);
  file_pair f(64 * 1024);
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&] {
      auto p = make_plan(request{f.src, f.dst, {}});
      if (p.ok() && p.value().backend == "copy-file-range") ++ok;
    });
  for (auto& t : threads) t.join();
  CHECK(ok == 4);
  CHECK(cfr.probes == 2);
}
