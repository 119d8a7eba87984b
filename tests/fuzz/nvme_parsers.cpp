// Fuzz target for the NVMe backend's parsers of device data and its encoder round trips.
// Byte 0 selects: 0 Identify (controller, namespace, NVM namespace pages back to back, any
// length); 1 range entries of every format and status decoding; 2 dwords decode → encode;
// 3 range encode → decode; 4 Host Behavior Support (Get Features 16h) CDFE read and write back.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <vector>

#include "src/nvme/copy_encode.hpp"
#include "src/nvme/host_behavior.hpp"
#include "src/nvme/identify.hpp"
#include "src/nvme/nvme_status.hpp"

using namespace offcopy::nvme;

namespace {
[[noreturn]] void broken(int line) {
  std::fprintf(stderr, "nvme_parsers: invariant at line %d broken\n", line);
  std::abort();
}
}  // namespace
#define FUZZ_REQUIRE(cond)         \
  do {                             \
    if (!(cond)) broken(__LINE__); \
  } while (0)

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint8_t mode = data[0] % 5;
  std::span<const std::uint8_t> in(data + 1, size - 1);
  switch (mode) {
    case 0: {
      std::vector<std::uint8_t> pages(3 * identify_bytes);
      const std::size_t avail = std::min(in.size(), pages.size());
      if (avail) std::memcpy(pages.data(), in.data(), avail);
      auto page = [&](int i) {
        const std::size_t off = std::size_t(i) * identify_bytes;
        const std::size_t n = avail > off ? std::min(avail - off, identify_bytes) : 0;
        return std::span<const std::uint8_t>(pages.data() + off, n);
      };
      namespace_info info;
      if (parse_identify(page(0), page(1), page(2), 1, info)) {
        const auto m = to_mechanism(info);
        FUZZ_REQUIRE(m.available == info.copy_usable);
        if (m.available) {
          FUZZ_REQUIRE(m.limits.max_segment_blocks > 0 && m.limits.max_command_blocks > 0);
          FUZZ_REQUIRE(m.limits.max_segments_per_command >= 1 && m.limits.max_segments_per_command <= 256);
          FUZZ_REQUIRE(info.lba_bytes >= 512);
        }
      }
      break;
    }
    case 1: {
      for (std::uint8_t fmt = 0; fmt < 5; ++fmt) {
        source_range r;
        const std::size_t n = range_entry_bytes(fmt);
        for (std::size_t off = 0; n && off + n <= in.size(); off += n) {
          FUZZ_REQUIRE(decode_range(fmt, in.subspan(off, n), r));
          FUZZ_REQUIRE(r.blocks >= 1 && r.blocks <= max_blocks_per_range);
        }
        (void)decode_range(fmt, in.first(std::min<std::size_t>(in.size(), 3)), r);
      }
      if (in.size() >= 2) {
        const auto raw = static_cast<std::uint16_t>(in[0] | (in[1] << 8));
        const auto st = copy_status(raw, 0, "fuzz");
        FUZZ_REQUIRE(st.ok() == ((raw & 0x7ff) == 0));
      }
      break;
    }
    case 2: {
      if (in.size() < sizeof(copy_dwords)) return 0;
      copy_dwords d;
      std::memcpy(&d, in.data(), sizeof d);
      const copy_fields f = decode_copy_dwords(d);
      copy_dwords again;
      const bool fits = f.format <= 3;  // descriptor formats 4h-Fh are not ours to encode
      FUZZ_REQUIRE(encode_copy_dwords(f, again) == fits);
      if (!fits) break;
      // Reserved bits (CDW12 19:16 and 25, CDW13 15:0, CDW2) are dropped; everything else survives.
      FUZZ_REQUIRE(again.cdw10 == d.cdw10 && again.cdw11 == d.cdw11 && again.cdw14 == d.cdw14);
      FUZZ_REQUIRE(again.cdw15 == d.cdw15 && again.cdw3 == d.cdw3);
      FUZZ_REQUIRE((again.cdw12 & 0xfdf0ffffu) == (d.cdw12 & 0xfdf0ffffu));
      FUZZ_REQUIRE(again.cdw13 == (d.cdw13 & 0xffff0000u));
      break;
    }
    case 4: {
      // CDFE is bytes 5:4 of the structure, little endian (NVMe 2.0c, Host Behavior Support).
      const std::uint16_t want = in.size() >= 6 ? static_cast<std::uint16_t>(in[4] | (in[5] << 8)) : 0;
      const std::uint16_t cdfe = cdfe_of(in);
      FUZZ_REQUIRE(cdfe == want);
      FUZZ_REQUIRE((cdfe_formats(cdfe) == "none") == (cdfe == 0));
      std::vector<std::uint8_t> copy(in.begin(), in.end());
      const auto flipped = static_cast<std::uint16_t>(~cdfe);
      put_cdfe(copy, flipped);
      for (std::size_t i = 0; i < copy.size(); ++i)
        FUZZ_REQUIRE(copy[i] == in[i] || (copy.size() >= 6 && (i == 4 || i == 5)));
      FUZZ_REQUIRE(cdfe_of(copy) == (copy.size() >= 6 ? flipped : 0));
      break;
    }
    case 3: {
      if (in.empty()) return 0;
      const std::uint8_t fmt = in[0] % 4;
      std::vector<source_range> rs;
      for (std::size_t off = 1; off + 12 <= in.size() && rs.size() < 300; off += 12) {
        source_range r;
        std::memcpy(&r.slba, in.data() + off, 8);
        std::uint32_t b;
        std::memcpy(&b, in.data() + off + 8, 4);
        r.blocks = b % (max_blocks_per_range + 2);
        r.snsid = static_cast<std::uint32_t>(off);
        r.eilbrt = r.slba ^ 0x5a5a;
        r.elbat = static_cast<std::uint16_t>(b);
        rs.push_back(r);
      }
      std::vector<std::uint8_t> bytes;
      bool valid = !rs.empty() && rs.size() <= 256;
      for (const auto& r : rs) valid = valid && r.blocks >= 1 && r.blocks <= max_blocks_per_range;
      FUZZ_REQUIRE(encode_ranges(fmt, rs, bytes) == valid);
      if (!valid) break;
      const std::size_t n = range_entry_bytes(fmt);
      FUZZ_REQUIRE(bytes.size() == rs.size() * n);
      for (std::size_t i = 0; i < rs.size(); ++i) {
        source_range back;
        FUZZ_REQUIRE(decode_range(fmt, std::span(bytes).subspan(i * n, n), back));
        FUZZ_REQUIRE(back.slba == rs[i].slba && back.blocks == rs[i].blocks && back.elbat == rs[i].elbat);
        FUZZ_REQUIRE(fmt < 2 || back.snsid == rs[i].snsid);
        const std::uint64_t want = (fmt == 1 || fmt == 3) ? rs[i].eilbrt : (rs[i].eilbrt & 0xffffffffu);
        FUZZ_REQUIRE(back.eilbrt == want);
      }
      break;
    }
  }
  return 0;
}
