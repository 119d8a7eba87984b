// Linux transports for NVMe passthrough (the synchronous ioctl and io_uring URING_CMD) and the
// Linux namespace link (sysfs location, NVME_IOCTL_ID, admin ioctl, transport opening).
// The kernel's convention (ioctl: -1/errno, 0, or >0 = NVMe status; io_uring: cqe->res <0 = -errno,
// >0 = NVMe status, big_cqe[0] = result) is converted to io_completion here and nowhere else.
#include <fcntl.h>
#include <linux/nvme_ioctl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <regex>

#include <liburing.h>

#include <fmt/format.h>

#include "src/core/device_state.hpp"
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
    // No retry on EINTR: the wait inside the ioctl is not interruptible (blk_execute_rq), so EINTR
    // means the driver cancelled the command after its timeout or a reset (nvme_execute_rq,
    // NVME_REQ_CANCELLED) -- a Copy that may have run in part. It completes as an error; sending
    // it again could copy ranges it already overwrote.
    const int rc = ::ioctl(fd_, NVME_IOCTL_IO64_CMD, &cmd);
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
    if (!broken_.ok()) return broken_;
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {
      if (auto s = flush(); !s.ok()) return s;
      sqe = io_uring_get_sqe(&ring_);
      if (sqe == nullptr) return status(errc::io_error, "io_uring submission queue full", EAGAIN);
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
    queued_.push_back(c.user_tag);
    return {};
  }

  status reap(unsigned min_completions, std::vector<io_completion>& out) override {
    if (auto s = flush(); !s.ok()) {
      // The kernel takes no more commands: those it never took complete here with the reason
      // (their buffers may be freed: nothing refers to them), the ones it took are waited for.
      for (std::uint64_t tag : queued_) {
        io_completion never;
        never.user_tag = tag;
        never.sys_errno = s.sys_errno() != 0 ? s.sys_errno() : EIO;
        out.push_back(never);
      }
      queued_.clear();
      broken_ = s;
    }
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
  /// Hands the queued commands to the kernel. EAGAIN/EBUSY (no request memory, a full completion
  /// queue) is back-pressure, not a failure: with commands outstanding the caller reaps and the
  /// rest goes with the next flush; with none, a few short waits before giving up. The kernel
  /// takes SQEs in order and none of them when it returns an error (io_submit_sqes), so the
  /// queued tags say exactly which commands it has.
  status flush() {
    if (!broken_.ok()) return broken_;
    unsigned waits = 0;
    while (!queued_.empty()) {
      const int rc = io_uring_submit(&ring_);
      if (rc == -EINTR) continue;
      if (rc == -EAGAIN || rc == -EBUSY) {
        if (outstanding_ > 0) return {};
        if (++waits > max_submit_waits) return errno_status(-rc, "io_uring_submit");
        ::usleep(1000);
        continue;
      }
      if (rc < 0) return errno_status(-rc, "io_uring_submit");
      const auto n = std::min<std::size_t>(static_cast<std::size_t>(rc), queued_.size());
      queued_.erase(queued_.begin(), queued_.begin() + static_cast<std::ptrdiff_t>(n));
      outstanding_ += static_cast<unsigned>(n);
      if (rc == 0) break;
    }
    return {};
  }

  static constexpr unsigned max_submit_waits = 100;
  int fd_;
  unsigned depth_;
  io_uring ring_{};
  bool inited_ = false;
  std::deque<std::uint64_t> queued_;  ///< tags in the submission queue, not yet taken by the kernel
  unsigned outstanding_ = 0;          ///< taken by the kernel, not yet reaped
  status broken_;                     ///< a submission failed for good: nothing more is sent
};

/// A transport that also closes the char device it was opened on.
class owning_transport final : public transport {
 public:
  owning_transport(std::unique_ptr<transport> inner, int fd) : inner_(std::move(inner)), fd_(fd) {}
  ~owning_transport() override {
    inner_.reset();
    if (fd_ >= 0) ::close(fd_);
  }
  owning_transport(const owning_transport&) = delete;
  owning_transport& operator=(const owning_transport&) = delete;
  unsigned queue_depth() const noexcept override { return inner_->queue_depth(); }
  const char* name() const noexcept override { return inner_->name(); }
  status submit(const io_command& c) override { return inner_->submit(c); }
  status reap(unsigned n, std::vector<io_completion>& out) override { return inner_->reap(n, out); }

 private:
  std::unique_ptr<transport> inner_;
  int fd_;
};

std::string real_path(const std::string& p) {
  char buf[PATH_MAX];
  if (::realpath(p.c_str(), buf) == nullptr) return {};
  return buf;
}

std::string base_name(const std::string& p) {
  auto pos = p.find_last_of('/');
  return pos == std::string::npos ? p : p.substr(pos + 1);
}

std::string dir_name(const std::string& p) {
  auto pos = p.find_last_of('/');
  return pos == std::string::npos ? std::string() : p.substr(0, pos);
}

std::string read_line(const std::string& path) {
  std::ifstream f(path);
  std::string s;
  if (f) std::getline(f, s);
  return s;
}

bool is_char_device(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISCHR(st.st_mode);
}

/// "nvme0n1" → "ng0n1" (the generic char device mirrors the disk name).
std::string char_name_of(const std::string& disk) {
  return disk.rfind("nvme", 0) == 0 ? "ng" + disk.substr(4) : std::string();
}
/// "ng0n1" → "nvme0n1".
std::string disk_name_of(const std::string& chr) {
  return chr.rfind("ng", 0) == 0 ? "nvme" + chr.substr(2) : std::string();
}

/// Controllers of a native-multipath subsystem: its sysfs directory lists them as nvmeN.
unsigned subsystem_controller_count(const std::string& subsystem_dir) {
  static const std::regex ctrl_name("nvme[0-9]+");
  unsigned n = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(subsystem_dir, ec))
    if (std::regex_match(e.path().filename().string(), ctrl_name)) ++n;
  return n;
}

class linux_link final : public namespace_link {
 public:
  linux_link(int fd, namespace_location loc) : fd_(fd), loc_(std::move(loc)) {}
  const namespace_location& location() const noexcept override { return loc_; }

  result<std::uint32_t> nsid() override {
    int rc;
    do {
      rc = ::ioctl(fd_, NVME_IOCTL_ID);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0) return errno_status(errno, "NVME_IOCTL_ID");
    return static_cast<std::uint32_t>(rc);
  }

  io_completion admin(const admin_command& c) override {
    nvme_passthru_cmd cmd{};
    cmd.opcode = c.opcode;
    cmd.nsid = c.nsid;
    cmd.addr = reinterpret_cast<std::uintptr_t>(c.data);
    cmd.data_len = c.data_bytes;
    cmd.cdw10 = c.cdw10;
    cmd.cdw11 = c.cdw11;
    cmd.cdw12 = c.cdw12;
    cmd.cdw13 = c.cdw13;
    cmd.cdw14 = c.cdw14;
    cmd.cdw15 = c.cdw15;
    int rc;
    do {
      rc = ::ioctl(fd_, NVME_IOCTL_ADMIN_CMD, &cmd);
    } while (rc < 0 && errno == EINTR);
    io_completion done;
    if (rc < 0) {
      done.sys_errno = errno;
    } else {
      done.raw_status = static_cast<std::uint16_t>(rc);
      done.dw0 = cmd.result;
    }
    return done;
  }

  std::unique_ptr<transport> open_sync() override { return make_ioctl_transport(fd_); }

  result<std::unique_ptr<transport>> open_async(unsigned depth) override {
    if (loc_.char_path.empty())
      return status(errc::not_supported,
                    fmt::format("asynchronous NVMe Copy needs the char device of {}", loc_.disk_name));
    // A namespace opened as its block device opens its twin /dev/ngXnY.
    const bool own = !loc_.is_char;
    int fd = own ? ::open(loc_.char_path.c_str(), O_RDWR | O_CLOEXEC) : fd_;
    if (fd < 0) return errno_status(errno, "open " + loc_.char_path);
    auto r = make_uring_transport(fd, depth);
    if (!r.ok()) {
      if (own) ::close(fd);
      return std::move(r).error();
    }
    return std::unique_ptr<transport>(std::make_unique<owning_transport>(std::move(r.value()), own ? fd : -1));
  }

 private:
  int fd_;
  namespace_location loc_;
};

std::mutex factory_mutex;
link_factory& factory_slot() {
  static link_factory f;
  return f;
}

}  // namespace

std::unique_ptr<namespace_link> make_linux_link(const detail::device_state& dev) {
  const capabilities& caps = dev.caps;
  if (dev.fd < 0) return nullptr;
  if (caps.kind != device_kind::block_device && caps.kind != device_kind::nvme_char) return nullptr;
  dev_t rdev = dev.key.dev;
  if (rdev == 0) {
    struct stat st {};
    if (::fstat(dev.fd, &st) != 0) return nullptr;
    rdev = st.st_rdev;
  }
  namespace_location loc;
  loc.is_char = caps.kind == device_kind::nvme_char;
  const std::string node_link =
      fmt::format("/sys/dev/{}/{}:{}", loc.is_char ? "char" : "block", major(rdev), minor(rdev));
  // Not a namespace (a SCSI disk, a loop device): decided from the node's name with one readlink,
  // before any sysfs path is resolved -- realpath() costs a readlink per path component, about
  // twenty system calls for each device that turns out not to be NVMe (issue 11 fixed cost).
  {
    char target[PATH_MAX];
    const ssize_t n = ::readlink(node_link.c_str(), target, sizeof target - 1);
    if (n <= 0) return nullptr;
    const std::string name = base_name(std::string(target, static_cast<std::size_t>(n)));
    if (name.rfind(loc.is_char ? "ng" : "nvme", 0) != 0) return nullptr;
  }
  // sysfs node of the namespace; its parent directory is the controller (or the multipath
  // subsystem), the scope within which Copy can read. A partition is not a namespace: the
  // resolution stage (src/core/resolve.hpp) gives the backend its namespace and namespace LBAs.
  std::string sys = real_path(node_link);
  if (!loc.is_char && !read_line(sys + "/partition").empty()) return nullptr;
  const std::string node = base_name(sys);
  const std::string parent = dir_name(sys);
  loc.controller = base_name(parent);
  loc.disk_name = loc.is_char ? disk_name_of(node) : node;
  if (loc.disk_name.rfind("nvme", 0) != 0) return nullptr;  // not an NVMe namespace
  if (loc.controller.rfind("nvme-subsys", 0) == 0) loc.subsystem_controllers = subsystem_controller_count(parent);
  const std::string chr = "/dev/" + char_name_of(loc.disk_name);
  if (loc.is_char) {
    loc.char_path = caps.path;
  } else if (is_char_device(chr)) {
    loc.char_path = chr;
  }
  return std::make_unique<linux_link>(dev.fd, std::move(loc));
}

void set_link_factory(link_factory factory) {
  std::lock_guard lock(factory_mutex);
  factory_slot() = std::move(factory);
}

std::unique_ptr<namespace_link> open_link(const detail::device_state& dev) {
  {
    std::lock_guard lock(factory_mutex);
    if (factory_slot()) return factory_slot()(dev);
  }
  return make_linux_link(dev);
}

std::unique_ptr<transport> make_ioctl_transport(int fd) { return std::make_unique<ioctl_transport>(fd); }

result<std::unique_ptr<transport>> make_uring_transport(int char_fd, unsigned depth) {
  if (depth == 0) depth = 1;
  if (depth > 4096) depth = 4096;
  auto t = std::make_unique<uring_transport>(char_fd, depth);
  if (auto s = t->init(); !s.ok()) return s;
  return std::unique_ptr<transport>(std::move(t));
}

}  // namespace offcopy::nvme
