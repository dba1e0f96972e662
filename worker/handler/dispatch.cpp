#include "handler/dispatch.hpp"

namespace chatstream::handler {

void dispatch(const http::Router& router, http::Connection& connection, http::Request& request) {
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
