// The two writes every run makes, group-committed: its start (session, run row, user message,
// history) and its end (assistant message, run status and figures, the stored stream's tail).
//
// Group commit: a start (end) goes at once when no batch of its kind is in flight; otherwise it waits in the store's queue and goes with all the others that arrived
// meanwhile, in one statement (unnest over one array per column), one round trip, one commit. The
// batch size follows the load by itself: one row at a time on a quiet worker (no added latency), a
// few hundred under a burst (a few statements where there were thousands, and a pool queue that
// no longer overflows). See docs/scaling.md for the figures.
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <unordered_set>

#include "chat/store.hpp"
#include "db/array_literal.hpp"
#include "db/client_error.hpp"
#include "obs/log.hpp"
#include "obs/metrics.hpp"

namespace chatstream::chat {

namespace {
// Batches of one kind in flight at once. One: each statement costs PostgreSQL ~1.4 ms of CPU
// whatever its size (parse, plan, commit), so bigger batches win; with two in flight, durable5000
// sent 4,429 statements and PostgreSQL used 9.3 s of CPU, with one 3,320 and 7.7 s, and the
// first token came sooner (persist p99 369 ms against 483).
constexpr size_t kBatchesInFlight = 1;
// A batch holds at most this many rows and (past the first row) this many bytes of text.
constexpr size_t kMaxBatchRows = 500;
constexpr size_t kMaxBatchBytes = 4 << 20;
// At most this many finishing writes wait for an outage to end (a few MB at worst).
constexpr size_t kMaxPendingWrites = 10000;
// At most this many starts wait for a batch: past it a start is refused as overloaded at once.
constexpr size_t kMaxWaitingStarts = 20000;
constexpr uint64_t kMaxRetryBackoffMs = 5000;
// Start tickets live in their own range, apart from the pool's (Store::cancel never gets one).
constexpr uint64_t kFirstStartTicket = uint64_t{1} << 62;
constexpr const char* kSavedLater = "The answer could not be saved yet; it will be when the database is back.";

Error error_of(const db::QueryError& error) { return db::client_error(error, "saving the conversation"); }

// A write that failed for lack of a database (not because the statement is wrong) is kept and retried.
bool retryable(const db::QueryOutcome& outcome) { return outcome.error && outcome.error->code != Errc::kInternal; }

std::string number(double value) {
  char buffer[32];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  (void)ec;
  return std::string(buffer, end);
}

int64_t integer(std::string_view text) {
  int64_t value = 0;
  std::from_chars(text.data(), text.data() + text.size(), value);
  return value;
}

// One row per run ($1..$7 arrays, in the batch's order); the history of every session that started
// comes back in the same result (rows ordered by the run's place in the batch, then oldest first).
// A session appears at most once per batch (ON CONFLICT DO UPDATE may not touch a row twice).
constexpr db::Statement kStartRunsSql{"chatstream_start_runs", R"sql(
WITH v AS (
  SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::boolean[], $7::int[])
    WITH ORDINALITY AS v(session_id, run_id, provider, message, user_id, resumable, history, ord)
), s AS (
  INSERT INTO sessions (id, user_id, title)
  SELECT session_id, user_id, left(regexp_replace(btrim(message), '\s+', ' ', 'g'), 100) FROM v
  ON CONFLICT (id) DO UPDATE SET updated_at = now() WHERE sessions.user_id = EXCLUDED.user_id
  RETURNING id, language
), r AS (
  -- At most one running run per session (runs_one_running_per_session): a busy session starts nothing.
  INSERT INTO runs (id, session_id, provider, worker_pid, status, instance_id, master_pid, lease_until, user_id,
                    resumable)
  SELECT v.run_id, s.id, v.provider, $8, 'running', $9, $10, now() + $11::int * interval '1 millisecond',
         v.user_id, v.resumable
  FROM v JOIN s ON s.id = v.session_id
  ON CONFLICT (session_id) WHERE status = 'running' DO NOTHING
  RETURNING id, session_id
), m AS (
  INSERT INTO messages (session_id, run_id, role, content, status)
  SELECT r.session_id, r.id, 'user', v.message, 'complete' FROM r JOIN v ON v.run_id = r.id
  RETURNING id, run_id
), a AS (
  -- The id of the answer's message, allocated at the start: the stream's `done` carries it, and the
  -- stored copy of the stream (run_events) is written with the run's end in one statement
  -- (drawn after the user message's, through m, so the answer sorts after the question).
  SELECT run_id, nextval(pg_get_serial_sequence('messages', 'id')) AS id FROM m
)
SELECT v.ord, s.language::text, a.id IS NOT NULL AS started, a.id, h.role, h.content
FROM v LEFT JOIN s ON s.id = v.session_id LEFT JOIN a ON a.run_id = v.run_id
LEFT JOIN LATERAL (
  SELECT id, role, content FROM messages WHERE session_id = s.id ORDER BY id DESC LIMIT v.history
) h ON true
ORDER BY v.ord, h.id NULLS FIRST)sql"};

// Only a run still running gets its end: one already closed as worker_lost (its lease ran out while
// its owner could not reach the database) keeps that outcome, and no second answer is stored.
constexpr db::Statement kFinishRunsSql{"chatstream_finish_runs", R"sql(
WITH v AS (
  SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::int[], $6::text[], $7::text[],
                       $8::text[], $9::text[], $10::float8[], $11::bigint[], $12::text[], $13::int[], $14::int[])
    AS v(session_id, run_id, answer, message_status, tokens, citations, run_status, error_code, first_token_ms,
         duration_ms, message_id, events, event_count, events_from)
), r AS (
  UPDATE runs SET status = v.run_status, error_code = NULLIF(v.error_code, ''), finished_at = now(),
                  first_token_ms = NULLIF(v.first_token_ms, '')::float8, duration_ms = v.duration_ms,
                  token_count = v.tokens, event_count = GREATEST(runs.event_count, v.event_count)
  FROM v
  WHERE runs.id = v.run_id AND runs.session_id = v.session_id AND runs.status = 'running'  -- keyed by session
  RETURNING runs.id, runs.session_id
), tail AS (
  -- A resumable run's last events (after what its checkpoints had stored, as far as the run knew),
  -- terminal event included. A checkpoint that committed unheard may overlap it: readers skip
  -- the seqs they already have, so the overlap costs bytes, never a repeat or a gap.
  INSERT INTO run_events (run_id, session_id, piece, final, first_seq, next_seq, events)
  SELECT r.id, r.session_id, 0, true, v.events_from, v.event_count, v.events
  FROM r JOIN v ON v.run_id = r.id WHERE v.event_count > 0
), pieces AS (
  -- A run that is not resumable needs its checkpoints' pieces no more: its answer is stored now.
  DELETE FROM run_events e USING r, v
  WHERE v.run_id = r.id AND v.event_count = 0 AND e.session_id = r.session_id AND e.run_id = r.id
), m AS (
  INSERT INTO messages (id, session_id, run_id, role, content, status, token_count, citations)
  SELECT CASE WHEN v.message_id > 0 THEN v.message_id ELSE nextval(pg_get_serial_sequence('messages', 'id')) END,
         r.session_id, r.id, 'assistant', v.answer, v.message_status, v.tokens, v.citations::jsonb
  FROM r JOIN v ON v.run_id = r.id
  RETURNING id, run_id
), n AS (
  -- Whoever waits for one of these sessions to be free (multitask interrupt or enqueue) is told.
  SELECT count(*) AS notified FROM (SELECT pg_notify('chatstream_run_end', session_id::text) FROM r) notify
)
SELECT m.run_id::text, m.id FROM m, n)sql"};
}  // namespace

Store::Store(db::Pool& pool, TimerWheel& wheel, RunOwner owner)
    : pool_(pool),
      wheel_(wheel),
      owner_(std::move(owner)),
      next_start_ticket_(kFirstStartTicket),
      retry_timer_(&Store::on_retry, this),
      refuse_timer_(&Store::on_refuse, this),
      wait_timer_(&Store::on_wait_deadline, this) {}

Store::~Store() {
  if (!ends_.empty()) {
    obs::add(obs::Counter::kPersistLost, ends_.size());
    log::error("conversation writes lost at exit (database unavailable)",
               log::field("writes", static_cast<long long>(ends_.size())));
  }
}

// --- starts -------------------------------------------------------------------------------------

Store::Ticket Store::start_run(const RunStart& start, std::function<void(Result<RunStarted>&)> done) {
  Ticket ticket = next_start_ticket_++;
  if (starts_.size() >= kMaxWaitingStarts) {
    // Refused from the loop like any other outcome, never inside the caller.
    refused_starts_.push_back(std::move(done));
    wheel_.schedule(refuse_timer_, 0);
    return ticket;
  }
  uint64_t deadline = wheel_.now_ms() + pool_.wait_timeout_ms();
  starts_.push_back({ticket, start, std::move(done), deadline});
  flush_starts();
  // The newest deadline is the latest: a timer already armed fires first (then looks again).
  if (!starts_.empty() && !wait_timer_.scheduled()) wheel_.schedule(wait_timer_, deadline);
  return ticket;
}

void Store::abandon_start(Ticket ticket, RunEnd end) {
  auto waiting = std::find_if(starts_.begin(), starts_.end(), [ticket](const PendingStart& p) { return p.ticket == ticket; });
  if (waiting != starts_.end()) {
    starts_.erase(waiting);  // never sent: nothing of the run is stored
    return;
  }
  abandoned_starts_.emplace(ticket, std::move(end));
}

void Store::flush_starts() {
  while (start_batches_ < kBatchesInFlight && !starts_.empty()) {
    std::vector<PendingStart> batch;
    if (starts_.front().alone) {
      batch.push_back(std::move(starts_.front()));
      starts_.pop_front();
    } else {
      // The oldest starts, one per session (a second start of a session waits for the next batch).
      std::unordered_set<Uuid, UuidHash> sessions;
      size_t bytes = 0;
      for (auto it = starts_.begin(); it != starts_.end() && batch.size() < kMaxBatchRows;) {
        if (it->alone || (!batch.empty() && bytes + it->start.message.size() > kMaxBatchBytes)) break;
        if (!sessions.insert(it->start.session_id).second) {
          ++it;
          continue;
        }
        bytes += it->start.message.size();
        batch.push_back(std::move(*it));
        it = starts_.erase(it);
      }
    }
    send_starts(std::move(batch));
  }
}

void Store::send_starts(std::vector<PendingStart> batch) {
  std::vector<std::string> session_ids, run_ids;
  std::vector<std::string_view> providers, messages, users;
  std::string resumable = "{", history = "{";
  for (const PendingStart& pending : batch) {
    const RunStart& start = pending.start;
    session_ids.push_back(start.session_id.to_string());
    run_ids.push_back(start.run_id.to_string());
    providers.push_back(start.provider);
    messages.push_back(start.message);
    users.push_back(start.user_id);
    if (resumable.size() > 1) {
      resumable.push_back(',');
      history.push_back(',');
    }
    resumable += start.resumable ? "t" : "f";
    history += std::to_string(start.history_messages);
  }
  resumable.push_back('}');
  history.push_back('}');
  db::Params params{db::text_array(session_ids), db::text_array(run_ids), db::text_array(providers),
                    db::text_array(messages), db::text_array(users), std::move(resumable), std::move(history),
                    std::to_string(getpid()), owner_.instance_id, std::to_string(owner_.master_pid),
                    std::to_string(owner_.lease_ms)};
  ++start_batches_;
  auto shared = std::make_shared<std::vector<PendingStart>>(std::move(batch));
  pool_.execute(kStartRunsSql, std::move(params), [this, shared](db::QueryOutcome& outcome) {
    obs::add(obs::Counter::kDbQueries);
    --start_batches_;
    on_starts(*shared, outcome);
    flush_starts();
    arm_wait_deadline();
  });
}

void Store::on_starts(std::vector<PendingStart>& batch, db::QueryOutcome& outcome) {
  if (!outcome.ok() && !retryable(outcome) && batch.size() > 1) {
    // The server refused the statement: each start again by itself, so only a bad one fails.
    log::warn("a batch of run starts was refused; each is sent alone",
              log::field("runs", static_cast<long long>(batch.size())) + "," + log::field("error", outcome.error->message));
    for (auto it = batch.rbegin(); it != batch.rend(); ++it) {
      if (abandoned_starts_.erase(it->ticket) > 0) continue;  // never committed: nothing to end
      it->alone = true;
      starts_.push_front(std::move(*it));
    }
    return;
  }
  // Rows grouped by the run's place in the batch (ord is 1-based).
  std::vector<RunStarted> started(batch.size());
  std::vector<bool> found(batch.size(), false);
  std::vector<std::vector<llm::Turn>> turns(batch.size());
  if (outcome.ok()) {
    for (int row = 0; row < outcome.rows(); ++row) {
      size_t index = static_cast<size_t>(integer(outcome.text(row, 0)) - 1);
      if (index >= batch.size()) continue;
      if (!outcome.is_null(row, 1)) {
        found[index] = true;
        started[index].language = std::string(outcome.text(row, 1));
      }
      started[index].busy = outcome.text(row, 2) != "t";
      if (!outcome.is_null(row, 3)) started[index].answer_message_id = integer(outcome.text(row, 3));
      if (!outcome.is_null(row, 4)) {
        turns[index].push_back({std::string(outcome.text(row, 4)), std::string(outcome.text(row, 5))});
      }
    }
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    PendingStart& pending = batch[i];
    if (auto abandoned = abandoned_starts_.find(pending.ticket); abandoned != abandoned_starts_.end()) {
      RunEnd end = std::move(abandoned->second);
      abandoned_starts_.erase(abandoned);
      if (outcome.ok() && found[i] && !started[i].busy) finish_run(std::move(end));  // its row exists: give it its end
      continue;
    }
    if (!outcome.ok()) {
      Result<RunStarted> failed = error_of(*outcome.error);
      pending.done(failed);
      continue;
    }
    if (!found[i]) {
      // The session exists and is another user's (checked before the run started; this is the race).
      Result<RunStarted> foreign = Error{Errc::kNotFound, "No such session"};
      pending.done(foreign);
      continue;
    }
    // Rows are oldest first; keep the newest ones that fit the character budget.
    std::vector<llm::Turn>& all = turns[i];
    size_t budget = pending.start.history_chars, used = 0, first = all.size();
    while (first > 0 && used + all[first - 1].content.size() <= budget) used += all[--first].content.size();
    started[i].history.assign(std::make_move_iterator(all.begin() + static_cast<std::ptrdiff_t>(first)),
                              std::make_move_iterator(all.end()));
    Result<RunStarted> result = std::move(started[i]);
    pending.done(result);
  }
}

// --- ends ---------------------------------------------------------------------------------------

void Store::finish_run(RunEnd end, SavedCallback saved) {
  if (database_away_ && saved) {
    // The database is away: the write waits behind the others, and the run is told at once.
    saved(Error{Errc::kDatabaseUnavailable, kSavedLater});
    saved = nullptr;
  }
  if (ends_.size() >= kMaxPendingWrites) {
    obs::add(obs::Counter::kPersistLost);
    log::error("conversation write lost: too many writes waiting for the database",
               log::field("run_id", end.run_id.to_string()));
    if (saved) saved(Error{Errc::kOverloaded, "The answer could not be saved: too many writes are waiting."});
    return;
  }
  uint64_t deadline = wheel_.now_ms() + pool_.wait_timeout_ms();
  ends_.push_back({std::move(end), std::move(saved), deadline});
  flush_ends();
  if (!ends_.empty() && !wait_timer_.scheduled()) wheel_.schedule(wait_timer_, deadline);
}

void Store::arm_wait_deadline() {
  uint64_t earliest = UINT64_MAX;
  for (const PendingStart& pending : starts_) earliest = std::min(earliest, pending.deadline_ms);
  for (const PendingEnd& pending : ends_) {
    if (pending.saved) earliest = std::min(earliest, pending.deadline_ms);
  }
  if (earliest == UINT64_MAX) {
    wheel_.cancel(wait_timer_);
  } else if (!wait_timer_.scheduled() || wait_timer_.deadline_ms() > earliest) {
    wheel_.schedule(wait_timer_, earliest);
  }
}

void Store::on_wait_deadline(void* opaque) {
  auto* self = static_cast<Store*>(opaque);
  uint64_t now = self->wheel_.now_ms();
  db::QueryError waited = self->pool_.connected() > 0
                              ? db::QueryError{Errc::kOverloaded, "no free database connection in time", ""}
                              : db::QueryError{Errc::kDatabaseUnavailable, "no database connection", ""};
  std::vector<PendingStart> expired;
  for (auto it = self->starts_.begin(); it != self->starts_.end();) {
    if (it->deadline_ms > now) {
      ++it;
      continue;
    }
    expired.push_back(std::move(*it));
    it = self->starts_.erase(it);
  }
  std::vector<SavedCallback> told;
  for (PendingEnd& pending : self->ends_) {
    if (pending.saved && pending.deadline_ms <= now) told.push_back(std::move(pending.saved));
    if (pending.deadline_ms <= now) pending.saved = nullptr;
  }
  self->arm_wait_deadline();
  // Callbacks last: they may start or end runs, which touch the queues.
  for (PendingStart& pending : expired) {
    Result<RunStarted> failed = error_of(waited);
    pending.done(failed);
  }
  for (SavedCallback& saved : told) saved(Error{Errc::kDatabaseUnavailable, kSavedLater});
}

void Store::flush_ends() {
  // While the database is away, one batch at a time probes it (on_retry); the rest keep their order.
  while (!database_away_ && end_batches_ < kBatchesInFlight && !ends_.empty()) send_ends(take_ends());
}

std::vector<Store::PendingEnd> Store::take_ends() {
  std::vector<PendingEnd> batch;
  size_t bytes = 0;
  while (!ends_.empty() && batch.size() < kMaxBatchRows) {
    PendingEnd& next = ends_.front();
    if (!batch.empty() && (next.alone || batch.front().alone)) break;
    size_t size = next.end.answer.size() + next.end.events.size();
    if (!batch.empty() && bytes + size > kMaxBatchBytes) break;
    bytes += size;
    batch.push_back(std::move(next));
    ends_.pop_front();
  }
  return batch;
}

void Store::send_ends(std::vector<PendingEnd> batch) {
  std::vector<std::string> session_ids, run_ids, first_token;
  std::vector<std::string_view> answers, message_status, citations, run_status, error_codes, events;
  std::vector<uint64_t> tokens, event_count, events_from;
  std::vector<int64_t> message_ids;
  std::string durations = "{";
  for (const PendingEnd& pending : batch) {
    const RunEnd& end = pending.end;
    session_ids.push_back(end.session_id.to_string());
    run_ids.push_back(end.run_id.to_string());
    answers.push_back(end.answer);
    message_status.push_back(end.message_status);
    tokens.push_back(end.tokens);
    citations.push_back(end.citations_json.empty() ? std::string_view("[]") : std::string_view(end.citations_json));
    run_status.push_back(end.run_status);
    error_codes.push_back(end.error_code);
    first_token.push_back(end.first_token_ms ? number(*end.first_token_ms) : std::string());
    if (durations.size() > 1) durations.push_back(',');
    durations += number(end.duration_ms);
    message_ids.push_back(end.message_id);
    events.push_back(end.events);
    event_count.push_back(end.event_count);
    events_from.push_back(end.events_from);
  }
  durations.push_back('}');
  db::Params params{db::text_array(session_ids), db::text_array(run_ids), db::text_array(answers),
                    db::text_array(message_status),     db::number_array(tokens),      db::text_array(citations),
                    db::text_array(run_status),         db::text_array(error_codes),   db::text_array(first_token),
                    std::move(durations),               db::number_array(message_ids), db::text_array(events),
                    db::number_array(event_count),      db::number_array(events_from)};
  ++end_batches_;
  auto shared = std::make_shared<std::vector<PendingEnd>>(std::move(batch));
  pool_.execute(kFinishRunsSql, std::move(params), [this, shared](db::QueryOutcome& outcome) {
    obs::add(obs::Counter::kDbQueries);
    --end_batches_;
    on_ends(*shared, outcome);
    flush_ends();
    arm_wait_deadline();
  });
}

void Store::on_ends(std::vector<PendingEnd>& batch, db::QueryOutcome& outcome) {
  if (outcome.ok()) {
    database_away_ = false;
    backoff_ms_ = 0;
    std::unordered_map<std::string_view, int64_t> message_ids;
    for (int row = 0; row < outcome.rows(); ++row) message_ids.emplace(outcome.text(row, 0), integer(outcome.text(row, 1)));
    for (PendingEnd& pending : batch) {
      if (!pending.saved) continue;
      auto id = message_ids.find(pending.end.run_id.to_string());
      pending.saved(id == message_ids.end() ? 0 : id->second);  // 0: the run had been closed already
    }
    return;
  }
  if (!retryable(outcome)) {
    if (batch.size() > 1) {
      // The server refused the statement: each end again by itself, so only a bad one is lost.
      log::warn("a batch of run ends was refused; each is sent alone",
                log::field("runs", static_cast<long long>(batch.size())) + "," + log::field("error", outcome.error->message));
      for (auto it = batch.rbegin(); it != batch.rend(); ++it) {
        it->alone = true;
        ends_.push_front(std::move(*it));
      }
      return;
    }
    obs::add(obs::Counter::kPersistLost);
    log::error("conversation write failed", log::field("run_id", batch.front().end.run_id.to_string()) + "," +
                                                log::field("error", outcome.error->message));
    if (batch.front().saved) batch.front().saved(Error{Errc::kInternal, "The answer could not be saved."});
    return;
  }
  // The database is away (no connection, or none free in time): keep the writes at the front, in
  // order, and retry with backoff; their runs are told now that the save comes later.
  if (!database_away_) {
    log::warn("conversation writes kept until the database takes them",
              log::field("error", outcome.error->message) + "," + log::field("code", error_code(outcome.error->code)));
  }
  database_away_ = true;
  for (auto it = batch.rbegin(); it != batch.rend(); ++it) {
    if (it->saved) {
      it->saved(Error{Errc::kDatabaseUnavailable, kSavedLater});
      it->saved = nullptr;
    }
    if (ends_.size() >= kMaxPendingWrites) {
      obs::add(obs::Counter::kPersistLost);
      log::error("conversation write lost: too many writes waiting for the database",
                 log::field("run_id", it->end.run_id.to_string()));
      continue;
    }
    obs::add(obs::Counter::kPersistDeferred);
    ends_.push_front(std::move(*it));
  }
  backoff_ms_ = std::min(kMaxRetryBackoffMs, backoff_ms_ == 0 ? 250 : backoff_ms_ * 2);
  wheel_.schedule_in(retry_timer_, backoff_ms_);
}

void Store::on_retry(void* opaque) {
  auto* self = static_cast<Store*>(opaque);
  // One batch probes the database; when it commits, database_away_ clears and the rest follows.
  if (self->ends_.empty() || self->end_batches_ > 0) return;
  self->send_ends(self->take_ends());
}

void Store::on_refuse(void* opaque) {
  auto* self = static_cast<Store*>(opaque);
  std::vector<std::function<void(Result<RunStarted>&)>> refused;
  refused.swap(self->refused_starts_);
  for (auto& done : refused) {
    Result<RunStarted> result = Error{Errc::kOverloaded, "Too many conversations are starting; try again shortly."};
    done(result);
  }
}

}  // namespace chatstream::chat
