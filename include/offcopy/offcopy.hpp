// offcopy/offcopy.hpp: everything.
#pragma once
#include "offcopy/copy.hpp"
#include "offcopy/device.hpp"
#include "offcopy/limits.hpp"
#include "offcopy/plan.hpp"
#include "offcopy/policy.hpp"
#include "offcopy/report.hpp"
#include "offcopy/request.hpp"
#include "offcopy/status.hpp"
#include "offcopy/version.hpp"
