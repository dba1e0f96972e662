// GET /sessions/{id}/messages: a stored conversation of the request's user, oldest message first
// (another user's is not found).
#include "handler/context.hpp"
#include "http/deferred_response.hpp"
#include "json/writer.hpp"

namespace chatstream::handler {

namespace {

std::string messages_body(std::string_view session_id, const chat::SessionMessages& session) {
  const std::vector<chat::StoredMessage>& messages = session.messages;
  std::string list = "[";
  for (size_t i = 0; i < messages.size(); ++i) {
    const chat::StoredMessage& m = messages[i];
    if (i > 0) list += ",";
    json::Object(list)
        .field("id", static_cast<int64_t>(m.id))
        .field("role", m.role)
        .field("content", m.content)
        .field("status", m.status)
        .field("created_at", m.created_at)
        .raw("citations", m.citations_json)
        .close();
  }
  list += "]";
  std::string body;
  json::Object object(body);
  object.field("session_id", session_id).raw("messages", list);
  if (session.running_run) object.field("running_run_id", session.running_run->to_string());
  else object.raw("running_run_id", "null");
  object.close();
  return body;
}

}  // namespace

void add_session_routes(http::Router& router, HandlerContext& context) {
  router.add("GET", "/sessions/{id}/messages",
             [&context](http::Connection& connection, http::Request& request, const http::RouteParams& params) {
               auto session_id = Uuid::parse(params.get("id"));
               if (!context.store) {
                 connection.respond_error(Errc::kNotFound, "Conversations are not kept: no database configured");
                 return;
               }
               if (!session_id) {
                 connection.respond_error(Errc::kNotFound, "No such session");
                 return;
               }
               auto* response = http::DeferredResponse::attach(connection, context.graveyard);
               std::string id_text = session_id->to_string();
               uint64_t ticket = context.store->session_messages(
                   *session_id, request.user_id, [response, id_text](Result<chat::SessionMessages>& messages) {
                     http::Connection* connection = response->take();
                     if (!connection) return;
                     if (!messages) {
                       connection->respond_error(messages.error().code, messages.error().message);
                       return;
                     }
                     connection->respond(200, "application/json", messages_body(id_text, *messages),
                                         "Cache-Control: no-store\r\n");
                   });
               response->waits_for(ticket, &cancel_statement<chat::Store>, context.store);
             });
}

}  // namespace chatstream::handler
