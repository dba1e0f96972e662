#include "http/response.hpp"

#include <ctime>

#include "json/writer.hpp"

namespace chatstream::http {

std::string_view status_reason(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
  }
}

namespace {
// The Date header changes once a second; format it once a second, not once per response.
std::string_view http_date() {
  static time_t cached_second = 0;
  static char cached[40];
  time_t now = time(nullptr);
  if (now != cached_second) {
    cached_second = now;
    tm utc;
    gmtime_r(&now, &utc);
    strftime(cached, sizeof cached, "%a, %d %b %Y %H:%M:%S GMT", &utc);
  }
  return cached;
}
}  // namespace

void append_head(std::string& out, int status, std::string_view content_type, int64_t content_length,
                 bool keep_alive, std::string_view extra_headers) {
  out += "HTTP/1.1 ";
  out += std::to_string(status);
  out.push_back(' ');
  out += status_reason(status);
  out += "\r\nDate: ";
  out += http_date();
  out += "\r\nServer: chatstream\r\n";
  if (!content_type.empty()) {
    out += "Content-Type: ";
    out += content_type;
    out += "\r\n";
  }
  if (content_length >= 0) {
    out += "Content-Length: ";
    out += std::to_string(content_length);
    out += "\r\n";
  }
  if (!keep_alive) out += "Connection: close\r\n";
  out += extra_headers;
  out += "\r\n";
}

std::string error_body(Errc errc, std::string_view message, std::string_view extra_fields) {
  const ErrcRow& row = errc_row(errc);
  std::string body = "{\"error\":";
  json::Object error(body);
  error.field("status", row.http_status).field("code", row.code).field("message", message);
  if (!extra_fields.empty()) {
    body.push_back(',');
    body.append(extra_fields);
  }
  error.close();
  body += "}";
  return body;
}

}  // namespace chatstream::http
