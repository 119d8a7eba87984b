// Verification: read both sides back, bypassing the page cache where the file system allows.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

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

/// What comparing one source with the destination found: ok, or the first error, and for a
/// mismatch the first differing destination byte.
struct comparison {
  status result;
  std::int64_t first_mismatch = -1;
};

comparison compare(const device& source, const device& destination, const std::vector<extent>& extents,
                   const std::atomic<bool>* cancel) {
  reader src, dst;
  if (auto s = src.open(source.caps()); !s.ok()) return {std::move(s)};
  if (auto s = dst.open(destination.caps()); !s.ok()) return {std::move(s)};
  constexpr std::uint64_t chunk = 4ULL << 20;
  for (const extent& e : extents) {
    for (std::uint64_t done = 0; done < e.length_bytes;) {
      if (cancel != nullptr && cancel->load())
        return {status(errc::cancelled, "cancelled by the caller during verification (the copy itself completed)")};
      std::uint64_t n = std::min(chunk, e.length_bytes - done);
      auto a = src.read(e.src_offset_bytes + done, n);
      if (!a.ok()) return {std::move(a).error()};
      auto b = dst.read(e.dst_offset_bytes + done, n);
      if (!b.ok()) return {std::move(b).error()};
      if (std::memcmp(a.value(), b.value(), n) != 0) {
        std::uint64_t i = 0;
        while (a.value()[i] == b.value()[i]) ++i;
        const auto at = static_cast<std::int64_t>(e.dst_offset_bytes + done + i);
        return {status(errc::verify_mismatch, fmt::format("verify: destination byte {} differs from source byte {}", at,
                                                          e.src_offset_bytes + done + i)),
                at};
      }
      done += n;
    }
  }
  return {};
}

}  // namespace

void verify_copy(const request& req, const plan& p, const std::atomic<bool>* cancel, report& rep) {
  if (!rep.result.ok()) return;
  if (p.ordered) {
    // Not a fallback reason (DESIGN §5: fallback_reason means a fallback happened).
    rep.verify_skipped = true;
    return;
  }
  const auto t0 = std::chrono::steady_clock::now();
  comparison found;
  if (!req.source || !req.destination) {
    found.result = status(errc::invalid_argument, "verify needs a source and a destination");
  } else {
    // Source by source: each compared with the destination ranges it was copied to.
    for (std::size_t k = 0; k <= req.sources.size() && found.result.ok(); ++k) {
      const std::shared_ptr<device>& source = k == 0 ? req.source : req.sources[k - 1];
      std::vector<extent> extents;
      for (const extent& e : req.extents)
        if (e.source == k) extents.push_back({e.src_offset_bytes, e.dst_offset_bytes, e.length_bytes});
      if (k == 0 && req.extents.empty()) extents.push_back({0, 0, req.source->caps().size_bytes});
      if (extents.empty()) continue;
      if (!source) {
        found.result = status(errc::invalid_argument, fmt::format("verify: source {} is missing", k));
        break;
      }
      found = compare(*source, *req.destination, extents, cancel);
    }
  }
  if (found.result.ok()) {
    rep.verified = true;
  } else {
    rep.first_mismatch_offset = found.first_mismatch;
    rep.result = std::move(found.result);
  }
  rep.time.verify_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace offcopy::detail
