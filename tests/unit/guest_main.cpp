// main() of the guest-only test programs: exit 77 (skipped) unless every required variable is set.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "tests/unit/guest.hpp"

namespace {
std::vector<std::pair<std::string, std::string>>& requirements() {
  static std::vector<std::pair<std::string, std::string>> r;
  return r;
}
}  // namespace

offcopy::test::guest_requirement::guest_requirement(const char* variable, const char* where) {
  requirements().emplace_back(variable, where);
}

int main(int argc, char** argv) {
  for (const auto& [variable, where] : requirements()) {
    const char* v = std::getenv(variable.c_str());
    if (v == nullptr || v[0] == '\0') {
      std::printf("skipped: %s is not set; these cases run inside the QEMU guest (%s)\n", variable.c_str(),
                  where.c_str());
      return 77;
    }
  }
  doctest::Context context(argc, argv);
  return context.run();
}
