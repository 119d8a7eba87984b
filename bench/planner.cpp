// bench_planner: the planner's cost against std::sort, how it grows, and how many commands device
// limits turn extents into.
//
//   bench_planner [--sizes N,N,...] [--reps R] [--csv DIR]
//
// 1. For each size (default 10k, 100k, 1M, 10M extents): random extents (disjoint destinations in
//    shuffled order, random sources, 1 B-8 KiB, unaligned) on two sparse files, planned by
//    offcopy::make_plan in mode fallback (the copy_file_range plan: byte units, 256 MiB commands),
//    against std::sort by destination of the same extents. CPU time of this thread (the host is
//    shared: wall time mostly measures the other load), sort and make_plan interleaved, medians of
//    R runs. Peak heap = bytes allocated and live during make_plan beyond what existed before it
//    (a counting operator new), per extent; it includes make_plan's copy of the extents.
//    Targets (issue 13.3): make_plan / sort <= 3 at 1M and 10M, peak <= 64 bytes per extent, and
//    growth no worse than n log n: make_plan's CPU per (n log2 n) at 10M no more than 1.5x that at
//    10k.
// 2. Commands per extent count for the limits of real devices (pack_extents alone): 64 KiB
//    extents from random sources, landing back to back (a gather: compaction) or scattered.
// --csv DIR writes planner_cost.csv and planner_commands.csv there (docs/img plots read them).
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "offcopy/copy.hpp"
#include "offcopy/device.hpp"
#include "src/core/planner.hpp"

// ---- heap accounting ----------------------------------------------------------------------------
namespace {
std::atomic<long long> g_live_bytes{0};
std::atomic<long long> g_peak_bytes{0};

void note_alloc(std::size_t n) {
  long long now = g_live_bytes.fetch_add(static_cast<long long>(n)) + static_cast<long long>(n);
  long long peak = g_peak_bytes.load();
  while (now > peak && !g_peak_bytes.compare_exchange_weak(peak, now)) {}
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

namespace {

double thread_cpu_seconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n == 0 ? 0 : (n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2);
}

std::shared_ptr<offcopy::device> open_sparse(const std::string& path, std::uint64_t size, bool writable) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd < 0 || ::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    std::perror(path.c_str());
    std::exit(1);
  }
  ::close(fd);
  offcopy::open_options o;
  o.writable = writable;
  auto d = offcopy::device::open(path, o);
  if (!d.ok()) {
    std::fprintf(stderr, "%s\n", d.error().to_string().c_str());
    std::exit(1);
  }
  return d.value();
}

/// Random extents with disjoint destinations (a shuffled grid of 16 KiB slots), random sources,
/// 1 B-8 KiB long.
std::vector<offcopy::extent> random_extents(std::size_t n, std::uint64_t space, std::uint64_t seed) {
  constexpr std::uint64_t slot = 16384;
  std::mt19937_64 rng(seed);
  std::vector<std::uint32_t> order(n);
  for (std::size_t i = 0; i < n; ++i) order[i] = static_cast<std::uint32_t>(i);
  std::shuffle(order.begin(), order.end(), rng);
  std::vector<offcopy::extent> out;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    std::uint64_t len = 1 + rng() % 8192;
    std::uint64_t dst = order[i] * slot + rng() % 100;
    std::uint64_t src = rng() % (space - len);
    out.push_back({src, dst, len});
  }
  return out;
}

struct cost_row {
  std::size_t extents = 0;
  double sort_cpu = 0, plan_cpu = 0, sort_wall = 0, plan_wall = 0, peak_per_extent = 0;
  std::size_t commands = 0;
};

cost_row measure_cost(std::size_t n, int reps, const std::string& dir) {
  const std::uint64_t space = static_cast<std::uint64_t>(n) * 16384;
  offcopy::request req;
  req.source = open_sparse(dir + "/src", space, false);
  req.destination = open_sparse(dir + "/dst", space, true);
  const std::vector<offcopy::extent> extents = random_extents(n, space, 42 + n);
  offcopy::policy pol;
  pol.mode = offcopy::copy_mode::fallback;
  std::vector<double> sort_cpu, plan_cpu, sort_wall, plan_wall;
  cost_row row;
  row.extents = n;
  for (int r = 0; r < reps; ++r) {
    {
      std::vector<offcopy::extent> v = extents;
      const double c0 = thread_cpu_seconds();
      timespec w0{}, w1{};
      ::clock_gettime(CLOCK_MONOTONIC, &w0);
      std::sort(v.begin(), v.end(), [](const offcopy::extent& a, const offcopy::extent& b) {
        return a.dst_offset_bytes < b.dst_offset_bytes;
      });
      ::clock_gettime(CLOCK_MONOTONIC, &w1);
      sort_cpu.push_back(thread_cpu_seconds() - c0);
      sort_wall.push_back(static_cast<double>(w1.tv_sec - w0.tv_sec) +
                          static_cast<double>(w1.tv_nsec - w0.tv_nsec) * 1e-9);
      if (!std::is_sorted(v.begin(), v.end(), [](const offcopy::extent& a, const offcopy::extent& b) {
            return a.dst_offset_bytes < b.dst_offset_bytes;
          }))
        std::abort();
    }
    {
      req.extents = extents;  // the request's own copy is not the planner's cost
      const long long base = g_live_bytes.load();
      g_peak_bytes.store(base);
      const double c0 = thread_cpu_seconds();
      timespec w0{}, w1{};
      ::clock_gettime(CLOCK_MONOTONIC, &w0);
      auto p = offcopy::make_plan(req, pol);
      ::clock_gettime(CLOCK_MONOTONIC, &w1);
      plan_cpu.push_back(thread_cpu_seconds() - c0);
      plan_wall.push_back(static_cast<double>(w1.tv_sec - w0.tv_sec) +
                          static_cast<double>(w1.tv_nsec - w0.tv_nsec) * 1e-9);
      if (!p.ok()) {
        std::fprintf(stderr, "make_plan: %s\n", p.error().to_string().c_str());
        std::exit(1);
      }
      row.commands = p.value().batches.size();
      row.peak_per_extent =
          std::max(row.peak_per_extent, static_cast<double>(g_peak_bytes.load() - base) / static_cast<double>(n));
    }
  }
  row.sort_cpu = median(sort_cpu);
  row.plan_cpu = median(plan_cpu);
  row.sort_wall = median(sort_wall);
  row.plan_wall = median(plan_wall);
  return row;
}

struct limits_case {
  const char* name;
  std::uint32_t block_bytes;
  offcopy::copy_limits limits;
};

// The limits the backends derive from real devices (src/nvme/identify.cpp, src/scsi/*).
const limits_case kDevices[] = {
    {"nvme-copy QEMU defaults: MSSRL 128 MCL 128 MSRC 127", 512, {128, 128, 128, true}},
    {"nvme-copy bench namespace: MSSRL 2048 MCL 16384 MSRC 127", 512, {128, 2048, 16384, true}},
    {"scsi-xcopy LIO: 1 segment of at most 65535 blocks", 512, {1, 65535, 0, false}},
    {"scsi-token without VPD 8Fh: 16 ranges / 32 MiB", 512, {16, 0xFFFFFFFFu, 1u << 16, false}},
    {"copy-file-range: 256 MiB per command", 1, {0, 0, 256ULL << 20, false}},
};

/// n extents of 64 KiB from random sources: back to back in the destination (`gather`) or with
/// gaps between them (`scatter`).
std::vector<offcopy::extent> shaped_extents(std::size_t n, bool gather, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<offcopy::extent> out;
  out.reserve(n);
  constexpr std::uint64_t len = 64 << 10;
  std::uint64_t dst = 0;
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back({(rng() % (1ULL << 24)) * len, dst, len});
    dst += gather ? len : len + len * (1 + rng() % 4);
  }
  std::shuffle(out.begin(), out.end(), rng);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::size_t> sizes{10'000, 100'000, 1'000'000, 10'000'000};
  int reps = 5;
  std::string csv_dir;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--sizes" && i + 1 < argc) {
      sizes.clear();
      std::string list = argv[++i];
      for (std::size_t pos = 0; pos < list.size();) {
        std::size_t comma = list.find(',', pos);
        sizes.push_back(std::strtoull(list.substr(pos, comma - pos).c_str(), nullptr, 10));
        pos = comma == std::string::npos ? list.size() : comma + 1;
      }
    } else if (a == "--reps" && i + 1 < argc) {
      reps = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--csv" && i + 1 < argc) {
      csv_dir = argv[++i];
    } else {
      std::fprintf(stderr, "usage: %s [--sizes N,N,...] [--reps R] [--csv DIR]\n", argv[0]);
      return 2;
    }
  }
  const std::string dir =
      (std::filesystem::temp_directory_path() / ("offcopy-bench-planner-" + std::to_string(::getpid()))).string();
  std::filesystem::create_directories(dir);

  std::vector<cost_row> rows;
  for (std::size_t n : sizes) {
    // Fewer repetitions for the largest sizes: each 10M run takes seconds.
    rows.push_back(measure_cost(n, n >= 5'000'000 ? std::min(reps, 3) : reps, dir));
    std::fprintf(stderr, "planned %zu extents\n", n);
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);

  std::printf(
      "| extents | std::sort CPU (ms) | make_plan CPU (ms) | make_plan / sort, CPU (target <= 3) | wall ratio | "
      "peak heap bytes per extent (target <= 64) | make_plan ns per n log2 n |\n");
  std::printf("|---|---|---|---|---|---|---|\n");
  double first_per_nlogn = 0;
  for (const cost_row& r : rows) {
    const double nlogn = static_cast<double>(r.extents) * std::log2(static_cast<double>(r.extents));
    const double per = r.plan_cpu * 1e9 / nlogn;
    if (first_per_nlogn == 0) first_per_nlogn = per;
    std::printf("| %zu | %.1f | %.1f | **%.2f×** | %.2f× | **%.1f** | %.2f |\n", r.extents, r.sort_cpu * 1e3,
                r.plan_cpu * 1e3, r.plan_cpu / r.sort_cpu, r.plan_wall / r.sort_wall, r.peak_per_extent, per);
  }
  for (const cost_row& r : rows) {
    const double ratio = r.plan_cpu / r.sort_cpu;
    if (r.extents >= 1'000'000)
      std::printf("RATIO planner_vs_sort_%zu %.2f target<=3 %s\n", r.extents, ratio, ratio <= 3 ? "PASS" : "BELOW");
    if (r.extents >= 1'000'000)
      std::printf("RATIO planner_peak_bytes_per_extent_%zu %.1f target<=64 %s\n", r.extents, r.peak_per_extent,
                  r.peak_per_extent <= 64 ? "PASS" : "BELOW");
  }
  if (rows.size() >= 2) {
    const cost_row& a = rows.front();
    const cost_row& b = rows.back();
    const double per_a = a.plan_cpu / (static_cast<double>(a.extents) * std::log2(static_cast<double>(a.extents)));
    const double per_b = b.plan_cpu / (static_cast<double>(b.extents) * std::log2(static_cast<double>(b.extents)));
    const double growth = per_b / per_a;
    std::printf("RATIO planner_growth_per_nlogn_%zu_vs_%zu %.2f target<=1.5 %s\n", b.extents, a.extents, growth,
                growth <= 1.5 ? "PASS" : "BELOW");
  }

  // Commands for device limits.
  std::printf("\n| limits | shape | extents | commands |\n|---|---|---|---|\n");
  struct cmd_row {
    std::string device, shape;
    std::size_t extents, commands;
  };
  std::vector<cmd_row> cmds;
  for (const limits_case& lc : kDevices) {
    for (bool gather : {true, false}) {
      for (std::size_t n : {1UL, 10UL, 100UL, 1000UL, 10000UL, 100000UL}) {
        std::vector<offcopy::extent> ext = shaped_extents(n, gather, n);
        offcopy::plan p;
        offcopy::detail::pack_extents(ext, lc.block_bytes, lc.limits, false, 0, p);
        cmds.push_back({lc.name, gather ? "gather" : "scatter", n, p.batches.size()});
        std::printf("| %s | %s | %zu | %zu |\n", lc.name, gather ? "gather" : "scatter", n, p.batches.size());
      }
    }
  }

  if (!csv_dir.empty()) {
    std::filesystem::create_directories(csv_dir);
    if (FILE* f = std::fopen((csv_dir + "/planner_cost.csv").c_str(), "w")) {
      std::fprintf(f,
                   "extents,sort_cpu_s,make_plan_cpu_s,sort_wall_s,make_plan_wall_s,peak_bytes_per_extent,commands\n");
      for (const cost_row& r : rows)
        std::fprintf(f, "%zu,%.6f,%.6f,%.6f,%.6f,%.2f,%zu\n", r.extents, r.sort_cpu, r.plan_cpu, r.sort_wall,
                     r.plan_wall, r.peak_per_extent, r.commands);
      std::fclose(f);
    }
    if (FILE* f = std::fopen((csv_dir + "/planner_commands.csv").c_str(), "w")) {
      std::fprintf(f, "limits,shape,extents,commands\n");
      for (const cmd_row& r : cmds)
        std::fprintf(f, "\"%s\",%s,%zu,%zu\n", r.device.c_str(), r.shape.c_str(), r.extents, r.commands);
      std::fclose(f);
    }
  }
  return 0;
}
