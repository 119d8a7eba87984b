// Device-mapper tables through libdevmapper, loaded on first use; the parsers of the targets the
// resolution stage maps (linear, striped, multipath).
#include "src/core/dm.hpp"

#include <dlfcn.h>
#include <libdevmapper.h>
#include <linux/major.h>
#include <sys/sysmacros.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include <fmt/format.h>

#include "src/core/sys.hpp"

namespace offcopy::detail {
namespace {

/// The libdevmapper entry points we use, resolved from the shared library at first use.
struct devmapper_api {
  decltype(&::dm_task_create) task_create = nullptr;
  decltype(&::dm_task_destroy) task_destroy = nullptr;
  decltype(&::dm_task_set_major_minor) set_major_minor = nullptr;
  decltype(&::dm_task_no_open_count) no_open_count = nullptr;
  decltype(&::dm_task_run) run = nullptr;
  decltype(&::dm_task_get_info) get_info = nullptr;
  decltype(&::dm_task_get_name) get_name = nullptr;
  decltype(&::dm_task_get_uuid) get_uuid = nullptr;
  decltype(&::dm_task_get_deps) get_deps = nullptr;
  decltype(&::dm_get_next_target) next_target = nullptr;
  decltype(&::dm_log_with_errno_init) log_init = nullptr;
  std::string error;  ///< why it could not be loaded
};

/// libdevmapper logs to stderr by default; the resolution reports its own errors.
void quiet_log(int, const char*, int, int, const char*, ...) {}

std::mutex dm_mu;  // libdevmapper is not thread safe

const devmapper_api& api() {
  static const devmapper_api a = [] {
    devmapper_api r;
    void* h = ::dlopen("libdevmapper.so.1.02.1", RTLD_NOW | RTLD_LOCAL);
    if (h == nullptr) {
      const char* e = ::dlerror();
      r.error = fmt::format("libdevmapper cannot be loaded: {}", e != nullptr ? e : "dlopen failed");
      return r;
    }
    bool ok = true;
    auto get = [&](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(::dlsym(h, name));
      if (fn == nullptr) {
        ok = false;
        r.error = fmt::format("libdevmapper has no {}", name);
      }
    };
    get(r.task_create, "dm_task_create");
    get(r.task_destroy, "dm_task_destroy");
    get(r.set_major_minor, "dm_task_set_major_minor");
    get(r.no_open_count, "dm_task_no_open_count");
    get(r.run, "dm_task_run");
    get(r.get_info, "dm_task_get_info");
    get(r.get_name, "dm_task_get_name");
    get(r.get_uuid, "dm_task_get_uuid");
    get(r.get_deps, "dm_task_get_deps");
    get(r.next_target, "dm_get_next_target");
    get(r.log_init, "dm_log_with_errno_init");
    if (!ok) {
      r.task_create = nullptr;
      return r;
    }
    r.log_init(&quiet_log);
    return r;
  }();
  return a;
}

/// One libdevmapper task on a device, destroyed at scope exit.
class dm_task_ref {
 public:
  dm_task_ref(const devmapper_api& a, int type, dev_t dev) : a_(a), t_(a.task_create(type)) {
    if (t_ == nullptr) return;
    if (a_.set_major_minor(t_, static_cast<int>(major(dev)), static_cast<int>(minor(dev)), 0) == 0 ||
        a_.no_open_count(t_) == 0) {
      a_.task_destroy(t_);
      t_ = nullptr;
    }
  }
  ~dm_task_ref() {
    if (t_ != nullptr) a_.task_destroy(t_);
  }
  dm_task_ref(const dm_task_ref&) = delete;
  dm_task_ref& operator=(const dm_task_ref&) = delete;
  [[nodiscard]] dm_task* get() const noexcept { return t_; }
  [[nodiscard]] bool run() { return t_ != nullptr && a_.run(t_) != 0; }

 private:
  const devmapper_api& a_;
  dm_task* t_;
};

std::vector<dm_line> lines_of(const devmapper_api& a, dm_task* t) {
  std::vector<dm_line> out;
  void* next = nullptr;
  do {
    std::uint64_t start = 0, length = 0;
    char* type = nullptr;
    char* params = nullptr;
    next = a.next_target(t, next, &start, &length, &type, &params);
    if (type == nullptr) break;  // an empty table
    out.push_back({start, length, type, params != nullptr ? params : ""});
  } while (next != nullptr);
  return out;
}

result<dm_table> read_with_libdevmapper(dev_t dev) {
  const devmapper_api& a = api();
  if (a.task_create == nullptr) return status(errc::not_supported, a.error);
  std::lock_guard lock(dm_mu);
  const std::string what = fmt::format("device-mapper {}:{}", major(dev), minor(dev));
  dm_table t;
  {
    dm_task_ref task(a, DM_DEVICE_TABLE, dev);
    if (!task.run()) return status(errc::io_error, what + ": reading the table failed", errno);
    dm_info info{};
    if (a.get_info(task.get(), &info) == 0 || info.exists == 0)
      return status(errc::not_found, what + ": no such device-mapper device");
    t.suspended = info.suspended != 0;
    t.live_table = info.live_table != 0;
    t.read_only = info.read_only != 0;
    t.event_nr = info.event_nr;
    if (const char* n = a.get_name(task.get())) t.name = n;
    if (const char* u = a.get_uuid(task.get())) t.uuid = u;
    t.table = lines_of(a, task.get());
  }
  {
    dm_task_ref task(a, DM_DEVICE_STATUS, dev);
    if (!task.run()) return status(errc::io_error, what + ": reading the status failed", errno);
    t.status = lines_of(a, task.get());
  }
  {
    dm_task_ref task(a, DM_DEVICE_DEPS, dev);
    if (!task.run()) return status(errc::io_error, what + ": reading the dependencies failed", errno);
    if (const dm_deps* d = a.get_deps(task.get()))
      for (std::uint32_t i = 0; i < d->count; ++i)
        t.deps.push_back(makedev(major(static_cast<dev_t>(d->device[i])), minor(static_cast<dev_t>(d->device[i]))));
  }
  return t;
}

/// Majors the kernel assigns statically to other drivers (SCSI disks, loop): device-mapper
/// registers a dynamic one, never these, so their devices need no failed sysfs open (~100 us in
/// the emulated guest: offload-copy's fixed cost, issue 11).
bool static_non_dm_major(unsigned m) {
  return m == LOOP_MAJOR || m == SCSI_DISK0_MAJOR || (m >= SCSI_DISK1_MAJOR && m <= SCSI_DISK7_MAJOR) ||
         (m >= SCSI_DISK8_MAJOR && m <= SCSI_DISK15_MAJOR);
}

bool is_dm_by_sysfs(dev_t dev) {
  if (static_non_dm_major(major(dev))) return false;
  return !read_first_line(fmt::format("/sys/dev/block/{}:{}/dm/name", major(dev), minor(dev))).empty();
}

const dm_source libdevmapper_source{&is_dm_by_sysfs, &read_with_libdevmapper};
const dm_source* current = &libdevmapper_source;

bool parse_u64(const std::string& s, std::uint64_t& out) noexcept {
  if (s.empty() || s.size() > 20) return false;
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    const std::uint64_t d = static_cast<std::uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  out = v;
  return true;
}

}  // namespace

const dm_source& dm() noexcept { return *current; }
void set_dm_source(const dm_source* s) noexcept { current = s != nullptr ? s : &libdevmapper_source; }

bool parse_devno(const std::string& text, dev_t& out) noexcept {
  const auto colon = text.find(':');
  if (colon == std::string::npos) return false;
  std::uint64_t ma = 0, mi = 0;
  if (!parse_u64(text.substr(0, colon), ma) || !parse_u64(text.substr(colon + 1), mi)) return false;
  if (ma > 0xfffff || mi > 0xfffff) return false;
  out = makedev(static_cast<unsigned>(ma), static_cast<unsigned>(mi));
  return true;
}

std::vector<std::string> split_words(const std::string& text) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n')) ++i;
    std::size_t j = i;
    while (j < text.size() && text[j] != ' ' && text[j] != '\t' && text[j] != '\n') ++j;
    if (j > i) out.push_back(text.substr(i, j - i));
    i = j;
  }
  return out;
}

bool parse_linear(const std::string& params, dm_linear& out) {
  const auto w = split_words(params);
  return w.size() == 2 && parse_devno(w[0], out.device) && parse_u64(w[1], out.offset_sectors);
}

bool parse_striped(const std::string& params, dm_striped& out) {
  // Documentation/admin-guide/device-mapper/striped.rst: <#stripes> <chunk size> [<dev> <offset>]+
  const auto w = split_words(params);
  std::uint64_t n = 0;
  if (w.size() < 2 || !parse_u64(w[0], n) || n == 0 || w.size() != 2 + 2 * n) return false;
  if (!parse_u64(w[1], out.chunk_sectors) || out.chunk_sectors == 0) return false;
  out.stripes.clear();
  for (std::uint64_t i = 0; i < n; ++i) {
    dm_linear s;
    if (!parse_devno(w[2 + 2 * i], s.device) || !parse_u64(w[3 + 2 * i], s.offset_sectors)) return false;
    out.stripes.push_back(s);
  }
  return true;
}

bool parse_multipath_paths(const std::string& params, std::vector<dev_t>& out) {
  const auto w = split_words(params);
  std::size_t i = 0;
  auto count = [&](std::uint64_t& n) { return i < w.size() && parse_u64(w[i++], n); };
  auto skip = [&](std::uint64_t n) {
    if (n > w.size() - i) return false;
    i += static_cast<std::size_t>(n);
    return true;
  };
  std::uint64_t n = 0;
  if (!count(n) || !skip(n)) return false;  // features
  if (!count(n) || !skip(n)) return false;  // hardware handler and its arguments
  std::uint64_t groups = 0, next_group = 0;
  if (!count(groups) || !count(next_group)) return false;
  out.clear();
  for (std::uint64_t g = 0; g < groups; ++g) {
    if (!skip(1)) return false;  // path selector name
    if (!count(n) || !skip(n)) return false;
    std::uint64_t paths = 0, path_args = 0;
    if (!count(paths) || !count(path_args)) return false;
    for (std::uint64_t p = 0; p < paths; ++p) {
      dev_t d = 0;
      if (i >= w.size() || !parse_devno(w[i++], d)) return false;
      out.push_back(d);
      if (!skip(path_args)) return false;
    }
  }
  return i == w.size() && !out.empty();
}

std::vector<dev_t> multipath_active_paths(const std::string& status_params) {
  // STATUSTYPE_INFO prints each path as "<device> <A|F> <fail count> ...": find the devices and
  // read the state after each (the header's counts vary between kernels; devices do not).
  const auto w = split_words(status_params);
  std::vector<dev_t> out;
  for (std::size_t i = 0; i + 1 < w.size(); ++i) {
    dev_t d = 0;
    if (w[i].find(':') != std::string::npos && parse_devno(w[i], d) && w[i + 1] == "A") out.push_back(d);
  }
  return out;
}

}  // namespace offcopy::detail
