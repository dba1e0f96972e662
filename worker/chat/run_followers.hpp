#pragma once
// Resumes of runs this worker does not own (GET /chat/stream/{run_id} that reached another worker or
// another instance than the run's). PostgreSQL is the only thing they share:
// - the run's stored stream (run_events: what the checkpoints wrote, or all of it once the run
//   ended) is replayed from the reader's cursor;
// - a run still running is then followed: the follower asks its owner, on chatstream_follow, for the
//   events from where the replay stopped, and the owner publishes them (chat/run_publisher.hpp);
// - should nothing come for a second (the owner died, a notification was lost), the follower reads
//   the run again: ended, it replays the rest from run_events (a dead worker's run ends there with
//   error worker_lost); still running, it asks its owner again.
//
// Followed events go into a replica sse::EventLog that an sse::LogReader writes to the client, so a
// remote resume looks exactly like a local one. A follower lives while its reader does (freed
// through the Graveyard).

#include <cstdint>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "chat/chat_request.hpp"
#include "chat/store.hpp"
#include "core/graveyard.hpp"
#include "core/timer_wheel.hpp"
#include "http/connection.hpp"
#include "sse/stream.hpp"

namespace chatstream::chat {

class RunFollowers {
 public:
  RunFollowers(Store& store, TimerWheel& wheel, Graveyard& graveyard, const sse::StreamSettings& settings);
  RunFollowers(const RunFollowers&) = delete;
  RunFollowers& operator=(const RunFollowers&) = delete;
  ~RunFollowers();

  // Answers the resume of a run of `user_id` that this worker does not have: 404 (unknown, another
  // user's, not a stream; a run not found is looked for again for up to 2 s, as a new conversation's
  // stream announces its run before the run's row is committed), 410 (finished longer than
  // --resume-retention ago), else the stream.
  void resume(http::Connection& connection, const ResumeRequest& request, const std::string& user_id);
  // A chatstream_events notification (every worker hears all of them; most are for nobody here).
  void on_events(std::string_view payload);

  // How long a follower waits without news before it reads the run again.
  static constexpr uint64_t kQuietPollMs = 1000;

 private:
  class Follower;
  class Lookup;
  friend class Follower;
  friend class Lookup;
  void answer(http::Connection& connection, const ResumeRequest& request, const std::string& user_id,
              Result<StoredRun>& stored);
  void enqueue(Lookup& lookup);
  static void on_batch_timer(void* self);

  Store& store_;
  TimerWheel& wheel_;
  Graveyard& graveyard_;
  const sse::StreamSettings& settings_;
  std::unordered_multimap<Uuid, Follower*, UuidHash> followers_;
  std::unordered_map<uint64_t, Lookup*> lookups_;  // resumes waiting for their run's row, by serial
  std::vector<uint64_t> queued_;                    // looked up by the next batch statement
  std::unordered_set<Store::Ticket> batches_;      // batch statements in flight
  uint64_t last_serial_ = 0;
  Timer batch_timer_;
};

}  // namespace chatstream::chat
