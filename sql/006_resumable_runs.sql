-- chatstream schema: streams that resume from any worker, and checkpoints that never rewrite a
-- running run's row (docs/architecture.md, "Durable runs").
--  * runs.resumable: the run answers with chatstream's event stream (POST /chat/stream), whose
--    events are kept; the other formats are not resumable. Cleared once the run's stored stream
--    expires (--resume-retention after it ended). runs.event_count: the events of its stored stream,
--    set when the run ends.
--  * run_events: what the owner stored of a running run, one row per checkpoint (`piece` counts
--    them): the answer text added since the previous piece, the tokens so far, and (a resumable run)
--    its events [first_seq, next_seq) in the event log's stored form (sse/event_log.hpp) — what a
--    reader on another worker, another instance, or after the worker exited replays, and what a lost
--    run's answer is rebuilt from. Rows are appended, never rewritten (a checkpoint that committed
--    unheard is sent again with the same piece number and more in it: the longer one wins), so a
--    long answer costs what it weighs, not its square, and the run's own row is written at its start
--    and its end only. The run's end writes the last piece (final), terminal event included, from
--    the events the run knew were stored — it may overlap a piece that committed unheard: readers
--    skip the seqs they have.
--  * worker_leases: one lease per worker, renewed by each checkpoint statement (not one per run):
--    a running run whose start lease and whose worker's lease both ran out has lost its owner (a
--    whole host gone) and any instance closes it. Small, never distributed (docs/scaling.md).
--  * runs.checkpoint / checkpoint_tokens (004) are no longer written (the pieces hold the text) and
--    go one release later (docs/operations.md: hosts of two releases share the schema meanwhile).
--  * run_events is keyed by session like runs and messages (docs/scaling.md).

ALTER TABLE runs
    ADD COLUMN resumable    boolean NOT NULL DEFAULT false,
    ADD COLUMN event_count  integer NOT NULL DEFAULT 0;

CREATE TABLE run_events (
    run_id      uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    session_id  uuid NOT NULL,
    piece       integer NOT NULL,                -- the owner's checkpoint count for this run (0 when final)
    final       boolean NOT NULL DEFAULT false,  -- the piece the run's end (or the sweep's worker_lost) wrote
    first_seq   integer NOT NULL DEFAULT 0,
    next_seq    integer NOT NULL DEFAULT 0,
    events      text COMPRESSION lz4 NOT NULL DEFAULT '',  -- lz4: a fraction of pglz's CPU for this text
    answer      text NOT NULL DEFAULT '',
    tokens      integer NOT NULL DEFAULT 0,
    PRIMARY KEY (session_id, run_id, piece, final)  -- the distribution column first (docs/scaling.md)
);

CREATE TABLE worker_leases (
    instance_id  text NOT NULL,
    worker_pid   integer NOT NULL,
    master_pid   integer,
    lease_until  timestamptz NOT NULL,
    PRIMARY KEY (instance_id, worker_pid)
);

-- The retention sweep finds the ended runs whose stream is still kept.
CREATE INDEX runs_resumable_ended_idx ON runs (finished_at) WHERE resumable AND status <> 'running';
