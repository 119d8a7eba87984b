// The journal of a resumable copy (issue 8.8, docs/reliability.md "Crashes and resume").
//
// A journal file is bound to one request: the header is a JSON fingerprint of both devices'
// stable identities and sizes and of the extents. Then append-only records, each with a CRC32C
// seeded by the header's: "done" (destination bytes [lo, hi) known at the destination and made
// durable before the record was written) and "memmove" (a command that copies a range onto
// itself is about to start). A re-run with the same request copies the extents minus the done
// ranges; it is refused when the fingerprint differs, or when a memmove command was interrupted
// (its source is partly overwritten: no re-run can recover those bytes).
//
// Durability order (power cut safe): the destination is fdatasync'ed before the records that
// claim its bytes are written, and the journal is fdatasync'ed after them. Commits are batched:
// at most every `commit_interval` or `commit_bytes` of completed work, before a command whose
// destination holds the source of work not committed yet (ordered, overlapping requests), before
// and after each memmove command, and when the copy stops.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "offcopy/request.hpp"
#include "offcopy/status.hpp"
#include "src/core/observer.hpp"

namespace offcopy::detail {

/// CRC32C (Castagnoli, reflected, as iSCSI and ext4 use it) of `n` bytes, continuing from `crc`.
[[nodiscard]] std::uint32_t crc32c(std::uint32_t crc, const void* data, std::size_t n) noexcept;

/// A device's identity that survives a reboot: a file's st_dev:st_ino, a block device's WWID
/// (NVMe NGUID/EUI64/UUID or vid+serial+model+nsid as the kernel builds it, SCSI VPD 0x83 NAA),
/// a loop device's backing file and offset, a dm device's UUID, else its major:minor; plus
/// "@OFFSET" for a partition (or any start within its medium).
[[nodiscard]] std::string stable_identity(const capabilities& caps);

/// The fingerprint a journal is bound to. `extents`: the request as given (empty: the whole
/// source). A source file's mtime is part of it unless source and destination are one medium.
[[nodiscard]] nlohmann::json journal_fingerprint(const capabilities& src, const capabilities& dst,
                                                 const std::vector<extent>& extents);

/// Sorted, merged, half-open byte ranges [lo, hi).
class range_set {
 public:
  void add(std::uint64_t lo, std::uint64_t hi);
  [[nodiscard]] bool covers(std::uint64_t lo, std::uint64_t hi) const;
  [[nodiscard]] bool intersects(std::uint64_t lo, std::uint64_t hi) const;
  /// The parts of [lo, hi) not in the set, ascending.
  [[nodiscard]] std::vector<std::pair<std::uint64_t, std::uint64_t>> missing(std::uint64_t lo, std::uint64_t hi) const;
  [[nodiscard]] std::uint64_t bytes_within(std::uint64_t lo, std::uint64_t hi) const;
  [[nodiscard]] const std::map<std::uint64_t, std::uint64_t>& ranges() const noexcept { return r_; }
  [[nodiscard]] bool empty() const noexcept { return r_.empty(); }
  void clear() noexcept { r_.clear(); }

 private:
  std::map<std::uint64_t, std::uint64_t> r_;  // lo -> hi
};

class journal final : public completion_observer {
 public:
  enum class access : std::uint8_t {
    read,   ///< plan: load an existing journal (a missing one is empty); never create or change it
    write,  ///< copy: load or create, lock (another process using it: busy), append
  };
  /// Limits of what is loaded: larger files are refused (a journal of 1,000,000 separate done
  /// ranges is 28 MB).
  static constexpr std::uint64_t max_file_bytes = 1ULL << 30;
  static constexpr std::uint32_t max_header_bytes = 1U << 20;
  static constexpr std::chrono::milliseconds commit_interval{1000};
  static constexpr std::uint64_t commit_bytes = 256ULL << 20;

  /// Opens `path` for a request whose fingerprint is `fingerprint`. An existing journal must
  /// carry the same fingerprint (invalid_argument naming the difference); a damaged one is
  /// invalid_argument; one held by another copy is busy; a file that is not regular is
  /// invalid_argument. `forbidden`: identities (capabilities::identity) the journal file must not
  /// be (the source and destination). Creating: the header is durable (file and directory
  /// fsync'ed) before this returns.
  [[nodiscard]] static result<std::unique_ptr<journal>> open(const std::string& path, const nlohmann::json& fingerprint,
                                                             access a, const std::vector<std::string>& forbidden);
  ~journal() override;
  journal(const journal&) = delete;
  journal& operator=(const journal&) = delete;

  [[nodiscard]] const std::string& path() const noexcept { return path_; }
  /// True when the journal held a header before (a resume), false when it was just created.
  [[nodiscard]] bool resumed() const noexcept { return resumed_; }
  [[nodiscard]] const range_set& done() const noexcept { return done_; }

  /// What a resume still has to copy: `extents`, the part of the request's extents (request
  /// order; empty: {0, 0, source_bytes}) not done yet, each extent split around done ranges, its
  /// pieces in its own copy order (from the end when it moves up on one medium); `done_bytes`, the
  /// bytes of the request already done.
  struct resume_work {
    std::vector<extent> extents;
    std::uint64_t done_bytes = 0;
  };
  /// The resume_work of a request. Errors: invalid_argument when a memmove command was interrupted.
  [[nodiscard]] result<resume_work> remaining(const std::vector<extent>& extents, std::uint64_t source_bytes,
                                              std::int64_t medium_delta) const;

  /// Binds a copy: `data_fd` is fdatasync'ed before records that claim its bytes are written
  /// (not owned; -1: nothing to sync); `ordered`: an overlapping request on one medium, whose
  /// `medium_delta` is destination start minus source start there.
  void bind(int data_fd, bool ordered, std::int64_t medium_delta) noexcept;

  [[nodiscard]] status before_submit(std::span<const plan_segment> segments, std::uint32_t block_bytes,
                                     bool memmove) override;
  [[nodiscard]] status completed(std::span<const plan_segment> segments, std::uint32_t block_bytes,
                                 std::uint64_t blocks, bool from_end) override;

  /// Makes everything recorded so far durable: the destination, then the records, then the journal.
  [[nodiscard]] status commit();
  /// The copy is complete: removes the journal file.
  [[nodiscard]] status remove();

  /// Records written to the file since it was opened (tests).
  [[nodiscard]] std::uint64_t records_written() const noexcept { return records_written_; }
  [[nodiscard]] std::uint64_t commits() const noexcept { return commits_; }

 private:
  journal() = default;
  [[nodiscard]] status load(const nlohmann::json& fingerprint);
  [[nodiscard]] status create(const nlohmann::json& fingerprint);
  [[nodiscard]] status append(const std::string& bytes);

  struct pending_range {
    std::uint64_t dst_lo = 0, dst_hi = 0, src_lo = 0;
  };

  std::string path_;
  int fd_ = -1;
  access access_ = access::read;
  bool resumed_ = false;
  std::uint32_t seed_ = 0;   ///< the header's CRC: seeds every record's
  std::uint64_t end_ = 0;    ///< file offset of the next record
  range_set done_;           ///< committed and pending
  range_set memmove_open_;   ///< memmove commands started and not known complete
  range_set memmove_begun_;  ///< loaded: every memmove command ever started
  std::vector<pending_range> pending_;
  std::uint64_t pending_bytes_ = 0;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> pending_memmove_;
  int data_fd_ = -1;
  bool ordered_ = false;
  std::int64_t medium_delta_ = 0;
  std::chrono::steady_clock::time_point last_commit_{};
  std::uint64_t records_written_ = 0;
  std::uint64_t commits_ = 0;
};

}  // namespace offcopy::detail
