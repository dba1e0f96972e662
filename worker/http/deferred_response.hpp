#pragma once
// A response that waits for asynchronous work (a database statement) before it is written. It
// attaches to the connection, so a client that goes away meanwhile is noticed: the work is cancelled
// (its callback never runs) and the answer is dropped.
//
// Lifetime: one owner, itself. It frees itself through the worker's deferred-free list (Graveyard)
// exactly once: when the work's callback takes the connection, or when the client is lost first.
//
//   auto* response = DeferredResponse::attach(connection, graveyard);
//   response->waits_for(store.session_messages(id, [response](Result<…>& r) {
//     if (http::Connection* c = response->take()) c->respond(…);
//   }), [&store](uint64_t ticket) { store.cancel(ticket); });

#include <cstdint>

#include "core/graveyard.hpp"
#include "http/connection.hpp"

namespace chatstream::http {

class DeferredResponse final : public ResponseProducer, public Reclaimable {
 public:
  using Cancel = void (*)(void* owner, uint64_t ticket);

  static DeferredResponse* attach(Connection& connection, Graveyard& graveyard) {
    auto* response = new DeferredResponse(connection, graveyard);
    connection.attach(response);
    return response;
  }
  DeferredResponse(const DeferredResponse&) = delete;
  DeferredResponse& operator=(const DeferredResponse&) = delete;

  // The work the answer waits for, and how to cancel it if the client leaves first.
  void waits_for(uint64_t ticket, Cancel cancel, void* owner) {
    ticket_ = ticket;
    cancel_ = cancel;
    cancel_owner_ = owner;
  }

  // From the work's callback: the connection to answer on (null if the client is gone). The
  // response is done with either way and will be freed.
  Connection* take() {
    Connection* connection = connection_;
    if (connection) connection->detach(this);
    finish();
    return connection;
  }

  void on_flush() override {}
  void on_output_drained() override {}
  void on_connection_lost() override {
    if (cancel_) cancel_(cancel_owner_, ticket_);  // the callback will not run
    finish();
  }

 private:
  DeferredResponse(Connection& connection, Graveyard& graveyard)
      : connection_(&connection), graveyard_(graveyard) {}
  void finish() {
    connection_ = nullptr;
    cancel_ = nullptr;
    if (!buried_) {
      buried_ = true;
      graveyard_.bury(this);
    }
  }

  Connection* connection_;
  Graveyard& graveyard_;
  Cancel cancel_ = nullptr;
  void* cancel_owner_ = nullptr;
  uint64_t ticket_ = 0;
  bool buried_ = false;
};

}  // namespace chatstream::http
