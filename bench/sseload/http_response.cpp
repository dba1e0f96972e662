#include "http_response.hpp"

#include "common/http_text.hpp"

namespace chatstream::bench {
namespace {

HttpResponseParser& owner(llhttp_t* parser) { return *static_cast<HttpResponseParser*>(parser->data); }

}  // namespace

const llhttp_settings_t& HttpResponseParser::settings() {
  static const llhttp_settings_t settings = [] {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_status = &HttpResponseParser::on_status;
    s.on_header_field = &HttpResponseParser::on_header_field;
    s.on_header_value = &HttpResponseParser::on_header_value;
    s.on_header_value_complete = &HttpResponseParser::on_header_value_complete;
    s.on_headers_complete = &HttpResponseParser::on_headers_complete;
    s.on_body = &HttpResponseParser::on_body;
    s.on_message_complete = &HttpResponseParser::on_message_complete;
    return s;
  }();
  return settings;
}

void HttpResponseParser::reset() {
  llhttp_init(&parser_, HTTP_RESPONSE, &settings());
  parser_.data = this;
  headers_.reset();
  event_stream_ = false;
  head_complete_ = false;
  body_complete_ = false;
  stopped_ = false;
}

HttpResponseParser::Status HttpResponseParser::feed(std::string_view input, Sink& sink) {
  if (body_complete_) return Status::kBodyComplete;
  sink_ = &sink;
  llhttp_errno_t error = llhttp_execute(&parser_, input.data(), input.size());
  sink_ = nullptr;
  if (stopped_) return Status::kStopped;
  if (error == HPE_OK) return Status::kNeedMore;
  // on_message_complete pauses the parser: what follows the body belongs to no response yet.
  if (error == HPE_PAUSED && body_complete_) return Status::kBodyComplete;
  return Status::kMalformed;
}

HttpResponseParser::Status HttpResponseParser::on_eof() {
  if (!body_complete_ && head_complete_ && llhttp_get_errno(&parser_) == HPE_OK) {
    llhttp_finish(&parser_);  // ends a close-delimited body (on_message_complete); nothing else
  }
  return body_complete_ ? Status::kBodyComplete : Status::kMalformed;
}

int HttpResponseParser::on_status(llhttp_t* parser, const char*, size_t length) {
  return owner(parser).headers_.count(length) ? 0 : -1;
}

int HttpResponseParser::on_header_field(llhttp_t* parser, const char* at, size_t length) {
  return owner(parser).headers_.on_name(std::string_view(at, length)) ? 0 : -1;
}

int HttpResponseParser::on_header_value(llhttp_t* parser, const char* at, size_t length) {
  return owner(parser).headers_.on_value(std::string_view(at, length)) ? 0 : -1;
}

int HttpResponseParser::on_header_value_complete(llhttp_t* parser) {
  HttpResponseParser& self = owner(parser);
  self.headers_.complete([&](std::string_view name, std::string_view value) {
    if (equals_ignore_case(name, "content-type")) {
      self.event_stream_ = starts_with_ignore_case(value, "text/event-stream");
    }
  });
  return 0;
}

int HttpResponseParser::on_headers_complete(llhttp_t* parser) {
  HttpResponseParser& self = owner(parser);
  self.head_complete_ = true;
  ResponseHead head;
  head.status = parser->status_code;
  head.event_stream = self.event_stream_;
  // False for a close-delimited body, "Connection: close", and HTTP/1.0 without keep-alive.
  head.keep_alive = llhttp_should_keep_alive(parser) != 0;
  if (!self.sink_->on_response_head(head)) {
    self.stopped_ = true;
    return -1;
  }
  return 0;
}

int HttpResponseParser::on_body(llhttp_t* parser, const char* at, size_t length) {
  HttpResponseParser& self = owner(parser);
  if (!self.sink_->on_body(std::string_view(at, length))) {
    self.stopped_ = true;
    return -1;
  }
  return 0;
}

int HttpResponseParser::on_message_complete(llhttp_t* parser) {
  owner(parser).body_complete_ = true;
  return HPE_PAUSED;
}

}  // namespace chatstream::bench
