#include "stats.hpp"

#include "json_text.hpp"

namespace chatstream::fakellm {

void Stats::reset() {
  Stats fresh;
  fresh.open_streams = open_streams;
  fresh.max_concurrent_streams = open_streams;
  fresh.open_connections = open_connections;
  *this = std::move(fresh);
}

std::string Stats::to_json() const {
  std::string out = "{";
  auto number = [&](const char* name, uint64_t value) {
    if (out.size() > 1) out.push_back(',');
    append_string(out, name);
    out.push_back(':');
    append_uint(out, value);
  };
  number("requests", requests);
  number("streams_started", streams_started);
  number("streams_completed", streams_completed);
  number("answers_completed", answers_completed);
  number("client_closed_early", client_closed_early);
  number("open_streams", open_streams);
  number("max_concurrent_streams", max_concurrent_streams);
  number("paused_detected", paused_detected);
  number("tokens_sent", tokens_sent);
  number("tokens_late", tokens_late);
  number("tool_call_requests", tool_call_requests);
  number("tool_result_requests", tool_result_requests);
  number("bad_requests", bad_requests);
  number("connections_accepted", connections_accepted);
  number("open_connections", open_connections);
  out += ",\"faults\":{";
  for (size_t i = 1; i < kFaultCount; ++i) {
    if (i > 1) out.push_back(',');
    append_string(out, fault_name(static_cast<Fault>(i)));
    out.push_back(':');
    append_uint(out, faults[i]);
  }
  out += "},\"last_request_body\":";
  append_string(out, last_request_body);
  out += ",\"last_request_body_bytes\":";
  append_uint(out, last_request_body_bytes);
  out += ",\"last_authorization\":";
  if (last_authorization) {
    append_string(out, *last_authorization);
  } else {
    out += "null";
  }
  out += "}\n";
  return out;
}

}  // namespace chatstream::fakellm
