// The NVMe controller model's names (tests/models/nvme_model.hpp) as the model-driven tests of this
// folder use them: unqualified.
#pragma once

#include "tests/models/nvme_model.hpp"

using offcopy::testing::nvme_fault;
using offcopy::testing::nvme_model;
using offcopy::testing::nvme_model_backend;
using offcopy::testing::nvme_model_config;
using offcopy::testing::nvme_transport_script;
