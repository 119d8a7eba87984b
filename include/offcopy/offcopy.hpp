// offcopy/offcopy.hpp: the whole C++ API. (C callers: offcopy/offcopy.h.)
#pragma once
#include "offcopy/copy.hpp"
#include "offcopy/device.hpp"
#include "offcopy/export.h"
#include "offcopy/job.hpp"
#include "offcopy/limits.hpp"
#include "offcopy/plan.hpp"
#include "offcopy/policy.hpp"
#include "offcopy/report.hpp"
#include "offcopy/request.hpp"
#include "offcopy/status.hpp"
#include "offcopy/timings.hpp"
#include "offcopy/version.hpp"
