// Incremental parser of one HTTP/1.x response as a client sees it: status line and headers, then
// the body framed by Transfer-Encoding: chunked, by Content-Length, or by the connection closing
// (an HTTP/1.0-style answer). llhttp (the server's parser, in response mode) does the parsing; this
// class keeps what the load client needs (status, event-stream or not, keep-alive) and hands body
// bytes on as they arrive, never buffered here.
#pragma once

#include <llhttp.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "common/header_reader.hpp"

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

  HttpResponseParser() : headers_(kMaxHeadBytes) { reset(); }
  HttpResponseParser(const HttpResponseParser&) = delete;
  HttpResponseParser& operator=(const HttpResponseParser&) = delete;

  Status feed(std::string_view input, Sink& sink);
  // The peer closed the connection: completes a close-delimited body, anything else ended early.
  Status on_eof();
  // Prepares for the next response on the same connection.
  void reset();

  bool head_complete() const { return head_complete_; }

 private:
  // A response head larger than this is not something chatstream sends; treat it as garbage rather
  // than buffer without bound.
  static constexpr size_t kMaxHeadBytes = 16 * 1024;

  static int on_status(llhttp_t* parser, const char* at, size_t length);
  static int on_header_field(llhttp_t* parser, const char* at, size_t length);
  static int on_header_value(llhttp_t* parser, const char* at, size_t length);
  static int on_header_value_complete(llhttp_t* parser);
  static int on_headers_complete(llhttp_t* parser);
  static int on_body(llhttp_t* parser, const char* at, size_t length);
  static int on_message_complete(llhttp_t* parser);
  static const llhttp_settings_t& settings();

  llhttp_t parser_;
  Sink* sink_ = nullptr;         // during feed() only
  HeaderReader headers_;
  bool event_stream_ = false;
  bool head_complete_ = false;
  bool body_complete_ = false;
  bool stopped_ = false;
};

}  // namespace chatstream::bench
