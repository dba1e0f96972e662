-- chatstream schema: streams that resume from any worker (docs/architecture.md, "Durable runs").
--  * runs.resumable: the run answers with chatstream's event stream (POST /chat/stream), whose
--    events are kept; the other formats are not resumable. Cleared once the run's stored stream
--    expires (--resume-retention after it ended).
--  * run_events: a run's SSE events exactly as framed (`id: <run>:<seq>` … blank line) — what a
--    reader on another worker, another instance, or after the worker exited replays. Every
--    checkpoint appends a piece (first_seq = the seq of its first event; rows are appended, never
--    rewritten, so a long answer costs what it weighs, not its square); the statement that stores
--    the run's end appends the last piece (final), terminal event included, from the count the run
--    knew was stored — it may overlap a checkpoint that committed unheard: readers skip the seqs they
--    have. runs.event_count is how many events are stored, so a checkpoint's piece is only ever
--    appended onto the count it follows.
--  * Keyed by session like runs and messages (docs/scaling.md).

ALTER TABLE runs
    ADD COLUMN resumable    boolean NOT NULL DEFAULT false,
    ADD COLUMN event_count  integer NOT NULL DEFAULT 0;

CREATE TABLE run_events (
    run_id      uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    session_id  uuid NOT NULL,
    first_seq   integer NOT NULL,
    final       boolean NOT NULL DEFAULT false,  -- the piece the run's end wrote
    events      text COMPRESSION lz4 NOT NULL,  -- lz4: a fraction of pglz's CPU for this text
    PRIMARY KEY (session_id, run_id, first_seq, final)  -- the distribution column first (docs/scaling.md)
);

-- The retention sweep finds the ended runs whose stream is still kept.
CREATE INDEX runs_resumable_ended_idx ON runs (finished_at) WHERE resumable AND status <> 'running';
