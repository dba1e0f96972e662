#include "chat/run_followers.hpp"

#include <charconv>
#include <memory>

#include "obs/metrics.hpp"
#include "sse/framing.hpp"
#include "sse/log_reader.hpp"

namespace chatstream::chat {

namespace {
// Events a replica receives, from PostgreSQL (stored form, run_events' pieces) or from the owner's
// NOTIFY (framed), are appended when their seq is the log's next one and skipped when the log has
// them already (pieces may overlap); after a gap nothing more is taken. The log ends at a terminal
// event. Only the stored stream of a run whose worker died lacks events (it was stored up to its
// last checkpoint): its `worker_lost` end, numbered right after that checkpoint, is delivered even
// to a reader whose cursor is past it (it had seen more than the checkpoint holds), numbered after
// that reader's cursor: it never sees an id twice, nor a gap. Any other stored stream is complete.
// `append(numbered_next)` appends the event as the log's next one.
template <typename Append>
bool take_event(sse::EventLog& log, uint64_t seq, bool terminal, bool worker_lost, Append append) {
  if (log.ended() || seq > log.next_seq()) return false;
  if (seq < log.next_seq() && !(terminal && worker_lost)) return true;  // had it already
  append(seq != log.next_seq());
  if (terminal) log.end();
  return !terminal;
}

constexpr std::string_view kWorkerLost = R"("code":"worker_lost")";

// Pieces as Store::stored_runs reads them: "<first_seq> <size>:<stored events>", in order.
void append_stored(sse::EventLog& log, std::string_view pieces) {
  while (!pieces.empty() && !log.ended()) {
    uint64_t seq = 0;
    size_t size = 0;
    auto [space, ec] = std::from_chars(pieces.data(), pieces.data() + pieces.size(), seq);
    if (ec != std::errc() || space == pieces.data() + pieces.size() || *space != ' ') return;
    auto [colon, ec2] = std::from_chars(space + 1, pieces.data() + pieces.size(), size);
    if (ec2 != std::errc() || colon == pieces.data() + pieces.size() || *colon != ':') return;
    size_t at = static_cast<size_t>(colon - pieces.data()) + 1;
    if (size > pieces.size() - at) return;
    std::string_view piece = pieces.substr(at, size);
    pieces.remove_prefix(at + size);
    sse::StoredEvent event;
    for (; sse::take_stored_event(piece, event); ++seq) {
      bool go_on = take_event(log, seq, event.terminal(), event.payload.find(kWorkerLost) != std::string_view::npos,
                              [&](bool) { log.append_stored(event); });
      if (!go_on) return;
    }
  }
}

// Framed events, as the owner publishes them (chat/run_publisher.hpp).
void append_framed(sse::EventLog& log, std::string_view framed) {
  bool go_on = true;
  sse::for_each_framed_event(framed, [&](uint64_t seq, std::string_view event) {
    if (!go_on) return;
    bool terminal = sse::is_terminal_type(sse::framed_event_type(event));
    go_on = take_event(log, seq, terminal, event.find(kWorkerLost) != std::string_view::npos, [&](bool renumber) {
      if (!renumber) {
        log.append_framed(event);
        return;
      }
      std::string renumbered = "id: ";
      renumbered.append(log.run_id());
      renumbered += ":" + std::to_string(log.next_seq());
      renumbered.append(event.substr(event.find('\n')));
      log.append_framed(renumbered);
    });
  });
}
}  // namespace

class RunFollowers::Follower final : public sse::LogWatcher, public Reclaimable {
 public:
  Follower(RunFollowers& followers, const Uuid& run_id, std::string user_id, uint64_t next_seq)
      : followers_(followers),
        run_id_(run_id),
        user_id_(std::move(user_id)),
        id_text_(run_id.to_string()),
        log_(id_text_, next_seq),
        poll_timer_(&Follower::on_poll, this) {
    log_.set_watcher(this);
  }
  ~Follower() override {
    followers_.wheel_.cancel(poll_timer_);
    if (lookup_) followers_.store_.cancel(lookup_);
  }

  // `running`: the run was still running when `stored` was read (else `stored` is all of it).
  void start(http::Connection& connection, std::string_view stored, bool running) {
    append_stored(log_, stored);
    if (!running && !log_.ended()) log_.end();  // nothing after the cursor
    sse::LogReader::start(connection, followers_.wheel_, followers_.settings_, followers_.graveyard_, log_,
                          log_.base_seq());
    if (done_) return;  // the replay was the whole of it and the reader already ended
    if (!log_.ended()) follow();
  }

  // One notification for this run: "<seq> <kind>\n<bytes>" (after the run id).
  void on_payload(uint64_t seq, char kind, std::string_view bytes) {
    if (log_.ended()) return;
    if (kind == '=') {
      append_framed(log_, bytes);
    } else {
      if (seq != log_.next_seq()) return;
      if (piece_seq_ != seq) {
        piece_.clear();
        piece_seq_ = seq;
      }
      piece_.append(bytes);
      if (kind == '.') {
        std::string event = std::move(piece_);
        piece_.clear();
        piece_seq_ = UINT64_MAX;
        append_framed(log_, event);
      }
    }
  }

 private:
  void follow() {
    following_ = true;
    std::string payload = id_text_ + " " + std::to_string(log_.next_seq());
    followers_.store_.notify(Store::kFollowChannel, {payload}, [](Status) {});
    polled_at_seq_ = log_.next_seq();
    followers_.wheel_.schedule_in(poll_timer_, kQuietPollMs);
  }

  static void on_poll(void* opaque) {
    auto* self = static_cast<Follower*>(opaque);
    if (self->done_ || self->log_.ended()) return;
    if (self->log_.next_seq() != self->polled_at_seq_) {  // news came: wait again
      self->polled_at_seq_ = self->log_.next_seq();
      self->followers_.wheel_.schedule_in(self->poll_timer_, kQuietPollMs);
      return;
    }
    self->lookup_ = self->followers_.store_.stored_run(
        self->run_id_, self->user_id_, [self](Result<StoredRun>& stored) {
          self->lookup_ = 0;
          if (self->done_) return;
          if (!stored) {  // the database is away: try again later
            self->followers_.wheel_.schedule_in(self->poll_timer_, kQuietPollMs);
            return;
          }
          append_stored(self->log_, stored->events);
          if (self->log_.ended()) return;
          if (!stored->running) {
            self->log_.end();  // ended without a stored terminal event (its events expired)
            return;
          }
          self->follow();  // the owner may not have heard: ask again from here
        });
  }

  // sse::LogWatcher: the reader left (its client went away, or it wrote the terminal event).
  void on_log_readers_changed(size_t readers) override {
    if (readers > 0 || done_) return;
    done_ = true;
    followers_.wheel_.cancel(poll_timer_);
    if (following_ && !log_.ended()) {
      followers_.store_.notify(Store::kFollowChannel, {id_text_ + " stop"}, [](Status) {});
    }
    auto range = followers_.followers_.equal_range(run_id_);
    for (auto it = range.first; it != range.second; ++it) {
      if (it->second == this) {
        followers_.followers_.erase(it);
        break;
      }
    }
    followers_.graveyard_.bury(this);
  }

  RunFollowers& followers_;
  Uuid run_id_;
  std::string user_id_;
  std::string id_text_;  // before log_, which refers to it
  sse::EventLog log_;
  Timer poll_timer_;
  Store::Ticket lookup_ = 0;
  uint64_t polled_at_seq_ = 0;
  std::string piece_;  // an event that comes in pieces
  uint64_t piece_seq_ = UINT64_MAX;
  bool following_ = false;
  bool done_ = false;
};

RunFollowers::RunFollowers(Store& store, TimerWheel& wheel, Graveyard& graveyard, const sse::StreamSettings& settings)
    : store_(store),
      wheel_(wheel),
      graveyard_(graveyard),
      settings_(settings),
      batch_timer_(&RunFollowers::on_batch_timer, this) {}

RunFollowers::~RunFollowers() {
  wheel_.cancel(batch_timer_);
  for (Store::Ticket ticket : batches_) store_.cancel(ticket);
  // Followers still reading are freed with their readers' connections at exit; forget them here.
  followers_.clear();
}

// A resume waiting for the run's row: the stream of a new conversation opens (meta, with the run id)
// before its start statement commits, so a resume that reaches PostgreSQL first may not find the
// run yet. It is looked up again every kRetryMs until kPatienceMs have passed, then it is 404.
// Lookups are batched: those of one loop turn go to PostgreSQL in one statement (a storm of
// resumes after a network blip costs a few round trips, not one per stream).
class RunFollowers::Lookup final : public http::ResponseProducer, public Reclaimable {
 public:
  static constexpr uint64_t kRetryMs = 100;
  static constexpr uint64_t kPatienceMs = 2000;

  Lookup(RunFollowers& followers, http::Connection& connection, const ResumeRequest& request, std::string user_id)
      : serial(++followers.last_serial_),
        followers_(followers),
        connection_(&connection),
        request_(request),
        user_id_(std::move(user_id)),
        give_up_ms_(followers.wheel_.now_ms() + kPatienceMs),
        retry_(&Lookup::on_retry, this) {
    connection.attach(this);
    followers_.lookups_.emplace(serial, this);
  }
  ~Lookup() override {
    followers_.wheel_.cancel(retry_);
    followers_.lookups_.erase(serial);
  }

  const Uuid& run_id() const { return request_.run_id; }
  void look() { followers_.enqueue(*this); }

  // The batch's answer for this run: its row, or none (null).
  void on_found(StoredRun* row, const Error* failed) {
    Result<StoredRun> stored = Error{Errc::kNotFound, "No such run"};
    if (failed) stored = *failed;
    else if (row && row->user_id == user_id_) stored = *row;  // another user's run is not found
    if (!stored && stored.error().code == Errc::kNotFound && followers_.wheel_.now_ms() < give_up_ms_) {
      followers_.wheel_.schedule_in(retry_, kRetryMs);
      return;
    }
    http::Connection* connection = connection_;
    finish();
    if (connection) followers_.answer(*connection, request_, user_id_, stored);
  }

  void on_flush() override {}
  void on_output_drained() override {}
  void on_connection_lost() override {
    connection_ = nullptr;
    finish();
  }

  const uint64_t serial;  // how a batch finds it again (an address may be reused)

 private:
  static void on_retry(void* self) { static_cast<Lookup*>(self)->look(); }
  void finish() {
    followers_.wheel_.cancel(retry_);
    followers_.lookups_.erase(serial);  // a batch in flight no longer finds it
    if (connection_) {
      connection_->detach(this);
      connection_ = nullptr;
    }
    if (!buried_) {
      buried_ = true;
      followers_.graveyard_.bury(this);
    }
  }

  RunFollowers& followers_;
  http::Connection* connection_;
  ResumeRequest request_;
  std::string user_id_;
  uint64_t give_up_ms_;
  Timer retry_;
  bool buried_ = false;
};

void RunFollowers::enqueue(Lookup& lookup) {
  queued_.push_back(lookup.serial);
  if (!batch_timer_.scheduled()) wheel_.schedule(batch_timer_, wheel_.now_ms());
}

void RunFollowers::on_batch_timer(void* opaque) {
  auto* self = static_cast<RunFollowers*>(opaque);
  std::vector<uint64_t> serials;
  serials.swap(self->queued_);
  std::vector<Uuid> ids;
  std::vector<uint64_t> live;
  for (uint64_t serial : serials) {
    auto it = self->lookups_.find(serial);
    if (it == self->lookups_.end()) continue;  // its client left meanwhile
    ids.push_back(it->second->run_id());
    live.push_back(serial);
  }
  if (ids.empty()) return;
  auto ticket = std::make_shared<Store::Ticket>(0);
  *ticket = self->store_.stored_runs(ids, [self, live, ticket](Result<std::vector<StoredRun>>& rows) {
    self->batches_.erase(*ticket);
    std::unordered_map<Uuid, StoredRun*, UuidHash> by_id;
    if (rows) {
      for (StoredRun& row : *rows) by_id.emplace(row.run_id, &row);
    }
    for (uint64_t serial : live) {
      auto it = self->lookups_.find(serial);
      if (it == self->lookups_.end()) continue;
      Lookup& lookup = *it->second;
      if (!rows) {
        lookup.on_found(nullptr, &rows.error());
        continue;
      }
      auto row = by_id.find(lookup.run_id());
      lookup.on_found(row == by_id.end() ? nullptr : row->second, nullptr);
    }
  });
  self->batches_.insert(*ticket);
}

void RunFollowers::resume(http::Connection& connection, const ResumeRequest& request, const std::string& user_id) {
  auto* lookup = new Lookup(*this, connection, request, user_id);
  lookup->look();
}

void RunFollowers::answer(http::Connection& connection, const ResumeRequest& request, const std::string& user_id,
                          Result<StoredRun>& stored) {
  if (!stored) {
    connection.respond_error(stored.error().code, stored.error().message);
    return;
  }
  if (stored->expired) {  // (its stream was dropped: it no longer says it was resumable)
    connection.respond_error(Errc::kGone, "This run ended longer ago than the server keeps streams for resuming (--resume-retention)");
    return;
  }
  if (!stored->resumable) {
    connection.respond_error(Errc::kNotFound, "This run's answer is not an event stream (only POST /chat/stream answers resume)");
    return;
  }
  obs::add(obs::Counter::kResumesRemote);
  auto* follower = new Follower(*this, request.run_id, user_id, request.next_seq);
  followers_.emplace(request.run_id, follower);
  follower->start(connection, stored->events, stored->running);
}

void RunFollowers::on_events(std::string_view payload) {
  // "<run_id> <seq> <kind>\n<bytes>"
  size_t newline = payload.find('\n');
  if (newline == std::string_view::npos || newline < 40) return;
  auto run_id = Uuid::parse(payload.substr(0, 36));
  if (!run_id) return;
  auto range = followers_.equal_range(*run_id);
  if (range.first == range.second) return;
  std::string_view head = payload.substr(37, newline - 37);
  size_t space = head.find(' ');
  if (space == std::string_view::npos || space + 2 != head.size()) return;
  uint64_t seq = 0;
  auto [end, ec] = std::from_chars(head.data(), head.data() + space, seq);
  if (ec != std::errc() || end != head.data() + space) return;
  char kind = head[space + 1];
  if (kind != '=' && kind != '+' && kind != '.') return;
  std::string_view bytes = payload.substr(newline + 1);
  // A follower may end (and leave the map) while it takes the events: collect them first.
  std::vector<Follower*> targets;
  for (auto it = range.first; it != range.second; ++it) targets.push_back(it->second);
  for (Follower* follower : targets) follower->on_payload(seq, kind, bytes);
}

}  // namespace chatstream::chat
