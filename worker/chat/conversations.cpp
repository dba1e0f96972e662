#include "chat/conversations.hpp"

#include <charconv>
#include <cmath>

#include "db/client_error.hpp"
#include "obs/log.hpp"
#include "obs/metrics.hpp"

namespace chatstream::chat {

namespace {

// What a client is told about a failed statement (db/client_error.hpp).
Error error_of(const db::QueryError& error) { return db::client_error(error, "reading the conversations"); }

constexpr const char* kNoSuchSession = "No such session";

// Counts the user's running runs and says whose the session is (NULL: no such session).
constexpr db::Statement kAdmitSql{"chatstream_admit", R"sql(
SELECT (SELECT count(*) FROM runs
        WHERE user_id = $1 AND status = 'running'
          AND ($3::float8 IS NULL OR started_at > now() - make_interval(secs => $3::float8))),
       (SELECT user_id = $1 FROM sessions WHERE id = $2::uuid))sql"};

constexpr db::Statement kListSql{"chatstream_list", R"sql(
SELECT s.id, s.title, to_char(s.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       (SELECT count(*) FROM messages m WHERE m.session_id = s.id),
       EXISTS (SELECT 1 FROM runs r WHERE r.session_id = s.id AND r.status = 'running')
FROM sessions s
WHERE s.user_id = $1 AND ($2::timestamptz IS NULL OR (s.updated_at, s.id) < ($2::timestamptz, $3::uuid))
ORDER BY s.updated_at DESC, s.id DESC
LIMIT $4)sql"};

constexpr db::Statement kRenameSql{"chatstream_rename", "UPDATE sessions SET title = $3 WHERE id = $1 AND user_id = $2 RETURNING id"};

// The NOTIFY reaches the worker running the session's run (commit time: the run then finds its
// session gone and writes nothing); the delete cascades to runs and messages.
constexpr db::Statement kRemoveSql{"chatstream_remove", R"sql(
WITH s AS (
  SELECT id FROM sessions WHERE id = $1 AND user_id = $2
), n AS (
  SELECT pg_notify('chatstream_cancel', r.id::text) FROM runs r JOIN s ON r.session_id = s.id
  WHERE r.status = 'running'
), d AS (
  DELETE FROM sessions WHERE id IN (SELECT id FROM s) RETURNING id
)
SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM n))sql"};

bool digits(std::string_view text, size_t from, size_t count) {
  for (size_t i = from; i < from + count; ++i) {
    if (text[i] < '0' || text[i] > '9') return false;
  }
  return true;
}

// Exactly the form the list writes: 2024-05-01T12:34:56.123456Z.
bool is_list_timestamp(std::string_view t) {
  return t.size() == 27 && digits(t, 0, 4) && t[4] == '-' && digits(t, 5, 2) && t[7] == '-' && digits(t, 8, 2) &&
         t[10] == 'T' && digits(t, 11, 2) && t[13] == ':' && digits(t, 14, 2) && t[16] == ':' && digits(t, 17, 2) &&
         t[19] == '.' && digits(t, 20, 6) && t[26] == 'Z';
}

}  // namespace

std::optional<PageCursor> parse_page_cursor(std::string_view text) {
  PageCursor cursor;
  size_t comma = text.find(',');
  std::string_view stamp = text.substr(0, comma);
  if (!is_list_timestamp(stamp)) return std::nullopt;
  cursor.updated_at = stamp;
  if (comma != std::string_view::npos) {
    auto id = Uuid::parse(text.substr(comma + 1));
    if (!id) return std::nullopt;
    cursor.id = id->to_string();
  }
  return cursor;
}

Conversations::Ticket Conversations::admit(const std::string& user_id, const std::optional<Uuid>& session_id,
                                           size_t max_running, uint64_t max_age_ms, std::function<void(Status)> done) {
  db::Params params{user_id, session_id ? std::optional<std::string>(session_id->to_string()) : std::nullopt,
                    max_age_ms > 0 ? std::optional<std::string>(std::to_string(static_cast<double>(max_age_ms) / 1000.0))
                                   : std::nullopt};
  bool check_session = session_id.has_value();
  return pool_.execute(kAdmitSql, std::move(params),
                       [done = std::move(done), check_session, max_running](db::QueryOutcome& outcome) {
                         obs::add(obs::Counter::kDbQueries);
                         if (!outcome.ok()) return done(error_of(*outcome.error));
                         // Another user's session looks exactly like an unknown one.
                         if (check_session && (outcome.is_null(0, 1) || outcome.text(0, 1) != "t")) {
                           return done(Error{Errc::kNotFound, kNoSuchSession});
                         }
                         size_t running = 0;
                         std::string_view count = outcome.text(0, 0);
                         std::from_chars(count.data(), count.data() + count.size(), running);
                         if (max_running > 0 && running >= max_running) {
                           return done(Error{Errc::kTooManyRuns,
                                             "You have " + std::to_string(running) +
                                                 " answers in progress, the most allowed at once. Wait for one to "
                                                 "finish or stop it, then retry."});
                         }
                         done(Status{});
                       });
}

Conversations::Ticket Conversations::list(const std::string& user_id, size_t limit, const PageCursor& before,
                                          std::function<void(Result<ConversationPage>&)> done) {
  db::Params params{user_id, before.updated_at.empty() ? std::nullopt : std::optional<std::string>(before.updated_at),
                    before.id, std::to_string(limit + 1)};  // one more row says whether a next page exists
  return pool_.execute(kListSql, std::move(params), [done = std::move(done), limit](db::QueryOutcome& outcome) {
    obs::add(obs::Counter::kDbQueries);
    if (!outcome.ok()) {
      Result<ConversationPage> failed = error_of(*outcome.error);
      return done(failed);
    }
    ConversationPage page;
    int rows = outcome.rows();
    for (int row = 0; row < rows && page.conversations.size() < limit; ++row) {
      ConversationSummary summary;
      summary.id = outcome.text(row, 0);
      summary.title = outcome.text(row, 1);
      summary.updated_at = outcome.text(row, 2);
      std::string_view count = outcome.text(row, 3);
      std::from_chars(count.data(), count.data() + count.size(), summary.message_count);
      summary.running = outcome.text(row, 4) == "t";
      page.conversations.push_back(std::move(summary));
    }
    if (static_cast<size_t>(rows) > limit && !page.conversations.empty()) {
      const ConversationSummary& last = page.conversations.back();
      page.next_before = last.updated_at + "," + last.id;
    }
    Result<ConversationPage> result = std::move(page);
    done(result);
  });
}

Conversations::Ticket Conversations::rename(const Uuid& session_id, const std::string& user_id,
                                            const std::string& title, std::function<void(Status)> done) {
  return pool_.execute(kRenameSql, {session_id.to_string(), user_id, title},
                       [done = std::move(done)](db::QueryOutcome& outcome) {
                         obs::add(obs::Counter::kDbQueries);
                         if (!outcome.ok()) return done(error_of(*outcome.error));
                         if (outcome.rows() == 0) return done(Error{Errc::kNotFound, kNoSuchSession});
                         done(Status{});
                       });
}

Conversations::Ticket Conversations::remove(const Uuid& session_id, const std::string& user_id,
                                            std::function<void(Status)> done) {
  return pool_.execute(kRemoveSql, {session_id.to_string(), user_id}, [done = std::move(done)](db::QueryOutcome& outcome) {
    obs::add(obs::Counter::kDbQueries);
    if (!outcome.ok()) return done(error_of(*outcome.error));
    if (outcome.rows() == 0 || outcome.text(0, 0) == "0") return done(Error{Errc::kNotFound, kNoSuchSession});
    done(Status{});
  });
}

}  // namespace chatstream::chat
