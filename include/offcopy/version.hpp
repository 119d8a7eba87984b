// offcopy/version.hpp: the version of the library actually linked.
#pragma once

#include "offcopy/export.h"

namespace offcopy {
inline namespace v0 {
/// "MAJOR.MINOR.PATCH" of the library actually linked.
[[nodiscard]] OFFCOPY_API const char* version() noexcept;
}  // namespace v0
}  // namespace offcopy
