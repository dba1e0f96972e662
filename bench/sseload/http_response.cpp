#include "http_response.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>

namespace chatstream::bench {
namespace {

// A response head larger than this is not something chatstream sends; treat it as garbage rather
// than buffer without bound.
constexpr size_t kMaxHeadBytes = 16 * 1024;
constexpr uint64_t kMaxChunkSize = uint64_t{1} << 40;

bool equals_ignore_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return (x | 0x20) == (y | 0x20); });
}

bool contains_token_ignore_case(std::string_view value, std::string_view token) {
  for (size_t i = 0; i + token.size() <= value.size(); ++i) {
    if (equals_ignore_case(value.substr(i, token.size()), token)) return true;
  }
  return false;
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r')) {
    text.remove_suffix(1);
  }
  return text;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

void HttpResponseParser::reset() {
  head_.clear();
  remaining_ = 0;
  stage_ = Stage::kHead;
  chunk_size_digits_ = 0;
  trailer_line_empty_ = true;
  keep_alive_ = false;
}

HttpResponseParser::Status HttpResponseParser::on_eof() {
  if (stage_ == Stage::kCloseBody || stage_ == Stage::kDone) {
    stage_ = Stage::kDone;
    return Status::kBodyComplete;
  }
  return Status::kMalformed;
}

HttpResponseParser::Status HttpResponseParser::feed(std::string_view input, Sink& sink) {
  size_t pos = 0;
  if (stage_ == Stage::kHead) {
    // The blank line may straddle two reads: search from a little before the new bytes.
    size_t old_size = head_.size();
    size_t search_from = old_size >= 3 ? old_size - 3 : 0;
    head_.append(input.data(), std::min(input.size(), kMaxHeadBytes + 4 - old_size));
    size_t end = head_.find("\r\n\r\n", search_from);
    if (end == std::string::npos) {
      return head_.size() > kMaxHeadBytes ? Status::kMalformed : Status::kNeedMore;
    }
    size_t head_bytes = end + 4;
    // The body starts right after the blank line; what was copied beyond it is read again below.
    pos = head_bytes - old_size;
    head_.resize(head_bytes);
    if (Status status = parse_head(sink); status != Status::kNeedMore) return status;
  }

  while (pos < input.size()) {
    switch (stage_) {
      case Stage::kCloseBody: {
        std::string_view bytes = input.substr(pos);
        pos = input.size();
        if (!sink.on_body(bytes)) return Status::kStopped;
        break;
      }
      case Stage::kLengthBody: {
        size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, input.size() - pos));
        std::string_view bytes = input.substr(pos, take);
        pos += take;
        remaining_ -= take;
        if (remaining_ == 0) stage_ = Stage::kDone;
        if (!sink.on_body(bytes)) return Status::kStopped;
        break;
      }
      case Stage::kDone:
        return Status::kBodyComplete;
      default:
        if (Status status = feed_chunked(input, pos, sink); status != Status::kNeedMore) return status;
        break;
    }
  }
  return stage_ == Stage::kDone ? Status::kBodyComplete : Status::kNeedMore;
}

HttpResponseParser::Status HttpResponseParser::parse_head(Sink& sink) {
  std::string_view head(head_);
  size_t line_end = head.find("\r\n");
  std::string_view status_line = head.substr(0, line_end);
  // "HTTP/1.1 200 OK": version, then a three-digit status.
  if (status_line.size() < 12 || status_line.substr(0, 7) != "HTTP/1." || status_line[8] != ' ') {
    return Status::kMalformed;
  }
  ResponseHead result;
  bool http11 = status_line[7] == '1';
  auto [status_end, status_error] =
      std::from_chars(status_line.data() + 9, status_line.data() + 12, result.status);
  if (status_error != std::errc{} || status_end != status_line.data() + 12) return Status::kMalformed;

  bool chunked = false;
  bool has_length = false;
  bool connection_close = !http11;
  uint64_t content_length = 0;
  size_t pos = line_end + 2;
  while (pos < head.size()) {
    size_t end = head.find("\r\n", pos);
    std::string_view line = head.substr(pos, end - pos);
    pos = end + 2;
    if (line.empty()) break;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) return Status::kMalformed;
    std::string_view name = line.substr(0, colon);
    std::string_view value = trim(line.substr(colon + 1));
    if (equals_ignore_case(name, "content-type")) {
      result.event_stream =
          value.size() >= 17 && equals_ignore_case(value.substr(0, 17), "text/event-stream");
    } else if (equals_ignore_case(name, "transfer-encoding")) {
      chunked = contains_token_ignore_case(value, "chunked");
    } else if (equals_ignore_case(name, "content-length")) {
      auto [end_ptr, error] = std::from_chars(value.data(), value.data() + value.size(), content_length);
      if (error != std::errc{} || end_ptr != value.data() + value.size()) return Status::kMalformed;
      has_length = true;
    } else if (equals_ignore_case(name, "connection")) {
      if (contains_token_ignore_case(value, "close")) connection_close = true;
      if (contains_token_ignore_case(value, "keep-alive")) connection_close = false;
    }
  }

  if (chunked) {
    stage_ = Stage::kChunkSize;
  } else if (has_length) {
    stage_ = content_length == 0 ? Stage::kDone : Stage::kLengthBody;
    remaining_ = content_length;
  } else {
    stage_ = Stage::kCloseBody;
    connection_close = true;
  }
  keep_alive_ = !connection_close;
  result.keep_alive = keep_alive_;
  head_.clear();
  head_.shrink_to_fit();  // thousands of streams: give the head buffer back while the body flows
  return sink.on_response_head(result) ? Status::kNeedMore : Status::kStopped;
}

// Chunked framing: SIZE[;ext]\r\n DATA \r\n ... 0\r\n [trailer lines] \r\n. A bare \n is accepted
// wherever \r\n is expected.
HttpResponseParser::Status HttpResponseParser::feed_chunked(std::string_view input, size_t& pos, Sink& sink) {
  while (pos < input.size()) {
    char c = input[pos];
    switch (stage_) {
      case Stage::kChunkSize:
        ++pos;
        if (int digit = hex_value(c); digit >= 0) {
          remaining_ = remaining_ * 16 + static_cast<uint64_t>(digit);
          if (remaining_ > kMaxChunkSize) return Status::kMalformed;
          ++chunk_size_digits_;
        } else if (c == ';' || c == ' ' || c == '\t') {
          stage_ = Stage::kChunkExtension;
        } else if (c == '\r') {
          // Wait for the \n.
        } else if (c == '\n') {
          if (chunk_size_digits_ == 0) return Status::kMalformed;
          chunk_size_digits_ = 0;
          stage_ = remaining_ == 0 ? Stage::kTrailer : Stage::kChunkData;
          trailer_line_empty_ = true;
        } else {
          return Status::kMalformed;
        }
        break;
      case Stage::kChunkExtension:
        ++pos;
        if (c == '\n') {
          if (chunk_size_digits_ == 0) return Status::kMalformed;
          chunk_size_digits_ = 0;
          stage_ = remaining_ == 0 ? Stage::kTrailer : Stage::kChunkData;
          trailer_line_empty_ = true;
        }
        break;
      case Stage::kChunkData: {
        size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, input.size() - pos));
        std::string_view bytes = input.substr(pos, take);
        pos += take;
        remaining_ -= take;
        if (remaining_ == 0) stage_ = Stage::kChunkDataEnd;
        if (!sink.on_body(bytes)) return Status::kStopped;
        break;
      }
      case Stage::kChunkDataEnd:
        ++pos;
        if (c == '\n') {
          stage_ = Stage::kChunkSize;
        } else if (c != '\r') {
          return Status::kMalformed;
        }
        break;
      case Stage::kTrailer:
        ++pos;
        if (c == '\n') {
          if (trailer_line_empty_) {
            stage_ = Stage::kDone;
            return Status::kBodyComplete;
          }
          trailer_line_empty_ = true;
        } else if (c != '\r') {
          trailer_line_empty_ = false;
        }
        break;
      default:
        return Status::kMalformed;
    }
  }
  return Status::kNeedMore;
}

}  // namespace chatstream::bench
