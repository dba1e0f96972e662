#pragma once
// A statement of ours that the pool prepares: sent once per connection as a named prepared statement
// (PQsendPrepare), executed by name after that (PQsendQueryPrepared). PostgreSQL then parses and
// plans it once per connection instead of once per execution, and after five executions it keeps one
// generic plan. Planning is most of what a small statement costs the server: the batched run starts
// and ends took ~2-3 ms of PostgreSQL CPU to plan each, more than executing a batch of 20 runs
// (bench/README.md, "Prepared statements").
//
// The name is the statement's identity on the server for the life of a connection: one name, one
// SQL text, chosen by us and unique within the process (tests/unit/db/pool_test.cpp checks what a
// reused name does). Through a pooler, named statements need PgBouncer >= 1.21 with
// max_prepared_statements set; `--db-prepared-statements off` sends every statement unnamed instead.
namespace chatstream::db {

struct Statement {
  const char* name;
  const char* sql;
};

}  // namespace chatstream::db
