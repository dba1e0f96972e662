#pragma once
// A user's conversations as the conversation list sees them, as asynchronous statements on the
// worker's pool: the list (newest activity first, paged), rename, delete (cancelling a running run
// of it on whichever worker runs it, through the same NOTIFY as POST /chat/cancel), and the check
// before a run starts (the session to continue is the user's; the user is under the limit of runs
// running at once, counted in PostgreSQL so it holds across workers).
//
// Every statement is scoped to one user: another user's session is kNotFound, exactly like an unknown
// one. Parameters are always bound.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/result.hpp"
#include "core/uuid.hpp"
#include "db/pool.hpp"

namespace chatstream::chat {

struct ConversationSummary {
  std::string id;
  std::string title;       // the first question, trimmed, or the name given by a rename
  std::string updated_at;  // ISO 8601 UTC with microseconds: the last question asked
  int64_t message_count = 0;
  bool running = false;    // a run of it is running now
};

struct ConversationPage {
  std::vector<ConversationSummary> conversations;
  std::string next_before;  // the `before` of the next page; empty on the last page
};

// Where a page starts: strictly older than (updated_at, id).
struct PageCursor {
  std::string updated_at;  // empty: from the newest
  std::string id = "00000000-0000-0000-0000-000000000000";
};

// `before` of GET /sessions: an `updated_at` as the list shows it (strictly older), or the
// `next_before` of a page ("<updated_at>,<id>"). Nothing when malformed.
std::optional<PageCursor> parse_page_cursor(std::string_view text);

class Conversations {
 public:
  explicit Conversations(db::Pool& pool) : pool_(pool) {}
  using Ticket = db::Pool::Ticket;

  // Before a run of `user_id` starts: kNotFound when `session_id` is given and is not a session of
  // the user; kTooManyRuns when `max_running` > 0 and the user has that many runs running (only runs
  // started within `max_age_ms` count, 0 = all: a worker that died leaves its runs `running`).
  Ticket admit(const std::string& user_id, const std::optional<Uuid>& session_id, size_t max_running,
               uint64_t max_age_ms, std::function<void(Status)> done);
  Ticket list(const std::string& user_id, size_t limit, const PageCursor& before,
              std::function<void(Result<ConversationPage>&)> done);
  Ticket rename(const Uuid& session_id, const std::string& user_id, const std::string& title,
                std::function<void(Status)> done);
  // Deletes the session with its runs and messages; its running run (any worker) is cancelled.
  Ticket remove(const Uuid& session_id, const std::string& user_id, std::function<void(Status)> done);
  void cancel(Ticket ticket) { pool_.cancel(ticket); }

 private:
  db::Pool& pool_;
};

}  // namespace chatstream::chat
