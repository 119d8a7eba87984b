// offcopy/plan.hpp: a request turned into backend commands, before anything is written.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "offcopy/device.hpp"
#include "offcopy/limits.hpp"
#include "offcopy/request.hpp"
#include "offcopy/timings.hpp"

namespace offcopy {
inline namespace v0 {

/// One contiguous piece of a command, in units of plan::block_bytes. Thread safety: a plain value.
struct plan_segment {
  std::uint64_t src_block = 0;
  std::uint64_t dst_block = 0;
  std::uint64_t blocks = 0;
  /// A gathering part's segments: which of plan_part::gathered it reads (0 otherwise).
  std::uint32_t source = 0;
  [[nodiscard]] bool operator==(const plan_segment&) const = default;
};

/// In which order the bytes of a batch may be copied.
enum class copy_order : std::uint8_t {
  any,         ///< the batch reads nothing it writes: any order, any concurrency
  ascending,   ///< one segment moving down onto itself: memmove order, from its first byte up
  descending,  ///< one segment moving up onto itself: memmove order, from its last byte down
};

/// "any", "ascending", "descending".
[[nodiscard]] OFFCOPY_API const char* to_string(copy_order order) noexcept;

/// One future command: segments [first_segment, first_segment + segment_count) of the plan.
/// Thread safety: a plain value.
struct plan_batch {
  std::uint32_t first_segment = 0;
  std::uint32_t segment_count = 0;
  /// Every earlier batch must be complete before this one starts (overlapping same-device copies).
  bool barrier = false;
  /// Not `any`: the batch is one segment that overlaps itself on the medium (a move by less than
  /// its length). A copier that cannot run it in that order itself gets it cut, as it runs, into
  /// pieces no longer than the shift distance (the engine does it: the plan stays small).
  copy_order order = copy_order::any;
  /// The part (plan::parts) whose backend runs it; its segments are in that part's block_bytes.
  std::uint32_t part = 0;
};

/// Why a backend was or was not chosen. Thread safety: a plain value.
struct backend_choice {
  std::string backend;  ///< registered name
  bool chosen = false;
  std::string reason;
};

/// One pair of media a request's bytes travel between (resolution: a partition's disk, the
/// namespaces under an LVM volume, a loop device's file), and the backend that copies them.
/// Segments of a part's batches are blocks of its media. Thread safety: a plain value.
struct plan_part {
  std::string backend;
  std::uint32_t block_bytes = 1;
  copy_limits limits;
  std::string source_medium;  ///< the device or file the backend reads
  std::string destination_medium;
  std::uint64_t bytes = 0;
  std::vector<backend_choice> considered;
  std::string fallback_reason;
  /// The request's bytes it carries, in the endpoints' own offsets, neighbours merged (empty
  /// when the plan has one part: all of them). Their `source` names the request's source.
  std::vector<extent> ranges;
  /// The request's source it reads (0 = request::source, k = request::sources[k - 1]); a
  /// gathering part: the first of gathered_sources.
  std::uint32_t source = 0;
  /// A gathering part (NVMe Copy format 2h/3h, one command reading several namespaces of one
  /// controller): the source media its segments read (plan_segment::source indexes it), and of
  /// each the request's source. Empty for every other part.
  std::vector<std::string> gathered;
  std::vector<std::uint32_t> gathered_sources;
  /// Of a gathering part: each gathered medium's MSSRL (max blocks per range), in `gathered` order.
  std::vector<std::uint32_t> gathered_segment_blocks;
  /// When the request moves as a whole (one piece on each side: a plain device, a file, a
  /// partition, a one-target dm device): where its bytes sit on the doors, door offset = the
  /// endpoint's offset + shift (a partition's start). 0 for a part cut from several pieces.
  std::uint64_t src_shift_bytes = 0;
  std::uint64_t dst_shift_bytes = 0;
  bool cut_from_pieces = false;  ///< its bytes were cut where pieces end: no single shift maps them
};

/// A request turned into backend commands, before anything is written. Thread safety: a plain value.
struct OFFCOPY_API plan {
  /// Registered name of the backend that runs the batches; with several parts, the one that
  /// carries the most bytes (`parts` has each).
  std::string backend;
  std::uint32_t block_bytes = 1;  ///< unit of the segments (of that part's; each part has its own)
  copy_limits limits;             ///< the limits the batches respect (that part's)
  std::vector<plan_segment> segments;
  std::vector<plan_batch> batches;
  std::vector<backend_choice> considered;  ///< backends tried in order, with reasons
  std::string fallback_reason;             ///< set when an offload backend was wanted but not used
  bool same_medium = false;                ///< source and destination share bytes
  bool ordered = false;                    ///< source/destination overlap: barriers in use
  timings time;                            ///< probe_seconds and plan_seconds of make_plan()
  /// One per pair of media (at least one for a plan from make_plan()); batches name theirs.
  std::vector<plan_part> parts;

  [[nodiscard]] std::uint64_t total_bytes() const noexcept;
  [[nodiscard]] std::uint64_t batch_blocks(const plan_batch& b) const noexcept;
  /// The unit of a batch's segments: its part's block_bytes (block_bytes without parts).
  [[nodiscard]] std::uint32_t batch_block_bytes(const plan_batch& b) const noexcept;
  /// Human-readable, one line per command (truncated past `max_commands`, 0 = all); terminal-safe.
  [[nodiscard]] std::string to_text(std::size_t max_commands = 0) const;
  /// JSON object: backend, block_bytes, limits, commands [[src, dst, blocks]...]; valid UTF-8.
  [[nodiscard]] std::string to_json(std::size_t max_commands = 0) const;
};

}  // namespace v0
}  // namespace offcopy
