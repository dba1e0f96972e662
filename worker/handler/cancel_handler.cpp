// POST /chat/cancel: a run of this worker stops at once; another worker's (or another instance's) is
// found through PostgreSQL (NOTIFY to every worker; the owner cancels).
#include "chat/chat_request.hpp"
#include "handler/context.hpp"
#include "http/deferred_response.hpp"
#include "json/writer.hpp"

namespace chatstream::handler {

void add_cancel_routes(http::Router& router, HandlerContext& context) {
  router.add("POST", "/chat/cancel", [&context](http::Connection& connection, http::Request& request,
                                                const http::RouteParams&) {
    chat::CancelRequest cancel;
    if (Status parsed = chat::parse_cancel_request(request, &cancel); !parsed) {
      connection.respond_error(parsed.error().code, parsed.error().message);
      return;
    }
    std::string body;
    json::Object(body).field("run_id", cancel.run_id.to_string()).field("cancelled", true).close();
    // Another user's run is not found, here or through the database.
    if (chat::Run* run = context.registry.find(cancel.run_id); run && run->user_id() == request.user_id) {
      run->cancel();
      connection.respond(200, "application/json", body);
      return;
    }
    if (!context.store) {
      connection.respond_error(Errc::kNotFound, "No run in progress with this run_id");
      return;
    }
    auto* response = http::DeferredResponse::attach(connection, context.graveyard);
    uint64_t ticket = context.store->cancel_everywhere(cancel.run_id, request.user_id, "cancel_request",
                                                       [response, body](Status found) {
      http::Connection* connection = response->take();
      if (!connection) return;
      if (!found) connection->respond_error(found.error().code, found.error().message);
      else connection->respond(200, "application/json", body);
    });
    response->waits_for(ticket, &cancel_statement<chat::Store>, context.store);
  });
}

}  // namespace chatstream::handler
