// The journal of a resumable copy: see journal.hpp and docs/reliability.md.
#include "src/core/journal.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "src/core/sys.hpp"
#include "src/core/text.hpp"

namespace offcopy::detail {
namespace {

constexpr std::string_view magic = "OFFCOPY-JOURNAL1";  // 16 bytes
static_assert(magic.size() == 16);
enum record_kind : std::uint32_t { kind_header = 1, kind_done = 2, kind_memmove = 3 };
constexpr std::size_t range_payload_bytes = 16;
constexpr std::size_t record_overhead_bytes = 12;  // kind, length, CRC

std::array<std::uint32_t, 256> make_crc_table() {
  std::array<std::uint32_t, 256> t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78U : c >> 1;  // reflected Castagnoli
    t[i] = c;
  }
  return t;
}

void put_u32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put_u64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
std::uint32_t get_u32(const std::string& s, std::size_t at) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<std::uint8_t>(s[at + static_cast<std::size_t>(i)]);
  return v;
}
std::uint64_t get_u64(const std::string& s, std::size_t at) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<std::uint8_t>(s[at + static_cast<std::size_t>(i)]);
  return v;
}

/// kind, length, payload, CRC32C(seed; kind, length, payload).
std::string encode_record(std::uint32_t kind, std::string_view payload, std::uint32_t seed) {
  std::string r;
  put_u32(r, kind);
  put_u32(r, static_cast<std::uint32_t>(payload.size()));
  r.append(payload);
  put_u32(r, crc32c(seed, r.data(), r.size()));
  return r;
}

std::string range_record(std::uint32_t kind, std::uint64_t lo, std::uint64_t hi, std::uint32_t seed) {
  std::string p;
  put_u64(p, lo);
  put_u64(p, hi);
  return encode_record(kind, p, seed);
}

std::string dirname_of(const std::string& p) {
  auto pos = p.find_last_of('/');
  if (pos == std::string::npos) return ".";
  return pos == 0 ? "/" : p.substr(0, pos);
}

std::string file_identity(const struct stat& st) {
  return fmt::format("file:{}:{}:{}", major(st.st_dev), minor(st.st_dev), st.st_ino);
}

status sync_fd(int fd, const std::string& what) {
  for (;;) {
    if (sys().fdatasync(fd) == 0) return {};
    if (errno != EINTR) return errno_status(errno, what);
  }
}

/// The first field that differs between two fingerprints, said for a user; empty when equal.
std::string fingerprint_difference(const nlohmann::json& was, const nlohmann::json& now) {
  if (was.value("format", 0) != now.value("format", 0))
    return fmt::format("it has format {}, this offcopy writes {}", was.value("format", 0), now.value("format", 0));
  if (was.value("request", nlohmann::json()) != now.value("request", nlohmann::json()))
    return "the extents differ from those of the request it was started for";
  for (const char* side : {"source", "destination"}) {
    const nlohmann::json a = was.value(side, nlohmann::json::object());
    const nlohmann::json b = now.value(side, nlohmann::json::object());
    if (a.value("identity", "") != b.value("identity", ""))
      return fmt::format("the {} is another file or device (journal: {}, now: {})", side, a.value("identity", ""),
                         b.value("identity", ""));
    for (const auto& [k, v] : a.items()) {
      if (!b.contains(k) || b[k] != v)
        return fmt::format("the {}'s {} changed (journal: {}, now: {})", side, k, v.dump(),
                           b.contains(k) ? b[k].dump() : std::string("none"));
    }
    for (const auto& [k, v] : b.items())
      if (!a.contains(k)) return fmt::format("the {}'s {} changed (journal: none, now: {})", side, k, v.dump());
  }
  return {};
}

}  // namespace

std::uint32_t crc32c(std::uint32_t crc, const void* data, std::size_t n) noexcept {
  static const std::array<std::uint32_t, 256> table = make_crc_table();
  const auto* p = static_cast<const std::uint8_t*>(data);
  crc = ~crc;
  for (std::size_t i = 0; i < n; ++i) crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

// ---- stable identities ------------------------------------------------------------------------

std::string stable_identity(const capabilities& caps) {
  if (caps.kind == device_kind::regular_file) return caps.identity;
  // "blk:MAJ:MIN" of the whole medium (a partition's parent), from open().
  std::string id = caps.identity;
  if (id.rfind("blk:", 0) == 0) {
    const std::string sys_dir = "/sys/dev/block/" + id.substr(4);
    std::string wwid = read_first_line(sys_dir + "/wwid");
    if (wwid.empty()) wwid = read_first_line(sys_dir + "/device/wwid");
    std::string backing = read_first_line(sys_dir + "/loop/backing_file");
    std::string dm_uuid = read_first_line(sys_dir + "/dm/uuid");
    struct stat st {};
    if (!wwid.empty()) {
      id = "wwid:" + wwid;
    } else if (!backing.empty() && sys().stat(backing.c_str(), &st) == 0) {
      id = fmt::format("loop:{}+{}", file_identity(st), read_first_line(sys_dir + "/loop/offset"));
    } else if (!dm_uuid.empty()) {
      id = "dm:" + dm_uuid;
    }
  }
  if (caps.identity_offset_bytes != 0) id += fmt::format("@{}", caps.identity_offset_bytes);
  return id;
}

nlohmann::json journal_fingerprint(const capabilities& src, const capabilities& dst,
                                   const std::vector<extent>& extents) {
  const bool one_medium = !src.identity.empty() && src.identity == dst.identity;
  auto side = [&](const capabilities& c, bool destination) {
    nlohmann::json j = {{"identity", valid_utf8(stable_identity(c))}, {"logical_block_bytes", c.logical_block_bytes}};
    // A file destination grows while it is written: its size is not part of its identity.
    if (!(destination && c.kind == device_kind::regular_file)) j["size_bytes"] = c.size_bytes;
    if (!destination && c.kind == device_kind::regular_file && !one_medium) {
      struct stat st {};
      if (sys().stat(c.path.c_str(), &st) == 0)
        j["mtime_ns"] = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    }
    return j;
  };
  std::uint32_t crc = 0;
  std::uint64_t bytes = 0;
  for (const extent& e : extents) {
    std::string b;
    put_u64(b, e.src_offset_bytes);
    put_u64(b, e.dst_offset_bytes);
    put_u64(b, e.length_bytes);
    crc = crc32c(crc, b.data(), b.size());
    bytes += e.length_bytes;
  }
  return {{"format", 1},
          {"source", side(src, false)},
          {"destination", side(dst, true)},
          {"request",
           {{"extents", extents.size()},
            {"bytes", extents.empty() ? src.size_bytes : bytes},
            {"crc32c", fmt::format("{:#010x}", crc)}}},
          // Not compared: for people reading the file.
          {"paths", {{"source", valid_utf8(src.path)}, {"destination", valid_utf8(dst.path)}}}};
}

// ---- range_set --------------------------------------------------------------------------------

void range_set::add(std::uint64_t lo, std::uint64_t hi) {
  if (lo >= hi) return;
  auto next = r_.upper_bound(lo);
  if (next != r_.begin()) {
    auto prev = std::prev(next);
    if (prev->second >= lo) {
      lo = prev->first;
      hi = std::max(hi, prev->second);
      r_.erase(prev);
    }
  }
  for (next = r_.lower_bound(lo); next != r_.end() && next->first <= hi;) {
    hi = std::max(hi, next->second);
    next = r_.erase(next);
  }
  r_.emplace(lo, hi);
}

bool range_set::covers(std::uint64_t lo, std::uint64_t hi) const {
  if (lo >= hi) return true;
  auto it = r_.upper_bound(lo);
  if (it == r_.begin()) return false;
  --it;
  return it->first <= lo && it->second >= hi;
}

bool range_set::intersects(std::uint64_t lo, std::uint64_t hi) const {
  if (lo >= hi) return false;
  auto it = r_.lower_bound(hi);  // first range starting at or after hi: never intersects
  if (it == r_.begin()) return false;
  --it;
  return it->second > lo;
}

std::vector<std::pair<std::uint64_t, std::uint64_t>> range_set::missing(std::uint64_t lo, std::uint64_t hi) const {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
  std::uint64_t at = lo;
  auto it = r_.upper_bound(lo);
  if (it != r_.begin()) --it;
  for (; it != r_.end() && it->first < hi; ++it) {
    if (it->second <= at) continue;
    if (it->first > at) out.emplace_back(at, it->first);
    at = std::max(at, it->second);
    if (at >= hi) break;
  }
  if (at < hi) out.emplace_back(at, hi);
  return out;
}

std::uint64_t range_set::bytes_within(std::uint64_t lo, std::uint64_t hi) const {
  std::uint64_t missing_bytes = 0;
  for (auto [a, b] : missing(lo, hi)) missing_bytes += b - a;
  return (hi - lo) - missing_bytes;
}

// ---- the journal ------------------------------------------------------------------------------

journal::~journal() {
  if (fd_ >= 0) sys().close(fd_);
}

result<std::unique_ptr<journal>> journal::open(const std::string& path, const nlohmann::json& fingerprint, access a,
                                               const std::vector<std::string>& forbidden) {
  if (path.empty()) return status(errc::invalid_argument, "journal: empty path");
  if (path.find('\0') != std::string::npos)
    return status(errc::invalid_argument, "journal: the path contains a NUL byte");
  std::unique_ptr<journal> j(new journal);
  j->path_ = path;
  j->access_ = a;
  const int flags = O_CLOEXEC | (a == access::write ? O_RDWR | O_CREAT : O_RDONLY);
  j->fd_ = sys().open(path.c_str(), flags, 0644);
  if (j->fd_ < 0) {
    int err = errno;
    if (a == access::read && err == ENOENT) return j;  // plan: nothing done yet
    return errno_status(err, "journal " + path);
  }
  struct stat st {};
  if (sys().fstat(j->fd_, &st) != 0) return errno_status(errno, "journal " + path);
  if (!S_ISREG(st.st_mode)) return status(errc::invalid_argument, fmt::format("journal {}: not a regular file", path));
  if (std::find(forbidden.begin(), forbidden.end(), file_identity(st)) != forbidden.end())
    return status(errc::invalid_argument,
                  fmt::format("journal {}: is the source or the destination of the copy", path));
  if (a == access::write && ::flock(j->fd_, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    if (err == EWOULDBLOCK) return status(errc::busy, fmt::format("journal {}: in use by another copy", path), err);
    return errno_status(err, "journal " + path + ": lock");
  }
  if (static_cast<std::uint64_t>(st.st_size) > max_file_bytes)
    return status(errc::invalid_argument, fmt::format("journal {}: {} bytes, more than a journal can be ({})", path,
                                                      st.st_size, max_file_bytes));
  if (auto s = j->load(fingerprint); !s.ok()) return s;
  if (!j->resumed_ && a == access::write) {
    if (auto s = j->create(fingerprint); !s.ok()) return s;
  }
  return j;
}

status journal::load(const nlohmann::json& fingerprint) {
  struct stat st {};
  if (sys().fstat(fd_, &st) != 0) return errno_status(errno, "journal " + path_);
  std::string data(static_cast<std::size_t>(st.st_size), '\0');
  for (std::size_t got = 0; got < data.size();) {
    ssize_t n = sys().pread(fd_, data.data() + got, data.size() - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_status(errno, "journal " + path_ + ": read");
    if (n == 0) {
      data.resize(got);
      break;
    }
    got += static_cast<std::size_t>(n);
  }
  auto damaged = [&](std::string_view why) {
    return status(
        errc::invalid_argument,
        fmt::format("journal {}: not an offcopy journal, or damaged ({}); remove it to start over", path_, why));
  };
  // Nothing, or a creation cut short (the header is made durable before any byte is copied): a
  // new journal.
  const bool magic_prefix = data.size() <= magic.size() && magic.substr(0, data.size()) == data;
  if (magic_prefix) return {};
  if (data.compare(0, magic.size(), magic) != 0) return damaged("no journal signature");
  std::size_t at = magic.size();
  if (data.size() < at + 8) return {};
  const std::uint32_t kind = get_u32(data, at), length = get_u32(data, at + 4);
  if (kind != kind_header || length > max_header_bytes) return damaged("bad header");
  const std::size_t header_end = at + 8 + length + 4;
  if (data.size() < header_end) return {};  // creation cut short
  if (crc32c(0, data.data() + at, 8 + length) != get_u32(data, at + 8 + length)) {
    if (data.size() == header_end) return {};  // the header's own write torn: nothing was copied under it
    return damaged("header checksum");
  }
  nlohmann::json header =
      nlohmann::json::parse(data.begin() + static_cast<std::ptrdiff_t>(at + 8),
                            data.begin() + static_cast<std::ptrdiff_t>(at + 8 + length), nullptr, false);
  if (header.is_discarded() || !header.is_object()) return damaged("header is not JSON");
  if (std::string why = fingerprint_difference(header, fingerprint); !why.empty())
    return status(errc::invalid_argument,
                  fmt::format("journal {} was made for another request: {}; remove it to start over", path_, why));
  seed_ = get_u32(data, at + 8 + length);
  resumed_ = true;
  at = header_end;
  // Records up to the first one that does not check: the rest is a batch torn by a crash.
  while (data.size() >= at + record_overhead_bytes + range_payload_bytes) {
    const std::uint32_t k = get_u32(data, at), len = get_u32(data, at + 4);
    if ((k != kind_done && k != kind_memmove) || len != range_payload_bytes) break;
    if (crc32c(seed_, data.data() + at, 8 + len) != get_u32(data, at + 8 + len)) break;
    const std::uint64_t lo = get_u64(data, at + 8), hi = get_u64(data, at + 16);
    if (k == kind_done) {
      done_.add(lo, hi);
    } else {
      memmove_begun_.add(lo, hi);
    }
    at += record_overhead_bytes + len;
  }
  end_ = at;
  if (access_ == access::write && end_ < data.size()) {
    // Cut the torn tail so new records follow the last good one.
    if (sys().ftruncate(fd_, static_cast<off_t>(end_)) != 0)
      return errno_status(errno, "journal " + path_ + ": truncate");
  }
  return {};
}

status journal::create(const nlohmann::json& fingerprint) {
  if (sys().ftruncate(fd_, 0) != 0) return errno_status(errno, "journal " + path_ + ": truncate");
  end_ = 0;
  std::string header = encode_record(kind_header, dump_json(fingerprint), 0);
  seed_ = get_u32(header, header.size() - 4);
  std::string bytes(magic);
  bytes += header;
  if (auto s = append(bytes); !s.ok()) return s;
  if (auto s = sync_fd(fd_, "journal " + path_ + ": fdatasync"); !s.ok()) return s;
  // The new name must survive a power cut too.
  int dir = sys().open(dirname_of(path_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
  if (dir >= 0) {
    (void)sys().fsync(dir);
    sys().close(dir);
  }
  return {};
}

status journal::append(const std::string& bytes) {
  for (std::size_t put = 0; put < bytes.size();) {
    ssize_t n = sys().pwrite(fd_, bytes.data() + put, bytes.size() - put, static_cast<off_t>(end_ + put));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return errno_status(n < 0 ? errno : EIO, "journal " + path_ + ": write");
    put += static_cast<std::size_t>(n);
  }
  end_ += bytes.size();
  return {};
}

result<journal::resume_work> journal::remaining(const std::vector<extent>& extents, std::uint64_t source_bytes,
                                                std::int64_t medium_delta) const {
  for (const auto& [lo, hi] : memmove_begun_.ranges()) {
    if (done_.covers(lo, hi)) continue;
    return status(errc::invalid_argument,
                  fmt::format("journal {}: a command moving destination bytes [{}, {}) onto their own source was "
                              "interrupted (an overlapping move by less than its length): that source is partly "
                              "overwritten, so no re-run can recover those bytes; restore them, then remove the "
                              "journal to start over",
                              path_, lo, hi));
  }
  std::vector<extent> request = extents;
  if (request.empty()) request.push_back({0, 0, source_bytes});
  resume_work out;
  for (const extent& e : request) {
    auto gaps = done_.missing(e.dst_offset_bytes, e.dst_offset_bytes + e.length_bytes);
    std::uint64_t left = 0;
    for (auto [lo, hi] : gaps) left += hi - lo;
    out.done_bytes += e.length_bytes - left;
    // An extent moving up on its medium is copied from its end: its pieces too.
    const bool up =
        static_cast<std::int64_t>(e.dst_offset_bytes) + medium_delta > static_cast<std::int64_t>(e.src_offset_bytes);
    if (up) std::reverse(gaps.begin(), gaps.end());
    for (auto [lo, hi] : gaps) out.extents.push_back({e.src_offset_bytes + (lo - e.dst_offset_bytes), lo, hi - lo});
  }
  return out;
}

void journal::bind(int data_fd, bool ordered, std::int64_t medium_delta) noexcept {
  data_fd_ = data_fd;
  ordered_ = ordered;
  medium_delta_ = medium_delta;
  last_commit_ = std::chrono::steady_clock::now();
}

status journal::before_submit(std::span<const plan_segment> segments, std::uint32_t block_bytes, bool memmove) {
  if (fd_ < 0) return {};
  bool commit_first = memmove;
  if (!commit_first && ordered_ && !pending_.empty()) {
    // Would this command overwrite the source of work done but not yet durable? Then that work
    // must be durable first: re-done after a crash, it would read bytes this command wrote.
    for (const plan_segment& s : segments) {
      const std::int64_t lo = static_cast<std::int64_t>(s.dst_block * block_bytes) + medium_delta_;
      const std::int64_t hi = lo + static_cast<std::int64_t>(s.blocks * block_bytes);
      for (const pending_range& p : pending_) {
        const auto plo = static_cast<std::int64_t>(p.src_lo);
        const auto phi = plo + static_cast<std::int64_t>(p.dst_hi - p.dst_lo);
        if (lo < phi && plo < hi) commit_first = true;
      }
      if (commit_first) break;
    }
  }
  if (commit_first) {
    if (auto s = commit(); !s.ok()) return s;
  }
  if (!memmove) return {};
  std::string records;
  for (const plan_segment& s : segments) {
    const std::uint64_t lo = s.dst_block * block_bytes, hi = lo + s.blocks * block_bytes;
    records += range_record(kind_memmove, lo, hi, seed_);
    memmove_open_.add(lo, hi);
    ++records_written_;
  }
  if (auto s = append(records); !s.ok()) return s;
  return sync_fd(fd_, "journal " + path_ + ": fdatasync");
}

status journal::completed(std::span<const plan_segment> segments, std::uint32_t block_bytes, std::uint64_t blocks,
                          bool from_end) {
  if (fd_ < 0 || blocks == 0) return {};
  bool in_memmove = false;
  auto note = [&](const plan_segment& s, std::uint64_t first_block, std::uint64_t count) {
    const std::uint64_t dlo = (s.dst_block + first_block) * block_bytes, dhi = dlo + count * block_bytes;
    pending_.push_back({dlo, dhi, (s.src_block + first_block) * block_bytes});
    pending_bytes_ += dhi - dlo;
    done_.add(dlo, dhi);
    if (memmove_open_.intersects(dlo, dhi)) in_memmove = true;
  };
  std::uint64_t left = blocks;
  if (from_end) {
    for (std::size_t i = segments.size(); i-- > 0 && left > 0;) {
      const std::uint64_t n = std::min(left, segments[i].blocks);
      note(segments[i], segments[i].blocks - n, n);
      left -= n;
    }
  } else {
    for (std::size_t i = 0; i < segments.size() && left > 0; ++i) {
      const std::uint64_t n = std::min(left, segments[i].blocks);
      note(segments[i], 0, n);
      left -= n;
    }
  }
  // A finished memmove command is recorded at once (until then a resume must refuse its range);
  // other work in batches.
  if (in_memmove || pending_bytes_ >= commit_bytes ||
      std::chrono::steady_clock::now() - last_commit_ >= commit_interval)
    return commit();
  return {};
}

status journal::commit() {
  if (fd_ < 0 || access_ != access::write) return {};
  last_commit_ = std::chrono::steady_clock::now();
  if (pending_.empty()) return {};
  if (data_fd_ >= 0) {
    if (auto s = sync_fd(data_fd_, "journal " + path_ + ": fdatasync of the destination"); !s.ok()) return s;
  }
  range_set batch;
  for (const pending_range& p : pending_) batch.add(p.dst_lo, p.dst_hi);
  std::string records;
  for (const auto& [lo, hi] : batch.ranges()) {
    records += range_record(kind_done, lo, hi, seed_);
    ++records_written_;
  }
  if (auto s = append(records); !s.ok()) return s;
  if (auto s = sync_fd(fd_, "journal " + path_ + ": fdatasync"); !s.ok()) return s;
  pending_.clear();
  pending_bytes_ = 0;
  ++commits_;
  range_set still_open;
  for (const auto& [lo, hi] : memmove_open_.ranges())
    if (!done_.covers(lo, hi)) still_open.add(lo, hi);
  memmove_open_ = std::move(still_open);
  return {};
}

status journal::remove() {
  if (fd_ >= 0) {
    sys().close(fd_);
    fd_ = -1;
  }
  if (sys().unlink(path_.c_str()) != 0 && errno != ENOENT) return errno_status(errno, "journal " + path_ + ": remove");
  return {};
}

}  // namespace offcopy::detail
