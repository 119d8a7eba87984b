// The JSON objects and texts the library prints, as nlohmann::json values for composition (the
// job API adds its fields to them before serialising with dump_json).
#pragma once

#include <cstddef>
#include <string>

#include <nlohmann/json.hpp>

#include "offcopy/device.hpp"
#include "offcopy/plan.hpp"
#include "offcopy/report.hpp"
#include "offcopy/status.hpp"
#include "offcopy/timings.hpp"

namespace offcopy::detail {

[[nodiscard]] nlohmann::json limits_to_json(const copy_limits& l);
/// {code, message, errno?, nvme?{sct, sc, dnr, dw0, status, name}, scsi?{status, sense_key, asc, ascq, text,
/// information?}}
[[nodiscard]] nlohmann::json status_to_json(const status& s);
[[nodiscard]] nlohmann::json timings_to_json(const timings& t);
[[nodiscard]] std::string timings_to_text(const timings& t);
[[nodiscard]] nlohmann::json capabilities_to_json(const capabilities& c);
[[nodiscard]] std::string capabilities_to_text(const capabilities& c);
[[nodiscard]] nlohmann::json plan_to_json(const plan& p, std::size_t max_commands);
/// plan::to_text() after its header lines: parts, choices, commands (not yet terminal-safe).
/// The sources of a part: its source medium, or "gather [1] A (source 0) + [2] B (source 1)".
[[nodiscard]] std::string part_sources_text(const plan_part& part);
[[nodiscard]] std::string plan_body_text(const plan& p, std::size_t max_commands);
[[nodiscard]] nlohmann::json report_to_json(const report& r);

}  // namespace offcopy::detail
