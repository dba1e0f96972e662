// The HTTP requests sseload sends: the POST that opens a stream (the same bytes for every stream,
// built once) and the GET that resumes one (`GET /chat/stream/{run_id}` with
// `Last-Event-ID: {run_id}:{seq}`, docs/protocol.md "Resuming a stream"), built per stream.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "options.hpp"

namespace chatstream::bench {

std::string build_stream_request(const Options& options);

// Into `out` (its capacity reused): the resume of run `run_id` after the event `seq` it last read.
// The path is the --url path with `/{run_id}` appended.
void build_resume_request(const Options& options, std::string_view run_id, uint64_t seq, std::string& out);

}  // namespace chatstream::bench
