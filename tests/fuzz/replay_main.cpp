// Replays fuzz corpora without libFuzzer: every file under the directories (or files) given, plus
// its truncations and a few deterministic byte flips, is fed to LLVMFuzzerTestOneInput. Crashes
// and sanitizer reports are the failures; exit 0 otherwise.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {
void feed(const std::vector<std::uint8_t>& in) {
  // A fresh heap copy of exactly `size` bytes, so out-of-bounds reads are caught by ASan.
  std::vector<std::uint8_t> copy(in);
  LLVMFuzzerTestOneInput(copy.empty() ? nullptr : copy.data(), copy.size());
}

// Per corpus file: up to ~128 truncations (every length up to 64, then evenly spaced) and 64 byte
// flips, so the slowest target (the planner checks every block) replays in seconds under ASan.
void replay(const std::vector<std::uint8_t>& input) {
  feed(input);
  const std::size_t step = std::max<std::size_t>(1, input.size() / 64);
  for (std::size_t n = 0; n < input.size(); n += n < 64 ? 1 : step)
    feed(std::vector<std::uint8_t>(input.begin(), input.begin() + static_cast<std::ptrdiff_t>(n)));
  std::mt19937 g(12345);
  for (int i = 0; i < 64 && !input.empty(); ++i) {
    auto m = input;
    m[g() % m.size()] = static_cast<std::uint8_t>(g());
    m[g() % m.size()] ^= static_cast<std::uint8_t>(1u << (g() % 8));
    feed(m);
  }
}
}  // namespace

int main(int argc, char** argv) {
  std::vector<std::filesystem::path> files;
  for (int i = 1; i < argc; ++i) {
    std::filesystem::path p(argv[i]);
    if (std::filesystem::is_directory(p)) {
      for (const auto& e : std::filesystem::recursive_directory_iterator(p))
        if (e.is_regular_file()) files.push_back(e.path());
    } else if (std::filesystem::exists(p)) {
      files.push_back(p);
    }
  }
  std::sort(files.begin(), files.end());
  feed({});
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    std::vector<std::uint8_t> data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    replay(data);
  }
  std::printf("replayed %zu corpus files\n", files.size());
  return 0;
}
