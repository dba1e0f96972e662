#pragma once
// The `openai` provider: any OpenAI-compatible Chat Completions upstream (OpenAI, vLLM, llama.cpp
// server, Ollama) streamed with `stream: true` through libcurl on the worker's loop (llm/curl_loop).
//
// - the request carries the conversation (history), the passages retrieval kept (in the system
//   message, to be cited as [n]) and, when the pipeline offers tools, their definitions;
// - content deltas become tokens as they arrive; usage goes into `done`;
// - streamed tool_calls deltas are assembled, announced (tool_call), run by the pipeline's
//   ToolRunner, reported (tool_result, bounded), and the conversation continues, up to max_tool_turns;
// - connection failures, 5xx and 429 before the first token are retried with bounded backoff
//   (honouring Retry-After); later failures end the run with error{upstream} and a message safe to
//   show (never the key, never the URL); a dropped or malformed stream ends it the same way;
// - pause() stops reading the upstream (CURLPAUSE_RECV), cancel() removes the transfer, which closes
//   its HTTP/1.1 connection or resets its HTTP/2 stream, so the model stops generating;
// - https:// upstreams are asked for HTTP/2 (ALPN): the worker's runs share few multiplexed
//   connections (PIPEWAIT); the CA that signs the upstream's certificate is the system's store or
//   ca_file (--llm-ca-file); a certificate that is not trusted ends the run at once (no retry).

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <simdjson.h>

#include "core/timer_wheel.hpp"
#include "llm/curl_loop.hpp"
#include "llm/provider.hpp"

namespace chatstream::llm {

struct OpenAISettings {
  std::string base_url;        // e.g. https://api.openai.com/v1 (…/chat/completions is appended)
  std::string api_key;         // sent as "Authorization: Bearer …" when set; never logged
  std::string model;
  std::vector<std::string> extra_headers;  // "Name: value"
  std::string ca_file;         // PEM bundle trusted for https:// upstreams; empty = the system's store
  uint64_t connect_timeout_ms = 10000;
  int max_retries = 3;         // attempts after the first, before any token arrived
  int max_tool_turns = 10;
  size_t max_tool_result_bytes = 4096;
};

class OpenAIProvider final : public Provider {
 public:
  OpenAIProvider(uv_loop_t* loop, TimerWheel& wheel, OpenAISettings settings);
  ~OpenAIProvider() override;
  std::string_view name() const override { return "openai"; }
  std::unique_ptr<Generation> start(const RunContext& context, EventSink& sink) override;
  void close() override { curl_.close(); }

  const OpenAISettings& settings() const { return settings_; }
  TimerWheel& wheel() { return wheel_; }
  CurlLoop& curl() { return curl_; }
  // One JSON parser for every generation of this loop: its buffers (about 10 KiB at least, most of
  // it sized by the maximum nesting depth) are not worth having per stream. A parse's results are
  // valid until the next parse.
  simdjson::dom::parser& json() { return json_; }

 private:
  TimerWheel& wheel_;
  OpenAISettings settings_;
  CurlLoop curl_;
  simdjson::dom::parser json_;
};

}  // namespace chatstream::llm
