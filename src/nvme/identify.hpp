// Identify Controller / Namespace data → what the Copy backend needs. Pure (bytes in, struct out).
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "offcopy/device.hpp"

namespace offcopy::nvme {

inline constexpr std::size_t identify_bytes = 4096;

/// The facts of one namespace and its controller that decide whether and how Copy can run.
struct namespace_info {
  std::uint32_t nsid = 0;
  // Identify Controller
  std::uint16_t oncs = 0;  ///< bit 8: Copy supported
  std::uint16_t ocfs = 0;  ///< bit n: descriptor format n supported
  std::uint16_t cntlid = 0;
  std::string serial;  ///< SN, trimmed
  std::string model;   ///< MN, trimmed
  // Identify Namespace
  std::uint64_t nsze_blocks = 0;
  std::uint16_t mssrl_blocks = 0;  ///< max blocks per source range
  std::uint32_t mcl_blocks = 0;    ///< max blocks per command
  std::uint8_t msrc_0based = 0;    ///< max source ranges, 0-based
  std::uint8_t lba_format_index = 0;
  std::uint32_t lba_bytes = 0;
  std::uint16_t metadata_bytes = 0;
  bool metadata_extended = false;  ///< FLBAS bit 4: metadata inline with the data
  std::uint8_t pi_type = 0;        ///< DPS bits 2:0 (0 none, 1, 2, 3)
  bool pi_first = false;           ///< DPS bit 3
  std::uint8_t pi_format = 0;      ///< ELBAF PIF: 0 16-bit guard, 1 32-bit, 2 64-bit
  // Derived
  std::uint8_t descriptor_format = 0;  ///< 0h, or 1h for 32/64-bit guard PI
  bool copy_usable = false;
  std::string reason;  ///< why not usable
};

/// Parses Identify Controller and Identify Namespace (and, when given, the NVM Command Set specific
/// Identify Namespace, CNS 05h, for the PI format). Each span must hold 4096 bytes; returns false
/// when one is short (the reason says which).
[[nodiscard]] bool parse_identify(std::span<const std::uint8_t> id_ctrl, std::span<const std::uint8_t> id_ns,
                                  std::span<const std::uint8_t> nvm_id_ns, std::uint32_t nsid, namespace_info& out);

/// Decides copy_usable/reason/descriptor_format from the parsed fields (called by parse_identify).
void evaluate(namespace_info& info);

/// The probe's answer: backend nvme_copy, availability, limits (MSRC+1, MSSRL, MCL, contiguous
/// destination) and details for `offload-copy probe`.
[[nodiscard]] offload_mechanism to_mechanism(const namespace_info& info);

/// "0x3" style hex.
[[nodiscard]] std::string hex(std::uint32_t v);

}  // namespace offcopy::nvme
