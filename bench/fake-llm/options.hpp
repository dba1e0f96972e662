// Command-line options of fake-llm, parsed and validated once before the loop starts.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace chatstream::fakellm {

// Injected failures (--fault, or per request the header X-Fake-Fault). See bench/README.md.
enum class Fault : uint8_t { kNone, k500, k429, kStall, kDisconnect, kMalformed, kHuge };
inline constexpr size_t kFaultCount = 7;

std::string_view fault_name(Fault fault);
// Accepts the names fault_name returns ("none", "500", "429", "stall", ...).
bool parse_fault(std::string_view text, Fault& out);

struct Options {
  // Where to listen: an IPv4 or IPv6 literal and a port (0 = any free port, printed at start).
  std::string listen = "127.0.0.1:9100";
  std::string address = "127.0.0.1";
  uint16_t port = 9100;

  std::string model = "fake-model";  // listed by /v1/models; used when a request names none

  // The answer.
  uint32_t tokens = 50;                 // numbered tokens "t0 t1 ..." per answer
  double rate = 20;                     // tokens per second, 0 = as fast as the socket takes them
  uint32_t first_token_delay_ms = 0;    // after the role chunk, before token 0
  std::string text;                     // stream this text word by word instead of numbered tokens
  std::vector<std::string> text_words;  // `text` cut into words, each with its following whitespace

  // Wire-format variations a client's incremental parser must cope with.
  bool split_sse_lines = false;  // every SSE line in several writes, cut at awkward offsets
  uint32_t split_delay_ms = 1;   // time between those writes, so they arrive in separate reads
  bool crlf = false;             // "\r\n" line endings
  bool comments = false;         // ": keep-alive" comment lines between and inside events
  bool multi_data = false;       // each JSON chunk over several "data:" lines

  // Tool calls.
  std::string tool_call;    // function name to call when the request offers tools ("" = never)
  uint32_t tool_turns = 1;  // tool calls before the answer

  // Faults.
  Fault fault = Fault::kNone;
  std::vector<Fault> fault_cycle;  // request k (counting from 1) gets fault_cycle[k % size]: a share of faults
  uint32_t retry_after_s = 1;  // Retry-After of a 429
  uint32_t fail_times = 0;     // fault only the first K requests (per X-Fake-Key), 0 = every request
  uint32_t stall_after = 3;    // tokens sent before a stall
  uint32_t fail_after = 3;     // tokens sent before a disconnect, a malformed or the huge chunk

  uint32_t send_buffer = 0;  // SO_SNDBUF of accepted sockets, 0 = kernel default (autotuning)
};

inline constexpr uint32_t kMaxTokens = 1'000'000;  // per answer; a non-stream body holds them all

// Parses argv; on a bad or missing value prints the reason and the usage to stderr and returns false.
// Sets `exit_now` for --help (usage printed to stdout).
bool parse_options(int argc, char** argv, Options& options, bool& exit_now);

// Cuts `text` into words, each with its following whitespace (leading whitespace joins the first).
std::vector<std::string> split_words(std::string_view text);

}  // namespace chatstream::fakellm
