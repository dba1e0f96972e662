#include "http/request.hpp"

#include <cctype>

namespace chatstream::http {

void Request::clear() {
  method.clear();
  path.clear();
  query.clear();
  content_type.clear();
  session_header.clear();
  authorization.clear();
  last_event_id.clear();
  user_id.clear();
  // A long-lived stream should not keep a large request body allocated.
  if (body.capacity() > 1024) std::string().swap(body);
  else body.clear();
  keep_alive = true;
  http_major = http_minor = 1;
}

bool is_json_content_type(std::string_view value) {
  auto trim = [](std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
  };
  std::string_view media = trim(value.substr(0, value.find(';')));
  static constexpr std::string_view kJson = "application/json";
  if (media.size() != kJson.size()) return false;
  for (size_t i = 0; i < media.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(media[i])) != kJson[i]) return false;
  }
  return true;
}

}  // namespace chatstream::http
