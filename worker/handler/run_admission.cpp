// The check between a decoded chat request and its run (handler/context.hpp: admit_run): the session
// it continues must be the user's and the user must be under --max-active-runs-per-user. Done before
// the run opens its stream, so a refusal is a plain HTTP 404 / 429, not an SSE error.
#include <memory>

#include "handler/context.hpp"
#include "http/deferred_response.hpp"

namespace chatstream::handler {

namespace {
// A `running` row older than the run timeout plus this is a dead worker's, not a live run.
constexpr uint64_t kRunAgeMarginMs = 5000;
}  // namespace

void admit_run(HandlerContext& context, http::Connection& connection, chat::ChatRequest request, chat::RunMode mode) {
  size_t limit = context.sign_in.enabled() ? context.max_active_runs_per_user : 0;
  if (!context.conversations || (!request.session_id && limit == 0)) {
    chat::Run::start(context.runs, connection, std::move(request), mode);
    return;
  }
  uint64_t max_age_ms = context.run_timeout_ms > 0 ? context.run_timeout_ms + kRunAgeMarginMs : 0;
  auto* response = http::DeferredResponse::attach(connection, context.graveyard);
  auto pending = std::make_shared<chat::ChatRequest>(std::move(request));
  uint64_t ticket = context.conversations->admit(
      pending->user_id, pending->session_id, limit, max_age_ms, [&context, response, pending, mode](Status admitted) {
        http::Connection* connection = response->take();
        if (!connection) return;
        if (!admitted) {
          connection->respond_error(admitted.error().code, admitted.error().message);
          return;
        }
        if (context.worker.draining()) {
          connection->respond_error(Errc::kShutdown, "The server is restarting. Please retry shortly.");
          return;
        }
        chat::Run::start(context.runs, *connection, std::move(*pending), mode);
      });
  response->waits_for(ticket, &cancel_statement<chat::Conversations>, context.conversations);
}

}  // namespace chatstream::handler
