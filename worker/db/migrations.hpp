#pragma once
// Ordered schema migrations (sql/NNN_name.sql, compiled into the binary) and `chatstream migrate`.
// Each migration runs in its own transaction and is recorded in schema_migrations, so running the
// command again applies only what is new; concurrent runs are serialized by an advisory lock.
// This is a command-line path: it uses blocking libpq calls, never on a worker's loop.

#include <string>
#include <vector>

#include "core/result.hpp"

namespace chatstream::db {

struct Migration {
  const char* name;  // file name, e.g. "001_initial.sql"; the order is the name order
  const char* sql;
};

const std::vector<Migration>& migrations();

// Applies the pending migrations; returns how many were applied.
Result<int> migrate(const std::string& conninfo);

}  // namespace chatstream::db
