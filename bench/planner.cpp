// Planner cost: 1,000,000 random extents -> offcopy::make_plan, against std::sort of the same
// extents, plus the planner's peak heap use per extent (counted by a replaced operator new).
//
// Devices are sparse regular files (so nothing is read or written); mode fallback, so the plan is
// the copy_file_range one (byte units, no command limits). The `aligned` argument
// switches to whole 4 KiB blocks (add ->Arg(1) to the registrations to run it).
// After the benchmarks it prints the ratios the targets are stated in:
//   make_plan time / sort time (target <= 3), peak bytes per extent (target <= 64).
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <map>
#include <new>
#include <random>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "offcopy/copy.hpp"
#include "offcopy/device.hpp"

// ---- heap accounting ----------------------------------------------------------------------------
namespace {
std::atomic<long long> g_live_bytes{0};
std::atomic<long long> g_peak_bytes{0};

void note_alloc(std::size_t n) {
  long long now = g_live_bytes.fetch_add(static_cast<long long>(n)) + static_cast<long long>(n);
  long long peak = g_peak_bytes.load();
  while (now > peak && !g_peak_bytes.compare_exchange_weak(peak, now)) {
  }
}
}  // namespace

// Each block carries its size in a 16-byte header so delete can subtract it.
void* operator new(std::size_t n) {
  auto* p = static_cast<unsigned char*>(std::malloc(n + 16));
  if (p == nullptr) throw std::bad_alloc();
  *reinterpret_cast<std::size_t*>(p) = n;
  note_alloc(n);
  return p + 16;
}
void operator delete(void* p) noexcept {
  if (p == nullptr) return;
  auto* base = static_cast<unsigned char*>(p) - 16;
  g_live_bytes.fetch_sub(static_cast<long long>(*reinterpret_cast<std::size_t*>(base)));
  std::free(base);
}
void* operator new[](std::size_t n) { return operator new(n); }
void operator delete[](void* p) noexcept { operator delete(p); }
void operator delete(void* p, std::size_t) noexcept { operator delete(p); }
void operator delete[](void* p, std::size_t) noexcept { operator delete(p); }

// ---- fixture --------------------------------------------------------------------------------------
namespace {

constexpr std::size_t extent_count = 1'000'000;

struct setup {
  std::string dir;
  offcopy::request req;
  std::vector<offcopy::extent> extents;
};

std::shared_ptr<offcopy::device> open_sparse(const std::string& path, std::uint64_t size, bool writable) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd < 0 || ::ftruncate(fd, static_cast<off_t>(size)) != 0) std::abort();
  ::close(fd);
  offcopy::open_options o;
  o.writable = writable;
  auto d = offcopy::device::open(path, o);
  if (!d.ok()) {
    std::fprintf(stderr, "%s\n", d.error().to_string().c_str());
    std::abort();
  }
  return d.value();
}

/// Random extents with disjoint destinations (a shuffled grid), random sources, sizes 1..8 KiB
/// (or whole 4 KiB blocks when `aligned`).
setup& get_setup(bool aligned) {
  static std::map<bool, setup> cache;
  auto it = cache.find(aligned);
  if (it != cache.end()) return it->second;
  setup& s = cache[aligned];
  s.dir = (std::filesystem::temp_directory_path() / ("offcopy-bench-planner-" + std::to_string(::getpid()))).string();
  std::filesystem::create_directories(s.dir);
  const std::uint64_t slot = 16384;
  const std::uint64_t space = extent_count * slot;
  s.req.source = open_sparse(s.dir + (aligned ? "/src-aligned" : "/src"), space, false);
  s.req.destination = open_sparse(s.dir + (aligned ? "/dst-aligned" : "/dst"), space, true);
  std::mt19937_64 rng(42);
  std::vector<std::uint64_t> order(extent_count);
  for (std::size_t i = 0; i < extent_count; ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), rng);
  s.extents.reserve(extent_count);
  for (std::size_t i = 0; i < extent_count; ++i) {
    std::uint64_t len = aligned ? 4096 * (1 + rng() % 2) : 1 + rng() % 8192;
    std::uint64_t dst = order[i] * slot + (aligned ? 0 : rng() % 100);
    std::uint64_t src = aligned ? (rng() % (space / 4096 - 2)) * 4096 : rng() % (space - len);
    s.extents.push_back({src, dst, len});
  }
  return s;
}

/// CPU time of this thread: on a loaded shared host wall time mostly measures the other load.
double thread_cpu_seconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

struct measured {
  double seconds = 0;
  double cpu_seconds = 0;
  std::uint64_t runs = 0;
  double peak_bytes_per_extent = 0;
};
std::map<std::string, measured> g_results;

offcopy::policy plan_policy(bool aligned) {
  offcopy::policy pol;
  pol.mode = offcopy::copy_mode::fallback;
  if (aligned) pol.backends = {"buffered"};
  return pol;
}

void bm_make_plan(benchmark::State& state) {
  const bool aligned = state.range(0) != 0;
  setup& s = get_setup(aligned);
  const offcopy::policy pol = plan_policy(aligned);
  measured& m = g_results[aligned ? "make_plan aligned" : "make_plan"];
  std::size_t commands = 0;
  for (auto _ : state) {
    state.PauseTiming();
    offcopy::request req = s.req;
    req.extents = s.extents;  // the copy is not the planner's cost
    long long base = g_live_bytes.load();
    g_peak_bytes.store(base);
    state.ResumeTiming();
    double c0 = thread_cpu_seconds();
    auto t0 = std::chrono::steady_clock::now();
    auto p = offcopy::make_plan(req, pol);
    auto t1 = std::chrono::steady_clock::now();
    double c1 = thread_cpu_seconds();
    state.PauseTiming();
    if (!p.ok()) {
      state.SkipWithError(p.error().to_string().c_str());
      break;
    }
    commands = p.value().batches.size();
    m.seconds += std::chrono::duration<double>(t1 - t0).count();
    m.cpu_seconds += c1 - c0;
    ++m.runs;
    // Peak heap during make_plan beyond what existed before it (the request's own copy excluded).
    m.peak_bytes_per_extent = static_cast<double>(g_peak_bytes.load() - base) / extent_count;
    state.ResumeTiming();
  }
  state.counters["extents"] = static_cast<double>(extent_count);
  state.counters["commands"] = static_cast<double>(commands);
  state.counters["peak_bytes_per_extent"] = m.peak_bytes_per_extent;
}

void bm_sort(benchmark::State& state) {
  const bool aligned = state.range(0) != 0;
  setup& s = get_setup(aligned);
  measured& m = g_results[aligned ? "sort aligned" : "sort"];
  for (auto _ : state) {
    state.PauseTiming();
    std::vector<offcopy::extent> v = s.extents;
    state.ResumeTiming();
    double c0 = thread_cpu_seconds();
    auto t0 = std::chrono::steady_clock::now();
    std::sort(v.begin(), v.end(), [](const offcopy::extent& a, const offcopy::extent& b) {
      return a.dst_offset_bytes < b.dst_offset_bytes;
    });
    auto t1 = std::chrono::steady_clock::now();
    double c1 = thread_cpu_seconds();
    benchmark::DoNotOptimize(v.data());
    m.seconds += std::chrono::duration<double>(t1 - t0).count();
    m.cpu_seconds += c1 - c0;
    ++m.runs;
  }
  state.counters["extents"] = static_cast<double>(extent_count);
}

BENCHMARK(bm_sort)->Arg(0)->ArgName("aligned")->Unit(benchmark::kMillisecond)->Iterations(5);
BENCHMARK(bm_make_plan)->Arg(0)->ArgName("aligned")->Unit(benchmark::kMillisecond)->Iterations(5);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  auto mean = [](double total, const measured& m) { return m.runs ? total / static_cast<double>(m.runs) : 0.0; };
  std::printf("\n| case | std::sort wall / CPU (ms) | make_plan wall / CPU (ms) | make_plan / sort, wall | make_plan / sort, CPU (target <= 3) | peak heap bytes per extent (target <= 64) |\n");
  std::printf("|---|---|---|---|---|---|\n");
  for (const char* c : {"", " aligned"}) {
    const measured& srt = g_results[std::string("sort") + c];
    const measured& pln = g_results[std::string("make_plan") + c];
    if (srt.runs == 0 || pln.runs == 0) continue;
    std::printf("| 1,000,000 %s | %.1f / %.1f | %.1f / %.1f | %.2f× | **%.2f×** | **%.1f** |\n",
                *c ? "4 KiB-aligned extents" : "random unaligned extents", mean(srt.seconds, srt) * 1e3,
                mean(srt.cpu_seconds, srt) * 1e3, mean(pln.seconds, pln) * 1e3, mean(pln.cpu_seconds, pln) * 1e3,
                mean(pln.seconds, pln) / mean(srt.seconds, srt), mean(pln.cpu_seconds, pln) / mean(srt.cpu_seconds, srt),
                pln.peak_bytes_per_extent);
  }
  std::error_code ec;
  std::filesystem::remove_all(std::filesystem::temp_directory_path() /
                                  ("offcopy-bench-planner-" + std::to_string(::getpid())),
                              ec);
  return 0;
}
