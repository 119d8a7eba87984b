// offcopy/timings.hpp: where the time of a job went.
#pragma once

#include "offcopy/export.h"

namespace offcopy {
inline namespace v0 {

/// Wall time of each phase, in seconds; a phase that did not run is 0. Thread safety: a plain value.
struct timings {
  double open_seconds = 0;    ///< opening and classifying the devices (the job API)
  double probe_seconds = 0;   ///< backend discovery: the commands that ask devices what they can do
  double plan_seconds = 0;    ///< validation, backend choice and packing, discovery excluded
  double flush_seconds = 0;   ///< page-cache flush before an offload, durability sync, invalidation
  double copy_seconds = 0;    ///< the copy commands
  double verify_seconds = 0;  ///< reading both sides back
};

}  // namespace v0
}  // namespace offcopy
