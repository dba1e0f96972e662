#pragma once
// A response that waits for asynchronous work (a database statement) before it is written. It
// attaches to the connection, so a client that goes away meanwhile is noticed: connection() is then
// null and the answer is dropped. Hold it by shared_ptr in the callback that will answer.

#include <memory>

#include "http/connection.hpp"

namespace chatstream::http {

class DeferredResponse final : public ResponseProducer {
 public:
  static std::shared_ptr<DeferredResponse> attach(Connection& connection) {
    auto response = std::shared_ptr<DeferredResponse>(new DeferredResponse(connection));
    connection.attach(response.get());
    return response;
  }
  DeferredResponse(const DeferredResponse&) = delete;
  DeferredResponse& operator=(const DeferredResponse&) = delete;
  ~DeferredResponse() {
    if (connection_) connection_->detach(this);
  }

  // The connection to answer on, or null when the client is gone. Answering ends the attachment.
  Connection* take() {
    Connection* connection = connection_;
    if (connection) connection->detach(this);
    connection_ = nullptr;
    return connection;
  }

  void on_flush() override {}
  void on_output_drained() override {}
  void on_connection_lost() override { connection_ = nullptr; }

 private:
  explicit DeferredResponse(Connection& connection) : connection_(&connection) {}
  Connection* connection_;
};

}  // namespace chatstream::http
