#include "chat/store.hpp"

#include <unistd.h>

#include <algorithm>
#include <charconv>

#include "obs/log.hpp"
#include "obs/metrics.hpp"
#include "rag/search_query.hpp"

namespace chatstream::chat {

namespace {
// At most this many finishing writes wait for an outage to end (a few MB at worst).
constexpr size_t kMaxPendingWrites = 10000;
constexpr uint64_t kMaxRetryBackoffMs = 5000;

std::optional<StoreError> error_of(const db::QueryOutcome& outcome) {
  if (outcome.ok()) return std::nullopt;
  switch (outcome.error->kind) {
    case db::QueryError::Kind::kOverloaded:
      return StoreError{"overloaded", "The server is busy. Please retry in a moment."};
    case db::QueryError::Kind::kUnavailable:
    case db::QueryError::Kind::kConnection:
      return StoreError{"internal", "The database is unavailable. Please retry in a moment."};
    case db::QueryError::Kind::kSql:
      log::error("database statement failed", log::field("error", outcome.error->message) + "," +
                                                  log::field("sqlstate", outcome.error->sqlstate));
      return StoreError{"internal", "Something went wrong while saving the conversation."};
  }
  return StoreError{"internal", "Something went wrong."};
}

bool retryable(const db::QueryOutcome& outcome) {
  return outcome.error && outcome.error->kind != db::QueryError::Kind::kSql;
}

std::string number(double value) {
  char buffer[32];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  (void)ec;
  return std::string(buffer, end);
}

constexpr const char* kStartRunSql = R"sql(
WITH s AS (
  INSERT INTO sessions (id) VALUES ($1) ON CONFLICT (id) DO UPDATE SET updated_at = now()
  RETURNING id, language
), r AS (
  INSERT INTO runs (id, session_id, provider, worker_pid, status)
  SELECT $2, s.id, $3, $4, 'running' FROM s RETURNING id
), m AS (
  INSERT INTO messages (session_id, run_id, role, content, status)
  SELECT s.id, r.id, 'user', $5, 'complete' FROM s, r RETURNING id
)
SELECT s.language::text, h.role, h.content
FROM s LEFT JOIN LATERAL (
  SELECT id, role, content FROM messages WHERE session_id = s.id ORDER BY id DESC LIMIT $6
) h ON true
ORDER BY h.id NULLS FIRST)sql";

// The retrieval query belongs to rag/ (rag/search_query.hpp).
using rag::kRetrieveSql;

constexpr const char* kFinishRunSql = R"sql(
WITH m AS (
  INSERT INTO messages (session_id, run_id, role, content, status, token_count, citations)
  VALUES ($1, $2, 'assistant', $3, $4, $5, $6::jsonb)
  RETURNING id
), r AS (
  UPDATE runs SET status = $7, error_code = NULLIF($8, ''), finished_at = now(), first_token_ms = $9,
                  duration_ms = $10, token_count = $5
  WHERE id = $2
)
SELECT id FROM m)sql";

constexpr const char* kCancelSql =
    "SELECT pg_notify('chatstream_cancel', id::text) FROM runs WHERE id = $1 AND status = 'running'";

constexpr const char* kMessagesSql = R"sql(
SELECT m.id, m.role, m.content, m.status,
       to_char(m.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), m.citations::text
FROM sessions s LEFT JOIN messages m ON m.session_id = s.id
WHERE s.id = $1
ORDER BY m.id NULLS FIRST)sql";
}  // namespace

Store::Store(db::Pool& pool, TimerWheel& wheel)
    : pool_(pool), wheel_(wheel), retry_timer_(&Store::on_retry, this) {}

Store::~Store() {
  if (!pending_.empty()) {
    obs::add(obs::Counter::kPersistLost, pending_.size());
    log::error("conversation writes lost at exit (database unavailable)",
               log::field("writes", static_cast<long long>(pending_.size())));
  }
}

Store::Ticket Store::start_run(const RunStart& start,
                               std::function<void(std::optional<StoreError>, RunStarted&)> done) {
  db::Params params{start.session_id.to_string(), start.run_id.to_string(), start.provider,
                    std::to_string(getpid()), start.message, std::to_string(start.history_messages)};
  size_t budget = start.history_chars;
  auto ticket = std::make_shared<Ticket>(0);
  *ticket = pool_.execute(kStartRunSql, std::move(params), [this, ticket, done = std::move(done), budget](
                                                              db::QueryOutcome& outcome) {
    RunStarted started;
    obs::add(obs::Counter::kDbQueries);
    if (auto abandoned = abandoned_starts_.find(*ticket); abandoned != abandoned_starts_.end()) {
      RunEnd end = std::move(abandoned->second);
      abandoned_starts_.erase(abandoned);
      if (outcome.ok()) finish_run(std::move(end));  // the run's row exists: give it its end
      return;
    }
    if (auto error = error_of(outcome)) {
      done(error, started);
      return;
    }
    if (outcome.rows() > 0) started.language = std::string(outcome.text(0, 0));
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
    done(std::nullopt, started);
  });
  return *ticket;
}

void Store::abandon_start(Ticket ticket, RunEnd end) {
  if (pool_.cancel_if_waiting(ticket)) return;
  abandoned_starts_.emplace(ticket, std::move(end));
}

Store::Ticket Store::retrieve(const std::string& language, const std::string& query, size_t limit,
                              std::function<void(std::optional<StoreError>, std::vector<rag::Passage>&)> done) {
  db::Params params{language.empty() ? "english" : language, query, std::to_string(limit)};
  return pool_.execute(kRetrieveSql, std::move(params), [done = std::move(done)](db::QueryOutcome& outcome) {
    std::vector<rag::Passage> passages;
    obs::add(obs::Counter::kDbQueries);
    if (auto error = error_of(outcome)) {
      done(error, passages);
      return;
    }
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
    done(std::nullopt, passages);
  });
}

void Store::finish_run(RunEnd end, SavedCallback saved) {
  if (!pending_.empty()) {
    // The database was away: keep the order of writes, behind the ones already waiting.
    if (saved) {
      StoreError error{"internal", "The answer could not be saved yet; it will be when the database is back."};
      saved(error, 0);
    }
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
                    number(end.duration_ms)};
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
      std::optional<StoreError> error;
      if (!outcome.ok()) {
        error = retryable(outcome)
                    ? StoreError{"internal", "The answer could not be saved yet; it will be when the database is back."}
                    : StoreError{"internal", "The answer could not be saved."};
      }
      saved(error, message_id);
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
      if (pending_.empty()) log::warn("database unavailable: keeping conversation writes until it is back");
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

Store::Ticket Store::cancel_everywhere(const Uuid& run_id, std::function<void(std::optional<StoreError>, bool)> done) {
  return pool_.execute(kCancelSql, {run_id.to_string()}, [done = std::move(done)](db::QueryOutcome& outcome) {
    obs::add(obs::Counter::kDbQueries);
    if (auto error = error_of(outcome)) {
      done(error, false);
      return;
    }
    done(std::nullopt, outcome.rows() > 0);
  });
}

Store::Ticket Store::session_messages(
    const Uuid& session_id, std::function<void(std::optional<StoreError>, bool, std::vector<StoredMessage>&)> done) {
  return pool_.execute(kMessagesSql, {session_id.to_string()}, [done = std::move(done)](db::QueryOutcome& outcome) {
    std::vector<StoredMessage> messages;
    obs::add(obs::Counter::kDbQueries);
    if (auto error = error_of(outcome)) {
      done(error, false, messages);
      return;
    }
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
      messages.push_back(std::move(message));
    }
    done(std::nullopt, outcome.rows() > 0, messages);
  });
}

}  // namespace chatstream::chat
