// make_plan() in four steps, each in its own file: validate (plan_validate.cpp), resolve the
// endpoints into pieces on media and decide overlap there (plan_resolve.cpp), choose a backend per
// pair of media (plan_choose.cpp), pack the extents into commands (plan_pack.cpp).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "offcopy/copy.hpp"
#include "src/core/backend.hpp"
#include "src/core/planner.hpp"
#include "src/core/resolve.hpp"

namespace offcopy::detail {

/// The backend chosen for one pair of media.
struct chosen_backend {
  std::string name;
  pair_support support;
};

/// The bytes a request moves between one source medium and one destination medium.
struct media_pair {
  std::uint32_t src_medium = 0;  ///< index into the source's resolution media
  std::uint32_t dst_medium = 0;
  device_state* src = nullptr;  ///< their doors: what the backend is given
  device_state* dst = nullptr;
  std::string opaque;  ///< a side is a node nothing resolves further: why offload is not tried
  /// Unordered plans: what it copies, in the doors' offsets. Single-part plans keep the
  /// validated order (sorted by destination, or the request's for an ordered plan).
  std::vector<extent> extents;
  std::vector<std::uint32_t> extent_numbers;  ///< of each, the request's extent (0-based); empty: as validated
  std::vector<extent> ranges;                 ///< the same bytes in the endpoints' offsets (plan_part::ranges)
  /// The request moves as a whole (one piece on each side): extents are the validated ones
  /// shifted by where the pieces start on the doors.
  bool whole = false;
  std::uint64_t src_shift_bytes = 0, dst_shift_bytes = 0;
  std::int64_t delta_bytes = 0;  ///< where the destination door starts on a shared medium minus the source's
  bool same_medium = false;
  std::uint64_t bytes = 0;
  chosen_backend chosen;
};

/// What validation and resolution established about a request.
struct validated_request {
  std::vector<extent> extents;  ///< the request's (or the whole source), sorted by destination
  bool reordered = false;       ///< the sort changed the request's order
  bool hazard = false;          ///< a source shares bytes with a destination on one medium
  side_geometry src, dst;
  std::vector<std::string> candidates;  ///< backends to try, in order
  std::shared_ptr<const resolution> src_res, dst_res;
  std::vector<media_pair> pairs;
  /// Ordered plans of several pieces: the copy order, each step one piece of an extent in its
  /// doors' offsets (memmove of the extents in request order, on the media).
  struct step {
    std::uint32_t pair = 0;
    std::uint32_t extent_number = 0;  ///< the request's extent (0-based)
    extent e;
  };
  std::vector<step> sequence;
};

/// The first extent (numbered from 1 in messages, counted in request order) not a multiple of
/// `unit` bytes: its index and value, or -1.
[[nodiscard]] std::pair<std::int64_t, extent> first_misaligned_in_request(const request& req,
                                                                          const validated_request& v,
                                                                          std::uint32_t unit);

/// Validate: devices present, destination writable, backend names known, extents in bounds and
/// not writing the same bytes twice; in mode offload, equal block sizes and block-aligned
/// extents. Writes nothing, asks no backend.
[[nodiscard]] status validate_request(const request& req, const policy& pol, validated_request& out);

/// Resolve: both endpoints into pieces on media (opening the media), the extents cut where pieces
/// end and grouped by pair of media; overlap decided on the media (a hazard orders the plan;
/// refused with overlap when the policy forbids it, when an opaque target may touch what the
/// other side reads or writes directly, or when no order of the pieces gives memmove's result).
[[nodiscard]] status resolve_request(const request& req, const policy& pol, validated_request& v);

/// Choose: for each pair of media, asks the candidates in order (running each one's discovery on
/// both doors first, stopping at the first that accepts) and records the answers in p.parts.
/// Errors: misaligned (mode offload), not_supported (a pair no backend accepts; in mode offload,
/// a pair no offload backend accepts).
[[nodiscard]] status choose_backends(const request& req, const policy& pol, validated_request& v, plan& p);

/// Pack: each pair's backend limits (tightened by the policy's overrides for offload backends) and
/// its extents into p.segments / p.batches.
void pack_plan(const request& req, const policy& pol, validated_request& v, plan& p);

/// make_plan for a request with one source (request::sources empty): the four steps above.
[[nodiscard]] result<plan> make_single_source_plan(const request& req, const policy& pol);

/// make_plan for a request with several sources (plan_gather.cpp): request-wide checks (each
/// extent's source and its bounds, the destination's bounds and overlap over every source, bytes
/// one source reads that another source's extents write: overlap), one sub-plan per source (its
/// errors prefixed "source K (PATH)"), joined; then NVMe Copy parts writing one namespace from
/// namespaces of its controller merged into gathering parts (pack_gather).
[[nodiscard]] result<plan> make_gather_plan(const request& req, const policy& pol);

}  // namespace offcopy::detail
