// Linux transports for NVMe I/O passthrough: the synchronous ioctl and io_uring URING_CMD.
// The kernel's convention (ioctl: -1/errno, 0, or >0 = NVMe status; io_uring: cqe->res <0 = -errno,
// >0 = NVMe status, big_cqe[0] = result) is converted to io_completion here and nowhere else.
#include <linux/nvme_ioctl.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>
#include <deque>

#include <liburing.h>

#include <fmt/format.h>

#include "src/nvme/transport.hpp"

namespace offcopy::nvme {
namespace {

class ioctl_transport final : public transport {
 public:
  explicit ioctl_transport(int fd) : fd_(fd) {}
  unsigned queue_depth() const noexcept override { return 1; }
  const char* name() const noexcept override { return "ioctl"; }

  status submit(const io_command& c) override {
    nvme_passthru_cmd64 cmd{};
    cmd.opcode = c.opcode;
    cmd.nsid = c.nsid;
    cmd.cdw2 = c.dw.cdw2;
    cmd.cdw3 = c.dw.cdw3;
    cmd.addr = reinterpret_cast<std::uintptr_t>(c.data);
    cmd.data_len = c.data_bytes;
    cmd.cdw10 = c.dw.cdw10;
    cmd.cdw11 = c.dw.cdw11;
    cmd.cdw12 = c.dw.cdw12;
    cmd.cdw13 = c.dw.cdw13;
    cmd.cdw14 = c.dw.cdw14;
    cmd.cdw15 = c.dw.cdw15;
    cmd.timeout_ms = c.timeout_ms;
    int rc;
    do {
      rc = ::ioctl(fd_, NVME_IOCTL_IO64_CMD, &cmd);
    } while (rc < 0 && errno == EINTR);
    io_completion done;
    done.user_tag = c.user_tag;
    if (rc < 0) {
      done.sys_errno = errno;
    } else {
      done.raw_status = static_cast<std::uint16_t>(rc);
      done.dw0 = static_cast<std::uint32_t>(cmd.result);
    }
    ready_.push_back(done);
    return {};
  }

  status reap(unsigned, std::vector<io_completion>& out) override {
    while (!ready_.empty()) {
      out.push_back(ready_.front());
      ready_.pop_front();
    }
    return {};
  }

 private:
  int fd_;
  std::deque<io_completion> ready_;
};

class uring_transport final : public transport {
 public:
  uring_transport(int fd, unsigned depth) : fd_(fd), depth_(depth) {}
  ~uring_transport() override {
    if (inited_) io_uring_queue_exit(&ring_);
  }
  uring_transport(const uring_transport&) = delete;
  uring_transport& operator=(const uring_transport&) = delete;

  status init() {
    int rc = io_uring_queue_init(depth_, &ring_, IORING_SETUP_SQE128 | IORING_SETUP_CQE32);
    if (rc < 0) {
      if (rc == -EINVAL || rc == -ENOSYS)
        return status(errc::not_supported, fmt::format("io_uring with SQE128|CQE32: {}", std::strerror(-rc)), -rc);
      return errno_status(-rc, "io_uring_queue_init");
    }
    inited_ = true;
    return {};
  }

  unsigned queue_depth() const noexcept override { return depth_; }
  const char* name() const noexcept override { return "io_uring"; }

  status submit(const io_command& c) override {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {
      if (auto s = flush(); !s.ok()) return s;
      sqe = io_uring_get_sqe(&ring_);
      if (sqe == nullptr) return status(errc::internal, "io_uring submission queue full");
    }
    std::memset(sqe, 0, 2 * sizeof(io_uring_sqe));  // SQE128: the command lives in the second half
    sqe->opcode = IORING_OP_URING_CMD;
    sqe->fd = fd_;
    sqe->cmd_op = NVME_URING_CMD_IO;
    sqe->user_data = c.user_tag;
    auto* cmd = reinterpret_cast<nvme_uring_cmd*>(sqe->cmd);
    cmd->opcode = c.opcode;
    cmd->nsid = c.nsid;
    cmd->cdw2 = c.dw.cdw2;
    cmd->cdw3 = c.dw.cdw3;
    cmd->addr = reinterpret_cast<std::uintptr_t>(c.data);
    cmd->data_len = c.data_bytes;
    cmd->cdw10 = c.dw.cdw10;
    cmd->cdw11 = c.dw.cdw11;
    cmd->cdw12 = c.dw.cdw12;
    cmd->cdw13 = c.dw.cdw13;
    cmd->cdw14 = c.dw.cdw14;
    cmd->cdw15 = c.dw.cdw15;
    cmd->timeout_ms = c.timeout_ms;
    ++queued_;
    return {};
  }

  status reap(unsigned min_completions, std::vector<io_completion>& out) override {
    if (auto s = flush(); !s.ok()) return s;
    unsigned got = 0;
    const unsigned want = min_completions < outstanding_ ? min_completions : outstanding_;
    while (outstanding_ > 0) {
      io_uring_cqe* cqe = nullptr;
      int rc = got < want ? io_uring_wait_cqe(&ring_, &cqe) : io_uring_peek_cqe(&ring_, &cqe);
      if (rc == -EAGAIN && got >= want) break;
      if (rc == -EINTR) continue;
      if (rc < 0) return errno_status(-rc, "io_uring_wait_cqe");
      io_completion done;
      done.user_tag = cqe->user_data;
      if (cqe->res < 0) {
        done.sys_errno = -cqe->res;
      } else {
        done.raw_status = static_cast<std::uint16_t>(cqe->res);
        done.dw0 = static_cast<std::uint32_t>(cqe->big_cqe[0]);
      }
      io_uring_cqe_seen(&ring_, cqe);
      --outstanding_;
      ++got;
      out.push_back(done);
    }
    return {};
  }

 private:
  status flush() {
    while (queued_ > 0) {
      int rc = io_uring_submit(&ring_);
      if (rc == -EINTR) continue;
      if (rc < 0) return errno_status(-rc, "io_uring_submit");
      queued_ -= static_cast<unsigned>(rc);
      outstanding_ += static_cast<unsigned>(rc);
      if (rc == 0) break;
    }
    return {};
  }

  int fd_;
  unsigned depth_;
  io_uring ring_{};
  bool inited_ = false;
  unsigned queued_ = 0;
  unsigned outstanding_ = 0;
};

}  // namespace

std::unique_ptr<transport> make_ioctl_transport(int fd) { return std::make_unique<ioctl_transport>(fd); }

result<std::unique_ptr<transport>> make_uring_transport(int char_fd, unsigned depth) {
  if (depth == 0) depth = 1;
  if (depth > 4096) depth = 4096;
  auto t = std::make_unique<uring_transport>(char_fd, depth);
  if (auto s = t->init(); !s.ok()) return s;
  return std::unique_ptr<transport>(std::move(t));
}

}  // namespace offcopy::nvme
