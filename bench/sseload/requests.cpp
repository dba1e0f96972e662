#include "requests.hpp"

namespace chatstream::bench {

std::string build_stream_request(const Options& options) {
  std::string request;
  request.reserve(256 + options.body.size());
  request += "POST " + options.path + " HTTP/1.1\r\n";
  request += "Host: " + options.host + "\r\n";
  request += "User-Agent: sseload\r\n";
  request += "Accept: text/event-stream\r\n";
  request += "Content-Type: application/json\r\n";
  request += "Content-Length: " + std::to_string(options.body.size()) + "\r\n\r\n";
  request += options.body;
  return request;
}

void build_resume_request(const Options& options, std::string_view run_id, uint64_t seq, std::string& out) {
  std::string_view path = options.path;
  if (!path.empty() && path.back() == '/') path.remove_suffix(1);
  std::string seq_text = std::to_string(seq);
  out.clear();
  out += "GET ";
  out += path;
  out += '/';
  out += run_id;
  out += " HTTP/1.1\r\nHost: ";
  out += options.host;
  out += "\r\nUser-Agent: sseload\r\nAccept: text/event-stream\r\nLast-Event-ID: ";
  out += run_id;
  out += ':';
  out += seq_text;
  out += "\r\n\r\n";
}

}  // namespace chatstream::bench
