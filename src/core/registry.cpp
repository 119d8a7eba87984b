// The backend registry: one row per backend, in default order of preference. Adding a backend is a
// folder defining its factory (`backend& my_backend()` in offcopy::detail) and one row here.
#include <array>

#include "src/core/backend.hpp"

namespace offcopy::detail {
namespace {

constexpr device_kinds block = kind_bit(device_kind::block_device);
constexpr device_kinds nvme_char = kind_bit(device_kind::nvme_char);
constexpr device_kinds scsi_generic = kind_bit(device_kind::scsi_generic);
constexpr device_kinds file = kind_bit(device_kind::regular_file);

// name, role, device kinds its discovery looks at, factory. Offload first; then the file clone
// path; then the reference copier, which needs no discovery.
#define OFFCOPY_BACKEND_ROWS(X)                                      \
  X("nvme-copy", offload, block | nvme_char, nvme_backend)           \
  X("scsi-xcopy", offload, block | scsi_generic, scsi_xcopy_backend) \
  X("scsi-token", offload, block | scsi_generic, scsi_token_backend) \
  X("copy-file-range", fallback, file, copy_file_range_backend)      \
  X("buffered", fallback, 0, buffered_backend)

}  // namespace

#define OFFCOPY_DECLARE_FACTORY(name, role, kinds, factory) backend& factory();
OFFCOPY_BACKEND_ROWS(OFFCOPY_DECLARE_FACTORY)
#undef OFFCOPY_DECLARE_FACTORY

namespace {

#define OFFCOPY_ROW(name, role, kinds, factory) backend_row{name, backend_role::role, kinds, &factory},
constexpr std::array default_rows{OFFCOPY_BACKEND_ROWS(OFFCOPY_ROW)};
std::array rows = default_rows;  // tests may widen `discovers`
#undef OFFCOPY_ROW

/// Test replacements, parallel to rows (nullptr: the factory's instance).
std::array<backend*, rows.size()> replaced{};

std::size_t index_of(std::string_view name) noexcept {
  for (std::size_t i = 0; i < rows.size(); ++i)
    if (rows[i].name == name) return i;
  return rows.size();
}

}  // namespace

std::span<const backend_row> registry() noexcept { return rows; }

const backend_row* find_row(std::string_view name) noexcept {
  std::size_t i = index_of(name);
  return i < rows.size() ? &rows[i] : nullptr;
}

backend* find_backend(std::string_view name) noexcept {
  std::size_t i = index_of(name);
  if (i == rows.size()) return nullptr;
  return replaced[i] != nullptr ? replaced[i] : &rows[i].factory();
}

bool is_offload(std::string_view name) noexcept {
  const backend_row* r = find_row(name);
  return r != nullptr && r->role == backend_role::offload;
}

backend* replace_backend(std::string_view name, backend* b) noexcept {
  std::size_t i = index_of(name);
  if (i == rows.size()) return nullptr;
  backend* old = find_backend(name);
  replaced[i] = (b == &rows[i].factory()) ? nullptr : b;
  forget_discoveries();
  return old;
}

void set_discovered_kinds(std::string_view name, device_kinds kinds) noexcept {
  std::size_t i = index_of(name);
  if (i == rows.size()) return;
  rows[i].discovers = kinds;
  forget_discoveries();
}

void reset_discovered_kinds(std::string_view name) noexcept {
  std::size_t i = index_of(name);
  if (i == rows.size()) return;
  rows[i].discovers = default_rows[i].discovers;
  forget_discoveries();
}

}  // namespace offcopy::detail

namespace offcopy::v0 {

std::vector<backend_info> registered_backends() {
  std::vector<backend_info> out;
  for (const detail::backend_row& r : detail::registry())
    out.push_back({std::string(r.name), r.role == detail::backend_role::offload});
  return out;
}

}  // namespace offcopy::v0
