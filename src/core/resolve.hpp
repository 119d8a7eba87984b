// The resolution stage, between opening a device and planning: an endpoint becomes pieces
// (medium, medium offset, length). A medium is what a backend addresses: an NVMe namespace, a SCSI
// logical unit, a file, or a block device nothing resolves further. Identity, overlap, memmove
// order and page-cache coherence are decided on media (STYLE principle 13); backends only ever see
// media and medium offsets.
//
// A device is resolved into a small graph (a stack): nodes are devices, a node's targets map its
// bytes onto lower nodes. One resolver per kind of stacking, in one table in resolve.cpp:
//   partition      -> its disk, at the partition's start;
//   loop device    -> its backing file, at the loop offset (the same inode is the same medium);
//   device-mapper  -> `linear` target by target (recursively: dm on dm, dm on a partition),
//                     `striped` chunk by chunk, `multipath` to one active path of the logical unit
//                     (all paths are one medium); every other target is opaque: its bytes are
//                     copied through the dm device itself by a fallback, and the report names the
//                     target type.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "offcopy/device.hpp"
#include "offcopy/status.hpp"
#include "src/core/device_state.hpp"

namespace offcopy::detail {

/// One way down from a node: a partition, a loop device's file, a target of a dm table.
struct stack_target {
  enum class kind : std::uint8_t { direct, striped, opaque };
  kind what = kind::direct;
  std::uint64_t start_bytes = 0;  ///< in the node
  std::uint64_t length_bytes = 0;
  /// "partition", "loop", "dm linear", "dm striped", "dm multipath"; opaque: "dm <type>" (the reason)
  std::string type;
  struct lower {
    std::uint32_t node = 0;
    std::uint64_t offset_bytes = 0;  ///< where this target's first byte (stripe: chunk row 0) is on it
  };
  /// direct: one; striped: the stripes in order; opaque: every device the table uses (whole).
  std::vector<lower> lowers;
  std::uint64_t chunk_bytes = 0;  ///< striped
};

/// One device of a stack.
struct stack_node {
  enum class kind : std::uint8_t { medium, partition, loop, dm };
  kind what = kind::medium;
  std::string path;  ///< what opens it: /dev/dm-3, /dev/nvme0n1, a file
  std::string name;  ///< what people call it: /dev/mapper/vg-lv
  dev_t devno = 0;   ///< block devices (0: a file)
  std::uint64_t size_bytes = 0;
  std::vector<stack_target> targets;  ///< sorted by start, covering [0, size); empty for a medium
  std::int32_t medium = -1;           ///< index into resolution::media when its own device is a door
  std::string note;                   ///< why it was not resolved further (a loop file not reachable)
  std::string fingerprint;            ///< what must not change while a plan made on it runs
};

/// A medium, opened: its door is what a backend is given.
struct stack_medium {
  std::uint32_t node = 0;
  std::shared_ptr<device> door;  ///< nullptr: the resolved device itself (node 0)
  std::string path;
  std::string identity;                     ///< equal identities = the same bytes
  std::uint64_t identity_offset_bytes = 0;  ///< where the door starts on that medium (0: a whole medium)
  std::string opaque;                       ///< the door is a node holding opaque targets: why
};

/// Bytes of a medium an opaque target may read or write, at offsets nothing here knows.
struct opaque_touch {
  std::string identity;
  std::uint64_t start_bytes = 0;
  std::uint64_t end_bytes = 0;
  std::string reason;  ///< "dm crypt /dev/mapper/x"
};

/// An endpoint, resolved.
struct resolution {
  std::vector<stack_node> nodes;  ///< [0] is the resolved device
  std::vector<stack_medium> media;
  std::vector<opaque_touch> touches;
  /// True when the device is not simply its own medium (a partition, a dm device, a loop device).
  [[nodiscard]] bool stacked() const noexcept { return !nodes.empty() && !nodes[0].targets.empty(); }
  /// The door of medium m as a device state (`self` for node 0).
  [[nodiscard]] device_state& door(std::uint32_t m, device_state& self) const;
};

/// A piece of a range.
struct mapped_piece {
  std::uint64_t offset_bytes = 0;  ///< in the resolved device
  std::uint64_t length_bytes = 0;
  std::uint32_t medium = 0;
  std::uint64_t medium_offset_bytes = 0;  ///< on the medium's door
};

/// A target crossed on the way down to a piece.
struct piece_hop {
  std::uint32_t node = 0;
  const stack_target* target = nullptr;
};

/// Emits the pieces of [offset, offset + length) of node `from` (0: the resolved device), in order,
/// with the targets crossed top down. Pieces are not merged.
void map_range(const resolution& r, std::uint32_t from, std::uint64_t offset, std::uint64_t length,
               const std::function<void(const mapped_piece&, std::span<const piece_hop>)>& emit);

/// The pieces of [offset, offset + length) of the resolved device, neighbours on one medium that
/// are contiguous there merged.
[[nodiscard]] std::vector<mapped_piece> pieces_of(const resolution& r, std::uint64_t offset, std::uint64_t length);

/// The resolution of an open device: computed once per device object, and again when what it was
/// made from changed. Media are opened as the device was (read-only, or O_RDWR without O_EXCL).
/// Errors: busy (a suspended dm device, a table without a live map), io_error, not_found (a lower
/// device has no node in /dev), read_only. Thread-safe (under the device's mutex).
[[nodiscard]] result<std::shared_ptr<const resolution>> resolution_of(device_state& dev);

/// Re-reads what `r` was made from. Errors: busy, naming what changed ("device-mapper table of
/// vg-lv changed: event 3 -> 4").
[[nodiscard]] status check_unchanged(const resolution& r);

/// The medium identity of a whole block device: "lu:<wwid>" for a SCSI disk (every path to one
/// logical unit has the same), "blk:MAJOR:MINOR" otherwise.
[[nodiscard]] std::string block_medium_identity(unsigned major, unsigned minor);

/// Tests: whether loop devices resolve to their backing files (the default) or stay media of their
/// own, as block devices. On a host whose only block devices are loop devices, tests of the
/// block-device paths of the fallback copiers (O_DIRECT, BLKZEROOUT) turn it off. Not thread safe.
void set_loop_resolution(bool on) noexcept;

/// The resolution in public form (probe): pieces (at most `max_pieces` listed) and each medium's
/// capabilities, discovered.
void describe_resolution(const resolution& r, device_state& self, capabilities& out, std::size_t max_pieces);

}  // namespace offcopy::detail
