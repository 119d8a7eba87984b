// Fuzz target: VPD page 0x8F (third-party copy) parser, then the token capability derived from it.
#include <cstdint>
#include <span>

#include "src/scsi/token.hpp"
#include "src/scsi/wire.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace offcopy::detail::scsi;
  std::span<const std::uint8_t> in(data, size);
  auto v = parse_vpd8f(in);
  if (v) {
    (void)v->supports(0x83, 0x10);
    (void)v->accepts_rod_token(0xFFFF0001);
    for (const auto& t : v->rod_types) (void)t.token_in;
    lu_info lu;
    lu.tpc = v;
    lu.capacity = read_capacity16{1000, 512, 0};
    auto c = token_capability_of(lu, false);
    if (c.available && c.limits.max_segments_per_command == 0) __builtin_trap();
  }
  return 0;
}
