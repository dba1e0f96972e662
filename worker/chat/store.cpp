#include "chat/store.hpp"

#include <unistd.h>

#include <algorithm>
#include <charconv>

#include "db/client_error.hpp"
#include "obs/log.hpp"
#include "obs/metrics.hpp"
#include "rag/search_query.hpp"

namespace chatstream::chat {

namespace {
// At most this many finishing writes wait for an outage to end (a few MB at worst).
constexpr size_t kMaxPendingWrites = 10000;
constexpr uint64_t kMaxRetryBackoffMs = 5000;
constexpr const char* kSavedLater = "The answer could not be saved yet; it will be when the database is back.";

// What a client is told about a failed statement (db/client_error.hpp).
Error error_of(const db::QueryError& error) { return db::client_error(error, "saving the conversation"); }

// A write that failed for lack of a database (not because the statement is wrong) is kept and retried.
bool retryable(const db::QueryOutcome& outcome) {
  return outcome.error && outcome.error->code != Errc::kInternal;
}

std::string number(double value) {
  char buffer[32];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  (void)ec;
  return std::string(buffer, end);
}

constexpr const char* kStartRunSql = R"sql(
WITH s AS (
  INSERT INTO sessions (id, user_id, title) VALUES ($1, $10, left(regexp_replace(btrim($5), '\s+', ' ', 'g'), 100))
  ON CONFLICT (id) DO UPDATE SET updated_at = now() WHERE sessions.user_id = $10
  RETURNING id, language
), r AS (
  -- At most one running run per session (runs_one_running_per_session): a busy session starts nothing.
  INSERT INTO runs (id, session_id, provider, worker_pid, status, instance_id, master_pid, lease_until, user_id,
                    resumable)
  SELECT $2, s.id, $3, $4, 'running', $7, $8, now() + $9::int * interval '1 millisecond', $10, $11::boolean FROM s
  ON CONFLICT (session_id) WHERE status = 'running' DO NOTHING
  RETURNING id
), m AS (
  INSERT INTO messages (session_id, run_id, role, content, status)
  SELECT s.id, r.id, 'user', $5, 'complete' FROM s, r RETURNING id
), a AS (
  -- The id of the answer's message, allocated at the start: the stream's `done` carries it, and the
  -- stored copy of the stream (run_events) is written with the run's end in one statement.
  -- (drawn after the user message's, through m, so the answer sorts after the question).
  SELECT nextval(pg_get_serial_sequence('messages', 'id')) AS id FROM m
)
SELECT s.language::text, h.role, h.content, (SELECT count(*) FROM r) AS started, (SELECT id FROM a) AS answer_id
FROM s LEFT JOIN LATERAL (
  SELECT id, role, content FROM messages WHERE session_id = s.id ORDER BY id DESC LIMIT $6
) h ON true
ORDER BY h.id NULLS FIRST)sql";

// The retrieval query belongs to rag/ (rag/search_query.hpp).
using rag::kRetrieveSql;

// Only a run still running gets its end: one already closed as worker_lost (its lease ran out while
// its owner could not reach the database) keeps that outcome, and no second answer is stored.
constexpr const char* kFinishRunSql = R"sql(
WITH r AS (
  UPDATE runs SET status = $7, error_code = NULLIF($8, ''), finished_at = now(), first_token_ms = $9,
                  duration_ms = $10, token_count = $5, event_count = GREATEST(event_count, $13::int)
  WHERE id = $2 AND session_id = $1 AND status = 'running'  -- keyed by session (docs/scaling.md)
  RETURNING id
), tail AS (
  -- A resumable run's last events (after what its checkpoints had stored, as far as the run knew),
  -- terminal event included. A checkpoint that committed unheard may overlap it: readers skip
  -- the seqs they already have, so the overlap costs bytes, never a repeat or a gap.
  INSERT INTO run_events (run_id, session_id, first_seq, final, events)
  SELECT r.id, $1, $14::int, true, $12 FROM r WHERE $13::int > 0
), m AS (
  INSERT INTO messages (id, session_id, run_id, role, content, status, token_count, citations)
  SELECT COALESCE($11::bigint, nextval(pg_get_serial_sequence('messages', 'id'))),
         $1, r.id, 'assistant', $3, $4, $5, $6::jsonb FROM r
  RETURNING id
), n AS (
  -- Whoever waits for this session to be free (multitask interrupt or enqueue) is told.
  SELECT pg_notify('chatstream_run_end', $1::text) FROM r
)
SELECT m.id FROM m, n)sql";

constexpr const char* kRunningRunSql = "SELECT id::text FROM runs WHERE session_id = $1 AND status = 'running'";

constexpr const char* kCheckpointSql = R"sql(
WITH v AS (
  SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[], $5::text[], $6::int[], $7::int[])
    AS v(id, appended, tokens, events, events_from, events_to)
), r AS (
  UPDATE runs r SET checkpoint = r.checkpoint || v.appended, checkpoint_tokens = v.tokens,
                    lease_until = now() + $4::int * interval '1 millisecond',
                    -- Events are appended only onto the count they follow: never twice, never with a gap.
                    event_count = CASE WHEN r.event_count = v.events_from THEN v.events_to ELSE r.event_count END
  FROM v
  WHERE r.id = v.id AND r.status = 'running'
  RETURNING r.id, r.session_id, r.event_count = v.events_to AND v.events_to > v.events_from AS appends,
            v.events_from, v.events
)
INSERT INTO run_events (run_id, session_id, first_seq, events)
SELECT id, session_id, events_from, events FROM r WHERE appends
ON CONFLICT (session_id, run_id, first_seq, final) DO NOTHING)sql";

constexpr const char* kCloseLostRunsSql = R"sql(
WITH lost AS (
  UPDATE runs SET status = 'error', error_code = 'worker_lost', finished_at = now(),
                  token_count = checkpoint_tokens,
                  event_count = CASE WHEN resumable THEN event_count + 1 ELSE event_count END
  WHERE status = 'running'
    AND ((instance_id = $1 AND (master_pid IS DISTINCT FROM $2 OR worker_pid = ANY($3::int[])))
         -- Another instance's run whose lease ran out, once the leases can be trusted (the sweeper
         -- has reached the database for a whole lease: an outage stopped every owner's renewals).
         OR (instance_id <> $1 AND lease_until < now() AND $5::boolean))
  RETURNING id, session_id, checkpoint, checkpoint_tokens, resumable, event_count - 1 AS error_seq
), lost_end AS (
  -- A resumable run's stored stream ends as its readers are told: worker_lost, retryable.
  INSERT INTO run_events (run_id, session_id, first_seq, events)
  SELECT id, session_id, error_seq, format(
      E'id: %s:%s\nevent: error\ndata: {"type":"error","code":"worker_lost","message":"%s","retryable":true,"tokens":%s}\n\n',
      id, error_seq, 'The server answering stopped; the answer up to its last checkpoint was kept.', checkpoint_tokens)
  FROM lost WHERE resumable
  ON CONFLICT (session_id, run_id, first_seq, final) DO NOTHING
), expired AS (
  -- Ended runs older than --resume-retention can no longer be replayed: their streams go.
  UPDATE runs SET resumable = false
  WHERE resumable AND status <> 'running' AND finished_at < now() - $4::int * interval '1 millisecond'
  RETURNING id, session_id
), dropped AS (
  DELETE FROM run_events e USING expired x WHERE e.session_id = x.session_id AND e.run_id = x.id
), m AS (
  INSERT INTO messages (session_id, run_id, role, content, status, token_count)
  SELECT session_id, id, 'assistant', checkpoint, 'error', checkpoint_tokens FROM lost
  RETURNING run_id
), n AS (
  SELECT pg_notify('chatstream_run_end', session_id::text) FROM lost
)
SELECT (SELECT count(*) FROM m), (SELECT count(*) FROM n))sql";

// A PostgreSQL array literal of text values: {"a","b \" c"} (every element quoted and escaped).
std::string text_array(const std::vector<std::string_view>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out.push_back(',');
    out.push_back('"');
    for (char c : values[i]) {
      if (c == '"' || c == '\\') out.push_back('\\');
      out.push_back(c);
    }
    out.push_back('"');
  }
  out.push_back('}');
  return out;
}

constexpr const char* kCancelSql =
    "SELECT pg_notify('chatstream_cancel', id::text || ' ' || $3) FROM runs "
    "WHERE id = $1 AND user_id = $2 AND status = 'running'";

constexpr const char* kStoredRunsSql = R"sql(
SELECT r.id::text, r.user_id, r.status = 'running',
       r.finished_at IS NOT NULL AND r.finished_at < now() - $2::int * interval '1 millisecond',
       coalesce((SELECT string_agg(e.events, '' ORDER BY e.first_seq, e.final) FROM run_events e
                 WHERE e.session_id = r.session_id AND e.run_id = r.id), ''),
       r.resumable
FROM runs r WHERE r.id = ANY($1::uuid[]))sql";

constexpr const char* kNotifySql = "SELECT pg_notify($1, p) FROM unnest($2::text[]) WITH ORDINALITY AS n(p, i) ORDER BY i";

constexpr const char* kMessagesSql = R"sql(
SELECT m.id, m.role, m.content, m.status,
       to_char(m.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), m.citations::text,
       (SELECT r.id::text FROM runs r WHERE r.session_id = $1 AND r.status = 'running') AS running_run
FROM sessions s LEFT JOIN messages m ON m.session_id = s.id
WHERE s.id = $1 AND s.user_id = $2
ORDER BY m.id NULLS FIRST)sql";
}  // namespace

Store::Store(db::Pool& pool, TimerWheel& wheel, RunOwner owner)
    : pool_(pool), wheel_(wheel), owner_(std::move(owner)), retry_timer_(&Store::on_retry, this) {}

Store::~Store() {
  if (!pending_.empty()) {
    obs::add(obs::Counter::kPersistLost, pending_.size());
    log::error("conversation writes lost at exit (database unavailable)",
               log::field("writes", static_cast<long long>(pending_.size())));
  }
}

Store::Ticket Store::start_run(const RunStart& start, std::function<void(Result<RunStarted>&)> done) {
  db::Params params{start.session_id.to_string(), start.run_id.to_string(), start.provider,
                    std::to_string(getpid()), start.message, std::to_string(start.history_messages),
                    owner_.instance_id, std::to_string(owner_.master_pid), std::to_string(owner_.lease_ms),
                    start.user_id, start.resumable ? "true" : "false"};
  size_t budget = start.history_chars;
  auto ticket = std::make_shared<Ticket>(0);
  *ticket = pool_.execute(kStartRunSql, std::move(params), [this, ticket, done = std::move(done), budget](
                                                              db::QueryOutcome& outcome) {
    obs::add(obs::Counter::kDbQueries);
    if (auto abandoned = abandoned_starts_.find(*ticket); abandoned != abandoned_starts_.end()) {
      RunEnd end = std::move(abandoned->second);
      abandoned_starts_.erase(abandoned);
      if (outcome.ok()) finish_run(std::move(end));  // the run's row exists: give it its end
      return;
    }
    if (!outcome.ok()) {
      Result<RunStarted> failed = error_of(*outcome.error);
      done(failed);
      return;
    }
    if (outcome.rows() == 0) {
      // The session exists and is another user's (checked before the run started; this is the race).
      Result<RunStarted> foreign = Error{Errc::kNotFound, "No such session"};
      done(foreign);
      return;
    }
    RunStarted started;
    if (outcome.rows() > 0) started.language = std::string(outcome.text(0, 0));
    started.busy = outcome.rows() > 0 && outcome.text(0, 3) == "0";
    if (outcome.rows() > 0 && !outcome.is_null(0, 4)) {
      std::string_view id = outcome.text(0, 4);
      std::from_chars(id.data(), id.data() + id.size(), started.answer_message_id);
    }
    // Rows are oldest first; keep the newest ones that fit the character budget.
    std::vector<llm::Turn> turns;
    for (int row = 0; row < outcome.rows(); ++row) {
      if (outcome.is_null(row, 1)) continue;
      turns.push_back({std::string(outcome.text(row, 1)), std::string(outcome.text(row, 2))});
    }
    size_t used = 0, first = turns.size();
    while (first > 0 && used + turns[first - 1].content.size() <= budget) used += turns[--first].content.size();
    started.history.assign(std::make_move_iterator(turns.begin() + static_cast<std::ptrdiff_t>(first)),
                           std::make_move_iterator(turns.end()));
    Result<RunStarted> result = std::move(started);
    done(result);
  });
  return *ticket;
}

void Store::abandon_start(Ticket ticket, RunEnd end) {
  if (pool_.cancel_if_waiting(ticket)) return;
  abandoned_starts_.emplace(ticket, std::move(end));
}

Store::Ticket Store::retrieve(const std::string& language, const std::string& query, size_t limit,
                              std::function<void(Result<std::vector<rag::Passage>>&)> done) {
  db::Params params{language.empty() ? "english" : language, query, std::to_string(limit)};
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

void Store::finish_run(RunEnd end, SavedCallback saved) {
  if (!pending_.empty()) {
    // The database was away: keep the order of writes, behind the ones already waiting.
    if (saved) saved(Error{Errc::kDatabaseUnavailable, kSavedLater});
    if (pending_.size() >= kMaxPendingWrites) {
      obs::add(obs::Counter::kPersistLost);
      log::error("conversation write lost: too many writes waiting for the database",
                 log::field("run_id", end.run_id.to_string()));
      return;
    }
    pending_.push_back(std::move(end));
    return;
  }
  write(std::move(end), std::move(saved));
}

void Store::write(RunEnd end, SavedCallback saved) {
  db::Params params{end.session_id.to_string(),
                    end.run_id.to_string(),
                    end.answer,
                    end.message_status,
                    std::to_string(end.tokens),
                    end.citations_json.empty() ? "[]" : end.citations_json,
                    end.run_status,
                    end.error_code,
                    end.first_token_ms ? std::optional<std::string>(number(*end.first_token_ms)) : std::nullopt,
                    number(end.duration_ms),
                    end.message_id > 0 ? std::optional<std::string>(std::to_string(end.message_id)) : std::nullopt,
                    end.events,
                    std::to_string(end.event_count),
                    std::to_string(end.events_from)};
  auto shared_end = std::make_shared<RunEnd>(std::move(end));
  bool retry = retrying_;
  ++in_flight_;
  pool_.execute(kFinishRunSql, std::move(params), [this, shared_end, retry, saved = std::move(saved)](
                                                       db::QueryOutcome& outcome) {
    obs::add(obs::Counter::kDbQueries);
    --in_flight_;
    if (retry) retrying_ = false;
    if (saved) {
      int64_t message_id = 0;
      if (outcome.ok() && outcome.rows() > 0) {
        std::string_view id = outcome.text(0, 0);
        std::from_chars(id.data(), id.data() + id.size(), message_id);
      }
      if (outcome.ok()) saved(message_id);
      else if (retryable(outcome)) saved(Error{Errc::kDatabaseUnavailable, kSavedLater});
      else saved(Error{Errc::kInternal, "The answer could not be saved."});
    }
    if (outcome.ok()) {
      backoff_ms_ = 0;
      if (!pending_.empty()) wheel_.schedule(retry_timer_, 0);  // drain what waited, in order
      return;
    }
    if (!retryable(outcome)) {
      obs::add(obs::Counter::kPersistLost);
      log::error("conversation write failed", log::field("run_id", shared_end->run_id.to_string()) + "," +
                                                  log::field("error", outcome.error->message));
      if (!pending_.empty()) wheel_.schedule(retry_timer_, 0);
      return;
    }
    // The database is away: keep the write at the front and retry with backoff.
    if (pending_.size() >= kMaxPendingWrites) {
      obs::add(obs::Counter::kPersistLost);
      log::error("conversation write lost: too many writes waiting for the database",
                 log::field("run_id", shared_end->run_id.to_string()));
    } else {
      if (pending_.empty()) {
        // Either no connection to the database, or none free within --db-wait-timeout (overloaded).
        log::warn("conversation writes kept until the database takes them",
                  log::field("error", outcome.error->message) + "," +
                      log::field("code", error_code(outcome.error->code)));
      }
      obs::add(obs::Counter::kPersistDeferred);
      pending_.push_front(std::move(*shared_end));
    }
    backoff_ms_ = std::min(kMaxRetryBackoffMs, backoff_ms_ == 0 ? 250 : backoff_ms_ * 2);
    wheel_.schedule_in(retry_timer_, backoff_ms_);
  });
}

void Store::on_retry(void* opaque) {
  auto* self = static_cast<Store*>(opaque);
  if (self->pending_.empty() || self->retrying_) return;
  RunEnd end = std::move(self->pending_.front());
  self->pending_.pop_front();
  self->retrying_ = true;
  self->write(std::move(end), nullptr);
}

Store::Ticket Store::checkpoint(const std::vector<CheckpointEntry>& entries, std::function<void(Status)> done) {
  std::string ids = "{";
  std::string tokens = "{";
  std::vector<std::string_view> appended;
  appended.reserve(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    if (i > 0) {
      ids.push_back(',');
      tokens.push_back(',');
    }
    ids += entries[i].run_id.to_string();
    tokens += std::to_string(entries[i].tokens);
    appended.push_back(entries[i].appended);
  }
  ids.push_back('}');
  tokens.push_back('}');
  std::vector<std::string_view> events;
  std::string from = "{", to = "{";
  for (size_t i = 0; i < entries.size(); ++i) {
    if (i > 0) {
      from.push_back(',');
      to.push_back(',');
    }
    events.push_back(entries[i].events);
    from += std::to_string(entries[i].events_from);
    to += std::to_string(entries[i].events_to);
  }
  from.push_back('}');
  to.push_back('}');
  db::Params params{std::move(ids), text_array(appended), std::move(tokens), std::to_string(owner_.lease_ms),
                    text_array(events), std::move(from), std::move(to)};
  return pool_.execute(kCheckpointSql, std::move(params), [done = std::move(done)](db::QueryOutcome& outcome) {
    obs::add(obs::Counter::kDbQueries);
    if (!outcome.ok()) done(error_of(*outcome.error));
    else done(Status{});
  });
}

Store::Ticket Store::close_lost_runs(const std::vector<int>& lost_worker_pids, bool close_expired_leases,
                                     std::function<void(Result<int64_t>)> done) {
  std::string pids = "{";
  for (size_t i = 0; i < lost_worker_pids.size(); ++i) {
    if (i > 0) pids.push_back(',');
    pids += std::to_string(lost_worker_pids[i]);
  }
  pids.push_back('}');
  db::Params params{owner_.instance_id, std::to_string(owner_.master_pid), std::move(pids),
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

Store::Ticket Store::stored_runs(const std::vector<Uuid>& run_ids,
                                std::function<void(Result<std::vector<StoredRun>>&)> done) {
  std::string ids = "{";
  for (size_t i = 0; i < run_ids.size(); ++i) {
    if (i > 0) ids.push_back(',');
    ids += run_ids[i].to_string();
  }
  ids.push_back('}');
  db::Params params{std::move(ids), std::to_string(owner_.resume_retention_ms)};
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
  std::vector<std::string_view> views(payloads.begin(), payloads.end());
  db::Params params{std::string(channel), text_array(views)};
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
