// Guest-only test programs (tests/unit/<folder>/guest*.cpp → guest_<folder>): doctest cases that
// need real devices inside the QEMU guest. Each file declares the environment variables it needs;
// when one is missing the program prints why and exits 77, which CTest reports as skipped — a
// host without the guest's devices never counts these cases as passed.
#pragma once

namespace offcopy::test {

/// Registers `variable` as required by this program; `where` says which guest scenario sets it.
struct guest_requirement {
  guest_requirement(const char* variable, const char* where);
};

}  // namespace offcopy::test

#define OFFCOPY_GUEST_CAT2(a, b) a##b
#define OFFCOPY_GUEST_CAT(a, b) OFFCOPY_GUEST_CAT2(a, b)
/// At namespace scope: OFFCOPY_GUEST_REQUIRES("OFFCOPY_SCSI_SRC", "tests/vm/scenarios/scsi_unit_guest.sh");
#define OFFCOPY_GUEST_REQUIRES(variable, where)                                                                     \
  static const ::offcopy::test::guest_requirement OFFCOPY_GUEST_CAT(offcopy_guest_requirement_, __LINE__)(variable, \
                                                                                                          where)
