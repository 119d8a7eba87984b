// The program's operator new and delete for unit_cli, replaced so a test can make every allocation
// fail for a moment (tests/unit/cli/guard_test.cpp: memory too short even for an error message).
// Their own file: seen inline next to the code that allocates, GCC warns of a new/free mismatch.
#include <atomic>
#include <cstdlib>
#include <new>

namespace offcopy::cli_test {
/// While true, every operator new throws std::bad_alloc.
std::atomic<bool> fail_allocations{false};
}  // namespace offcopy::cli_test

void* operator new(std::size_t n) {
  if (offcopy::cli_test::fail_allocations.load(std::memory_order_relaxed)) throw std::bad_alloc();
  if (void* p = std::malloc(n != 0 ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return ::operator new(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
