-- chatstream schema, version 3: how many chunks hold each lexeme, so retrieval can weigh a question's
-- rare words above its common ones (rag/search_query.hpp kRetrieveSql). Refreshed by `chatstream
-- ingest` after it loads anything (ts_stat over all chunks, under a second for the PostgreSQL manual);
-- the row with lexeme '' holds the number of chunks.

CREATE TABLE lexeme_stats (
    lexeme  text PRIMARY KEY,
    chunks  integer NOT NULL
);
