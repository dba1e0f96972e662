#include "handler/context.hpp"

namespace chatstream::handler {

void add_routes(http::Router& router, HandlerContext& context) {
  add_chat_routes(router, context);
  add_cancel_routes(router, context);
  add_session_routes(router, context);
  add_model_routes(router, context);
  add_health_routes(router, context);
}

}  // namespace chatstream::handler
