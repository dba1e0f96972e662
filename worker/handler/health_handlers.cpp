// GET /healthz (this worker) and GET /metrics (every worker of the master, summed).
#include <unistd.h>

#include "handler/context.hpp"
#include "json/writer.hpp"
#include "obs/metrics.hpp"

namespace chatstream::handler {

void add_health_routes(http::Router& router, HandlerContext& context) {
  router.add("GET", "/healthz", [&context](http::Connection& connection, http::Request&, const http::RouteParams&) {
    bool draining = context.worker.draining();
    std::string body;
    json::Object object(body);
    object.field("status", draining ? "draining" : "ok")
        .field("pid", static_cast<int64_t>(getpid()))
        .field("worker", context.worker.worker_index())
        .field("draining", draining)
        .field("active_streams", obs::gauge_value(obs::Gauge::kActiveStreams))
        .field("connections", context.worker.connection_count())
        .field("database", context.pool ? context.pool->state() : std::string_view("not_configured"))
        .field("provider", context.provider.name());
    object.close();
    connection.respond(draining ? 503 : 200, "application/json", body, "Cache-Control: no-store\r\n");
  });
  router.add("GET", "/metrics", [](http::Connection& connection, http::Request&, const http::RouteParams&) {
    obs::SharedMetrics* shared = obs::shared_metrics();
    std::string body = shared ? shared->render_prometheus() : std::string();
    connection.respond(200, "text/plain; version=0.0.4; charset=utf-8", body, "Cache-Control: no-store\r\n");
  });
}

}  // namespace chatstream::handler
