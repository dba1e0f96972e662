#pragma once
// What a client is told about a statement that failed: busy (overloaded), the database away
// (database_unavailable), or anything else (internal, with `what_failed` in the message). The
// details — the server's message and SQLSTATE — go to the log, never to the client.

#include <string_view>

#include "core/result.hpp"
#include "db/pg_connection.hpp"

namespace chatstream::db {

Error client_error(const QueryError& error, std::string_view what_failed);

}  // namespace chatstream::db
