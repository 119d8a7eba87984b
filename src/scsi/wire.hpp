// SCSI wire formats of the copy offload commands: CDBs, parameter lists and the device's answers.
// Pure functions (bytes in, struct out, no I/O) so every field is unit-tested and fuzzed.
// Offsets cite SPC-4 / SBC-3 as summarised in DESIGN.md §3.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace offcopy::detail::scsi {

// ---- big-endian helpers -------------------------------------------------------------------
inline void put_be16(std::uint8_t* p, std::uint16_t v) noexcept {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}
inline void put_be32(std::uint8_t* p, std::uint32_t v) noexcept {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * (3 - i)));
}
inline void put_be64(std::uint8_t* p, std::uint64_t v) noexcept {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * (7 - i)));
}
inline std::uint16_t get_be16(const std::uint8_t* p) noexcept { return static_cast<std::uint16_t>((p[0] << 8) | p[1]); }
inline std::uint32_t get_be32(const std::uint8_t* p) noexcept {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}
inline std::uint64_t get_be64(const std::uint8_t* p) noexcept {
  return (std::uint64_t{get_be32(p)} << 32) | get_be32(p + 4);
}

// ---- opcodes --------------------------------------------------------------------------------
inline constexpr std::uint8_t op_inquiry = 0x12;
inline constexpr std::uint8_t op_service_action_in_16 = 0x9E;  // READ CAPACITY(16) = SA 0x10
inline constexpr std::uint8_t op_third_party_copy_out = 0x83;
inline constexpr std::uint8_t op_third_party_copy_in = 0x84;
inline constexpr std::uint8_t sa_read_capacity_16 = 0x10;
inline constexpr std::uint8_t sa_extended_copy_lid1 = 0x00;
inline constexpr std::uint8_t sa_populate_token = 0x10;
inline constexpr std::uint8_t sa_write_using_token = 0x11;
inline constexpr std::uint8_t sa_receive_copy_status_lid1 = 0x00;
inline constexpr std::uint8_t sa_receive_copy_operating_parameters = 0x03;
inline constexpr std::uint8_t sa_receive_rod_token_information = 0x07;

using cdb6 = std::array<std::uint8_t, 6>;
using cdb16 = std::array<std::uint8_t, 16>;

// ---- CDBs -----------------------------------------------------------------------------------
/// INQUIRY: byte 1 bit 0 EVPD, 2 page code, 3-4 allocation length.
[[nodiscard]] cdb6 inquiry_cdb(bool evpd, std::uint8_t page, std::uint16_t allocation_bytes) noexcept;
/// READ CAPACITY(16): 0x9E / SA 0x10, 10-13 allocation length.
[[nodiscard]] cdb16 read_capacity16_cdb(std::uint32_t allocation_bytes) noexcept;
/// RECEIVE COPY OPERATING PARAMETERS: 0x84 / SA 0x03, 10-13 allocation length.
[[nodiscard]] cdb16 receive_copy_operating_parameters_cdb(std::uint32_t allocation_bytes) noexcept;
/// RECEIVE COPY STATUS(LID1): 0x84 / SA 0x00, 2 list id, 10-13 allocation length.
[[nodiscard]] cdb16 receive_copy_status_lid1_cdb(std::uint8_t list_id, std::uint32_t allocation_bytes) noexcept;
/// EXTENDED COPY(LID1): 0x83 / SA 0x00, 10-13 parameter list length.
[[nodiscard]] cdb16 extended_copy_lid1_cdb(std::uint32_t parameter_list_bytes) noexcept;
/// POPULATE TOKEN: 0x83 / SA 0x10, 6-9 list identifier, 10-13 parameter list length.
[[nodiscard]] cdb16 populate_token_cdb(std::uint32_t list_id, std::uint32_t parameter_list_bytes) noexcept;
/// WRITE USING TOKEN: 0x83 / SA 0x11, 6-9 list identifier, 10-13 parameter list length.
[[nodiscard]] cdb16 write_using_token_cdb(std::uint32_t list_id, std::uint32_t parameter_list_bytes) noexcept;
/// RECEIVE ROD TOKEN INFORMATION: 0x84 / SA 0x07, 2-5 list identifier, 10-13 allocation length.
[[nodiscard]] cdb16 receive_rod_token_information_cdb(std::uint32_t list_id, std::uint32_t allocation_bytes) noexcept;

// ---- INQUIRY and READ CAPACITY --------------------------------------------------------------
struct standard_inquiry {
  std::uint8_t peripheral_qualifier = 0;  ///< byte 0 bits 7-5
  std::uint8_t peripheral_type = 0;       ///< byte 0 bits 4-0 (0 = direct access block device)
  bool third_party_copy = false;          ///< byte 5 bit 3 (3PC)
  std::string vendor;                     ///< 8-15, trailing blanks removed
  std::string product;                    ///< 16-31
  std::string revision;                   ///< 32-35
};
[[nodiscard]] std::optional<standard_inquiry> parse_standard_inquiry(std::span<const std::uint8_t> data);

/// Page codes listed by VPD 0x00 (empty when malformed).
[[nodiscard]] std::vector<std::uint8_t> parse_supported_vpd_pages(std::span<const std::uint8_t> data);

struct read_capacity16 {
  std::uint64_t last_lba = 0;                  ///< 0-7
  std::uint32_t block_bytes = 0;               ///< 8-11
  std::uint8_t physical_per_logical_log2 = 0;  ///< 13 bits 3-0
  [[nodiscard]] std::uint64_t size_bytes() const noexcept { return (last_lba + 1) * block_bytes; }
};
[[nodiscard]] std::optional<read_capacity16> parse_read_capacity16(std::span<const std::uint8_t> data);

// ---- VPD 0x83 -------------------------------------------------------------------------------
/// The logical unit's NAA designator (association 0 = LU, designator type 3 = NAA, binary code
/// set), the longest one when several are present (16-byte IEEE Registered Extended first).
/// nullopt when the page has none or is malformed.
[[nodiscard]] std::optional<std::vector<std::uint8_t>> parse_vpd83_lu_naa(std::span<const std::uint8_t> page);

// ---- VPD 0x8F (third-party copy) -------------------------------------------------------------
/// Block device ROD token limits descriptor (type 0x0000), offsets within the descriptor.
struct rod_token_limits {
  std::uint16_t max_range_descriptors = 0;         ///< 10-11
  std::uint32_t max_inactivity_timeout_s = 0;      ///< 12-15
  std::uint32_t default_inactivity_timeout_s = 0;  ///< 16-19
  std::uint64_t max_token_transfer_blocks = 0;     ///< 20-27
  std::uint64_t optimal_transfer_blocks = 0;       ///< 28-35
};
struct supported_command {
  std::uint8_t opcode = 0;
  std::vector<std::uint8_t> service_actions;
};
/// One ROD type descriptor of the supported ROD types descriptor (type 0x0108): 64 bytes each,
/// 0-3 ROD type, 4 bit 7 ECPY_INT / bit 1 TOKEN_IN / bit 0 TOKEN_OUT, 6-7 preference indication
/// (SPC-4; the 64-byte size and the bits as FreeBSD CTL's scsi_vpd_tpc_descriptor_srtd and
/// sg3_utils' decode_3party_copy_vpd read them).
struct rod_type_entry {
  std::uint32_t rod_type = 0;
  bool ecpy_int = false;
  bool token_in = false;   ///< accepted as input (WRITE USING TOKEN)
  bool token_out = false;  ///< created by POPULATE TOKEN
};
struct third_party_copy_vpd {
  std::optional<rod_token_limits> rod_limits;      ///< descriptor 0x0000
  std::vector<supported_command> commands;         ///< descriptor 0x0001
  std::optional<std::uint32_t> max_segment_bytes;  ///< descriptor 0x8001, 12-15
  std::vector<rod_type_entry> rod_types;           ///< descriptor 0x0108 (empty when absent)
  std::vector<std::uint16_t> descriptor_types;     ///< every descriptor type seen, in order
  [[nodiscard]] bool supports(std::uint8_t opcode, std::uint8_t service_action) const noexcept;
  /// The 0x0108 descriptor lists `rod_type` with TOKEN_IN set: WRITE USING TOKEN takes it.
  [[nodiscard]] bool accepts_rod_token(std::uint32_t rod_type) const noexcept;
};
/// Parses VPD page 0x8F. Defensive: a truncated descriptor ends the walk; nullopt only when the
/// page header itself is unusable (short, wrong page code).
[[nodiscard]] std::optional<third_party_copy_vpd> parse_vpd8f(std::span<const std::uint8_t> page);

// ---- RECEIVE COPY OPERATING PARAMETERS -------------------------------------------------------
struct copy_operating_parameters {
  bool snlid = false;                              ///< 4 bit 0: supports "no list identifier"
  std::uint16_t max_cscd_descriptors = 0;          ///< 8-9
  std::uint16_t max_segment_descriptors = 0;       ///< 10-11
  std::uint32_t max_descriptor_list_bytes = 0;     ///< 12-15
  std::uint32_t max_segment_bytes = 0;             ///< 16-19
  std::uint32_t max_inline_data_bytes = 0;         ///< 20-23
  std::uint32_t held_data_limit_bytes = 0;         ///< 24-27
  std::uint16_t total_concurrent_copies = 0;       ///< 34-35
  std::uint8_t max_concurrent_copies = 0;          ///< 36
  std::uint8_t data_segment_granularity_log2 = 0;  ///< 37
  std::vector<std::uint8_t> descriptor_codes;      ///< 44.. (length in 43)
  [[nodiscard]] bool supports_descriptor(std::uint8_t code) const noexcept;
};
[[nodiscard]] std::optional<copy_operating_parameters> parse_copy_operating_parameters(
    std::span<const std::uint8_t> data);

// ---- EXTENDED COPY (LID1) parameter list -----------------------------------------------------
/// Header byte 1 bits 4-3.
enum class list_id_usage : std::uint8_t { hold = 0, discard = 2, none = 3 };

/// One 0xE4 identification CSCD descriptor.
struct cscd_identification {
  std::vector<std::uint8_t> naa;  ///< the LU's NAA designator (8 or 16 bytes; at most 20)
  std::uint32_t block_bytes = 512;
  std::uint8_t peripheral_type = 0;
};
/// One 0x02 block→block segment descriptor.
struct block_segment {
  std::uint16_t src_cscd = 0;
  std::uint16_t dst_cscd = 1;
  std::uint16_t blocks = 0;  ///< 10-11, 16 bits
  std::uint64_t src_lba = 0;
  std::uint64_t dst_lba = 0;
};
inline constexpr std::size_t xcopy_header_bytes = 16;
inline constexpr std::size_t cscd_descriptor_bytes = 32;
inline constexpr std::size_t block_segment_bytes = 28;
inline constexpr std::uint32_t max_block_segment_blocks = 0xFFFF;

/// Encodes a LID1 parameter list: header, CSCDs, segments (no inline data). Priority 1 as sg_xcopy.
[[nodiscard]] std::vector<std::uint8_t> encode_extended_copy_lid1(std::uint8_t list_id, list_id_usage usage,
                                                                  std::span<const cscd_identification> cscds,
                                                                  std::span<const block_segment> segments);

/// RECEIVE COPY STATUS(LID1) COPY MANAGER STATUS (byte 4 bits 6-0): FreeBSD CTL scsi_all.h
/// RCS_CCS_INPROG/COMPLETED/ERROR, sg3_utils sg_copy_results.c.
enum : std::uint8_t {
  lid1_in_progress = 0x00,
  lid1_completed = 0x01,
  lid1_completed_with_errors = 0x02,
};

/// RECEIVE COPY STATUS(LID1) reply: 4 bit 7 HDD, 4 bits 6-0 status, 5-6 segments processed,
/// 7 transfer count units, 8-11 transfer count.
struct copy_status_lid1 {
  std::uint8_t copy_status = 0;  ///< lid1_in_progress / lid1_completed / lid1_completed_with_errors
  std::uint16_t segments_processed = 0;
  std::uint8_t transfer_count_units = 0;
  std::uint32_t transfer_count = 0;
};
[[nodiscard]] std::optional<copy_status_lid1> parse_copy_status_lid1(std::span<const std::uint8_t> data);

/// TRANSFER COUNT UNITS codes (RECEIVE COPY STATUS LID1 byte 7, RRTI byte 15): 00h bytes, 01h-06h
/// 2^10..2^60 bytes, F1h logical blocks of the copy destination (FreeBSD CTL scsi_all.h RCS_TC_*,
/// QNAP LIO tpc_def.h TRANSFER_COUNT_UNIT citing SPC-4 r36); every other code is reserved.
inline constexpr std::uint8_t transfer_units_bytes = 0x00;
inline constexpr std::uint8_t transfer_units_blocks = 0xF1;

/// A transfer count in whole logical blocks of `block_bytes`, rounded down so it never claims more
/// than the device said (saturating at 2^64-1). nullopt for a reserved units code or a zero block
/// size: the count means nothing we can use.
[[nodiscard]] std::optional<std::uint64_t> transfer_count_blocks(std::uint8_t units, std::uint64_t count,
                                                                 std::uint32_t block_bytes) noexcept;

// ---- token copy -------------------------------------------------------------------------------
/// Block device range descriptor (16 bytes): 0-7 LBA, 8-11 number of blocks, 12-15 reserved.
struct block_range {
  std::uint64_t lba = 0;
  std::uint32_t blocks = 0;
  [[nodiscard]] bool operator==(const block_range&) const = default;
};
inline constexpr std::size_t range_descriptor_bytes = 16;
inline constexpr std::size_t rod_token_bytes = 512;
inline constexpr std::size_t populate_token_header_bytes = 16;
inline constexpr std::size_t write_using_token_header_bytes = 536;
inline constexpr std::uint32_t rod_type_zero = 0xFFFF0001;  ///< block device zero ROD token

/// POPULATE TOKEN list: 0-1 data length (total-2), 2 bit 1 RTV / bit 0 IMMED, 4-7 inactivity
/// timeout, 8-11 ROD type, 14-15 range descriptor list length, 16.. ranges. RTV is set when
/// rod_type != 0.
[[nodiscard]] std::vector<std::uint8_t> encode_populate_token(std::span<const block_range> ranges, bool immed,
                                                              std::uint32_t inactivity_timeout_s,
                                                              std::uint32_t rod_type = 0);
/// WRITE USING TOKEN list: 0-1 data length, 2 bit 1 DEL_TKN / bit 0 IMMED, 8-15 offset into ROD
/// (blocks), 16-527 token, 534-535 range list length, 536.. ranges (FreeBSD CTL
/// scsi_write_using_token_data, EC_WUT_DEL_TKN = 0x02).
[[nodiscard]] std::vector<std::uint8_t> encode_write_using_token(std::span<const std::uint8_t> token,
                                                                 std::uint64_t offset_into_rod_blocks,
                                                                 std::span<const block_range> ranges, bool immed,
                                                                 bool delete_token = false);
/// The 512-byte block device zero ROD token (ROD type 0xFFFF0001, length 0x01F8).
[[nodiscard]] std::array<std::uint8_t, rod_token_bytes> zero_rod_token() noexcept;

/// COPY OPERATION STATUS (RRTI / RECEIVE COPY STATUS(LID4) byte 5 bits 6-0), SPC-4 r36. Checked
/// against FreeBSD CTL scsi_all.h (RCS_CCS_COMPLETED 01h, ERROR 02h, COMPLETED_PROD 03h,
/// COMPLETED_RESID 04h, INPROG_FGBG 10h, INPROG_FG 11h, INPROG_BG 12h, ABORTED 60h) and QNAP's LIO
/// ODX tpc_def.h (COPY_OP_STATUS, same values, "SPC4R36 page 423").
enum : std::uint8_t {
  copy_op_completed = 0x01,  ///< completed without errors
  copy_op_completed_with_errors = 0x02,
  copy_op_completed_partial_rod = 0x03,  ///< completed without errors, partial ROD token usage
  copy_op_completed_residual = 0x04,     ///< completed without errors, with residual data
  copy_op_in_progress = 0x10,            ///< in progress, foreground or background unknown
  copy_op_in_progress_foreground = 0x11,
  copy_op_in_progress_background = 0x12,
  copy_op_terminated = 0x60,
};
/// 01h, 03h and 04h: the operation ended without error; the transfer count says how much it moved.
[[nodiscard]] constexpr bool copy_op_without_errors(std::uint8_t s) noexcept {
  return s == copy_op_completed || s == copy_op_completed_partial_rod || s == copy_op_completed_residual;
}
[[nodiscard]] constexpr bool copy_op_running(std::uint8_t s) noexcept {
  return s == copy_op_in_progress || s == copy_op_in_progress_foreground || s == copy_op_in_progress_background;
}

/// RECEIVE ROD TOKEN INFORMATION reply: 4 bits 4-0 response to service action, 5 bits 6-0 copy
/// operation status, 6-7 operation counter, 8-11 estimated status update delay (ms), 13 sense
/// data field length, 14 sense data length, 15 transfer count units, 16-23 transfer count,
/// 24-25 segments processed, 32.. sense, then 4-byte ROD token descriptors length, 2 reserved,
/// the token.
struct rod_token_information {
  std::uint8_t response_to_service_action = 0;
  std::uint8_t copy_status = 0;
  std::uint16_t operation_counter = 0;
  std::uint32_t status_update_delay_ms = 0;
  std::uint8_t transfer_count_units = 0;
  std::uint64_t transfer_count = 0;
  std::vector<std::uint8_t> sense;
  std::vector<std::uint8_t> token;  ///< empty when the reply carries none
  [[nodiscard]] bool in_progress() const noexcept { return copy_op_running(copy_status); }
};
[[nodiscard]] std::optional<rod_token_information> parse_rod_token_information(std::span<const std::uint8_t> data);

// ---- sense data ---------------------------------------------------------------------------------
/// Fields of fixed (0x70/0x71) or descriptor (0x72/0x73) sense, decoded without libsgutils2 so the
/// model and the fuzzers share it.
struct sense_fields {
  std::uint8_t response_code = 0;
  std::uint8_t sense_key = 0;
  std::uint8_t asc = 0;
  std::uint8_t ascq = 0;
  bool information_valid = false;
  std::uint64_t information = 0;
};
[[nodiscard]] std::optional<sense_fields> parse_sense(std::span<const std::uint8_t> sense);
/// Fixed-format sense (18 bytes) as a device would return it (models, tests).
[[nodiscard]] std::vector<std::uint8_t> make_fixed_sense(std::uint8_t key, std::uint8_t asc, std::uint8_t ascq,
                                                         std::optional<std::uint32_t> information = {});

inline constexpr std::uint8_t sense_key_no_sense = 0x0;
inline constexpr std::uint8_t sense_key_not_ready = 0x2;
inline constexpr std::uint8_t sense_key_medium_error = 0x3;
inline constexpr std::uint8_t sense_key_hardware_error = 0x4;
inline constexpr std::uint8_t sense_key_illegal_request = 0x5;
inline constexpr std::uint8_t sense_key_unit_attention = 0x6;
inline constexpr std::uint8_t sense_key_data_protect = 0x7;
inline constexpr std::uint8_t sense_key_aborted_command = 0xB;
inline constexpr std::uint8_t sense_key_copy_aborted = 0xA;

/// What a failed copy command means for the engine (DESIGN §3).
enum class sense_meaning : std::uint8_t {
  not_supported,        ///< 20/00 invalid opcode, 26/09 unsupported segment type, 24/00 invalid field in CDB
  size_limit_exceeded,  ///< 26/08 too many segments, 26/06 too many CSCDs, 1A/00 list length
  list_id_busy,         ///< 00/16 operation in progress: retry with another list id
  out_of_range,         ///< 21/00 LBA out of range
  token_error,          ///< 23/xx invalid token (expired, cancelled, ...)
  retry,                ///< UNIT ATTENTION: send again
  device_error,         ///< anything else (COPY ABORTED 0D/02, medium errors, ...)
};
[[nodiscard]] sense_meaning classify_sense(const sense_fields& s) noexcept;

}  // namespace offcopy::detail::scsi
