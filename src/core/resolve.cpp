// The resolution stage (resolve.hpp): a device becomes a stack of nodes down to its media, one
// resolver per kind of stacking (the table `resolvers` below), and ranges map to pieces on media.
#include "src/core/resolve.hpp"

#include <fcntl.h>
#include <linux/loop.h>
#include <linux/major.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>

#include <fmt/format.h>

#include "src/core/dm.hpp"
#include "src/core/sys.hpp"

namespace offcopy::detail {
namespace {

constexpr unsigned max_depth = 16;
constexpr std::size_t max_nodes = 1024;
constexpr std::uint64_t sector_bytes = 512;

std::string sysfs_of(dev_t d) { return fmt::format("/sys/dev/block/{}:{}", major(d), minor(d)); }

std::string base_name(const std::string& p) {
  const auto pos = p.find_last_of('/');
  return pos == std::string::npos ? p : p.substr(pos + 1);
}

bool read_u64(const std::string& path, std::uint64_t& out) {
  const std::string s = read_first_line(path);
  if (s.empty()) return false;
  char* end = nullptr;
  out = std::strtoull(s.c_str(), &end, 10);
  return end != nullptr && *end == '\0';
}

std::string file_identity(const struct stat& st) {
  return fmt::format("file:{}:{}:{}", major(st.st_dev), minor(st.st_dev), st.st_ino);
}

class builder;

/// One kind of stacking: whether it claims a block device (by its sysfs directory) and how it maps
/// the device's bytes onto lower devices.
struct resolver {
  const char* name;
  bool (*claims)(const std::string& sysfs, dev_t dev);
  status (*expand)(builder& b, std::uint32_t node, const std::string& sysfs, unsigned depth);
};

class builder {
 public:
  builder(device_state& root, resolution& out) : root_(root), r_(out) {}

  status build();

  /// The node of a block device (made and expanded on first sight).
  result<std::uint32_t> block_node(dev_t d, unsigned depth);
  /// The node of a regular file (a loop device's backing file): always a medium.
  std::uint32_t file_node(const std::string& path, const struct stat& st);
  [[nodiscard]] stack_node& node(std::uint32_t i) { return r_.nodes[i]; }

 private:
  status expand(std::uint32_t i, unsigned depth);
  void assign_media(std::uint32_t i, bool touch_only, std::vector<std::uint8_t>& seen);
  std::uint32_t add_medium(std::uint32_t i, bool touch_only, std::string opaque);
  status open_doors();
  void collect_touches();

  device_state& root_;
  resolution& r_;
  std::map<dev_t, std::uint32_t> by_devno_;
  std::map<std::pair<dev_t, ino_t>, std::uint32_t> by_inode_;
  std::vector<std::uint8_t> touch_only_;  ///< per medium
};

// ---- the resolvers ------------------------------------------------------------------------------

bool claims_partition(const std::string& sysfs, dev_t) { return !read_first_line(sysfs + "/partition").empty(); }

std::string partition_fingerprint(const std::string& sysfs) {
  return fmt::format("partition start {} size {}", read_first_line(sysfs + "/start"), read_first_line(sysfs + "/size"));
}

status expand_partition(builder& b, std::uint32_t i, const std::string& sysfs, unsigned depth) {
  std::uint64_t start = 0;
  if (!read_u64(sysfs + "/start", start))
    return status(errc::io_error, fmt::format("{}: partition start unreadable in sysfs", b.node(i).name));
  const std::string parent_sysfs = resolved_path(sysfs + "/..");
  dev_t parent = 0;
  if (!parse_devno(read_first_line(parent_sysfs + "/dev"), parent))
    return status(errc::io_error, fmt::format("{}: its disk is unknown to sysfs", b.node(i).name));
  auto lower = b.block_node(parent, depth + 1);
  if (!lower.ok()) return std::move(lower).error();
  stack_node& n = b.node(i);
  n.what = stack_node::kind::partition;
  n.fingerprint = partition_fingerprint(sysfs);
  stack_target t;
  t.start_bytes = 0;
  t.length_bytes = n.size_bytes;
  t.type = "partition " + read_first_line(sysfs + "/partition");
  t.lowers.push_back({lower.value(), start * sector_bytes});
  n.targets.push_back(std::move(t));
  return {};
}

bool loop_resolution = true;

bool claims_loop(const std::string& sysfs, dev_t dev) {
  // The loop driver numbers every loop device under LOOP_MAJOR (7); its partitions are the
  // partition resolver's. Asking sysfs about other devices costs a failed open each (~60 us in
  // the emulated guest: offload-copy's fixed cost, issue 11).
  return loop_resolution && major(dev) == LOOP_MAJOR && !read_first_line(sysfs + "/loop/backing_file").empty();
}

std::string loop_fingerprint(const std::string& sysfs) {
  return fmt::format("loop {} offset {} sizelimit {} size {}", read_first_line(sysfs + "/loop/backing_file"),
                     read_first_line(sysfs + "/loop/offset"), read_first_line(sysfs + "/loop/sizelimit"),
                     read_first_line(sysfs + "/size"));
}

status expand_loop(builder& b, std::uint32_t i, const std::string& sysfs, unsigned) {
  stack_node& n = b.node(i);
  const std::string file = read_first_line(sysfs + "/loop/backing_file");
  std::uint64_t offset = 0;
  (void)read_u64(sysfs + "/loop/offset", offset);
  // The file sysfs names is this loop device's only if it is the inode the driver holds
  // (LOOP_GET_STATUS64): a path can be replaced, or belong to another mount namespace.
  struct stat st {};
  loop_info64 info{};
  bool same = false;
  if (sys().stat(file.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
    const int fd = sys().open(n.path.c_str(), O_RDONLY | O_CLOEXEC, 0);
    if (fd >= 0) {
      same = sys().ioctl(fd, LOOP_GET_STATUS64, &info) == 0 && info.lo_device == st.st_dev &&
             info.lo_inode == st.st_ino && info.lo_offset == offset && info.lo_encrypt_type == 0;
      sys().close(fd);
    }
  }
  n.what = stack_node::kind::loop;
  n.fingerprint = loop_fingerprint(sysfs);
  if (!same) {
    n.note = fmt::format("backing file {} not reachable: the loop device is its own medium", file);
    return {};
  }
  const std::uint32_t f = b.file_node(file, st);
  stack_node& again = b.node(i);
  stack_target t;
  t.length_bytes = again.size_bytes;
  t.type = "loop";
  t.lowers.push_back({f, offset});
  again.targets.push_back(std::move(t));
  return {};
}

bool claims_dm(const std::string&, dev_t dev) { return dm().is_dm(dev); }

std::string dm_fingerprint(const dm_table& t) {
  std::string s =
      fmt::format("dm {} event {} suspended {} live {}", t.name, t.event_nr, t.suspended ? 1 : 0, t.live_table ? 1 : 0);
  for (const dm_line& l : t.table)
    s += fmt::format(" | {} {} {} {}", l.start_sectors, l.length_sectors, l.type, l.params);
  return s;
}

/// A multipath target: one active path of the logical unit its paths lead to. False (with the
/// reason) when it cannot be resolved.
bool multipath_path(const dm_line& line, const dm_table& t, dev_t& out, std::string& why) {
  std::vector<dev_t> paths;
  if (!parse_multipath_paths(line.params, paths)) {
    why = "dm multipath (unexpected table parameters)";
    return false;
  }
  const std::string lu = block_medium_identity(major(paths[0]), minor(paths[0]));
  for (dev_t p : paths) {
    if (block_medium_identity(major(p), minor(p)) != lu) {
      why = "dm multipath (its paths are different logical units)";
      return false;
    }
  }
  std::vector<dev_t> active;
  for (const dm_line& s : t.status)
    if (s.start_sectors == line.start_sectors) active = multipath_active_paths(s.params);
  for (dev_t p : paths) {
    if (std::find(active.begin(), active.end(), p) != active.end()) {
      out = p;
      return true;
    }
  }
  for (dev_t p : paths) {
    if (read_first_line(sysfs_of(p) + "/device/state") == "running") {
      out = p;
      return true;
    }
  }
  why = "dm multipath (no active path)";
  return false;
}

status expand_dm(builder& b, std::uint32_t i, const std::string&, unsigned depth) {
  const dev_t devno = b.node(i).devno;
  auto read = dm().read(devno);
  if (!read.ok()) {
    // No table to read: the whole device is opaque (copied through itself).
    stack_node& n = b.node(i);
    n.what = stack_node::kind::dm;
    stack_target t;
    t.what = stack_target::kind::opaque;
    t.length_bytes = n.size_bytes;
    t.type = "dm (table unreadable: " + read.error().message() + ")";
    n.targets.push_back(std::move(t));
    return {};
  }
  const dm_table& table = read.value();
  {
    stack_node& n = b.node(i);
    n.what = stack_node::kind::dm;
    if (!table.name.empty()) n.name = "/dev/mapper/" + table.name;
    n.fingerprint = dm_fingerprint(table);
    if (table.suspended) return status(errc::busy, fmt::format("{} is suspended", n.name));
    if (!table.live_table) return status(errc::busy, fmt::format("{} has no live table", n.name));
  }
  std::vector<stack_target> targets;
  for (const dm_line& line : table.table) {
    stack_target t;
    t.start_bytes = line.start_sectors * sector_bytes;
    t.length_bytes = line.length_sectors * sector_bytes;
    std::string opaque;
    if (line.type == "linear") {
      dm_linear l;
      if (parse_linear(line.params, l)) {
        auto lower = b.block_node(l.device, depth + 1);
        if (!lower.ok()) return std::move(lower).error();
        t.type = "dm linear";
        t.lowers.push_back({lower.value(), l.offset_sectors * sector_bytes});
      } else {
        opaque = "dm linear (unexpected table parameters)";
      }
    } else if (line.type == "striped") {
      dm_striped s;
      if (parse_striped(line.params, s)) {
        t.what = stack_target::kind::striped;
        t.type = "dm striped";
        t.chunk_bytes = s.chunk_sectors * sector_bytes;
        for (const dm_linear& stripe : s.stripes) {
          auto lower = b.block_node(stripe.device, depth + 1);
          if (!lower.ok()) return std::move(lower).error();
          t.lowers.push_back({lower.value(), stripe.offset_sectors * sector_bytes});
        }
      } else {
        opaque = "dm striped (unexpected table parameters)";
      }
    } else if (line.type == "multipath") {
      dev_t path = 0;
      if (multipath_path(line, table, path, opaque)) {
        auto lower = b.block_node(path, depth + 1);
        if (!lower.ok()) return std::move(lower).error();
        t.type = "dm multipath";
        t.lowers.push_back({lower.value(), 0});
      }
    } else {
      opaque = "dm " + line.type;
    }
    if (!opaque.empty()) {
      // Not resolved: a fallback copies these bytes through the dm device. What the table uses
      // is kept for overlap checks (bytes there change when this target is written).
      t = stack_target{};
      t.what = stack_target::kind::opaque;
      t.start_bytes = line.start_sectors * sector_bytes;
      t.length_bytes = line.length_sectors * sector_bytes;
      t.type = std::move(opaque);
      for (dev_t d : table.deps) {
        auto lower = b.block_node(d, depth + 1);
        if (!lower.ok()) return std::move(lower).error();
        t.lowers.push_back({lower.value(), 0});
      }
    }
    targets.push_back(std::move(t));
  }
  std::uint64_t end = 0;
  for (const stack_target& t : targets) {
    if (t.start_bytes != end)
      return status(errc::io_error, fmt::format("{}: table has a hole at byte {}", b.node(i).name, end));
    end += t.length_bytes;
  }
  stack_node& n = b.node(i);
  if (targets.empty() || end < n.size_bytes)
    return status(errc::io_error, fmt::format("{}: table covers {} of {} bytes", n.name, end, n.size_bytes));
  n.targets = std::move(targets);
  return {};
}

/// Every kind of stacking the resolution understands, tried in order on each block device.
constexpr resolver resolvers[] = {
    {"partition", &claims_partition, &expand_partition},
    {"loop", &claims_loop, &expand_loop},
    {"device-mapper", &claims_dm, &expand_dm},
};

// ---- building ----------------------------------------------------------------------------------

result<std::uint32_t> builder::block_node(dev_t d, unsigned depth) {
  if (auto it = by_devno_.find(d); it != by_devno_.end()) return it->second;
  if (depth > max_depth) return status(errc::io_error, "device stack deeper than 16 levels");
  if (r_.nodes.size() >= max_nodes) return status(errc::io_error, "device stack of more than 1024 devices");
  const std::string sysfs = sysfs_of(d);
  std::string kname = base_name(resolved_path(sysfs));
  std::replace(kname.begin(), kname.end(), '!', '/');
  const std::string path = "/dev/" + kname;
  struct stat st {};
  if (kname.empty() || sys().stat(path.c_str(), &st) != 0 || !S_ISBLK(st.st_mode) || st.st_rdev != d)
    return status(errc::not_found, fmt::format("block device {}:{} ({}) has no node in /dev", major(d), minor(d),
                                               kname.empty() ? "unknown to sysfs" : path));
  stack_node n;
  n.path = path;
  n.name = path;
  n.devno = d;
  std::uint64_t sectors = 0;
  (void)read_u64(sysfs + "/size", sectors);
  n.size_bytes = sectors * sector_bytes;
  const auto i = static_cast<std::uint32_t>(r_.nodes.size());
  r_.nodes.push_back(std::move(n));
  by_devno_.emplace(d, i);
  if (auto s = expand(i, depth); !s.ok()) return s;
  return i;
}

std::uint32_t builder::file_node(const std::string& path, const struct stat& st) {
  const auto key = std::make_pair(st.st_dev, st.st_ino);
  if (auto it = by_inode_.find(key); it != by_inode_.end()) return it->second;
  stack_node n;
  n.path = path;
  n.name = path;
  n.size_bytes = static_cast<std::uint64_t>(st.st_size);
  const auto i = static_cast<std::uint32_t>(r_.nodes.size());
  r_.nodes.push_back(std::move(n));
  by_inode_.emplace(key, i);
  return i;
}

status builder::expand(std::uint32_t i, unsigned depth) {
  const std::string sysfs = sysfs_of(r_.nodes[i].devno);
  // Opening the device already asked sysfs whether it is a partition (caps.parent_path): asking
  // again costs a failed open (~100 us in the emulated guest, issue 11 fixed cost).
  const bool known_whole = i == 0 && root_.caps.parent_path.empty();
  for (const resolver& res : resolvers) {
    if (known_whole && res.claims == &claims_partition) continue;
    if (res.claims(sysfs, r_.nodes[i].devno)) return res.expand(*this, i, sysfs, depth);
  }
  return {};  // a medium
}

std::uint32_t builder::add_medium(std::uint32_t i, bool touch_only, std::string opaque) {
  if (r_.nodes[i].medium >= 0) {
    const auto m = static_cast<std::uint32_t>(r_.nodes[i].medium);
    if (!touch_only) touch_only_[m] = 0;
    return m;
  }
  stack_medium m;
  m.node = i;
  m.path = r_.nodes[i].path;
  m.opaque = std::move(opaque);
  const auto k = static_cast<std::uint32_t>(r_.media.size());
  r_.media.push_back(std::move(m));
  touch_only_.push_back(touch_only ? 1 : 0);
  r_.nodes[i].medium = static_cast<std::int32_t>(k);
  return k;
}

void builder::assign_media(std::uint32_t i, bool touch_only, std::vector<std::uint8_t>& seen) {
  const std::uint8_t mark = touch_only ? 1 : 2;
  if (seen[i] >= mark) return;
  seen[i] = mark;
  if (r_.nodes[i].targets.empty()) {
    (void)add_medium(i, touch_only, {});
    return;
  }
  for (std::size_t k = 0; k < r_.nodes[i].targets.size(); ++k) {
    const stack_target& t = r_.nodes[i].targets[k];
    if (t.what == stack_target::kind::opaque) {
      (void)add_medium(i, touch_only, t.type);
      for (const auto& l : t.lowers) assign_media(l.node, true, seen);
    } else {
      for (const auto& l : t.lowers) assign_media(l.node, touch_only, seen);
    }
  }
}

status builder::open_doors() {
  for (std::size_t m = 0; m < r_.media.size(); ++m) {
    stack_medium& med = r_.media[m];
    if (med.node == 0) {
      med.identity = root_.caps.identity;
      med.identity_offset_bytes = root_.caps.identity_offset_bytes;
      continue;
    }
    const stack_node& n = r_.nodes[med.node];
    if (touch_only_[m]) {
      // Only its identity matters (overlap with what an opaque target may touch).
      if (n.devno != 0) {
        med.identity = block_medium_identity(major(n.devno), minor(n.devno));
      } else {
        struct stat st {};
        if (sys().stat(n.path.c_str(), &st) == 0) med.identity = file_identity(st);
      }
      continue;
    }
    auto d = open_device(n.path, root_.rdwr ? open_intent::write : open_intent::read, false);
    if (!d.ok()) {
      status e = std::move(d).error();
      return status(e.code(), fmt::format("{} (a medium under {}): {}", n.path, root_.caps.path, e.message()),
                    e.sys_errno());
    }
    med.door = d.value();
    med.identity = med.door->caps().identity;
    med.identity_offset_bytes = med.door->caps().identity_offset_bytes;
  }
  return {};
}

void builder::collect_touches() {
  for (std::size_t ni = 0; ni < r_.nodes.size(); ++ni) {
    for (const stack_target& t : r_.nodes[ni].targets) {
      if (t.what != stack_target::kind::opaque) continue;
      const std::string reason = t.type + " " + r_.nodes[ni].name;
      for (const auto& l : t.lowers) {
        map_range(r_, l.node, 0, r_.nodes[l.node].size_bytes, [&](const mapped_piece& p, std::span<const piece_hop>) {
          const stack_medium& med = r_.media[p.medium];
          const std::uint64_t s = p.medium_offset_bytes + med.identity_offset_bytes;
          if (!r_.touches.empty()) {
            opaque_touch& last = r_.touches.back();
            if (last.identity == med.identity && last.end_bytes == s && last.reason == reason) {
              last.end_bytes += p.length_bytes;
              return;
            }
          }
          r_.touches.push_back({med.identity, s, s + p.length_bytes, reason});
        });
      }
    }
  }
}

status builder::build() {
  stack_node root;
  root.path = root_.caps.path;
  root.name = root_.caps.path;
  root.devno = root_.caps.kind == device_kind::block_device ? root_.key.dev : 0;
  root.size_bytes = root_.caps.size_bytes;
  r_.nodes.push_back(std::move(root));
  if (root_.caps.kind == device_kind::block_device) {
    by_devno_.emplace(root_.key.dev, 0);
    if (auto s = expand(0, 0); !s.ok()) return s;
  }
  std::vector<std::uint8_t> seen(r_.nodes.size(), 0);
  assign_media(0, false, seen);
  if (auto s = open_doors(); !s.ok()) return s;
  collect_touches();
  return {};
}

/// The fingerprint a node would have now (empty for media).
std::string fingerprint_now(const stack_node& n, std::string& what_changed) {
  const std::string sysfs = sysfs_of(n.devno);
  switch (n.what) {
    case stack_node::kind::medium: return {};
    case stack_node::kind::partition: return partition_fingerprint(sysfs);
    case stack_node::kind::loop: return loop_fingerprint(sysfs);
    case stack_node::kind::dm: {
      if (n.fingerprint.empty()) return {};  // opaque: table unreadable when resolved
      auto t = dm().read(n.devno);
      if (!t.ok()) {
        what_changed = fmt::format("{}: {}", n.name, t.error().message());
        return {};
      }
      const std::string now = dm_fingerprint(t.value());
      if (t.value().suspended) {
        what_changed = fmt::format("{} was suspended", n.name);
      } else if (now != n.fingerprint) {
        // The fingerprint starts "dm NAME event N ...": say which part moved.
        const auto event_of = [](const std::string& f) {
          const auto w = split_words(f);
          return w.size() > 3 ? w[3] : std::string();
        };
        const auto table_of = [](const std::string& f) {
          const auto bar = f.find(" | ");
          return bar == std::string::npos ? std::string() : f.substr(bar);
        };
        if (table_of(now) != table_of(n.fingerprint))
          what_changed = fmt::format("the table of {} was changed (reloaded)", n.name);
        else
          what_changed = fmt::format("{} reported a device-mapper event (event number {} -> {})", n.name,
                                     event_of(n.fingerprint), event_of(now));
      }
      return now;
    }
  }
  return {};
}

void map_node(const resolution& r, std::uint32_t n, std::uint64_t off, std::uint64_t len, std::uint64_t upper,
              std::vector<piece_hop>& hops,
              const std::function<void(const mapped_piece&, std::span<const piece_hop>)>& emit) {
  const stack_node& node = r.nodes[n];
  if (node.targets.empty()) {
    if (node.medium >= 0) emit({upper, len, static_cast<std::uint32_t>(node.medium), off}, hops);
    return;
  }
  auto it = std::upper_bound(node.targets.begin(), node.targets.end(), off,
                             [](std::uint64_t v, const stack_target& t) { return v < t.start_bytes + t.length_bytes; });
  while (len > 0 && it != node.targets.end() && off >= it->start_bytes) {
    const stack_target& t = *it;
    const std::uint64_t in = off - t.start_bytes;
    const std::uint64_t n_bytes = std::min(len, t.length_bytes - in);
    hops.push_back({n, &t});
    switch (t.what) {
      case stack_target::kind::direct:
        map_node(r, t.lowers[0].node, t.lowers[0].offset_bytes + in, n_bytes, upper, hops, emit);
        break;
      case stack_target::kind::striped: {
        const std::uint64_t chunk = t.chunk_bytes;
        const std::uint64_t stripes = t.lowers.size();
        std::uint64_t rel = in, left = n_bytes, up = upper;
        while (left > 0) {
          const std::uint64_t c = rel / chunk, within = rel % chunk;
          const auto& lower = t.lowers[c % stripes];
          const std::uint64_t take = std::min(chunk - within, left);
          map_node(r, lower.node, lower.offset_bytes + (c / stripes) * chunk + within, take, up, hops, emit);
          rel += take;
          left -= take;
          up += take;
        }
        break;
      }
      case stack_target::kind::opaque:
        if (node.medium >= 0) emit({upper, n_bytes, static_cast<std::uint32_t>(node.medium), off}, hops);
        break;
    }
    hops.pop_back();
    off += n_bytes;
    upper += n_bytes;
    len -= n_bytes;
    ++it;
  }
}

}  // namespace

void set_loop_resolution(bool on) noexcept { loop_resolution = on; }

device_state& resolution::door(std::uint32_t m, device_state& self) const {
  const stack_medium& med = media.at(m);
  return med.door ? state_of(*med.door) : self;
}

void map_range(const resolution& r, std::uint32_t from, std::uint64_t offset, std::uint64_t length,
               const std::function<void(const mapped_piece&, std::span<const piece_hop>)>& emit) {
  std::vector<piece_hop> hops;
  map_node(r, from, offset, length, offset, hops, emit);
}

std::vector<mapped_piece> pieces_of(const resolution& r, std::uint64_t offset, std::uint64_t length) {
  std::vector<mapped_piece> out;
  if (r.nodes.size() == 1 && !r.media.empty()) {  // its own medium: one piece, no walk
    out.push_back({offset, length, 0, offset});
    return out;
  }
  map_range(r, 0, offset, length, [&](const mapped_piece& p, std::span<const piece_hop>) {
    if (!out.empty()) {
      mapped_piece& last = out.back();
      if (last.medium == p.medium && last.offset_bytes + last.length_bytes == p.offset_bytes &&
          last.medium_offset_bytes + last.length_bytes == p.medium_offset_bytes) {
        last.length_bytes += p.length_bytes;
        return;
      }
    }
    out.push_back(p);
  });
  return out;
}

std::string block_medium_identity(unsigned maj, unsigned min) {
  // Every path to a SCSI logical unit reports the LU's designator (VPD 0x83) as its wwid: two
  // paths, two /dev/sdX, one medium.
  // A partition has no "device" link (the driver core makes it only for non-partitions,
  // device_add_class_symlinks()), so a wwid read through it is a whole disk's: no second sysfs
  // open to ask "partition".
  const std::string wwid = read_first_line(fmt::format("/sys/dev/block/{}:{}/device/wwid", maj, min));
  if (!wwid.empty()) return "lu:" + wwid;
  return fmt::format("blk:{}:{}", maj, min);
}

result<std::shared_ptr<const resolution>> resolution_of(device_state& dev) {
  std::lock_guard lock(dev.mu);
  if (dev.resolved && check_unchanged(*dev.resolved).ok()) return dev.resolved;
  auto r = std::make_shared<resolution>();
  builder b(dev, *r);
  if (auto s = b.build(); !s.ok()) return s;
  dev.resolved = r;
  return dev.resolved;
}

status check_unchanged(const resolution& r) {
  for (const stack_node& n : r.nodes) {
    if (n.fingerprint.empty()) continue;
    std::string what;
    const std::string now = fingerprint_now(n, what);
    if (now == n.fingerprint && what.empty()) continue;
    if (what.empty()) what = fmt::format("{} changed since it was resolved ({} -> {})", n.name, n.fingerprint, now);
    return status(errc::busy, what);
  }
  return {};
}

void describe_resolution(const resolution& r, device_state& self, capabilities& out, std::size_t max_pieces) {
  out.pieces.clear();
  out.media.clear();
  out.pieces_total = 0;
  if (r.nodes.empty()) return;
  map_range(r, 0, 0, r.nodes[0].size_bytes, [&](const mapped_piece& p, std::span<const piece_hop> hops) {
    ++out.pieces_total;
    if (out.pieces.size() >= max_pieces) return;
    resolved_piece rp;
    rp.offset_bytes = p.offset_bytes;
    rp.length_bytes = p.length_bytes;
    rp.medium = r.media[p.medium].path;
    rp.medium_offset_bytes = p.medium_offset_bytes;
    for (const piece_hop& h : hops)
      rp.via += fmt::format("{}{} ({})", rp.via.empty() ? "" : " > ", r.nodes[h.node].name, h.target->type);
    if (!hops.empty() && hops.back().target->what == stack_target::kind::opaque) rp.opaque = hops.back().target->type;
    out.pieces.push_back(std::move(rp));
  });
  for (const stack_medium& m : r.media) {
    if (!m.door) continue;
    (void)self;
    out.media.push_back(m.door->probe());
  }
}

}  // namespace offcopy::detail
