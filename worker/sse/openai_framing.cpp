#include "sse/openai_framing.hpp"

#include "json/writer.hpp"

namespace chatstream::sse {

namespace {
void append_chunk_head(std::string& out, const OpenAIChunkIds& ids) {
  out += "data: {\"id\":";
  json::append_string(out, ids.id);
  out += ",\"object\":\"chat.completion.chunk\",\"created\":";
  json::append_number(out, ids.created);
  out += ",\"model\":";
  json::append_string(out, ids.model);
  out += ",\"choices\":[";
}
}  // namespace

void append_openai_role_chunk(std::string& out, const OpenAIChunkIds& ids) {
  append_chunk_head(out, ids);
  out += "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n";
}

void append_openai_content_chunk(std::string& out, const OpenAIChunkIds& ids, std::string_view text) {
  append_chunk_head(out, ids);
  out += "{\"index\":0,\"delta\":{\"content\":";
  json::append_string(out, text);
  out += "},\"finish_reason\":null}]}\n\n";
}

void append_openai_finish(std::string& out, const OpenAIChunkIds& ids, std::string_view finish_reason,
                          std::string_view usage_json) {
  append_chunk_head(out, ids);
  out += "{\"index\":0,\"delta\":{},\"finish_reason\":";
  json::append_string(out, finish_reason);
  out += "}]}\n\n";
  if (!usage_json.empty()) {
    append_chunk_head(out, ids);
    out += "],\"usage\":";
    out += usage_json;
    out += "}\n\n";
  }
  out += "data: [DONE]\n\n";
}

void append_openai_error(std::string& out, std::string_view code, std::string_view message) {
  out += "data: {\"error\":{\"message\":";
  json::append_string(out, message);
  out += ",\"type\":\"server_error\",\"code\":";
  json::append_string(out, code);
  out += "}}\n\n";
}

}  // namespace chatstream::sse
