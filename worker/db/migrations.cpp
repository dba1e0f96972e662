#include "db/migrations.hpp"

#include <libpq-fe.h>

#include <memory>

namespace chatstream::db {

namespace {
struct ConnDeleter {
  void operator()(PGconn* conn) const { PQfinish(conn); }
};
struct ResultDeleter {
  void operator()(PGresult* result) const { PQclear(result); }
};
using Conn = std::unique_ptr<PGconn, ConnDeleter>;
using Res = std::unique_ptr<PGresult, ResultDeleter>;

std::string message_of(PGconn* conn) {
  std::string text = PQerrorMessage(conn);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

Status exec(PGconn* conn, const char* sql) {
  Res result(PQexec(conn, sql));
  ExecStatusType status = PQresultStatus(result.get());
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) return Error{message_of(conn)};
  return {};
}
}  // namespace

Result<int> migrate(const std::string& conninfo) {
  Conn conn(PQconnectdb(conninfo.c_str()));
  if (PQstatus(conn.get()) != CONNECTION_OK) return Error{"cannot connect to the database: " + message_of(conn.get())};
  PQsetNoticeProcessor(conn.get(), [](void*, const char*) {}, nullptr);
  if (Status s = exec(conn.get(),
                      "CREATE TABLE IF NOT EXISTS schema_migrations ("
                      "  name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())");
      !s) {
    return s.error();
  }
  // One migrator at a time (several workers or deploy scripts may start together).
  if (Status s = exec(conn.get(), "SELECT pg_advisory_lock(715517)"); !s) return s.error();
  int applied = 0;
  for (const Migration& migration : migrations()) {
    const char* params[] = {migration.name};
    Res done(PQexecParams(conn.get(), "SELECT 1 FROM schema_migrations WHERE name = $1", 1, nullptr, params,
                          nullptr, nullptr, 0));
    if (PQresultStatus(done.get()) != PGRES_TUPLES_OK) return Error{message_of(conn.get())};
    if (PQntuples(done.get()) > 0) continue;
    if (Status s = exec(conn.get(), "BEGIN"); !s) return s.error();
    if (Status s = exec(conn.get(), migration.sql); !s) {
      (void)exec(conn.get(), "ROLLBACK");  // best effort: the error above is what matters
      return Error{std::string(migration.name) + ": " + s.error().message};
    }
    Res record(PQexecParams(conn.get(), "INSERT INTO schema_migrations (name) VALUES ($1)", 1, nullptr, params,
                            nullptr, nullptr, 0));
    if (PQresultStatus(record.get()) != PGRES_COMMAND_OK) {
      (void)exec(conn.get(), "ROLLBACK");  // best effort: the error above is what matters
      return Error{message_of(conn.get())};
    }
    if (Status s = exec(conn.get(), "COMMIT"); !s) return s.error();
    ++applied;
  }
  (void)exec(conn.get(), "SELECT pg_advisory_unlock(715517)");  // released at disconnect anyway
  return applied;
}

}  // namespace chatstream::db
