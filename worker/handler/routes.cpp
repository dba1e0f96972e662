#include "handler/context.hpp"

#include <ctime>

namespace chatstream::handler {

void add_routes(http::Router& router, HandlerContext& context) {
  add_chat_routes(router, context);
  add_cancel_routes(router, context);
  add_session_routes(router, context);
  add_conversation_routes(router, context);
  add_model_routes(router, context);
  add_health_routes(router, context);
}

void dispatch(const http::Router& router, const HandlerContext& context, http::Connection& connection,
              http::Request& request) {
  if (auth::SignIn::is_protected(request.path)) {
    if (Status identified = context.sign_in.identify(request, static_cast<int64_t>(std::time(nullptr))); !identified) {
      connection.respond_error(Errc::kUnauthorized, identified.error().message, auth::kChallengeHeader);
      return;
    }
    if (Status own = auth::SignIn::strip_user_prefix(request); !own) {
      connection.respond_error(own.error().code, own.error().message);
      return;
    }
  }
  http::RouteMatch match = router.match(request.method, request.path);
  switch (match.kind) {
    case http::RouteMatch::Kind::kFound:
      (*match.handler)(connection, request, match.params);
      return;
    case http::RouteMatch::Kind::kMethodNotAllowed:
      connection.respond_error(Errc::kMethodNotAllowed,
                               request.method + " is not allowed on " + request.path + " (allowed: " + match.allow + ")",
                               "Allow: " + match.allow + "\r\n");
      return;
    case http::RouteMatch::Kind::kNotFound: {
      std::string path = request.path.size() > 200 ? request.path.substr(0, 200) + "…" : request.path;
      connection.respond_error(Errc::kNotFound, "No such endpoint: " + request.method + " " + path);
      return;
    }
  }
}

}  // namespace chatstream::handler
