// The conversation list of a user: GET /sessions (newest first, paged with ?limit= and ?before=),
// PATCH /sessions/{id} {"title"} (rename), DELETE /sessions/{id} (with its running run cancelled).
// Another user's session is not found, exactly like an unknown one.
#include <charconv>

#include "chat/chat_request.hpp"
#include "handler/context.hpp"
#include "http/deferred_response.hpp"
#include "http/query_params.hpp"
#include "json/writer.hpp"

namespace chatstream::handler {

namespace {

constexpr size_t kDefaultPage = 20;
constexpr size_t kMaxPage = 100;
constexpr const char* kNoDatabase = "Conversations are not kept: no database configured";

// `stored` false: no database, nothing is kept (the page then hides its list).
std::string page_body(const chat::ConversationPage& page, bool stored = true) {
  std::string list = "[";
  for (size_t i = 0; i < page.conversations.size(); ++i) {
    const chat::ConversationSummary& c = page.conversations[i];
    if (i > 0) list += ",";
    json::Object(list)
        .field("id", c.id)
        .field("title", c.title)
        .field("updated_at", c.updated_at)
        .field("message_count", c.message_count)
        .field("running", c.running)
        .close();
  }
  list += "]";
  std::string body;
  json::Object object(body);
  object.raw("sessions", list).field("stored", stored);
  if (page.next_before.empty()) object.raw("next_before", "null");
  else object.field("next_before", page.next_before);
  object.close();
  return body;
}

// The answer of a statement that only succeeds or fails.
std::function<void(Status)> answer_with(http::DeferredResponse* response, std::string body) {
  return [response, body = std::move(body)](Status done) {
    http::Connection* connection = response->take();
    if (!connection) return;
    if (!done) connection->respond_error(done.error().code, done.error().message);
    else connection->respond(200, "application/json", body, "Cache-Control: no-store\r\n");
  };
}

void list_sessions(HandlerContext& context, http::Connection& connection, http::Request& request) {
  size_t limit = kDefaultPage;
  bool bad = false;
  if (auto text = http::query_param(request.query, "limit", &bad)) {
    size_t value = 0;
    auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
    if (ec != std::errc() || end != text->data() + text->size() || value < 1 || value > kMaxPage) {
      connection.respond_error(Errc::kBadRequest, "'limit' must be an integer from 1 to " + std::to_string(kMaxPage));
      return;
    }
    limit = value;
  }
  chat::PageCursor cursor;
  if (auto text = http::query_param(request.query, "before", &bad); text && !text->empty()) {
    auto parsed = chat::parse_page_cursor(*text);
    if (!parsed) {
      connection.respond_error(Errc::kBadRequest, "'before' must be an updated_at or the next_before of a page");
      return;
    }
    cursor = std::move(*parsed);
  }
  if (bad) {
    connection.respond_error(Errc::kBadRequest, "The query string has a malformed %-escape");
    return;
  }
  if (!context.conversations) {
    connection.respond(200, "application/json", page_body({}, false), "Cache-Control: no-store\r\n");
    return;
  }
  auto* response = http::DeferredResponse::attach(connection, context.graveyard);
  uint64_t ticket = context.conversations->list(
      request.user_id, limit, cursor, [response](Result<chat::ConversationPage>& page) {
        http::Connection* connection = response->take();
        if (!connection) return;
        if (!page) connection->respond_error(page.error().code, page.error().message);
        else connection->respond(200, "application/json", page_body(*page), "Cache-Control: no-store\r\n");
      });
  response->waits_for(ticket, &cancel_statement<chat::Conversations>, context.conversations);
}

}  // namespace

void add_conversation_routes(http::Router& router, HandlerContext& context) {
  router.add("GET", "/sessions", [&context](http::Connection& connection, http::Request& request,
                                            const http::RouteParams&) { list_sessions(context, connection, request); });

  router.add("PATCH", "/sessions/{id}", [&context](http::Connection& connection, http::Request& request,
                                                   const http::RouteParams& params) {
    std::string title;
    if (Status parsed = chat::parse_rename_request(request, &title); !parsed) {
      connection.respond_error(parsed.error().code, parsed.error().message);
      return;
    }
    auto session_id = Uuid::parse(params.get("id"));
    if (!context.conversations) return connection.respond_error(Errc::kNotFound, kNoDatabase);
    if (!session_id) return connection.respond_error(Errc::kNotFound, "No such session");
    std::string body;
    json::Object(body).field("id", session_id->to_string()).field("title", title).close();
    auto* response = http::DeferredResponse::attach(connection, context.graveyard);
    uint64_t ticket =
        context.conversations->rename(*session_id, request.user_id, title, answer_with(response, std::move(body)));
    response->waits_for(ticket, &cancel_statement<chat::Conversations>, context.conversations);
  });

  router.add("DELETE", "/sessions/{id}", [&context](http::Connection& connection, http::Request& request,
                                                    const http::RouteParams& params) {
    auto session_id = Uuid::parse(params.get("id"));
    if (!context.conversations) return connection.respond_error(Errc::kNotFound, kNoDatabase);
    if (!session_id) return connection.respond_error(Errc::kNotFound, "No such session");
    std::string body;
    json::Object(body).field("id", session_id->to_string()).field("deleted", true).close();
    auto* response = http::DeferredResponse::attach(connection, context.graveyard);
    uint64_t ticket =
        context.conversations->remove(*session_id, request.user_id, answer_with(response, std::move(body)));
    response->waits_for(ticket, &cancel_statement<chat::Conversations>, context.conversations);
  });
}

}  // namespace chatstream::handler
