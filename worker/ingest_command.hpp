#pragma once
// `chatstream ingest PATH…`: loads Markdown, text and HTML files (directories are walked) into the
// knowledge base, one document per file, idempotent by source path (a file already loaded with the
// same content is skipped; changed content replaces its chunks). A command-line path: blocking libpq.

#include <string>
#include <vector>

#include "config.hpp"

namespace chatstream {

int run_ingest(const Config& config, const std::vector<std::string>& paths);

}  // namespace chatstream
