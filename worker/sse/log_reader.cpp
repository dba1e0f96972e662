#include "sse/log_reader.hpp"

#include "obs/metrics.hpp"
#include "sse/framing.hpp"

namespace chatstream::sse {

void LogReader::start(http::Connection& connection, TimerWheel& wheel, const StreamSettings& settings,
                      Graveyard& graveyard, EventLog& log, uint64_t next_seq) {
  auto* reader = new LogReader(connection, wheel, settings, graveyard, log, next_seq);
  connection.begin_stream(kContentType, kStreamHeaders);
  std::string head;
  append_retry(head, settings.retry_ms);
  connection.write_body(head);
  log.add_reader(*reader);
  wheel.schedule_in(reader->heartbeat_, settings.heartbeat_ms);
  if (log.ended()) reader->on_log_ended();
  else reader->write_events(false);
}

LogReader::LogReader(http::Connection& connection, TimerWheel& wheel, const StreamSettings& settings,
                     Graveyard& graveyard, EventLog& log, uint64_t next_seq)
    : connection_(&connection),
      wheel_(wheel),
      settings_(settings),
      graveyard_(graveyard),
      log_(&log),
      next_seq_(next_seq),
      heartbeat_(&LogReader::on_heartbeat, this) {
  connection.attach(this);
}

LogReader::~LogReader() {
  wheel_.cancel(heartbeat_);
  if (log_) log_->remove_reader(*this);
  if (connection_) connection_->detach(this);
}

void LogReader::write_events(bool everything) {
  if (!connection_ || !log_) return;
  std::string out;
  while (next_seq_ < log_->next_seq() && (everything || connection_->unsent_bytes() + out.size() < settings_.high_water)) {
    uint64_t from = next_seq_;
    // A few events per pass keeps each copy small; the loop stops at the high-water mark.
    next_seq_ = std::min(log_->next_seq(), from + 16);
    log_->frame(from, next_seq_, out);
    obs::add(obs::Counter::kEventsSent, next_seq_ - from);
  }
  if (!out.empty()) connection_->write_body(out);
}

void LogReader::on_flush() { write_events(false); }

void LogReader::on_output_drained() {
  if (connection_ && log_ && next_seq_ < log_->next_seq()) connection_->request_flush();
}

void LogReader::on_log_appended() {
  if (connection_) connection_->request_flush();
}

void LogReader::on_log_ended() {
  write_events(true);
  if (connection_) {
    http::Connection* connection = connection_;
    connection_ = nullptr;
    connection->detach(this);
    connection->end_stream();
  }
  finish();
}

void LogReader::on_log_gone() {
  log_ = nullptr;  // the log already let go of this reader
  if (connection_) {
    http::Connection* connection = connection_;
    connection_ = nullptr;
    connection->detach(this);
    connection->close();  // no terminal event: the client resumes elsewhere
  }
  finish();
}

void LogReader::on_connection_lost() {
  connection_ = nullptr;
  finish();
}

void LogReader::on_heartbeat(void* opaque) {
  auto* self = static_cast<LogReader*>(opaque);
  if (!self->connection_) return;
  if (self->connection_->unsent_bytes() < self->settings_.high_water) {
    self->connection_->write_body(kHeartbeat);
    obs::add(obs::Counter::kHeartbeatsSent);
  }
  self->wheel_.schedule(self->heartbeat_, self->heartbeat_.deadline_ms() + self->settings_.heartbeat_ms);
}

void LogReader::finish() {
  wheel_.cancel(heartbeat_);
  if (log_) {
    EventLog* log = log_;
    log_ = nullptr;
    log->remove_reader(*this);  // may tell the run that nobody reads any more
  }
  if (!buried_) {
    buried_ = true;
    graveyard_.bury(this);
  }
}

}  // namespace chatstream::sse
