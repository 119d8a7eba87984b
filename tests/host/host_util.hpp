// Shared pieces of the host tests (tests/host/*_test.cpp): shell commands, loop devices, reads that
// bypass or go through the page cache, and the main() that checks --require=... and exits 77
// (skipped, with the reason) when the host cannot provide it.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "tests/unit/test_files.hpp"

namespace offcopy::host_util {

using test_files::open_device;
using test_files::read_file;
using test_files::scratch_dir;
using test_files::write_file;

constexpr std::uint64_t mib = 1 << 20;

/// The command's standard output, trailing newlines and blanks removed.
inline std::string capture(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  char buf[512];
  while (std::fgets(buf, sizeof buf, p) != nullptr) out += buf;
  ::pclose(p);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

/// Whether the command succeeded (its output discarded).
inline bool shell(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()) == 0; }

inline std::vector<std::uint8_t> random_bytes(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::uint8_t> v(n);
  for (auto& b : v) b = static_cast<std::uint8_t>(rng());
  return v;
}

/// As the medium has it (O_DIRECT: no page cache in between).
inline std::vector<std::uint8_t> read_direct(const std::string& path, std::uint64_t off, std::size_t n) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
  REQUIRE(fd >= 0);
  void* buf = nullptr;
  REQUIRE(::posix_memalign(&buf, 4096, n) == 0);
  REQUIRE(::pread(fd, buf, n, static_cast<off_t>(off)) == static_cast<ssize_t>(n));
  std::vector<std::uint8_t> out(static_cast<std::uint8_t*>(buf), static_cast<std::uint8_t*>(buf) + n);
  std::free(buf);
  ::close(fd);
  return out;
}

/// A loop device over `file` (with its partitions added when asked and the file has a table),
/// detached at scope exit -- only the one we attached.
struct loop_device {
  std::string dev;
  explicit loop_device(const std::string& file, bool partitions = false) {
    dev = capture("losetup -f --show " + std::string(partitions ? "-P " : "") + file + " 2>/dev/null");
    REQUIRE_MESSAGE(dev.rfind("/dev/loop", 0) == 0, "losetup failed: " << dev);
    // This host's kernel may parse no table itself: add the partitions through BLKPG.
    if (partitions && !std::filesystem::exists(dev + "p1")) shell("partx -a " + dev);
  }
  ~loop_device() {
    if (!dev.empty()) shell("losetup -d " + dev);
  }
  loop_device(const loop_device&) = delete;
  loop_device& operator=(const loop_device&) = delete;
  [[nodiscard]] dev_t devno() const {
    struct stat st {};
    REQUIRE(::stat(dev.c_str(), &st) == 0);
    return st.st_rdev;
  }
};

/// Why this host cannot attach a loop device, or "" when it can (root, losetup, a 1 MiB probe).
inline std::string loop_unavailable() {
  if (::geteuid() != 0) return "loop devices need root";
  if (!shell("command -v losetup")) return "losetup is not installed";
  std::string t = (std::filesystem::temp_directory_path() / "offcopy-host-probe-XXXXXX").string();
  const int fd = ::mkstemp(t.data());
  if (fd < 0) return "cannot create a backing file";
  ::close(fd);
  if (!shell("truncate -s 1M " + t)) {
    ::unlink(t.c_str());
    return "cannot create a backing file";
  }
  std::string dev = capture("losetup -f --show " + t + " 2>/dev/null");
  const bool attached = dev.rfind("/dev/loop", 0) == 0;
  if (attached) shell("losetup -d " + dev);
  ::unlink(t.c_str());
  return attached ? "" : "cannot attach a loop device (losetup -f --show)";
}

/// main() of a host test: takes --require=a,b (removed before doctest sees the arguments); "loop"
/// is checked here, every other word by `other` (given the whole list, it returns why the host
/// cannot, or ""). Prints "skipped: <why>" and returns 77 when a requirement is not met.
inline int host_main(int argc, char** argv, const std::function<std::string(const std::string&)>& other) {
  std::vector<char*> args;
  std::string require;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--require=", 0) == 0) {
      require = a.substr(10);
    } else {
      args.push_back(argv[i]);
    }
  }
  std::string why;
  if (require.find("loop") != std::string::npos) why = loop_unavailable();
  if (why.empty()) why = other(require);
  if (!why.empty()) {
    std::printf("skipped: %s\n", why.c_str());
    return 77;
  }
  doctest::Context ctx(static_cast<int>(args.size()), args.data());
  return ctx.run();
}

}  // namespace offcopy::host_util
