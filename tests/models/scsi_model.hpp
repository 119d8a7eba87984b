// In-process SCSI copy manager: logical units backed by regular files, answering INQUIRY/VPD,
// READ CAPACITY(16), RECEIVE COPY OPERATING PARAMETERS, EXTENDED COPY(LID1), POPULATE TOKEN,
// WRITE USING TOKEN and RECEIVE ROD TOKEN INFORMATION, with configurable limits and faults.
// Installed as the SCSI transport factory, so device::open() on its files probes the model.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "src/scsi/transport.hpp"

namespace offcopy::test {

struct scsi_model_config {
  // EXTENDED COPY (LID1). LIO: 2 CSCDs, 1 segment, 1024-byte lists, 256 MiB segments, SNLID.
  bool xcopy = true;
  bool snlid = true;
  std::uint16_t max_cscd_descriptors = 2;
  std::uint16_t max_segment_descriptors = 1;
  std::uint32_t max_descriptor_list_bytes = 1024;
  std::uint32_t max_segment_bytes = 256u << 20;
  /// RECEIVE COPY STATUS(LID1) for commands that carry a list id (LIO: no).
  bool copy_status_lid1 = false;
  /// After a fault in segment i: SEGMENTS PROCESSED = i, the segments completed (FreeBSD CTL's
  /// curseg), or i + 1 when true (an array that counts the segment it failed in).
  bool lid1_counts_failed_segment = false;
  /// TRANSFER COUNT UNITS of the LID1 reply (CTL: 00h bytes, 02h MiB past 4 GiB), and the blocks
  /// of the failing segment written before the fault (counted in the transfer count).
  std::uint8_t lid1_transfer_units = 0x00;
  std::uint32_t fault_partial_blocks = 0;
  std::uint8_t max_concurrent_copies = 1;  ///< RCOP byte 36
  // Token copy (absent on LIO: POPULATE TOKEN → invalid opcode, no VPD 0x8F).
  bool token = false;
  std::uint16_t max_range_descriptors = 8;
  std::uint64_t max_token_transfer_blocks = 1u << 16;
  std::uint64_t optimal_transfer_blocks = 1u << 11;
  /// A POPULATE TOKEN represents at most this many blocks of its ranges, from the first (0 = all);
  /// RRTI then reports that count with `populate_short_status`, as an array that caps a token.
  std::uint64_t populate_max_blocks = 0;
  std::uint8_t populate_short_status = 0x04;
  /// TRANSFER COUNT UNITS of every RRTI reply: F1h logical blocks, 00h bytes, 01h-06h 2^10..2^60
  /// bytes (counts rounded down, as a device would).
  std::uint8_t transfer_count_units = 0xF1;
  /// VPD 0x8F descriptor 0x0108 lists the block device zero ROD type (FFFF0001h) with these flags
  /// (02h TOKEN_IN); false: only the point-in-time type the model creates is listed.
  bool list_zero_rod = true;
  /// DEL_TKN frees the token when the WRITE USING TOKEN ends (CTL); false: the token lives until
  /// its inactivity timeout or `token_lifetime_writes`, whatever the flag says.
  bool honour_del_tkn = true;
  std::uint8_t zero_rod_flags = 0x02;
  /// A token is valid for this many WRITE USING TOKEN commands (0 = forever).
  unsigned token_lifetime_writes = 0;
  /// A WRITE USING TOKEN moves at most this many blocks (0 = all): partial transfers.
  std::uint64_t write_using_token_max_blocks = 0;
  /// RRTI answers "in progress" this many times after an IMMED command...
  unsigned in_progress_polls = 0;
  /// ... with this COPY OPERATION STATUS: 10h (foreground or background unknown), 11h
  /// (foreground) or 12h (background).
  std::uint8_t in_progress_status = 0x11;
  /// COPY OPERATION STATUS of a WRITE USING TOKEN that moved fewer blocks than its ranges hold
  /// (GOOD status, RRTI transfer count = blocks moved): 04h "completed without errors but with
  /// residual data" or 03h "... with partial ROD token usage" (QNAP's LIO ODX answers 03h).
  std::uint8_t short_write_status = 0x04;
};

/// One logged command: "lun1 XCOPY id=0 usage=3 0>8192x1024", "lun0 PT 0x8", "lun1 WUT off=0 8x8",
/// "lun1 WUT del off=0 8x8" (DEL_TKN set: the model deletes the token when the command ends, as CTL
/// does), "lun0 RRTI".
using scsi_log = std::vector<std::string>;

class scsi_model {
 public:
  explicit scsi_model(scsi_model_config cfg = {});
  ~scsi_model();  // uninstalls the factory
  scsi_model(const scsi_model&) = delete;
  scsi_model& operator=(const scsi_model&) = delete;

  /// Adds an LU named `name` backed by the regular file `path` (created/resized to `size_bytes`).
  void add_lu(const std::string& name, const std::string& path, std::uint64_t size_bytes,
              std::uint32_t block_bytes = 512);

  /// The n-th (1-based) copy command (XCOPY, POPULATE TOKEN, WRITE USING TOKEN) fails with this
  /// sense after copying `segments_before_fault` segments/ranges.
  void fail_copy_command(unsigned n, std::vector<std::uint8_t> sense, unsigned segments_before_fault = 0);
  /// The n-th (1-based) copy command from now times out: nothing is copied and the transport
  /// reports a timeout (as sg_pt does when the SCSI layer aborted the command).
  void time_out_copy_command(unsigned n) { timeout_at_ = copy_commands_ + n; }
  /// Called inside every command, on the thread that sent it, before the model answers it
  /// (tests look at signal masks there).
  std::function<void(std::span<const std::uint8_t> cdb)> on_execute;
  /// The teardown check: transports destroyed while one of their commands was still running
  /// (a session freeing what a command uses), and the most commands ever running at once.
  struct transport_audit {
    unsigned torn_down = 0;
    unsigned torn_down_while_executing = 0;
    unsigned max_concurrent = 0;
  };
  [[nodiscard]] const transport_audit& audit() const noexcept { return audit_; }
  transport_audit& audit() noexcept { return audit_; }
  /// The next `n` XCOPY commands that carry a list id answer 00/16 (operation in progress).
  void busy_list_ids(unsigned n) { busy_list_ids_ = n; }
  /// Every token issued so far expires.
  void expire_tokens();

  [[nodiscard]] const scsi_log& log() const noexcept { return log_; }
  void clear_log() { log_.clear(); }
  [[nodiscard]] scsi_model_config& config() noexcept { return cfg_; }
  /// ROD tokens the model still holds (populated, not deleted by DEL_TKN).
  [[nodiscard]] std::size_t live_tokens() const noexcept { return rods_.size(); }
  /// Commands that copied data (XCOPY, PT, WUT) seen so far.
  [[nodiscard]] unsigned copy_commands() const noexcept { return copy_commands_; }

  /// A transport for the LU behind `path` (nullptr when unknown).
  [[nodiscard]] std::unique_ptr<detail::scsi::transport> transport_for(const std::string& path);

  // Implementation detail, public for the transport class.
  struct lu;
  detail::scsi::scsi_reply execute(lu& l, std::span<const std::uint8_t> cdb, detail::scsi::data_direction dir,
                                   std::span<std::uint8_t> data);

 private:
  struct rod;
  struct op_status;
  detail::scsi::scsi_reply xcopy(lu& l, std::span<const std::uint8_t> list);
  detail::scsi::scsi_reply populate(lu& l, std::uint32_t list_id, std::span<const std::uint8_t> list);
  detail::scsi::scsi_reply write_using_token(lu& l, std::uint32_t list_id, std::span<const std::uint8_t> list);
  detail::scsi::scsi_reply rrti(lu& l, std::uint32_t list_id, std::span<std::uint8_t> out);
  lu* by_naa(std::span<const std::uint8_t> naa);
  bool read_blocks(lu& l, std::uint64_t lba, std::uint64_t blocks, std::vector<std::uint8_t>& out);
  bool write_blocks(lu& l, std::uint64_t lba, const std::uint8_t* data, std::uint64_t blocks);
  bool fault_now(unsigned& segments_before);

  scsi_model_config cfg_;
  std::vector<std::unique_ptr<lu>> lus_;
  std::map<std::string, lu*> by_path_;
  std::map<std::uint64_t, std::shared_ptr<rod>> rods_;
  std::uint64_t next_rod_ = 1;
  scsi_log log_;
  unsigned copy_commands_ = 0;
  unsigned fail_at_ = 0;
  unsigned fail_segments_before_ = 0;
  std::vector<std::uint8_t> fail_sense_;
  unsigned busy_list_ids_ = 0;
  unsigned timeout_at_ = 0;
  transport_audit audit_;

 public:
  std::mutex mutex;      ///< transports from several threads: one command at a time in the model
  unsigned running = 0;  ///< commands inside a transport's execute() (under `mutex`)
};

}  // namespace offcopy::test
