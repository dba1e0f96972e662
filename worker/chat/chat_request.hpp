#pragma once
// Validation of the JSON bodies of the chat endpoints. Every failure carries the HTTP status and a
// message safe to show (docs/protocol.md: 400 bad_request, 415 unsupported_media_type).

#include <optional>
#include <string>

#include "core/uuid.hpp"
#include "http/request.hpp"

namespace chatstream::chat {

struct RequestError {
  int status;
  std::string message;
};

struct ChatRequest {
  std::string message;
  std::optional<Uuid> session_id;
};

struct CancelRequest {
  Uuid run_id;
};

// `request.body` must have simdjson's padding in its capacity (the connection reserves it).
std::optional<RequestError> parse_chat_request(http::Request& request, ChatRequest* out);
std::optional<RequestError> parse_cancel_request(http::Request& request, CancelRequest* out);

}  // namespace chatstream::chat
