// An in-process NVMe controller model: namespaces on memory or files, Copy (formats 0h-3h, across
// namespaces), Flush, Identify, Host Behavior Support (Get/Set Features 16h), the controller's
// limits and statuses in the order QEMU 10 checks them (hw/nvme/ctrl.c nvme_copy, nvme_do_copy),
// media errors like QEMU's blkdebug rules, and scripted faults.
//
// Two ways in: make_transport() hands the Copy session a transport on this model; attach_path()
// installs the model as the NVMe link factory, so the real backend (probe, pair check, transport
// choice, session) runs on it for files opened with device::open(). Either way tests see exactly
// the commands the backend sends (log()).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "src/core/backend.hpp"
#include "src/nvme/copy_encode.hpp"
#include "src/nvme/copy_session.hpp"
#include "src/nvme/transport.hpp"

namespace offcopy::testing {

/// One namespace; the controller-wide fields (ocfs, copy_supported, serial) are read from the
/// first namespace's config.
struct nvme_model_config {
  std::uint32_t nsid = 1;
  std::uint32_t lba_bytes = 512;
  std::uint64_t blocks = 8192;
  std::uint16_t mssrl = 128;
  std::uint32_t mcl = 128;
  std::uint8_t msrc_0based = 127;
  std::uint16_t metadata_bytes = 0;  ///< LBA format MS (separate buffer; the model keeps no metadata)
  std::uint8_t pi_type = 0;          ///< DPS bits 2:0
  std::uint8_t pi_format = 0;        ///< ELBAF PIF: 0 16-bit guard, 1 32-bit, 2 64-bit
  // Controller
  std::uint16_t ocfs = 0x3;
  bool copy_supported = true;  ///< false: Copy → Invalid Command Opcode (nvmet's answer)
  /// Check MSRC/MSSRL/MCL and answer 0x83 (a real controller; QEMU 7.2 does not check MCL).
  bool enforce_limits = true;
  /// The MCL actually enforced when lower than the advertised `mcl` (devices accept less than they
  /// advertise): over it → 0x83. 0 = enforce `mcl`.
  std::uint32_t enforced_mcl = 0;
  /// Host Behavior Support: false answers Get/Set Features 16h with Invalid Field.
  bool host_behavior_support = true;
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

/// How the transports of make_transport() (and of the links) behave besides executing commands:
/// the faults a Linux transport meets, and when completions come back. The numbers are 1-based
/// and count over every transport of the model.
struct nvme_transport_script {
  /// Not 0: a reap completes a random number (at least what was asked) of the pending commands,
  /// in random order, drawn from this seed; 0: all of them, in order (or reversed).
  std::uint32_t seed = 0;
  /// Not 0: a reap completes at most this many (and at least what was asked), oldest first
  /// unless `seed` shuffles them.
  std::uint32_t at_most_per_reap = 0;
  /// The k-th submit is refused (io_error, EAGAIN: what io_uring_submit answers when the kernel
  /// has no room); nothing is queued.
  std::uint64_t refuse_submit = 0;
  /// The k-th reap fails (io_error, EAGAIN) before completing anything ...
  std::uint64_t fail_reap = 0;
  /// ... and so does every later one: a broken ring, whose pending commands never come back.
  bool reaps_keep_failing = false;
  /// The k-th reap also returns a completion for a tag nobody submitted.
  std::uint64_t unknown_tag_at_reap = 0;
  /// The command of the k-th submit is cancelled by the driver after its timeout: it is not
  /// executed and completes with EINTR (Linux nvme_execute_rq: NVME_REQ_CANCELLED).
  std::uint64_t cancel_command = 0;
};

/// What the transports saw when they were torn down: the check that no buffer a command refers
/// to is freed while the command is outstanding. A transport destroyed with commands pending
/// reads their data buffers (ASan reports a freed one) and compares them with what was submitted.
struct nvme_transport_audit {
  std::uint64_t torn_down = 0;            ///< transports destroyed
  std::uint64_t pending_at_teardown = 0;  ///< commands submitted, never reaped, when their transport went
  std::uint64_t buffers_changed = 0;      ///< of those, data buffers whose bytes changed since submission
  std::uint64_t copy_blocks_written = 0;  ///< blocks written by Copy commands (every range the model ran)
};

/// One command as the controller saw it (admin commands: opcode, nsid, fields.format = 0).
struct nvme_model_record {
  bool admin = false;
  std::uint8_t opcode = 0;
  std::uint32_t nsid = 0;
  std::uint32_t cdw10 = 0;  ///< admin: Identify CNS / feature id
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
  ~nvme_model();
  nvme_model(const nvme_model&) = delete;
  nvme_model& operator=(const nvme_model&) = delete;

  /// Another namespace on this controller, media in memory (fd < 0) or on the file `fd`.
  void add_namespace(nvme_model_config ns, int fd = -1);

  /// The first namespace's config (and the controller's).
  [[nodiscard]] const nvme_model_config& config() const noexcept { return ns_.front().cfg; }
  nvme_model_config& config() noexcept { return ns_.front().cfg; }
  void inject(nvme_fault f) { faults_.push_back(f); }
  [[nodiscard]] const std::vector<nvme_model_record>& log() const noexcept { return log_; }
  void clear_log() { log_.clear(); }
  [[nodiscard]] std::uint64_t copies_received() const noexcept { return copies_; }
  /// Faults and timing of the transports handed out from now on (see nvme_transport_script).
  void script(nvme_transport_script s) {
    script_ = s;
    submits_ = reaps_ = 0;
  }
  [[nodiscard]] const nvme_transport_script& script() const noexcept { return script_; }
  [[nodiscard]] const nvme_transport_audit& audit() const noexcept { return audit_; }
  nvme_transport_audit& audit() noexcept { return audit_; }
  /// Transport bookkeeping (public for the transport class): the next submit's and reap's number.
  std::uint64_t next_submit() noexcept { return ++submits_; }
  std::uint64_t next_reap() noexcept { return ++reaps_; }

  /// Media errors, like QEMU blkdebug inject-error rules on the namespace image: a Copy range that
  /// reads block `lba` of namespace `nsid` fails with Unrecovered Read Error (02h/81h), one that
  /// writes it with Write Fault (02h/80h); neither sets DNR; DW0 = that range's index.
  void fail_reads(std::uint32_t nsid, std::uint64_t lba) { ns_at(nsid).bad_reads.insert(lba); }
  void fail_writes(std::uint32_t nsid, std::uint64_t lba) { ns_at(nsid).bad_writes.insert(lba); }

  /// The Host Behavior Support structure as Set Features left it.
  [[nodiscard]] std::array<std::uint8_t, 512>& host_behavior() noexcept { return hbs_; }
  /// What Linux does at every controller init and reset: Set Features 16h with a fresh structure
  /// carrying only LBAFEE (byte 2), which clears CDFE.
  void reset_controller();
  /// Just before the n-th Copy (1-based) is executed, the controller is reset (a reset racing a copy).
  void reset_before_copy(std::uint64_t n) { reset_before_.insert(n); }

  /// Executes one I/O command now.
  nvme::io_completion execute(const nvme::io_command& cmd);
  /// Executes one admin command now: Identify (CNS 00h, 01h, 05h), Get/Set Features 16h.
  nvme::io_completion admin(const nvme::admin_command& cmd);

  /// Media access (tests fill and check with these); without nsid: the first namespace.
  void write_blocks(std::uint64_t lba, const std::vector<std::uint8_t>& data) { write_blocks(first_nsid(), lba, data); }
  [[nodiscard]] std::vector<std::uint8_t> read_blocks(std::uint64_t lba, std::uint64_t count) const {
    return read_blocks(first_nsid(), lba, count);
  }
  void write_blocks(std::uint32_t nsid, std::uint64_t lba, const std::vector<std::uint8_t>& data);
  [[nodiscard]] std::vector<std::uint8_t> read_blocks(std::uint32_t nsid, std::uint64_t lba, std::uint64_t count) const;

  /// A transport on this model with `depth` commands outstanding; completions are produced at reap
  /// time, in reverse submission order when `reverse_completion` (exercises out-of-order reaping).
  [[nodiscard]] std::unique_ptr<nvme::transport> make_transport(unsigned depth, bool reverse_completion = false,
                                                                const char* name = "model");
  /// A link to namespace `nsid` of this model (what attach_path's factory hands the backend).
  /// `async` false: the namespace has no char device (open_async → not_supported).
  [[nodiscard]] std::unique_ptr<nvme::namespace_link> make_link(std::uint32_t nsid, bool async = true);
  /// device::open(path) probes namespace `nsid` of this model through the real NVMe backend.
  /// Installs the NVMe link factory (removed when the model is destroyed).
  void attach_path(const std::string& path, std::uint32_t nsid, bool async = true);

  /// Identify Controller / Namespace pages describing this model (4096 bytes each).
  [[nodiscard]] std::vector<std::uint8_t> identify_ctrl() const;
  [[nodiscard]] std::vector<std::uint8_t> identify_ns() const { return identify_ns(first_nsid()); }
  [[nodiscard]] std::vector<std::uint8_t> identify_ns(std::uint32_t nsid) const;

 private:
  struct ns_state {
    nvme_model_config cfg;
    int fd = -1;
    std::vector<std::uint8_t> mem;
    std::set<std::uint64_t> bad_reads, bad_writes;
  };
  [[nodiscard]] std::uint32_t first_nsid() const noexcept { return ns_.front().cfg.nsid; }
  ns_state* find_ns(std::uint32_t nsid);
  const ns_state* find_ns(std::uint32_t nsid) const;
  ns_state& ns_at(std::uint32_t nsid);
  std::uint16_t run_copy(ns_state& dst, const nvme::copy_fields& f, const std::vector<nvme::source_range>& ranges,
                         std::uint32_t& dw0, std::optional<nvme_fault> fault);

  std::vector<ns_state> ns_;
  std::vector<nvme_fault> faults_;
  std::set<std::uint64_t> reset_before_;
  std::vector<nvme_model_record> log_;
  std::uint64_t copies_ = 0;
  std::array<std::uint8_t, 512> hbs_{};
  std::map<std::string, std::pair<std::uint32_t, bool>> paths_;
  bool factory_installed_ = false;
  nvme_transport_script script_;
  nvme_transport_audit audit_;
  std::uint64_t submits_ = 0, reaps_ = 0;
};

/// A backend that offloads through the model: check() says yes with the model's limits for any pair
/// (regular files in tests), open_session() runs the real nvme::copy_session on the model transport.
/// Install with detail::replace_backend("nvme-copy", &b) and restore the previous one afterwards. (To run the
/// real NVMe backend on the model instead, use nvme_model::attach_path.)
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
