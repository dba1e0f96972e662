#include "chat/checkpointer.hpp"

#include "obs/log.hpp"
#include "obs/metrics.hpp"

namespace chatstream::chat {

Checkpointer::Checkpointer(TimerWheel& wheel, Store& store, RunRegistry& registry, uint64_t interval_ms,
                           std::vector<int> lost_worker_pids)
    : wheel_(wheel),
      store_(store),
      registry_(registry),
      interval_ms_(interval_ms),
      lost_worker_pids_(std::move(lost_worker_pids)),
      timer_(&Checkpointer::on_tick, this) {}

Checkpointer::~Checkpointer() { stop(); }

void Checkpointer::start() {
  stopped_ = false;
  reachable_since_ms_ = wheel_.now_ms();
  sweep();  // what a dead worker or an earlier incarnation left running is closed at once
  wheel_.schedule_in(timer_, interval_ms_);
}

void Checkpointer::stop() {
  stopped_ = true;
  wheel_.cancel(timer_);
  if (checkpoint_in_flight_) store_.cancel(checkpoint_in_flight_);
  if (sweep_in_flight_) store_.cancel(sweep_in_flight_);
  checkpoint_in_flight_ = sweep_in_flight_ = 0;
}

void Checkpointer::on_tick(void* opaque) {
  auto* self = static_cast<Checkpointer*>(opaque);
  self->write_checkpoint();
  if (++self->ticks_ % kSweepEvery == 0) self->sweep();
  // From the previous deadline: the interval does not drift by the time callbacks take.
  self->wheel_.schedule(self->timer_, self->timer_.deadline_ms() + self->interval_ms_);
}

void Checkpointer::write_checkpoint() {
  if (checkpoint_in_flight_) return;  // the database is slow: the next one carries both intervals' text
  std::vector<CheckpointEntry> entries;
  struct Written {
    Uuid run_id;
    size_t bytes;     // of the answer, covered once this one commits
    uint64_t events;  // of the event log
  };
  std::vector<Written> written;
  bool running = false;
  for (Run* run : registry_.snapshot()) {
    if (!run->persisted()) continue;
    running = true;
    std::string_view answer = run->framed_answer();
    CheckpointEntry entry{run->id(), run->session_id(), run->checkpoint_pieces(),
                          answer.substr(run->checkpointed_bytes()), run->framed_tokens(), {}, 0, 0};
    if (const sse::EventLog* log = run->event_log()) {
      entry.events_from = run->checkpointed_events();
      entry.events_to = log->next_seq();
      log->store(entry.events_from, entry.events_to, entry.events);
    }
    // Nothing new since the last piece: no piece (the statement still renews the worker's lease).
    if (entry.appended.empty() && entry.events_to == entry.events_from) continue;
    written.push_back({run->id(), answer.size(), entry.events_to});
    entries.push_back(std::move(entry));
  }
  if (!running) return;  // no running run: no lease to renew either
  obs::add(obs::Counter::kCheckpointStatements);
  checkpoint_in_flight_ = store_.checkpoint(entries, [this, written = std::move(written)](Status saved) {
    checkpoint_in_flight_ = 0;
    if (!saved) {
      reachable_since_ms_ = wheel_.now_ms();  // the leases of every owner may lapse meanwhile
      return;  // nothing was appended: the next checkpoint sends the same pieces again, and more
    }
    for (const Written& w : written) {
      if (Run* run = registry_.find(w.run_id)) run->checkpointed(w.bytes, w.events);
    }
  });
}

void Checkpointer::sweep() {
  if (sweep_in_flight_) return;
  // Leases are trusted once this worker has reached the database for a whole lease: after an outage
  // (or at start) every owner first needs that long to renew theirs.
  bool leases_trusted = wheel_.now_ms() >= reachable_since_ms_ + store_.lease_ms();
  sweep_in_flight_ = store_.close_lost_runs(lost_worker_pids_, leases_trusted, [this](Result<int64_t> closed) {
    sweep_in_flight_ = 0;
    if (!closed) reachable_since_ms_ = wheel_.now_ms();
    if (closed && *closed > 0) {
      obs::add(obs::Counter::kRunsClosedLost, static_cast<uint64_t>(*closed));
      log::warn("closed runs whose worker is gone (worker_lost)", log::field("runs", static_cast<long long>(*closed)));
    }
  });
}

}  // namespace chatstream::chat
