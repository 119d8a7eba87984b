// bench_nvme_copy_cpu SRC DST SRC_OFF:DST_OFF:LEN MODE REPS — the CPU time of the copy alone
// (getrusage of this process around offcopy::copy, devices opened and probed beforehand), so the
// offload's CPU can be compared with the fallback's without process start-up. MODE = offload |
// fallback. Prints "RESULT <name>_<mode>_r<N> wall=S cpu=S bytes=B" per repetition.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "offcopy/offcopy.hpp"

namespace {
double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}
std::uint64_t bytes_of(const std::string& t) {
  char* end = nullptr;
  std::uint64_t v = std::strtoull(t.c_str(), &end, 10);
  switch (*end) {
    case 'K': return v << 10;
    case 'M': return v << 20;
    case 'G': return v << 30;
    default: return v;
  }
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr, "usage: %s SRC DST S:D:L offload|fallback REPS [NAME]\n", argv[0]);
    return 2;
  }
  const std::string ext = argv[3], mode = argv[4];
  const int reps = std::atoi(argv[5]);
  const std::string name = argc > 6 ? argv[6] : "inproc";
  offcopy::open_options ro, rw;
  rw.writable = true;
  auto src = offcopy::device::open(argv[1], ro);
  auto dst = offcopy::device::open(argv[2], rw);
  if (!src.ok() || !dst.ok()) {
    std::fprintf(stderr, "open failed\n");
    return 1;
  }
  const auto a = ext.find(':'), b = ext.find(':', a + 1);
  offcopy::request req{
      src.value(),
      dst.value(),
      {{bytes_of(ext.substr(0, a)), bytes_of(ext.substr(a + 1, b - a - 1)), bytes_of(ext.substr(b + 1))}}};
  offcopy::policy pol;
  pol.mode = mode == "offload" ? offcopy::copy_mode::offload : offcopy::copy_mode::fallback;
  for (int r = 1; r <= reps; ++r) {
    const double c0 = cpu_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    const offcopy::report rep = offcopy::copy(req, pol);
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double cpu = cpu_seconds() - c0;
    if (!rep.result.ok()) {
      std::fprintf(stderr, "copy failed: %s\n", rep.result.to_string().c_str());
      return 1;
    }
    std::printf("RESULT %s_%s_r%d wall=%.3f cpu=%.3f bytes=%llu\n", name.c_str(), mode.c_str(), r, wall, cpu,
                static_cast<unsigned long long>(rep.bytes_copied));
    std::fflush(stdout);
  }
  return 0;
}
