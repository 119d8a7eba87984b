// sg_pt transport and sense → status conversion (the one place sg_pt's categories become status).
#include "src/scsi/transport.hpp"

#include <scsi/sg_lib.h>
#include <scsi/sg_pt.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <vector>

#include "src/core/device_state.hpp"
#include "src/core/signal_guard.hpp"
#include "src/scsi/wire.hpp"

namespace offcopy::detail::scsi {

namespace {

class sg_pt_transport final : public transport {
 public:
  sg_pt_transport(int fd, std::string name) : fd_(fd), name_(std::move(name)) {}
  ~sg_pt_transport() override {
    for (sg_pt_base* pt : idle_) destruct_scsi_pt_obj(pt);
  }
  sg_pt_transport(const sg_pt_transport&) = delete;
  sg_pt_transport& operator=(const sg_pt_transport&) = delete;

  scsi_reply execute(std::span<const std::uint8_t> cdb, data_direction dir, std::span<std::uint8_t> data,
                     unsigned timeout_seconds) override {
    scsi_reply reply;
    struct sg_pt_base* pt = take();
    if (pt == nullptr) {
      reply.os_errno = ENOMEM;
      return reply;
    }
    if (int err = get_scsi_pt_os_err(pt); err != 0) {
      destruct_scsi_pt_obj(pt);
      reply.os_errno = err;
      return reply;
    }
    std::uint8_t sense[96] = {};
    set_scsi_pt_cdb(pt, cdb.data(), static_cast<int>(cdb.size()));
    set_scsi_pt_sense(pt, sense, sizeof sense);
    if (dir == data_direction::to_device && !data.empty())
      set_scsi_pt_data_out(pt, data.data(), static_cast<int>(data.size()));
    else if (dir == data_direction::from_device && !data.empty())
      set_scsi_pt_data_in(pt, data.data(), static_cast<int>(data.size()));
    const int rc = do_scsi_pt(pt, -1, static_cast<int>(timeout_seconds), 0);
    if (rc < 0) {
      reply.os_errno = -rc;
    } else if (rc == SCSI_PT_DO_TIMEOUT) {
      reply.timed_out = true;
    } else if (rc != 0) {
      reply.os_errno = rc == SCSI_PT_DO_NOT_SUPPORTED ? ENOTTY : EINVAL;
    } else {
      switch (get_scsi_pt_result_category(pt)) {
        case SCSI_PT_RESULT_GOOD: break;
        case SCSI_PT_RESULT_STATUS:
        case SCSI_PT_RESULT_SENSE:
          reply.sam_status = static_cast<std::uint8_t>(get_scsi_pt_status_response(pt));
          if (reply.sam_status == 0) reply.sam_status = 0x02;  // sense without status: treat as CHECK CONDITION
          break;
        case SCSI_PT_RESULT_TRANSPORT_ERR: reply.transport_error = true; break;
        case SCSI_PT_RESULT_OS_ERR:
        default:
          reply.os_errno = get_scsi_pt_os_err(pt);
          if (reply.os_errno == 0) reply.os_errno = EIO;
          break;
      }
      const int sense_len = get_scsi_pt_sense_len(pt);
      if (sense_len > 0) reply.sense.assign(sense, sense + std::min<int>(sense_len, sizeof sense));
      const int resid = get_scsi_pt_resid(pt);
      if (dir == data_direction::from_device && resid > 0) reply.data_resid_bytes = static_cast<std::uint32_t>(resid);
    }
    give_back(pt);
    return reply;
  }

  std::string name() const override { return name_; }

 private:
  /// A pass-through object for one command. Constructing one examines the file descriptor
  /// (an fstat per command in libsgutils2 1.46); a cleared one is reused instead, one per thread
  /// that has a command outstanding at once.
  sg_pt_base* take() {
    {
      std::lock_guard lock(mu_);
      if (!idle_.empty()) {
        sg_pt_base* pt = idle_.back();
        idle_.pop_back();
        return pt;
      }
    }
    return construct_scsi_pt_obj_with_fd(fd_, 0);
  }
  void give_back(sg_pt_base* pt) {
    clear_scsi_pt_obj(pt);  // keeps the file descriptor
    std::lock_guard lock(mu_);
    idle_.push_back(pt);
  }

  int fd_;
  std::string name_;
  std::mutex mu_;
  std::vector<sg_pt_base*> idle_;
};

constexpr std::uint8_t third_party_copy_out = 0x83;

/// Every transport the backends get: signals wait while a copy command runs (src/core/signal_guard.hpp),
/// so no command is orphaned on the device or sent twice. Closes `owned_fd` when given.
class signal_safe_transport final : public transport {
 public:
  signal_safe_transport(std::unique_ptr<transport> inner, int owned_fd) : inner_(std::move(inner)), fd_(owned_fd) {}
  ~signal_safe_transport() override {
    inner_.reset();
    if (fd_ >= 0) ::close(fd_);
  }
  signal_safe_transport(const signal_safe_transport&) = delete;
  signal_safe_transport& operator=(const signal_safe_transport&) = delete;

  scsi_reply execute(std::span<const std::uint8_t> cdb, data_direction dir, std::span<std::uint8_t> data,
                     unsigned timeout_seconds) override {
    // THIRD-PARTY COPY OUT (83h: EXTENDED COPY, POPULATE TOKEN, WRITE USING TOKEN) is what a
    // device goes on running, and what must not be sent twice. Discovery's commands only read
    // (sending one again is harmless) and pay no signal-mask system calls.
    if (cdb.empty() || cdb[0] != third_party_copy_out) return inner_->execute(cdb, dir, data, timeout_seconds);
    signals_blocked quiet;
    return inner_->execute(cdb, dir, data, timeout_seconds);
  }
  std::string name() const override { return inner_->name(); }

 private:
  std::unique_ptr<transport> inner_;
  int fd_;
};

std::mutex factory_mutex;
transport_factory& factory_slot() {
  static transport_factory f;
  return f;
}

}  // namespace

std::unique_ptr<transport> make_sg_pt_transport(int fd, std::string name) {
  return std::make_unique<sg_pt_transport>(fd, std::move(name));
}

scsi_status_detail decode_sense(std::uint8_t sam_status, std::span<const std::uint8_t> sense) {
  scsi_status_detail d;
  d.status = sam_status;
  if (auto f = parse_sense(sense)) {
    d.sense_key = f->sense_key;
    d.asc = f->asc;
    d.ascq = f->ascq;
    std::uint64_t info = 0;
    d.information_valid = sg_get_sense_info_fld(sense.data(), static_cast<int>(sense.size()), &info);
    d.information = d.information_valid ? info : 0;
    char key[64] = {};
    char asc[160] = {};
    sg_get_sense_key_str(d.sense_key, sizeof key, key);
    sg_get_asc_ascq_str(d.asc, d.ascq, sizeof asc, asc);
    d.text = std::string(key) + ": " + asc;
  } else if (!sense.empty()) {
    char buf[512] = {};
    sg_get_sense_str(nullptr, sense.data(), static_cast<int>(sense.size()), false, sizeof buf, buf);
    d.text = buf;
    while (!d.text.empty() && (d.text.back() == '\n' || d.text.back() == ' ')) d.text.pop_back();
  } else {
    d.text = sam_status == 0x08 ? "BUSY" : sam_status == 0x18 ? "RESERVATION CONFLICT" : "no sense data";
  }
  return d;
}

status reply_status(const scsi_reply& reply, const std::string& what, const std::string& device) {
  const std::string ctx = what + " " + device;
  if (reply.os_errno != 0) {
    // The kernel refusing a pass-through opcode (no CAP_SYS_RAWIO, or not a SCSI device) means
    // this path cannot be used at all: not_supported, so the engine can fall back.
    if (reply.os_errno == EPERM || reply.os_errno == EACCES || reply.os_errno == ENOTTY || reply.os_errno == EINVAL ||
        reply.os_errno == ENOSYS)
      return status(errc::not_supported, ctx + ": pass-through refused: " + std::strerror(reply.os_errno),
                    reply.os_errno);
    return errno_status(reply.os_errno, ctx);
  }
  if (reply.timed_out) return status(errc::io_error, ctx + ": command timed out", ETIMEDOUT);
  if (reply.transport_error) return status(errc::io_error, ctx + ": transport error", EIO);
  if (reply.sam_status == 0) return {};
  auto detail = decode_sense(reply.sam_status, reply.sense);
  errc code = errc::device_error;
  if (auto f = parse_sense(reply.sense)) {
    switch (classify_sense(*f)) {
      case sense_meaning::not_supported: code = errc::not_supported; break;
      case sense_meaning::size_limit_exceeded: code = errc::size_limit_exceeded; break;
      case sense_meaning::out_of_range: code = errc::out_of_range; break;
      case sense_meaning::list_id_busy: code = errc::busy; break;
      default: code = errc::device_error; break;
    }
  } else if (reply.sam_status == 0x08 || reply.sam_status == 0x28) {
    code = errc::busy;
  }
  std::string text = detail.text;
  return status(code, ctx + ": " + text).with_scsi(std::move(detail));
}

void set_transport_factory(transport_factory factory) {
  std::lock_guard lock(factory_mutex);
  factory_slot() = std::move(factory);
}

std::unique_ptr<transport> open_transport(const device_state& dev) {
  transport_factory factory;
  {
    std::lock_guard lock(factory_mutex);
    factory = factory_slot();
  }
  std::unique_ptr<transport> t;
  int owned = -1;
  if (factory) {
    t = factory(dev);
    if (!t) return nullptr;
  } else {
    if (dev.fd < 0) return nullptr;
    if (dev.caps.kind != device_kind::block_device && dev.caps.kind != device_kind::scsi_generic) return nullptr;
    // /dev/sgN with a disk behind it (known once discovery ran): the commands go through the disk.
    // SG_IO on a block device waits uninterruptibly (blk_execute_rq); on the sg node even a stop
    // signal, which no thread can block, orphans the command and restarts the call -- sending
    // the command again.
    if (dev.caps.kind == device_kind::scsi_generic && !dev.caps.block_path.empty())
      owned = ::open(dev.caps.block_path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    t = make_sg_pt_transport(owned >= 0 ? owned : dev.fd, dev.caps.path);
  }
  return std::make_unique<signal_safe_transport>(std::move(t), owned);
}

}  // namespace offcopy::detail::scsi
