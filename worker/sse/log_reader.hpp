#pragma once
// One resumed SSE response (GET /chat/stream/{run_id}): it writes a run's EventLog from a cursor onto
// a connection — the events already in the log at once, later ones as they are appended — with
// heartbeats, until the log's terminal event, then ends the response.
//
// Output stays bounded: at most high_water unsent bytes are taken from the log at a time; the rest
// waits in the log (which holds it anyway) until the socket drains. A slow reader therefore never
// pushes back on the run, and other readers are not affected. When the log ends, what is left is
// written in one go (bounded by the run's answer) so the log may go away.
//
// Lifetime: one owner, itself; freed through the Graveyard once its response ended or its client
// left. The log it reads outlives it or tells it first (on_log_gone).

#include <cstdint>

#include "core/graveyard.hpp"
#include "core/timer_wheel.hpp"
#include "http/connection.hpp"
#include "sse/event_log.hpp"
#include "sse/stream.hpp"

namespace chatstream::sse {

class LogReader final : public http::ResponseProducer, public LogListener, public Reclaimable {
 public:
  // Opens the response (head, retry field) and follows `log` from seq `next_seq`.
  static void start(http::Connection& connection, TimerWheel& wheel, const StreamSettings& settings,
                    Graveyard& graveyard, EventLog& log, uint64_t next_seq);
  LogReader(const LogReader&) = delete;
  LogReader& operator=(const LogReader&) = delete;
  ~LogReader() override;

  // http::ResponseProducer
  void on_flush() override;
  void on_output_drained() override;
  void on_connection_lost() override;
  // LogListener
  void on_log_appended() override;
  void on_log_ended() override;
  void on_log_gone() override;

 private:
  LogReader(http::Connection& connection, TimerWheel& wheel, const StreamSettings& settings, Graveyard& graveyard,
            EventLog& log, uint64_t next_seq);
  static void on_heartbeat(void* self);
  // Writes events from the cursor while the connection has room (all of them with `everything`).
  void write_events(bool everything);
  void finish();

  http::Connection* connection_;
  TimerWheel& wheel_;
  const StreamSettings& settings_;
  Graveyard& graveyard_;
  EventLog* log_;
  uint64_t next_seq_;
  Timer heartbeat_;
  bool buried_ = false;
};

}  // namespace chatstream::sse
