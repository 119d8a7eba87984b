// An in-process NVMe controller model that executes Copy (and Flush) on a memory array or a file,
// with the controller's limits and statuses and injectable faults. It plugs into the Copy session
// through the nvme::transport seam, so tests see exactly the commands the backend sends.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "src/core/backend.hpp"
#include "src/nvme/copy_encode.hpp"
#include "src/nvme/copy_session.hpp"
#include "src/nvme/transport.hpp"

namespace offcopy::testing {

struct nvme_model_config {
  std::uint32_t nsid = 1;
  std::uint32_t lba_bytes = 512;
  std::uint64_t blocks = 8192;
  std::uint16_t mssrl = 128;
  std::uint32_t mcl = 128;
  std::uint8_t msrc_0based = 127;
  std::uint16_t ocfs = 0x3;
  bool copy_supported = true;  ///< false: Copy → Invalid Command Opcode (nvmet's answer)
  /// Check MSRC/MSSRL/MCL and answer 0x83 (a real controller; QEMU 7.2 does not check MCL).
  bool enforce_limits = true;
  /// The MCL actually enforced when lower than the advertised `mcl` (devices accept less than they
  /// advertise): over it → 0x83. 0 = enforce `mcl`.
  std::uint32_t enforced_mcl = 0;
};

/// A scripted failure: the `at_command`-th Copy (1-based, counting every Copy received) copies its
/// first `ranges_done` ranges, then completes with `raw_status` and DW0 = ranges_done.
struct nvme_fault {
  std::uint64_t at_command = 1;
  std::uint16_t raw_status = 0;
  std::uint32_t ranges_done = 0;
  /// DW0 to report instead of the ranges actually done (a misbehaving controller); -1 = honest.
  std::int64_t report_dw0 = -1;
};

/// One command as the controller saw it.
struct nvme_model_record {
  std::uint8_t opcode = 0;
  std::uint32_t nsid = 0;
  nvme::copy_fields fields;
  std::vector<nvme::source_range> ranges;
  std::uint16_t raw_status = 0;
  std::uint32_t dw0 = 0;
};

class nvme_model {
 public:
  /// Media in memory (zero-filled).
  explicit nvme_model(nvme_model_config cfg);
  /// Media is the file `fd` (pread/pwrite at lba * lba_bytes; not owned), so the core's fallback
  /// and verify see the same bytes.
  nvme_model(nvme_model_config cfg, int fd);

  [[nodiscard]] const nvme_model_config& config() const noexcept { return cfg_; }
  nvme_model_config& config() noexcept { return cfg_; }
  void inject(nvme_fault f) { faults_.push_back(f); }
  [[nodiscard]] const std::vector<nvme_model_record>& log() const noexcept { return log_; }
  void clear_log() { log_.clear(); }
  [[nodiscard]] std::uint64_t copies_received() const noexcept { return copies_; }

  /// Executes one command now.
  nvme::io_completion execute(const nvme::io_command& cmd);

  /// Media access (tests fill and check with these).
  void write_blocks(std::uint64_t lba, const std::vector<std::uint8_t>& data);
  [[nodiscard]] std::vector<std::uint8_t> read_blocks(std::uint64_t lba, std::uint64_t count) const;

  /// A transport on this model with `depth` commands outstanding; completions are produced at reap
  /// time, in reverse submission order when `reverse_completion` (exercises out-of-order reaping).
  [[nodiscard]] std::unique_ptr<nvme::transport> make_transport(unsigned depth, bool reverse_completion = false);

  /// Identify Controller / Namespace pages describing this model (4096 bytes each).
  [[nodiscard]] std::vector<std::uint8_t> identify_ctrl() const;
  [[nodiscard]] std::vector<std::uint8_t> identify_ns() const;

 private:
  std::uint16_t run_copy(const nvme::copy_fields& f, const std::vector<nvme::source_range>& ranges,
                         std::uint32_t& dw0, std::optional<nvme_fault> fault);
  nvme_model_config cfg_;
  int fd_ = -1;
  std::vector<std::uint8_t> mem_;
  std::vector<nvme_fault> faults_;
  std::vector<nvme_model_record> log_;
  std::uint64_t copies_ = 0;
};

/// A backend that offloads through the model: check() says yes with the model's limits for any pair
/// (regular files in tests), open_session() runs the real nvme::copy_session on the model transport.
/// Install with detail::replace_backend("nvme-copy", &b) and restore the previous one afterwards.
class nvme_model_backend final : public detail::backend {
 public:
  explicit nvme_model_backend(nvme_model& m, unsigned depth = 4, bool reverse_completion = false)
      : model_(m), depth_(depth), reverse_(reverse_completion) {}
  void probe(detail::device_state& dev) override;
  [[nodiscard]] detail::pair_support check(const detail::device_state& src, const detail::device_state& dst,
                                           const policy& pol) const override;
  [[nodiscard]] result<std::unique_ptr<detail::copy_session>> open_session(detail::device_state& src,
                                                                           detail::device_state& dst,
                                                                           const policy& pol) override;
  unsigned sessions_opened = 0;

 private:
  nvme_model& model_;
  unsigned depth_;
  bool reverse_;
};

}  // namespace offcopy::testing
