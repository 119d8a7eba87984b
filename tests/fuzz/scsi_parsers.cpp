// Fuzz target: every other parser of SCSI device data. Byte 0 picks the parser, the rest is the
// device's reply: VPD 0x83, RECEIVE COPY OPERATING PARAMETERS, RRTI, RECEIVE COPY STATUS, sense,
// INQUIRY, VPD 0x00, READ CAPACITY(16).
#include <cstdint>
#include <span>

#include "src/scsi/transport.hpp"
#include "src/scsi/wire.hpp"
#include "src/scsi/xcopy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace offcopy::detail::scsi;
  if (size == 0) return 0;
  std::span<const std::uint8_t> in(data + 1, size - 1);
  switch (data[0] % 8) {
    case 0:
      if (auto n = parse_vpd83_lu_naa(in); n && (n->size() < 8 || n->size() > 20)) __builtin_trap();
      break;
    case 1:
      if (auto p = parse_copy_operating_parameters(in)) {
        auto l = xcopy_limits(*p, 512, 2);
        if (l.max_segments_per_command == 0 || l.max_segment_blocks == 0 || l.max_segment_blocks > 65535)
          __builtin_trap();
      }
      break;
    case 2:
      if (auto r = parse_rod_token_information(in); r && !r->token.empty() && r->token.size() != 512) __builtin_trap();
      break;
    case 3: (void)parse_copy_status_lid1(in); break;
    case 4:
      (void)parse_sense(in);
      (void)decode_sense(0x02, in);
      break;
    case 5: (void)parse_standard_inquiry(in); break;
    case 6: (void)parse_supported_vpd_pages(in); break;
    case 7: (void)parse_read_capacity16(in); break;
  }
  return 0;
}
