// POST /chat/stream, POST /chat and POST /v1/chat/completions: decode the request, then start a run
// whose writer (chat/run_writer.hpp) is the format the route answers in.
#include "chat/chat_request.hpp"
#include "handler/context.hpp"

namespace chatstream::handler {

namespace {

void start_run(HandlerContext& context, http::Connection& connection, chat::ChatRequest request, chat::RunMode mode) {
  if (context.worker.draining()) {
    connection.respond_error(Errc::kShutdown, "The server is restarting. Please retry shortly.");
    return;
  }
  admit_run(context, connection, std::move(request), mode);
}

}  // namespace

void add_chat_routes(http::Router& router, HandlerContext& context) {
  auto chat = [&context](chat::RunMode mode) {
    return [&context, mode](http::Connection& connection, http::Request& request, const http::RouteParams&) {
      chat::ChatRequest chat_request;
      if (Status parsed = chat::parse_chat_request(request, &chat_request); !parsed) {
        connection.respond_error(parsed.error().code, parsed.error().message);
        return;
      }
      chat_request.user_id = request.user_id;
      start_run(context, connection, std::move(chat_request), mode);
    };
  };
  router.add("POST", "/chat/stream", chat(chat::RunMode::kStream));
  router.add("POST", "/chat", chat(chat::RunMode::kJson));
  router.add("POST", "/v1/chat/completions",
             [&context](http::Connection& connection, http::Request& request, const http::RouteParams&) {
               chat::ChatRequest chat_request;
               if (Status parsed = chat::parse_openai_request(request, &chat_request); !parsed) {
                 connection.respond_error(parsed.error().code, parsed.error().message);
                 return;
               }
               chat_request.user_id = request.user_id;
               chat::RunMode mode = chat_request.stream ? chat::RunMode::kOpenAIStream : chat::RunMode::kOpenAIJson;
               start_run(context, connection, std::move(chat_request), mode);
             });
}

}  // namespace chatstream::handler
