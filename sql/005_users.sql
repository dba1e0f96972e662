-- chatstream schema: users (issue 11). Sessions and runs belong to the user who created them (the
-- token's `sub`); rows from before sign-in, and everything while sign-in is off, belong to the one
-- user 'anonymous'. The conversation list reads sessions of one user, newest first.

ALTER TABLE sessions
    ADD COLUMN user_id text NOT NULL DEFAULT 'anonymous',
    -- The first question, trimmed (set when the session is created; PATCH /sessions/{id} renames).
    ADD COLUMN title   text NOT NULL DEFAULT '';

ALTER TABLE runs
    ADD COLUMN user_id text NOT NULL DEFAULT 'anonymous';

-- GET /sessions: one user's sessions by last activity, paged by (updated_at, id).
CREATE INDEX sessions_user_updated_idx ON sessions (user_id, updated_at DESC, id DESC);
-- --max-active-runs-per-user counts a user's running runs.
CREATE INDEX runs_user_running_idx ON runs (user_id) WHERE status = 'running';
-- "is a run running" per session in the list, and cancelling a deleted session's run.
CREATE INDEX runs_session_running_idx ON runs (session_id) WHERE status = 'running';

-- Existing conversations get the first question as their title.
UPDATE sessions s SET title = left(regexp_replace(btrim(m.content), '\s+', ' ', 'g'), 100)
FROM (SELECT DISTINCT ON (session_id) session_id, content FROM messages WHERE role = 'user'
      ORDER BY session_id, id) m
WHERE m.session_id = s.id;
