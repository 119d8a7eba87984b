#include <array>

#include "src/core/backend.hpp"

namespace offcopy::detail {
namespace {
std::array<backend*, 5>& table() {
  // Order = default preference: offload first, then the file clone path, then the reference copier.
  static std::array<backend*, 5> t{&nvme_backend(), &scsi_xcopy_backend(), &scsi_token_backend(),
                                   &copy_file_range_backend(), &buffered_backend()};
  return t;
}
}  // namespace

std::span<backend* const> backends() noexcept { return table(); }

backend* find_backend(backend_kind kind) noexcept {
  for (auto* b : table())
    if (b->kind() == kind) return b;
  return nullptr;
}

backend* replace_backend(backend* b) noexcept {
  for (auto*& slot : table()) {
    if (slot->kind() == b->kind()) {
      backend* old = slot;
      slot = b;
      return old;
    }
  }
  return nullptr;
}

}  // namespace offcopy::detail
