// The two formats that answer once, with the whole answer: POST /chat's JSON object and OpenAI's
// chat.completion (POST /v1/chat/completions without stream). Both wait attached to the connection,
// so a client that leaves meanwhile is noticed (and the run stopped) at once.
#include <ctime>

#include "chat/writers.hpp"
#include "json/writer.hpp"

namespace chatstream::chat {

namespace {

// POST /chat keeps the whole answer in memory; beyond this the client must stream.
class WholeAnswerWriter : public RunWriter, private http::ResponseProducer {
 public:
  WholeAnswerWriter(http::Connection& connection, sse::StreamObserver& observer)
      : connection_(&connection), observer_(observer) {
    connection.attach(static_cast<http::ResponseProducer*>(this));
  }
  ~WholeAnswerWriter() override { take(); }

  void open(const RunOpening& opening) override {
    run_id_ = opening.run_id;
    session_id_ = opening.session_id;
  }
  void token(std::string_view) override {}  // the run keeps the text; it comes whole with the outcome
  bool attached() const override { return connection_ != nullptr; }

  void refuse(Errc error, std::string_view message, std::string_view extra_fields) override {
    if (http::Connection* connection = take()) connection->respond_error(error, message, extra_headers(), extra_fields);
  }

  void end(const RunOutcome& outcome) override {
    http::Connection* connection = take();
    if (!connection || outcome.status == RunStatus::kDisconnected) return;
    if (outcome.status != RunStatus::kComplete && outcome.status != RunStatus::kCancelled) {
      connection->respond_error(outcome.error, outcome.message, extra_headers());
      return;
    }
    connection->respond(200, "application/json", body(outcome), extra_headers());
  }

 protected:
  virtual std::string body(const RunOutcome& outcome) = 0;
  virtual std::string extra_headers() const { return {}; }
  std::string_view run_id_;
  std::string_view session_id_;

 private:
  http::Connection* take() {
    http::Connection* connection = connection_;
    connection_ = nullptr;
    if (connection) connection->detach(static_cast<http::ResponseProducer*>(this));
    return connection;
  }
  // http::ResponseProducer
  void on_flush() override {}
  void on_output_drained() override {}
  void on_connection_lost() override {
    connection_ = nullptr;
    observer_.on_client_gone();
  }

  http::Connection* connection_;
  sse::StreamObserver& observer_;
};

class JsonAnswerWriter final : public WholeAnswerWriter {
 public:
  using WholeAnswerWriter::WholeAnswerWriter;

  void stage(std::string_view type, std::string_view fields_json) override {
    // The tool calls announced are part of the answer.
    if (type != "tool_call" || tool_calls_.size() >= 64 * 1024) return;
    tool_calls_.push_back(tool_calls_.empty() ? '[' : ',');
    tool_calls_.push_back('{');
    tool_calls_.append(fields_json);
    tool_calls_.push_back('}');
  }

 private:
  std::string body(const RunOutcome& outcome) override {
    std::string body;
    json::Object object(body);
    object.field("run_id", run_id_)
        .field("session_id", session_id_)
        .field("status", outcome.status == RunStatus::kComplete ? "complete" : "cancelled")
        .field("answer", outcome.answer)
        .field("tokens", outcome.tokens)
        .field("ttft_ms", outcome.ttft_ms)
        .field("duration_ms", outcome.duration_ms)
        .raw("citations", outcome.citations_json)
        .raw("tool_calls", tool_calls_.empty() ? std::string("[]") : tool_calls_ + "]");
    if (outcome.message_id > 0) object.field("message_id", outcome.message_id);
    object.close();
    return body;
  }

  std::string tool_calls_;  // "[{…},{…}" (open) while the run goes on
};

class OpenAIJsonWriter final : public WholeAnswerWriter {
 public:
  using WholeAnswerWriter::WholeAnswerWriter;
  void stage(std::string_view, std::string_view) override {}

 private:
  std::string extra_headers() const override {
    std::string header = "X-Chatstream-Session-Id: ";
    header += session_id_;
    header += "\r\n";
    return header;
  }

  std::string body(const RunOutcome& outcome) override {
    std::string assistant;
    json::Object(assistant).field("role", "assistant").field("content", outcome.answer).close();
    std::string choice = "[";
    json::Object(choice).field("index", 0).raw("message", assistant).field("finish_reason", "stop").close();
    choice += "]";
    std::string id = "chatcmpl-";
    id += run_id_;
    std::string body;
    json::Object object(body);
    object.field("id", id)
        .field("object", "chat.completion")
        .field("created", static_cast<int64_t>(time(nullptr)))
        .field("model", "chatstream")
        .raw("choices", choice)
        .raw("usage", usage_for_client(outcome))
        .field("session_id", session_id_);
    object.close();
    return body;
  }
};

}  // namespace

std::unique_ptr<RunWriter> make_json_answer_writer(http::Connection& connection, sse::StreamObserver& observer) {
  return std::make_unique<JsonAnswerWriter>(connection, observer);
}

std::unique_ptr<RunWriter> make_openai_json_writer(http::Connection& connection, sse::StreamObserver& observer) {
  return std::make_unique<OpenAIJsonWriter>(connection, observer);
}

}  // namespace chatstream::chat
