#pragma once
// The bytes of OpenAI's streaming format, for POST /v1/chat/completions (so OpenAI SDK clients work
// unchanged): every piece of answer text is a `chat.completion.chunk` with delta.content, the end is
// a chunk with finish_reason (and a usage chunk when asked for) followed by `data: [DONE]`, and an
// error is a `data: {"error":{…}}` event. chatstream's stage events have no equivalent and are not
// sent; heartbeats stay SSE comments, which the SDKs skip.

#include <cstdint>
#include <string>
#include <string_view>

namespace chatstream::sse {

struct OpenAIChunkIds {
  std::string_view id;     // "chatcmpl-<run_id>"
  std::string_view model;  // "chatstream"
  int64_t created;         // unix seconds
};

void append_openai_role_chunk(std::string& out, const OpenAIChunkIds& ids);
void append_openai_content_chunk(std::string& out, const OpenAIChunkIds& ids, std::string_view text);
// finish_reason chunk, then the usage chunk when `usage_json` is non-empty, then [DONE].
void append_openai_finish(std::string& out, const OpenAIChunkIds& ids, std::string_view finish_reason,
                          std::string_view usage_json);
void append_openai_error(std::string& out, std::string_view code, std::string_view message);

}  // namespace chatstream::sse
