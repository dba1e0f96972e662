#include "sse/framing.hpp"

#include <charconv>

#include "json/writer.hpp"

namespace chatstream::sse {

namespace {
void append_head(std::string& out, std::string_view run_id, uint64_t seq, std::string_view type) {
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, seq);
  (void)ec;
  out += "id: ";
  out += run_id;
  out.push_back(':');
  out.append(digits, end);
  out += "\nevent: ";
  out += type;
  out += "\ndata: {\"type\":\"";
  out += type;
  out.push_back('"');
}
}  // namespace

void append_retry(std::string& out, uint64_t retry_ms) {
  out += "retry: ";
  out += std::to_string(retry_ms);
  out += "\n\n";
}

void append_event(std::string& out, std::string_view run_id, uint64_t seq, std::string_view type,
                  std::string_view fields_json) {
  append_head(out, run_id, seq, type);
  if (!fields_json.empty()) {
    out.push_back(',');
    out += fields_json;
  }
  out += "}\n\n";
}

void append_token_event(std::string& out, std::string_view run_id, uint64_t seq, std::string_view text) {
  append_head(out, run_id, seq, "token");
  out += ",\"content\":";
  json::append_string(out, text);
  out += "}\n\n";
}

}  // namespace chatstream::sse
