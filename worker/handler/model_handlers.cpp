// GET /v1/models and GET /v1/models/{id}: the one model, "chatstream", which selects chatstream's own
// pipeline (retrieval, context, persistence, the configured provider).
#include "handler/context.hpp"

namespace chatstream::handler {

void add_model_routes(http::Router& router, HandlerContext&) {
  router.add("GET", "/v1/models", [](http::Connection& connection, http::Request&, const http::RouteParams&) {
    connection.respond(200, "application/json",
                       R"({"object":"list","data":[{"id":"chatstream","object":"model","created":0,"owned_by":"chatstream"}]})");
  });
  router.add("GET", "/v1/models/{id}", [](http::Connection& connection, http::Request&, const http::RouteParams& p) {
    if (p.get("id") != "chatstream") {
      connection.respond_error(Errc::kNotFound, "No such model; the only model is \"chatstream\"");
      return;
    }
    connection.respond(200, "application/json",
                       R"({"id":"chatstream","object":"model","created":0,"owned_by":"chatstream"})");
  });
}

}  // namespace chatstream::handler
