-- chatstream schema, version 1: sessions, runs, messages, and the knowledge base.
-- Applied by `chatstream migrate` inside one transaction; recorded in schema_migrations.

CREATE TABLE sessions (
    id          uuid PRIMARY KEY,
    -- Text search configuration used for this session's retrieval (english, simple, german, ...).
    language    regconfig NOT NULL DEFAULT 'english',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE runs (
    id              uuid PRIMARY KEY,
    session_id      uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    provider        text NOT NULL,
    worker_pid      integer,
    status          text NOT NULL
                    CHECK (status IN ('running', 'complete', 'cancelled', 'disconnected', 'timeout', 'error')),
    error_code      text,
    started_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    first_token_ms  double precision,
    duration_ms     double precision,
    token_count     integer NOT NULL DEFAULT 0
);
CREATE INDEX runs_session_idx ON runs (session_id);
CREATE INDEX runs_running_idx ON runs (id) WHERE status = 'running';

CREATE TABLE messages (
    id           bigserial PRIMARY KEY,
    session_id   uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    run_id       uuid REFERENCES runs (id) ON DELETE SET NULL,
    role         text NOT NULL CHECK (role IN ('user', 'assistant')),
    content      text NOT NULL,
    status       text NOT NULL CHECK (status IN ('complete', 'cancelled', 'error', 'timeout')),
    token_count  integer NOT NULL DEFAULT 0,
    citations    jsonb NOT NULL DEFAULT '[]',
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX messages_session_idx ON messages (session_id, id);

CREATE TABLE documents (
    id            bigserial PRIMARY KEY,
    source        text NOT NULL UNIQUE,   -- the ingested path: ingestion is idempotent by source
    title         text NOT NULL,
    content_hash  text NOT NULL,
    ingested_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE chunks (
    id           bigserial PRIMARY KEY,
    document_id  bigint NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    ordinal      integer NOT NULL,
    heading      text NOT NULL DEFAULT '',
    content      text NOT NULL,
    language     regconfig NOT NULL DEFAULT 'english',
    -- Headings weigh more than body text in ts_rank_cd.
    tsv          tsvector GENERATED ALWAYS AS (
                     setweight(to_tsvector(language, heading), 'A') ||
                     setweight(to_tsvector(language, content), 'B')) STORED,
    UNIQUE (document_id, ordinal)
);
CREATE INDEX chunks_tsv_idx ON chunks USING gin (tsv);
