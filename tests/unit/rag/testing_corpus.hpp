#pragma once
// A small knowledge base in the style of the PostgreSQL manual, with distractors: passages that share
// words with the questions the tests ask but do not answer them.

#include <string>
#include <vector>

#include "rag/passage.hpp"

namespace chatstream::rag::testing {

enum CorpusId : size_t {
  kCreateIndex,
  kIndexStorage,
  kDropIndex,
  kDropTable,
  kCreateTable,
  kPartialIndex,
  kVacuum,
  kMvcc,
  kMemory,
  kPgDump,
  kCorpusSize,
};

inline std::vector<Passage> corpus() {
  std::vector<Passage> passages(kCorpusSize);
  auto set = [&](CorpusId id, std::string title, std::string heading, std::string content, double db_rank) {
    passages[id] = Passage{static_cast<int64_t>(100 + id),
                           std::move(title),
                           "manual/" + std::to_string(id) + ".html",
                           std::move(heading),
                           std::move(content),
                           db_rank};
  };
  set(kCreateIndex, "CREATE INDEX", "Description",
      "CREATE INDEX constructs an index on the specified column(s) of the specified relation, which can be a "
      "table or a materialized view. Indexes are primarily used to enhance database performance (though "
      "inappropriate use can result in slower performance).\n\nThe key field(s) for the index are specified "
      "as "
      "column names, or alternatively as expressions written in parentheses.",
      0.3);
  set(kIndexStorage, "CREATE INDEX", "Index Storage Parameters",
      "The optional WITH clause specifies storage parameters for the index. Each index method has its own "
      "set "
      "of allowed storage parameters. All indexes accept the fillfactor parameter. The fillfactor for an "
      "index "
      "is a percentage that determines how full the index method will try to pack index pages. B-tree "
      "indexes "
      "additionally accept deduplicate_items. These parameters can be set when you create the index, or "
      "later with ALTER INDEX.",
      0.5);
  set(kDropIndex, "DROP INDEX", "Description",
      "DROP INDEX drops an existing index from the database system. To execute this command you must be the "
      "owner of the index.",
      0.2);
  set(kDropTable, "DROP TABLE", "Description",
      "DROP TABLE removes tables from the database. Only the table owner, the schema owner, and superuser "
      "can "
      "drop a table. To empty a table of rows without destroying the table, use DELETE or TRUNCATE.",
      0.2);
  set(kCreateTable, "CREATE TABLE", "Description",
      "CREATE TABLE will create a new, initially empty table in the current database. The table will be "
      "owned "
      "by the user issuing the command. If a schema name is given then the table is created in the specified "
      "schema. Each column of the table has a name and a data type.",
      0.4);
  set(kPartialIndex, "11.8. Partial Indexes", "11.8. Partial Indexes",
      "A partial index is an index built over a subset of a table; the subset is defined by a conditional "
      "expression (called the predicate of the partial index). The index contains entries only for those "
      "table rows that satisfy the predicate.\n\nTo create a partial index that suits our example, use a "
      "command such as this:\n\n```\nCREATE INDEX orders_unbilled_index ON orders (order_nr)\n    WHERE billed is "
      "not true;\n```\n\nSee Section 11.2 for more discussion.",
      0.1);
  set(kVacuum, "25.1. Routine Vacuuming", "25.1.1. Vacuuming Basics",
      "PostgreSQL's VACUUM command has to process each table on a regular basis for several reasons: to "
      "recover or reuse disk space occupied by updated or deleted rows, to update data statistics used by "
      "the "
      "query planner, and to protect against loss of very old data due to transaction ID wraparound. [7]\n\n"
      "There are two variants of VACUUM: standard VACUUM and VACUUM FULL.",
      0.6);
  set(kMvcc, "13.1. Introduction", "13.1. Introduction",
      "PostgreSQL provides a rich set of tools for developers to manage concurrent access to data. "
      "Internally, data consistency is maintained by using a multiversion model (Multiversion Concurrency "
      "Control, MVCC). This means that each SQL statement sees a snapshot of data as it was some time ago, "
      "regardless of the current state of the underlying data.",
      0.1);
  set(kMemory, "20.4. Resource Consumption", "20.4.1. Memory",
      "shared_buffers sets the amount of memory the database server uses for shared memory buffers. The "
      "default is typically 128 megabytes.\n\nwork_mem sets the base maximum amount of memory to be used by "
      "a "
      "query operation (such as a sort or hash table) before writing to temporary disk files.",
      0.3);
  set(kPgDump, "pg_dump", "Description",
      "pg_dump is a utility for backing up a PostgreSQL database. It makes consistent backups even if the "
      "database is being used concurrently. pg_dump only dumps a single database.",
      0.2);
  return passages;
}

}  // namespace chatstream::rag::testing
