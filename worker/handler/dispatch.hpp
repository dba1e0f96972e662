#pragma once
// Answers a complete request from the route table: its handler, or 404, or 405 with Allow. Apart from
// the handlers (handler/context.hpp), so the HTTP fuzz target runs the worker's own dispatch without
// the database and provider layers.

#include "http/connection.hpp"
#include "http/router.hpp"

namespace chatstream::handler {

void dispatch(const http::Router& router, http::Connection& connection, http::Request& request);

}  // namespace chatstream::handler
