#include "options.hpp"

#include "common/flags.hpp"

#include <uv.h>

#include <array>
#include <cstdio>
#include <cstdlib>

namespace chatstream::fakellm {
namespace {

constexpr std::array<std::string_view, kFaultCount> kFaultNames = {"none",       "500",       "429", "stall",
                                                                   "disconnect", "malformed", "huge"};

constexpr const char* kUsage = R"(usage: fake-llm [options]
A fake OpenAI-compatible upstream (POST /v1/chat/completions, GET /v1/models, GET /stats, POST /reset).
  --listen HOST:PORT        IPv4 or [IPv6] literal and port; port 0 = any free port (default 127.0.0.1:9100)
  --model NAME              model listed by /v1/models and used when a request names none (default fake-model)
  --tokens N                numbered tokens "t0 t1 ..." per answer (default 50)
  --rate R                  tokens per second; 0 = as fast as the client reads (default 20)
  --first-token-delay MS    wait after the role chunk before token 0 (default 0)
  --text TEXT               stream this text word by word instead of numbered tokens
  --split-sse-lines         write every SSE line in several writes cut at awkward byte offsets
  --split-delay-ms MS       time between those writes (default 1)
  --crlf                    "\r\n" line endings
  --comments                interleave ": keep-alive" comment lines
  --multi-data              each JSON chunk over several "data:" lines
  --tool-call NAME          when the request has tools and ends with a user message, call NAME first
  --tool-turns K            tool calls before the answer (default 1)
  --fault MODE              500 | 429 | stall | disconnect | malformed | huge | none (default none)
  --fault-cycle M1,M2,...   request k gets the mode at k modulo the list (e.g. 500,stall,none,none:
                            a share of the requests fail, each way in turn); instead of --fault
  --retry-after N           Retry-After seconds of a 429 (default 1)
  --fail-times K            fault only the first K requests (per X-Fake-Key), 0 = all (default 0)
  --stall-after N           tokens sent before a stall (default 3)
  --fail-after N            tokens sent before a disconnect / malformed / huge chunk (default 3)
  --send-buffer BYTES       SO_SNDBUF of accepted sockets, 0 = kernel default (default 0)
Per request, headers override: X-Fake-Fault, X-Fake-Key, X-Fake-Fail-Times, X-Fake-Fault-After,
X-Fake-Tokens, X-Fake-Rate. Prints "listening on HOST:PORT" to stderr; stops on SIGTERM/SIGINT.
)";

const bench::FlagParser kFlags("fake-llm", kUsage);

bool fail(std::string_view flag, const char* why) { return kFlags.fail(flag, why); }

// HOST:PORT or [IPv6]:PORT, HOST a literal address (no name lookup: fake-llm is for loopback tests).
bool parse_listen(Options& options) {
  std::string_view listen(options.listen);
  size_t colon = listen.rfind(':');
  if (colon == std::string_view::npos) return fail("--listen", "expects HOST:PORT");
  std::string_view host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  uint32_t port = 0;
  if (!kFlags.integer<uint32_t>("--listen port", listen.substr(colon + 1), 0, 65535, port)) return false;
  options.address = std::string(host);
  options.port = static_cast<uint16_t>(port);
  sockaddr_in6 probe6{};
  sockaddr_in probe4{};
  if (uv_ip4_addr(options.address.c_str(), 0, &probe4) != 0 &&
      uv_ip6_addr(options.address.c_str(), 0, &probe6) != 0) {
    return fail("--listen", "host must be an IPv4 or IPv6 literal");
  }
  return true;
}

}  // namespace

std::string_view fault_name(Fault fault) {
  return kFaultNames[static_cast<size_t>(fault)];
}

bool parse_fault(std::string_view text, Fault& out) {
  for (size_t i = 0; i < kFaultNames.size(); ++i) {
    if (text == kFaultNames[i]) {
      out = static_cast<Fault>(i);
      return true;
    }
  }
  return false;
}

std::vector<std::string> split_words(std::string_view text) {
  auto is_space = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
  };
  std::vector<std::string> words;
  size_t start = 0;
  size_t i = 0;
  while (i < text.size() && is_space(text[i])) ++i;  // leading whitespace joins the first word
  while (i < text.size()) {
    while (i < text.size() && !is_space(text[i])) ++i;
    while (i < text.size() && is_space(text[i])) ++i;
    words.emplace_back(text.substr(start, i - start));
    start = i;
  }
  return words;
}

bool parse_options(int argc, char** argv, Options& options, bool& exit_now) {
  exit_now = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view flag(argv[i]);
    if (flag == "--help" || flag == "-h") {
      std::fputs(kUsage, stdout);
      exit_now = true;
      return true;
    }
    if (flag == "--split-sse-lines") {
      options.split_sse_lines = true;
      continue;
    }
    if (flag == "--crlf") {
      options.crlf = true;
      continue;
    }
    if (flag == "--comments") {
      options.comments = true;
      continue;
    }
    if (flag == "--multi-data") {
      options.multi_data = true;
      continue;
    }
    if (i + 1 >= argc) return fail(flag, "unknown flag or missing value");
    const char* value = argv[++i];
    bool ok = true;
    if (flag == "--listen") {
      options.listen = value;
    } else if (flag == "--model") {
      options.model = value;
      if (options.model.empty()) return fail(flag, "must not be empty");
    } else if (flag == "--tokens") {
      ok = kFlags.integer<uint32_t>(flag, value, 0, kMaxTokens, options.tokens);
    } else if (flag == "--rate") {
      ok = kFlags.number(flag, value, 0, options.rate, 1e6);
    } else if (flag == "--first-token-delay") {
      ok = kFlags.integer<uint32_t>(flag, value, 0, 3'600'000, options.first_token_delay_ms);
    } else if (flag == "--text") {
      options.text = value;
    } else if (flag == "--split-delay-ms") {
      ok = kFlags.integer<uint32_t>(flag, value, 0, 10'000, options.split_delay_ms);
    } else if (flag == "--tool-call") {
      options.tool_call = value;
    } else if (flag == "--tool-turns") {
      ok = kFlags.integer<uint32_t>(flag, value, 1, 100, options.tool_turns);
    } else if (flag == "--fault") {
      if (!parse_fault(value, options.fault)) return fail(flag, "unknown fault mode");
    } else if (flag == "--fault-cycle") {
      options.fault_cycle.clear();
      std::string_view list(value);
      while (!list.empty()) {
        size_t comma = list.find(',');
        Fault fault;
        if (!parse_fault(list.substr(0, comma), fault)) return fail(flag, "unknown fault mode in the list");
        options.fault_cycle.push_back(fault);
        list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
      }
      if (options.fault_cycle.empty()) return fail(flag, "expects a comma-separated list of modes");
    } else if (flag == "--retry-after") {
      ok = kFlags.integer<uint32_t>(flag, value, 0, 86'400, options.retry_after_s);
    } else if (flag == "--fail-times") {
      ok = kFlags.integer<uint32_t>(flag, value, 0, UINT32_MAX, options.fail_times);
    } else if (flag == "--stall-after") {
      ok = kFlags.integer<uint32_t>(flag, value, 0, kMaxTokens, options.stall_after);
    } else if (flag == "--fail-after") {
      ok = kFlags.integer<uint32_t>(flag, value, 0, kMaxTokens, options.fail_after);
    } else if (flag == "--send-buffer") {
      ok = kFlags.integer<uint32_t>(flag, value, 0, 64 * 1024 * 1024, options.send_buffer);
    } else {
      return fail(flag, "unknown flag");
    }
    if (!ok) return false;
  }
  if (!options.text.empty()) {
    options.text_words = split_words(options.text);
    if (options.text_words.size() > kMaxTokens) return fail("--text", "has too many words");
  }
  return parse_listen(options);
}

}  // namespace chatstream::fakellm
