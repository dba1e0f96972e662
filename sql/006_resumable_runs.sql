-- chatstream schema: streams that resume from any worker (docs/architecture.md, "Durable runs").
--  * resumable: the run answers with chatstream's event stream (POST /chat/stream), whose events
--    are kept; the other formats are not resumable;
--  * events / event_count: the run's SSE events exactly as framed (`id: <run>:<seq>` … blank line),
--    appended by the owner with every checkpoint and completed, terminal event included, by the
--    statement that stores the run's end — what a reader on another worker, another instance, or
--    after the worker exited replays;
--  * finished_at (already there) + --resume-retention: how long a finished run can be replayed;
--    after that the events are dropped (runs_events_retention_idx finds them) and a resume is 410.

ALTER TABLE runs
    ADD COLUMN resumable    boolean NOT NULL DEFAULT false,
    ADD COLUMN events       text NOT NULL DEFAULT '',
    ADD COLUMN event_count  integer NOT NULL DEFAULT 0;

CREATE INDEX runs_events_retention_idx ON runs (finished_at) WHERE events <> '';
