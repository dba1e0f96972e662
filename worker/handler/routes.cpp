#include "handler/context.hpp"

#include <ctime>

namespace chatstream::handler {

void add_routes(http::Router& router, HandlerContext& context) {
  add_chat_routes(router, context);
  add_resume_routes(router, context);
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
  dispatch(router, connection, request);
}

}  // namespace chatstream::handler
