// The backend contract: every copy mechanism is one of these, described by one registry row
// (src/core/registry.cpp: name, role, the device kinds it discovers, factory).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "offcopy/plan.hpp"
#include "offcopy/policy.hpp"
#include "offcopy/status.hpp"
#include "src/core/device_state.hpp"

namespace offcopy::detail {

/// Can a backend copy this pair, and within which limits?
struct pair_support {
  bool ok = false;
  std::string reason;             ///< why not (shown as the fallback reason)
  std::uint32_t block_bytes = 1;  ///< unit the backend addresses (logical block size)
  copy_limits limits;             ///< per-command limits, in block_bytes units
  bool offload = false;           ///< true for device-side copies (cache coherence handled by the engine)
};

/// One command handed to a session. `segments` is valid only during submit(): the engine may
/// grow its segment store (splits, partial re-sends) while the command is in flight, so a
/// session that needs the segments later must copy them.
struct command {
  std::uint64_t tag = 0;
  std::span<const plan_segment> segments;
  std::uint32_t block_bytes = 1;
  /// Not `any` only for a session whose runs_memmove_order() is true: one segment overlapping
  /// itself, to be copied in this order (the engine cuts it into pieces for the others).
  copy_order order = copy_order::any;
};

/// The outcome of one command.
struct completion {
  std::uint64_t tag = 0;
  status result;
  /// When result is an error: the blocks known copied, as a prefix of the segments in order
  /// (NVMe Copy: CQE DW0 = first range not copied) -- for a descending memmove command, counted
  /// from the end of its segment, the order it is copied in. Ignored on success.
  std::uint64_t blocks_done = 0;
  /// Of the blocks copied, those shared with the source (a reflink clone) rather than copied.
  std::uint64_t cloned_blocks = 0;
};

/// Executes commands for one source/destination pair.
class copy_session {
 public:
  virtual ~copy_session() = default;
  /// Commands this session can have outstanding (1 = synchronous).
  [[nodiscard]] virtual unsigned queue_depth() const noexcept { return 1; }
  /// True when the session copies a segment overlapping itself in the command's copy_order
  /// itself (or refuses it with not_supported); false: the engine sends such a segment as
  /// pieces no longer than the shift distance, one at a time.
  [[nodiscard]] virtual bool runs_memmove_order() const noexcept { return false; }
  /// Starts a command. A synchronous session runs it here and queues its completion for reap().
  [[nodiscard]] virtual status submit(const command& cmd) = 0;
  /// Waits until at least `min_completions` completions are available and appends them to `out`.
  [[nodiscard]] virtual status reap(unsigned min_completions, std::vector<completion>& out) = 0;
  /// Called once after the last command: make data durable (policy::sync).
  [[nodiscard]] virtual status finish() { return {}; }
};

class backend {
 public:
  virtual ~backend() = default;
  /// Discovery: adds this backend's offload_mechanism to dev.caps (and may attach backend data with
  /// dev.set). Runs on demand, at most once per device and backend (the core caches it); never fails.
  virtual void probe(device_state& dev) = 0;
  /// Whether this backend can copy from src to dst.
  [[nodiscard]] virtual pair_support check(const device_state& src, const device_state& dst,
                                           const policy& pol) const = 0;
  [[nodiscard]] virtual result<std::unique_ptr<copy_session>> open_session(device_state& src, device_state& dst,
                                                                           const policy& pol) = 0;
  /// A session whose commands each read several sources (a gathering part: plan_segment::source
  /// indexes `sources`). Every pair (sources[i], dst) must pass check(). Default: not_supported.
  [[nodiscard]] virtual result<std::unique_ptr<copy_session>> open_gather_session(
      std::span<device_state* const> sources, device_state& dst, const policy& pol) {
    (void)sources;
    (void)dst;
    (void)pol;
    return status(errc::not_supported, "this backend does not gather from several sources");
  }
};

/// What a backend is for: offload (device-side copy; cache coherence handled by the engine) or
/// fallback (host-side copy, tried in registry order when offload is impossible or refused).
enum class backend_role : std::uint8_t { offload, fallback };

/// Bit set of device_kind values (1 << kind).
using device_kinds = std::uint8_t;
[[nodiscard]] constexpr device_kinds kind_bit(device_kind k) noexcept {
  return static_cast<device_kinds>(1U << static_cast<unsigned>(k));
}
inline constexpr device_kinds all_device_kinds = 0xff;

/// One registry row: everything the core knows about a backend.
struct backend_row {
  std::string_view name;  ///< "nvme-copy": the name in policies, plans, reports and probe output
  backend_role role;
  device_kinds discovers;  ///< device kinds whose discovery (probe) can find something
  backend& (*factory)();
};

/// The rows, in default order of preference. Thread-safe (constant).
[[nodiscard]] std::span<const backend_row> registry() noexcept;
/// The row of `name`, or nullptr.
[[nodiscard]] const backend_row* find_row(std::string_view name) noexcept;
/// The backend instance serving `name` (the factory's, unless a test replaced it), or nullptr.
[[nodiscard]] backend* find_backend(std::string_view name) noexcept;
/// True for a registered backend with role offload.
[[nodiscard]] bool is_offload(std::string_view name) noexcept;
/// Tests: serves `name` with `b` (nullptr restores the factory's); returns the previous instance.
/// Not thread safe: call it before any device is opened or copied from another thread.
backend* replace_backend(std::string_view name, backend* b) noexcept;
/// Tests: sets the device kinds a backend discovers (e.g. SCSI models served from regular files),
/// or puts its registry row's back. Not thread safe, like replace_backend.
void set_discovered_kinds(std::string_view name, device_kinds kinds) noexcept;
void reset_discovered_kinds(std::string_view name) noexcept;

}  // namespace offcopy::detail
