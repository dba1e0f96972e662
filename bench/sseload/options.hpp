// Command-line options of sseload, parsed once and validated before the loop starts.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace chatstream::bench {

struct Options {
  // Target. `host` is the Host header; the socket goes to `address` (a resolved IPv4/IPv6 literal)
  // and `port`, or to `unix_path` when set.
  std::string url = "http://127.0.0.1:9000/chat/stream";
  std::string host = "127.0.0.1:9000";
  std::string address = "127.0.0.1";
  uint16_t port = 9000;
  std::string path = "/chat/stream";
  std::string unix_path;

  // Load shape.
  uint32_t streams = 100;      // concurrent streams in flight
  uint64_t total = 0;          // streams to run in all (0 = same as `streams`)
  double ramp_s = 2.0;         // connection opens are spread evenly over this time
  double duration_s = 600;     // hard stop of the whole run
  double timeout_s = 120;      // one stream, from connect to its terminal event (0 = none)
  double idle_timeout_s = 45;  // no byte received for this long fails the stream (0 = none)
  std::string body = R"({"message":"hello"})";
  uint32_t sources = 0;     // 0 = 1, or enough source addresses when streams > 20000
  bool keep_alive = false;  // send the next request on a finished stream's connection

  // Hold mode: open every stream, keep it open for `hold_s` once all are established.
  bool hold = false;
  double hold_s = 10;

  // Cut and resume (docs/protocol.md "Resuming a stream"): once every stream has received
  // `cut_after_tokens` tokens, the client closes all their connections at once; with `resume`, after
  // `resume_delay_s` it resumes them all at once, each on a new connection, and reads them to the end.
  uint32_t cut_after_tokens = 0;  // 0 = no cut
  bool resume = false;
  double resume_delay_s = 1;

  // Expectations.
  double expect_rate = 0;           // server token rate per stream (0 = no on-time figure)
  bool check_order = false;         // contents must concatenate to "t0 t1 t2 ... "
  double max_token_event_rate = 0;  // token events per second a stream may receive (0 = unchecked)

  std::vector<int> server_pids;  // summed for server CPU, and RSS in hold mode
  bool quiet = false;            // no progress lines on stderr
};

// Parses argv; on a bad or missing value prints the reason and the usage to stderr and returns false.
// Sets `exit_now` for --help (usage printed to stdout).
bool parse_options(int argc, char** argv, Options& options, bool& exit_now);

}  // namespace chatstream::bench
