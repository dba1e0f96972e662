#pragma once
// Validation of the JSON bodies of the chat endpoints. Every failure is an Error with its Errc
// (bad_request, unsupported_media_type, not_found for an unknown model) and a message safe to show.

#include <optional>
#include <string>
#include <vector>

#include "core/result.hpp"
#include "core/uuid.hpp"
#include "http/request.hpp"
#include "llm/provider.hpp"

namespace chatstream::chat {

// What a new message to a conversation that already has a running run does (docs/protocol.md).
enum class Multitask : uint8_t {
  kReject,     // 409 run_in_progress with the running run's id (the default)
  kInterrupt,  // cancel the running run (reason "interrupted"), then start
  kEnqueue,    // start when the running run ends (the stream says `queued` meanwhile)
};

// What happens to a streamed run whose client goes away (POST /chat/stream "on_disconnect").
enum class OnDisconnect : uint8_t {
  kGrace,     // wait --disconnect-grace for a resume, then cancel (the default)
  kCancel,    // "cancel": the same, said explicitly
  kContinue,  // "continue": finish and store the answer even if nobody listens (within the run timeout)
};

struct ChatRequest {
  std::string user_id;  // who asks (http::Request::user_id, auth/sign_in.hpp); owns the session and the run
  std::string message;
  std::optional<Uuid> session_id;
  Multitask multitask = Multitask::kReject;
  OnDisconnect on_disconnect = OnDisconnect::kGrace;
  // POST /v1/chat/completions: the messages before the last user message (used as the conversation
  // when no session_id continues a stored one), and whether the usage chunk was asked for.
  std::vector<llm::Turn> prior_turns;
  bool stream = false;
  bool include_usage = false;
};

// GET /chat/stream/{run_id}: where a resumed stream starts — after `Last-Event-ID: <run_id>:<seq>`,
// or after `?last_event_id=<seq>` (or `<run_id>:<seq>`); with neither, at seq 0 (meta).
struct ResumeRequest {
  Uuid run_id;
  uint64_t next_seq = 0;
};
Status parse_resume_request(const http::Request& request, std::string_view run_id, ResumeRequest* out);

struct CancelRequest {
  Uuid run_id;
};

// `request.body` must have simdjson's padding in its capacity (the connection reserves it).
Status parse_chat_request(http::Request& request, ChatRequest* out);
// The OpenAI Chat Completions request shape: model ("chatstream" or absent), messages (the last one
// from the user; content a string or an array of text parts), stream, stream_options.include_usage;
// the session to continue from `session_id` in the body or the X-Chatstream-Session-Id header.
Status parse_openai_request(http::Request& request, ChatRequest* out);
Status parse_cancel_request(http::Request& request, CancelRequest* out);
// PATCH /sessions/{id}: {"title": "…"}, trimmed, 1 to kMaxTitleChars characters, no control characters.
inline constexpr size_t kMaxTitleChars = 200;
Status parse_rename_request(http::Request& request, std::string* title);

}  // namespace chatstream::chat
