#pragma once
// A parsed HTTP/1.1 request as the router and handlers see it: only what chatstream uses.

#include <string>
#include <string_view>

namespace chatstream::http {

struct Request {
  std::string method;        // "GET", "POST", …
  std::string path;          // without the query string
  std::string query;
  std::string content_type;  // as sent, empty when absent
  std::string session_header;  // X-Chatstream-Session-Id (OpenAI-compatible clients)
  std::string authorization;    // the Authorization header as sent (never logged)
  std::string last_event_id;    // Last-Event-ID (a resumed SSE stream: "<run_id>:<seq>")
  std::string user_id;          // set by the sign-in check (auth/request_user.hpp) before a handler runs
  std::string body;          // capacity leaves simdjson's padding after size()
  bool keep_alive = true;
  int http_major = 1;
  int http_minor = 1;

  void clear();
};

// True when `content_type` is application/json, with or without parameters (charset=utf-8).
bool is_json_content_type(std::string_view content_type);

}  // namespace chatstream::http
