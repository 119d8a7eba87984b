#pragma once
namespace offcopy {
/// "MAJOR.MINOR.PATCH" of the library actually linked.
[[nodiscard]] const char* version() noexcept;
}  // namespace offcopy
