// GET /chat/stream/{run_id}: resume a streamed answer (docs/protocol.md, "Resuming a stream"). The
// worker that owns the run serves it from the run's event log; any other worker or instance replays
// PostgreSQL's copy and follows the owner (chat/run_followers.hpp).
#include "chat/chat_request.hpp"
#include "chat/run_followers.hpp"
#include "handler/context.hpp"
#include "obs/metrics.hpp"
#include "sse/log_reader.hpp"

namespace chatstream::handler {

void add_resume_routes(http::Router& router, HandlerContext& context) {
  router.add("GET", "/chat/stream/{run_id}", [&context](http::Connection& connection, http::Request& request,
                                                        const http::RouteParams& params) {
    chat::ResumeRequest resume;
    if (Status parsed = chat::parse_resume_request(request, params.get("run_id"), &resume); !parsed) {
      connection.respond_error(parsed.error().code, parsed.error().message);
      return;
    }
    // Another user's run is not found, here or through the database.
    if (chat::Run* run = context.registry.find_resumable(resume.run_id); run && run->user_id() == request.user_id) {
      sse::EventLog* log = run->event_log();
      if (!log) {
        connection.respond_error(Errc::kNotFound,
                                 "This run's answer is not an event stream (only POST /chat/stream answers resume)");
        return;
      }
      obs::add(obs::Counter::kResumes);
      sse::LogReader::start(connection, context.runs.wheel, context.runs.stream_settings, context.graveyard, *log,
                            resume.next_seq);
      return;
    }
    if (!context.followers) {
      connection.respond_error(Errc::kNotFound, "No such run");
      return;
    }
    context.followers->resume(connection, resume, request.user_id);
  });
}

}  // namespace chatstream::handler
