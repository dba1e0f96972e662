// The one JSON object sseload prints on stdout (field meanings: bench/README.md).
#pragma once

#include <string>

#include "load_runner.hpp"
#include "options.hpp"

namespace chatstream::bench {

std::string format_report(const Options& options, const RunResult& result);

}  // namespace chatstream::bench
