// Incremental parser of one HTTP/1.x response as a client sees it: status line and headers, then
// the body framed by Transfer-Encoding: chunked, by Content-Length, or by the connection closing
// (an HTTP/1.0-style answer). Body bytes are handed on as they arrive, never buffered here.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace chatstream::bench {

struct ResponseHead {
  int status = 0;
  bool event_stream = false;  // Content-Type is text/event-stream (parameters allowed)
  bool keep_alive = false;    // the connection may carry another request after this body
};

class HttpResponseParser {
 public:
  // Receives the parse results. Returning false from either call stops the current feed() at once
  // (the stream is being closed); nothing else is read from that input.
  class Sink {
   public:
    virtual bool on_response_head(const ResponseHead& head) = 0;
    virtual bool on_body(std::string_view bytes) = 0;

   protected:
    ~Sink() = default;
  };

  enum class Status : uint8_t {
    kNeedMore,      // all input consumed, the body goes on
    kBodyComplete,  // the body ended inside this input (bytes after it are not consumed)
    kStopped,       // a sink call returned false
    kMalformed,     // not a valid HTTP/1.x response
  };

  Status feed(std::string_view input, Sink& sink);
  // The peer closed the connection: completes a close-delimited body, anything else ended early.
  Status on_eof();
  // Prepares for the next response on the same connection.
  void reset();

  bool head_complete() const { return stage_ != Stage::kHead; }

 private:
  enum class Stage : uint8_t {
    kHead,
    kChunkSize,
    kChunkExtension,
    kChunkData,
    kChunkDataEnd,
    kTrailer,
    kLengthBody,
    kCloseBody,
    kDone,
  };

  Status parse_head(Sink& sink);
  Status feed_chunked(std::string_view input, size_t& pos, Sink& sink);

  std::string head_;        // status line and headers, until the blank line; empty afterwards
  uint64_t remaining_ = 0;  // bytes left in the current chunk, or in a Content-Length body
  Stage stage_ = Stage::kHead;
  uint8_t chunk_size_digits_ = 0;
  bool trailer_line_empty_ = true;
  bool keep_alive_ = false;
};

}  // namespace chatstream::bench
