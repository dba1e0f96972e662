// What every Stream shares with the others and with its owner: one loop, the options, one request
// (the same bytes for every stream), one JSON parser and its padded scratch buffer, the totals.
#pragma once

#include <netinet/in.h>
#include <simdjson.h>
#include <sys/socket.h>
#include <uv.h>

#include <cstdint>
#include <string>
#include <vector>

#include "options.hpp"
#include "totals.hpp"

namespace chatstream::bench {

class Stream;

class StreamOwner {
 public:
  // Counts one more stream started if the run wants another (not stopping, total not reached).
  virtual bool claim_stream() = 0;
  virtual void on_first_event(Stream& stream) = 0;
  // --cut-after-tokens: the stream has received that many tokens (called once per stream).
  virtual void on_cut_ready(Stream& stream) = 0;
  // The stream's handle is closed; the slot may be started again from here.
  virtual void on_stream_closed(Stream& stream) = 0;

 protected:
  ~StreamOwner() = default;
};

struct StreamContext {
  StreamContext(uv_loop_t* loop_in, const Options& options_in, StreamOwner& owner_in)
      : loop(loop_in), options(options_in), owner(owner_in) {}

  uv_loop_t* loop;
  const Options& options;
  StreamOwner& owner;

  std::string request;  // the whole HTTP request, written by every stream as is
  sockaddr_storage server_address{};
  uint32_t next_source = 0;  // round-robin index into 127.0.0.1 .. 127.0.0.K

  // One read buffer for the whole loop: a read callback parses everything it is given before it
  // returns, so no stream keeps a pointer into it.
  std::vector<char> read_buffer = std::vector<char>(64 * 1024);

  // One parser for the whole loop: only one event is looked into at a time.
  simdjson::ondemand::parser json;
  std::vector<char> json_scratch;  // an event's data copied with the padding simdjson reads past

  uint64_t now_us = 0;  // when the bytes being parsed were read (one clock read per read callback)
  Totals totals;
};

}  // namespace chatstream::bench
