// Verification: read both sides back, bypassing the page cache where the file system allows.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>

#include <fmt/format.h>

#include "offcopy/copy.hpp"
#include "src/core/device_state.hpp"
#include "src/core/sys.hpp"
#include "src/core/verify.hpp"

namespace offcopy::detail {
namespace {

struct free_deleter {
  void operator()(void* p) const noexcept { std::free(p); }
};

/// A read-only descriptor on the data of a device: O_DIRECT when possible.
class reader {
 public:
  status open(const capabilities& caps) {
    path_ = caps.block_path.empty() ? caps.path : caps.block_path;
    align_ = std::max<std::uint32_t>(caps.direct_io_align_bytes, 512);
    fd_ = sys().open(path_.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC, 0);
    if (fd_ < 0) {
      // tmpfs and some file systems refuse O_DIRECT: read through the cache after dropping it.
      direct_ = false;
      fd_ = sys().open(path_.c_str(), O_RDONLY | O_CLOEXEC, 0);
      if (fd_ < 0) return errno_status(errno, "verify: open " + path_);
      (void)sys().fdatasync(fd_);
      (void)sys().posix_fadvise(fd_, 0, 0, POSIX_FADV_DONTNEED);
    }
    return {};
  }
  ~reader() {
    if (fd_ >= 0) sys().close(fd_);
  }
  /// Reads [off, off+len) and returns a pointer to it inside an internal buffer.
  result<const std::uint8_t*> read(std::uint64_t off, std::uint64_t len) {
    std::uint64_t start = direct_ ? off / align_ * align_ : off;
    std::uint64_t end = direct_ ? (off + len + align_ - 1) / align_ * align_ : off + len;
    std::uint64_t need = end - start;
    if (need > cap_) {
      void* p = nullptr;
      if (::posix_memalign(&p, 4096, need) != 0) return status(errc::io_error, "verify: out of memory");
      buf_.reset(static_cast<std::uint8_t*>(p));
      cap_ = need;
    }
    std::uint64_t got = 0;
    while (start + got < off + len) {
      ssize_t n = sys().pread(fd_, buf_.get() + got, need - got, static_cast<off_t>(start + got));
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno_status(errno, "verify: read " + path_);
      }
      if (n == 0)
        return status(errc::io_error, fmt::format("verify: {}: unexpected end at byte {}", path_, start + got));
      got += static_cast<std::uint64_t>(n);
    }
    return static_cast<const std::uint8_t*>(buf_.get() + (off - start));
  }

 private:
  std::string path_;
  int fd_ = -1;
  bool direct_ = true;
  std::uint32_t align_ = 512;
  std::unique_ptr<std::uint8_t, free_deleter> buf_;
  std::uint64_t cap_ = 0;
};

}  // namespace

status verify_extents(const request& req, std::int64_t& first_mismatch, const std::atomic<bool>* cancel) {
  first_mismatch = -1;
  if (!req.source || !req.destination) return status(errc::invalid_argument, "verify needs a source and a destination");
  reader src, dst;
  if (auto s = src.open(req.source->caps()); !s.ok()) return s;
  if (auto s = dst.open(req.destination->caps()); !s.ok()) return s;
  std::vector<extent> extents = req.extents;
  if (extents.empty()) extents.push_back({0, 0, req.source->caps().size_bytes});
  constexpr std::uint64_t chunk = 4ULL << 20;
  for (const extent& e : extents) {
    for (std::uint64_t done = 0; done < e.length_bytes;) {
      if (cancel != nullptr && cancel->load())
        return status(errc::cancelled, "cancelled by the caller during verification (the copy itself completed)");
      std::uint64_t n = std::min(chunk, e.length_bytes - done);
      auto a = src.read(e.src_offset_bytes + done, n);
      if (!a.ok()) return std::move(a).error();
      auto b = dst.read(e.dst_offset_bytes + done, n);
      if (!b.ok()) return std::move(b).error();
      if (std::memcmp(a.value(), b.value(), n) != 0) {
        std::uint64_t i = 0;
        while (a.value()[i] == b.value()[i]) ++i;
        first_mismatch = static_cast<std::int64_t>(e.dst_offset_bytes + done + i);
        return status(errc::verify_mismatch, fmt::format("verify: destination byte {} differs from source byte {}",
                                                         first_mismatch, e.src_offset_bytes + done + i));
      }
      done += n;
    }
  }
  return {};
}

}  // namespace offcopy::detail
