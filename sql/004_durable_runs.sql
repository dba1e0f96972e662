-- chatstream schema: runs that survive their worker.
--  * instance_id / master_pid: which chatstream instance (and which incarnation of it) owns a running
--    run, so a restarted instance or the replacement of a dead worker closes what was left running;
--  * checkpoint / checkpoint_tokens: the answer so far, written by the owner every
--    --checkpoint-interval in one batched statement for all of its runs;
--  * lease_until: renewed with every checkpoint; a running run whose lease ran out has lost its owner
--    (a whole host gone) and any worker closes it.

ALTER TABLE runs
    ADD COLUMN instance_id        text NOT NULL DEFAULT '',
    ADD COLUMN master_pid         integer,
    ADD COLUMN checkpoint         text NOT NULL DEFAULT '',
    ADD COLUMN checkpoint_tokens  integer NOT NULL DEFAULT 0,
    ADD COLUMN lease_until        timestamptz;

-- At most one running run per conversation, across every worker and instance.
CREATE UNIQUE INDEX runs_one_running_per_session ON runs (session_id) WHERE status = 'running';
