#include "chat/store.hpp"

#include <unistd.h>

#include <charconv>

#include "db/array_literal.hpp"
#include "db/client_error.hpp"
#include "obs/log.hpp"
#include "obs/metrics.hpp"
#include "rag/search_query.hpp"

namespace chatstream::chat {

namespace {
// What a client is told about a failed statement (db/client_error.hpp).
Error error_of(const db::QueryError& error) { return db::client_error(error, "saving the conversation"); }

// {id,id,…}: a uuid[] parameter (a UUID's text needs no quoting).
std::string uuid_array(const std::vector<Uuid>& ids) {
  std::string out = "{";
  for (const Uuid& id : ids) {
    if (out.size() > 1) out.push_back(',');
    out += id.to_string();
  }
  out.push_back('}');
  return out;
}

// The retrieval query belongs to rag/ (rag/search_query.hpp).
using rag::kRetrieveSql;

constexpr db::Statement kRunningRunSql{"chatstream_running_run", "SELECT id::text FROM runs WHERE session_id = $1 AND status = 'running'"};

constexpr db::Statement kCheckpointSql{"chatstream_checkpoint", R"sql(
WITH v AS (
  SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int[], $4::text[], $5::int[], $6::text[], $7::int[], $8::int[])
    AS v(run_id, session_id, piece, appended, tokens, events, events_from, events_to)
), lease AS (
  -- One lease for the worker, not one per run: a running run's row is written at its start and end only.
  INSERT INTO worker_leases (instance_id, worker_pid, master_pid, lease_until)
  VALUES ($9, $10, $11, now() + $12::int * interval '1 millisecond')
  ON CONFLICT (instance_id, worker_pid) DO UPDATE SET master_pid = EXCLUDED.master_pid, lease_until = EXCLUDED.lease_until
)
-- Each run's piece: appended, never rewritten, except a piece that committed unheard and comes again
-- (same number, more in it): the longer one stays. Only for runs still running.
INSERT INTO run_events (run_id, session_id, piece, first_seq, next_seq, events, answer, tokens)
SELECT v.run_id, v.session_id, v.piece, v.events_from, v.events_to, v.events, v.appended, v.tokens FROM v
WHERE EXISTS (SELECT 1 FROM runs r WHERE r.session_id = v.session_id AND r.id = v.run_id AND r.status = 'running')
ON CONFLICT (session_id, run_id, piece, final) DO UPDATE
  SET first_seq = EXCLUDED.first_seq, next_seq = EXCLUDED.next_seq, events = EXCLUDED.events,
      answer = EXCLUDED.answer, tokens = EXCLUDED.tokens
  WHERE EXCLUDED.next_seq >= run_events.next_seq AND octet_length(EXCLUDED.answer) >= octet_length(run_events.answer))sql"};

constexpr db::Statement kCloseLostRunsSql{"chatstream_close_lost_runs", R"sql(
WITH candidates AS (
  SELECT r.id, r.session_id FROM runs r
  WHERE r.status = 'running'
    AND ((r.instance_id = $1 AND (r.master_pid IS DISTINCT FROM $2 OR r.worker_pid = ANY($3::int[])))
         -- Another instance's run whose start lease and whose worker's lease ran out, once leases
         -- can be trusted (the sweeper has reached the database for a whole lease: an outage
         -- stopped every owner's renewals).
         OR (r.instance_id <> $1 AND r.lease_until < now() AND $5::boolean
             AND NOT EXISTS (SELECT 1 FROM worker_leases w WHERE w.instance_id = r.instance_id
                             AND w.worker_pid = r.worker_pid AND w.lease_until >= now())))
), kept AS (
  -- What its checkpoints stored: the answer's pieces in order, the tokens, the events.
  SELECT c.id, c.session_id, coalesce(string_agg(e.answer, '' ORDER BY e.piece), '') AS checkpoint,
         coalesce(max(e.tokens), 0) AS checkpoint_tokens, coalesce(max(e.next_seq), 0) AS error_seq
  FROM candidates c LEFT JOIN run_events e ON e.session_id = c.session_id AND e.run_id = c.id AND NOT e.final
  GROUP BY c.id, c.session_id
), lost AS (
  UPDATE runs SET status = 'error', error_code = 'worker_lost', finished_at = now(), token_count = k.checkpoint_tokens,
                  event_count = CASE WHEN runs.resumable THEN k.error_seq + 1 ELSE runs.event_count END
  FROM kept k
  WHERE runs.id = k.id AND runs.session_id = k.session_id AND runs.status = 'running'
  RETURNING runs.id, runs.session_id, k.checkpoint, k.checkpoint_tokens, runs.resumable, k.error_seq
), lost_end AS (
  -- A resumable run's stored stream ends as its readers are told: worker_lost, retryable
  -- (in the stored form of sse/event_log.hpp: e<size>:<type> <fields>).
  INSERT INTO run_events (run_id, session_id, piece, final, first_seq, next_seq, events)
  SELECT id, session_id, 0, true, error_seq, error_seq + 1, 'e' || octet_length(event) || ':' || event
  FROM lost, LATERAL (SELECT format(
      'error "code":"worker_lost","message":"%s","retryable":true,"tokens":%s',
      'The server answering stopped; the answer up to its last checkpoint was kept.', checkpoint_tokens) AS event) e
  WHERE resumable
  ON CONFLICT (session_id, run_id, piece, final) DO NOTHING
), expired AS (
  -- Ended runs older than --resume-retention can no longer be replayed: their streams go.
  UPDATE runs SET resumable = false
  WHERE resumable AND status <> 'running' AND finished_at < now() - $4::int * interval '1 millisecond'
  RETURNING id, session_id
), dropped AS (
  DELETE FROM run_events e USING expired x WHERE e.session_id = x.session_id AND e.run_id = x.id
), old_leases AS (
  DELETE FROM worker_leases WHERE lease_until < now() - interval '1 day'
), m AS (
  INSERT INTO messages (session_id, run_id, role, content, status, token_count)
  SELECT session_id, id, 'assistant', checkpoint, 'error', checkpoint_tokens FROM lost
  RETURNING run_id
), n AS (
  SELECT pg_notify('chatstream_run_end', session_id::text) FROM lost
)
SELECT (SELECT count(*) FROM m), (SELECT count(*) FROM n))sql"};

// The cancel is written down before it is announced (one transaction): a NOTIFY the owner misses while
// its listener reconnects is found again by kRequestedCancelsSql once it LISTENs (sql/007).
constexpr db::Statement kCancelSql{"chatstream_cancel", R"sql(
WITH asked AS (
  UPDATE runs SET cancel_reason = coalesce(cancel_reason, $3)
  WHERE id = $1 AND user_id = $2 AND status = 'running'
  RETURNING id
)
SELECT pg_notify('chatstream_cancel', id::text || ' ' || $3) FROM asked)sql"};

constexpr db::Statement kRequestedCancelsSql{"chatstream_requested_cancels", R"sql(
SELECT id::text, cancel_reason FROM runs
WHERE id = ANY($1::uuid[]) AND status = 'running' AND cancel_reason IS NOT NULL)sql"};

constexpr db::Statement kStoredRunsSql{"chatstream_stored_runs", R"sql(
SELECT r.id::text, r.user_id, r.status = 'running',
       r.finished_at IS NOT NULL AND r.finished_at < now() - $2::int * interval '1 millisecond',
       -- Its pieces in order, each as "<first_seq> <size>:<events>" (chat/run_followers.cpp reads them).
       coalesce((SELECT string_agg(e.first_seq || ' ' || octet_length(e.events) || ':' || e.events, ''
                                   ORDER BY e.first_seq, e.final) FROM run_events e
                 WHERE e.session_id = r.session_id AND e.run_id = r.id AND e.events <> ''), ''),
       r.resumable
FROM runs r WHERE r.id = ANY($1::uuid[]))sql"};

constexpr db::Statement kNotifySql{"chatstream_notify", "SELECT pg_notify($1, p) FROM unnest($2::text[]) WITH ORDINALITY AS n(p, i) ORDER BY i"};

constexpr db::Statement kMessagesSql{"chatstream_messages", R"sql(
SELECT m.id, m.role, m.content, m.status,
       to_char(m.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), m.citations::text,
       (SELECT r.id::text FROM runs r WHERE r.session_id = $1 AND r.status = 'running') AS running_run
FROM sessions s LEFT JOIN messages m ON m.session_id = s.id
WHERE s.id = $1 AND s.user_id = $2
ORDER BY m.id NULLS FIRST)sql"};
}  // namespace

Store::Ticket Store::retrieve(const std::string& language, const std::string& query, size_t limit, size_t keep,
                              std::function<void(Result<std::vector<rag::Passage>>&)> done) {
  db::Params params{language.empty() ? "english" : language, query, std::to_string(limit), std::to_string(keep)};
  return pool_.execute(kRetrieveSql, std::move(params), [done = std::move(done)](db::QueryOutcome& outcome) {
    obs::add(obs::Counter::kDbQueries);
    if (!outcome.ok()) {
      Result<std::vector<rag::Passage>> failed = error_of(*outcome.error);
      done(failed);
      return;
    }
    std::vector<rag::Passage> passages;
    passages.reserve(static_cast<size_t>(outcome.rows()));
    for (int row = 0; row < outcome.rows(); ++row) {
      rag::Passage passage;
      std::string_view id = outcome.text(row, 0);
      std::from_chars(id.data(), id.data() + id.size(), passage.chunk_id);
      passage.title = outcome.text(row, 1);
      passage.source = outcome.text(row, 2);
      passage.heading = outcome.text(row, 3);
      passage.content = outcome.text(row, 4);
      passage.db_rank = std::strtod(std::string(outcome.text(row, 5)).c_str(), nullptr);
      passages.push_back(std::move(passage));
    }
    Result<std::vector<rag::Passage>> result = std::move(passages);
    done(result);
  });
}

Store::Ticket Store::checkpoint(const std::vector<CheckpointEntry>& entries, std::function<void(Status)> done) {
  std::vector<std::string> run_ids, session_ids;
  std::vector<std::string_view> appended, events;
  std::vector<uint64_t> pieces, tokens, from, to;
  for (const CheckpointEntry& entry : entries) {
    run_ids.push_back(entry.run_id.to_string());
    session_ids.push_back(entry.session_id.to_string());
    pieces.push_back(entry.piece);
    appended.push_back(entry.appended);
    tokens.push_back(entry.tokens);
    events.push_back(entry.events);
    from.push_back(entry.events_from);
    to.push_back(entry.events_to);
  }
  db::Params params{db::text_array(run_ids),     db::text_array(session_ids), db::number_array(pieces),
                    db::text_array(appended),    db::number_array(tokens),      db::text_array(events),
                    db::number_array(from),      db::number_array(to),          owner_.instance_id,
                    std::to_string(getpid()),    std::to_string(owner_.master_pid), std::to_string(owner_.lease_ms)};
  return pool_.execute(kCheckpointSql, std::move(params), [done = std::move(done)](db::QueryOutcome& outcome) {
    obs::add(obs::Counter::kDbQueries);
    if (!outcome.ok()) done(error_of(*outcome.error));
    else done(Status{});
  });
}

Store::Ticket Store::close_lost_runs(const std::vector<int>& lost_worker_pids, bool close_expired_leases,
                                     std::function<void(Result<int64_t>)> done) {
  db::Params params{owner_.instance_id, std::to_string(owner_.master_pid), db::number_array(lost_worker_pids),
                    std::to_string(owner_.resume_retention_ms), close_expired_leases ? "true" : "false"};
  return pool_.execute(kCloseLostRunsSql, std::move(params), [done = std::move(done)](db::QueryOutcome& outcome) {
    obs::add(obs::Counter::kDbQueries);
    if (!outcome.ok()) {
      done(error_of(*outcome.error));
      return;
    }
    int64_t closed = 0;
    if (outcome.rows() > 0) {
      std::string_view n = outcome.text(0, 0);
      std::from_chars(n.data(), n.data() + n.size(), closed);
    }
    done(closed);
  });
}

Store::Ticket Store::running_run(const Uuid& session_id, std::function<void(Result<std::optional<Uuid>>)> done) {
  return pool_.execute(kRunningRunSql, {session_id.to_string()}, [done = std::move(done)](db::QueryOutcome& outcome) {
    obs::add(obs::Counter::kDbQueries);
    if (!outcome.ok()) done(error_of(*outcome.error));
    else if (outcome.rows() == 0) done(std::optional<Uuid>());
    else done(Uuid::parse(outcome.text(0, 0)));
  });
}

Store::Ticket Store::cancel_everywhere(const Uuid& run_id, const std::string& user_id, std::string_view reason,
                                      std::function<void(Status)> done) {
  return pool_.execute(kCancelSql, {run_id.to_string(), user_id, std::string(reason)},
                       [done = std::move(done)](db::QueryOutcome& outcome) {
    obs::add(obs::Counter::kDbQueries);
    if (!outcome.ok()) done(error_of(*outcome.error));
    else if (outcome.rows() == 0) done(Error{Errc::kNotFound, "No run in progress with this run_id"});
    else done(Status{});
  });
}

Store::Ticket Store::requested_cancels(const std::vector<Uuid>& run_ids,
                                      std::function<void(Result<std::vector<RequestedCancel>>&)> done) {
  return pool_.execute(kRequestedCancelsSql, {uuid_array(run_ids)}, [done = std::move(done)](db::QueryOutcome& outcome) {
    obs::add(obs::Counter::kDbQueries);
    Result<std::vector<RequestedCancel>> result = std::vector<RequestedCancel>{};
    if (!outcome.ok()) {
      result = error_of(*outcome.error);
    } else {
      for (int row = 0; row < outcome.rows(); ++row) {
        if (auto id = Uuid::parse(outcome.text(row, 0))) result->push_back({*id, std::string(outcome.text(row, 1))});
      }
    }
    done(result);
  });
}

Store::Ticket Store::stored_runs(const std::vector<Uuid>& run_ids,
                                std::function<void(Result<std::vector<StoredRun>>&)> done) {
  db::Params params{uuid_array(run_ids), std::to_string(owner_.resume_retention_ms)};
  return pool_.execute(kStoredRunsSql, std::move(params), [done = std::move(done)](db::QueryOutcome& outcome) {
    obs::add(obs::Counter::kDbQueries);
    if (!outcome.ok()) {
      Result<std::vector<StoredRun>> failed = error_of(*outcome.error);
      done(failed);
      return;
    }
    std::vector<StoredRun> runs;
    runs.reserve(static_cast<size_t>(outcome.rows()));
    for (int row = 0; row < outcome.rows(); ++row) {
      StoredRun run;
      if (auto id = Uuid::parse(outcome.text(row, 0))) run.run_id = *id;
      run.user_id = outcome.text(row, 1);
      run.running = outcome.text(row, 2) == "t";
      run.expired = outcome.text(row, 3) == "t";
      run.events = outcome.text(row, 4);
      run.resumable = outcome.text(row, 5) == "t";
      runs.push_back(std::move(run));
    }
    Result<std::vector<StoredRun>> result = std::move(runs);
    done(result);
  });
}

Store::Ticket Store::stored_run(const Uuid& run_id, const std::string& user_id,
                               std::function<void(Result<StoredRun>&)> done) {
  return stored_runs({run_id}, [user_id, done = std::move(done)](Result<std::vector<StoredRun>>& rows) {
    Result<StoredRun> run = Error{Errc::kNotFound, "No such run"};
    if (!rows) run = rows.error();
    else if (!rows->empty() && rows->front().user_id == user_id) run = std::move(rows->front());
    done(run);
  });
}

Store::Ticket Store::notify(std::string_view channel, const std::vector<std::string>& payloads,
                            std::function<void(Status)> done) {
  db::Params params{std::string(channel), db::text_array(payloads)};
  return pool_.execute(kNotifySql, std::move(params), [done = std::move(done)](db::QueryOutcome& outcome) {
    obs::add(obs::Counter::kDbQueries);
    if (!outcome.ok()) done(error_of(*outcome.error));
    else done(Status{});
  });
}

Store::Ticket Store::session_messages(
    const Uuid& session_id, const std::string& user_id,
    std::function<void(Result<SessionMessages>&)> done) {
  return pool_.execute(kMessagesSql, {session_id.to_string(), user_id}, [done = std::move(done)](db::QueryOutcome& outcome) {
    obs::add(obs::Counter::kDbQueries);
    if (!outcome.ok() || outcome.rows() == 0) {
      Result<SessionMessages> failed =
          outcome.ok() ? Error{Errc::kNotFound, "No such session"} : error_of(*outcome.error);
      done(failed);
      return;
    }
    SessionMessages session;
    if (!outcome.is_null(0, 6)) session.running_run = Uuid::parse(outcome.text(0, 6));
    for (int row = 0; row < outcome.rows(); ++row) {
      if (outcome.is_null(row, 0)) continue;  // a session without messages
      StoredMessage message;
      std::string_view id = outcome.text(row, 0);
      std::from_chars(id.data(), id.data() + id.size(), message.id);
      message.role = outcome.text(row, 1);
      message.content = outcome.text(row, 2);
      message.status = outcome.text(row, 3);
      message.created_at = outcome.text(row, 4);
      message.citations_json = outcome.text(row, 5);
      session.messages.push_back(std::move(message));
    }
    Result<SessionMessages> result = std::move(session);
    done(result);
  });
}

}  // namespace chatstream::chat
