#pragma once
// Everything chatstream keeps in PostgreSQL, as asynchronous statements on the worker's pool:
// starting a run (session, run row, the user message, and the session's recent history in one round
// trip), retrieval over the knowledge base, finishing a run (the assistant message with its status
// and partial text, the run's figures), cross-worker cancel (NOTIFY), and a session's messages.
//
// Finishing writes survive a database outage: a write that fails for lack of a connection is kept
// (bounded) and retried with backoff until the database is back; what cannot be kept is counted in
// chatstream_persist_lost_total and logged. Parameters are always bound, never spliced.
//
// Starts and ends are group-committed (chat/store_runs.cpp): the starts (ends) that arrive while a
// batch is in flight go together in the next one, one statement, one round trip, one commit for
// all of them. At low load a start goes alone at once; under a burst of 5,000 the pool sees a few
// statements instead of 5,000 (whose queue overflowed into `overloaded` before). A batch the
// server refuses (kInternal) is split, so one bad row never costs the others.

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/result.hpp"
#include "core/timer_wheel.hpp"
#include "core/uuid.hpp"
#include "db/pool.hpp"
#include "llm/provider.hpp"
#include "rag/passage.hpp"

namespace chatstream::chat {

// Who owns the runs this store starts (the durable-run columns of sql/004_durable_runs.sql).
struct RunOwner {
  std::string instance_id;
  int master_pid = 0;
  uint64_t lease_ms = 20000;  // a running run not renewed for this long has lost its owner
  uint64_t resume_retention_ms = 600000;  // a finished run's stream can be replayed this long
};

// One run's part of a checkpoint: the answer text produced since its last checkpoint, and the
// events since (a resumable run), in their stored form (sse/event_log.hpp): [events_from, events_to).
struct CheckpointEntry {
  Uuid run_id;
  Uuid session_id;
  uint32_t piece = 0;         // the run's checkpoints stored so far: this one's number (run_events.piece)
  std::string_view appended;  // valid until the statement is sent (copied into it)
  uint64_t tokens = 0;
  std::string events;
  uint64_t events_from = 0;
  uint64_t events_to = 0;
};

struct RunStart {
  Uuid run_id;
  Uuid session_id;
  std::string message;
  std::string provider;
  size_t history_messages = 10;
  size_t history_chars = 6000;
  std::string user_id = "anonymous";  // the owner: a new session is theirs, another's is kNotFound
  bool resumable = false;             // chatstream's event stream: GET /chat/stream/{run_id} may resume it
};

struct RunStarted {
  bool busy = false;                // the session has a running run: nothing was started or stored
  std::string language;             // the session's text search configuration
  std::vector<llm::Turn> history;   // earlier messages, oldest first, within the budget
  int64_t answer_message_id = 0;    // the id the answer's message will be stored with
};

struct RunEnd {
  Uuid run_id;
  Uuid session_id;
  std::string answer;          // the text produced so far
  std::string message_status;  // complete, cancelled, error, timeout
  std::string run_status;      // complete, cancelled, disconnected, timeout, error
  std::string error_code;      // empty unless an error
  std::string citations_json;  // "[]" or the citations sent
  uint64_t tokens = 0;
  std::optional<double> first_token_ms;
  double duration_ms = 0;
  int64_t message_id = 0;      // 0: a new id
  std::string events;          // a resumable run: its events from events_from on, stored form, terminal included
  uint64_t events_from = 0;    // the events its checkpoints had stored (as far as the run heard)
  uint64_t event_count = 0;    // 0: not a resumable run (nothing is stored)
};

// A run as a resume on a worker that does not own it finds it (GET /chat/stream/{run_id}).
struct StoredRun {
  Uuid run_id;
  std::string user_id;
  bool running = false;
  bool expired = false;     // finished longer than --resume-retention ago
  std::string events;       // run_events' pieces in order, each "<first_seq> <size>:<stored events>"
  bool resumable = false;   // false: not a chatstream event stream (POST /chat, the OpenAI endpoint)
};

struct StoredMessage {
  int64_t id;
  std::string role, content, status, created_at, citations_json;
};

// A conversation as GET /sessions/{id}/messages shows it.
struct SessionMessages {
  std::vector<StoredMessage> messages;  // oldest first; a running run's answer is not among them yet
  std::optional<Uuid> running_run;      // the run still answering (resume it: GET /chat/stream/{id})
};

class Store {
 public:
  Store(db::Pool& pool, TimerWheel& wheel, RunOwner owner = {});
  ~Store();

  using Ticket = db::Pool::Ticket;
  // Every callback gets a Result: the value, or an Error whose Errc is kOverloaded (no free
  // connection in time), kDatabaseUnavailable or kInternal (the statement failed), or kNotFound.
  Ticket start_run(const RunStart& start, std::function<void(Result<RunStarted>&)> done);
  // Up to `limit` candidate passages for `query` (rag::search_query()); `keep`: how many an answer keeps
  // (the search widens from every word to any word when fewer chunks than that hold every word).
  Ticket retrieve(const std::string& language, const std::string& query, size_t limit, size_t keep,
                  std::function<void(Result<std::vector<rag::Passage>>&)> done);
  // Stores the assistant message and the run's end. `saved` (optional) hears once whether this first
  // attempt committed (with the message id); a write that failed for lack of a database is kept and
  // retried all the same.
  using SavedCallback = std::function<void(Result<int64_t> message_id)>;
  void finish_run(RunEnd end, SavedCallback saved = nullptr);
  // NOTIFY the worker that owns `run_id` (its readers are told `reason`: cancel_request,
  // interrupted); kNotFound when no such run of `user_id` is running.
  Ticket cancel_everywhere(const Uuid& run_id, const std::string& user_id, std::string_view reason,
                           std::function<void(Status)> done);
  // Which of `run_ids` (this worker's running runs) another worker was asked to cancel (runs.cancel_reason):
  // what a NOTIFY lost while the listener was down would have said. Asked each time the listener
  // LISTENs again.
  struct RequestedCancel {
    Uuid run_id;
    std::string reason;  // cancel_request, interrupted
  };
  Ticket requested_cancels(const std::vector<Uuid>& run_ids,
                           std::function<void(Result<std::vector<RequestedCancel>>&)> done);
  // The running run of a session, if any.
  Ticket running_run(const Uuid& session_id, std::function<void(Result<std::optional<Uuid>>)> done);
  // Messages of a session of `user_id`, oldest first; kNotFound for an unknown session or another's.
  Ticket session_messages(const Uuid& session_id, const std::string& user_id,
                          std::function<void(Result<SessionMessages>&)> done);
  // One statement for the worker's running runs: appends each entry's piece (new answer text, and
  // events) to run_events, and renews the worker's lease. Empty `entries` renew the lease only.
  Ticket checkpoint(const std::vector<CheckpointEntry>& entries, std::function<void(Status)> done);
  // Closes the runs whose owner is gone — those of an earlier incarnation of this instance, of its
  // dead workers (`lost_worker_pids`), and (with `close_expired_leases`) of any other instance whose
  // lease ran out — with status error, code worker_lost and the text of their last checkpoint as the
  // assistant message; also clears the stored streams older than the resume retention. `done` gets
  // how many runs were closed.
  Ticket close_lost_runs(const std::vector<int>& lost_worker_pids, bool close_expired_leases,
                         std::function<void(Result<int64_t>)> done);
  uint64_t lease_ms() const { return owner_.lease_ms; }
  // The stored stream of one run of `user_id` (kNotFound: none, or another user's).
  Ticket stored_run(const Uuid& run_id, const std::string& user_id, std::function<void(Result<StoredRun>&)> done);
  // The rows of the runs of `run_ids` that exist (any user's: the caller checks), in one statement.
  Ticket stored_runs(const std::vector<Uuid>& run_ids, std::function<void(Result<std::vector<StoredRun>>&)> done);
  // Sends `payloads` as notifications on `channel`, in order, in one statement.
  Ticket notify(std::string_view channel, const std::vector<std::string>& payloads, std::function<void(Status)> done);
  void cancel(Ticket ticket) { pool_.cancel(ticket); }
  // A run that ends while its start statement is in flight: the statement is left to finish (it may
  // commit the run's row), then `end` is written if it did; the run's own callback is not called.
  // A statement not sent yet is simply dropped.
  void abandon_start(Ticket ticket, RunEnd end);

  db::Pool& pool() { return pool_; }
  size_t pending_writes() const { return ends_.size(); }
  // Writes in flight or waiting: a draining worker stays until they are done (or its deadline).
  bool busy() const { return end_batches_ > 0 || !ends_.empty(); }

  static constexpr std::string_view kCancelChannel = "chatstream_cancel";     // "<run_id> <reason>"
  static constexpr std::string_view kRunEndChannel = "chatstream_run_end";   // "<session_id>"
  // Resumes on another worker (chat/run_followers.hpp): "<run_id> <next_seq>" asks the owner to
  // publish the run's events from next_seq on; "<run_id> stop" says one follower left.
  static constexpr std::string_view kFollowChannel = "chatstream_follow";
  // The owner's events for followers: "<run_id> <seq> <kind>\n<bytes>" (chat/run_publisher.hpp).
  static constexpr std::string_view kEventsChannel = "chatstream_events";

 private:
  // A start or end waits in the store's queue while a batch of its kind is in flight, at most the
  // pool's --db-wait-timeout, as a statement waits for a connection: then a start fails with
  // kOverloaded (kDatabaseUnavailable when no connection is up) and an end's run hears that its
  // save comes later (the end stays queued).
  struct PendingStart {
    Ticket ticket;
    RunStart start;
    std::function<void(Result<RunStarted>&)> done;
    uint64_t deadline_ms = 0;
    bool alone = false;  // its batch was refused: it goes by itself, so one bad row fails alone
  };
  struct PendingEnd {
    RunEnd end;
    SavedCallback saved;  // called once, then cleared
    uint64_t deadline_ms = 0;
    bool alone = false;
  };
  void flush_starts();
  void send_starts(std::vector<PendingStart> batch);
  void on_starts(std::vector<PendingStart>& batch, db::QueryOutcome& outcome);
  void flush_ends();
  std::vector<PendingEnd> take_ends();  // the oldest waiting ends that fit one batch
  void send_ends(std::vector<PendingEnd> batch);
  void on_ends(std::vector<PendingEnd>& batch, db::QueryOutcome& outcome);
  static void on_retry(void* self);
  static void on_refuse(void* self);
  void arm_wait_deadline();
  static void on_wait_deadline(void* self);

  db::Pool& pool_;
  TimerWheel& wheel_;
  RunOwner owner_;
  std::deque<PendingStart> starts_;  // not sent yet (a batch is in flight)
  size_t start_batches_ = 0;         // start statements in flight
  Ticket next_start_ticket_;
  std::unordered_map<Ticket, RunEnd> abandoned_starts_;  // sent; their run ended meanwhile
  std::deque<PendingEnd> ends_;      // not sent yet: a batch is in flight, or the database is away
  size_t end_batches_ = 0;           // end statements in flight
  bool database_away_ = false;       // the last end batch failed for lack of a database: retry with backoff
  Timer retry_timer_;
  uint64_t backoff_ms_ = 0;
  std::vector<std::function<void(Result<RunStarted>&)>> refused_starts_;  // told kOverloaded next tick
  Timer refuse_timer_;
  Timer wait_timer_;  // the earliest deadline of what waits in starts_ and ends_
};

}  // namespace chatstream::chat
