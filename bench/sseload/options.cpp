#include "options.hpp"

#include "common/flags.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <cstdio>
#include <cstring>
#include <string_view>

namespace chatstream::bench {
namespace {

constexpr const char* kUsage = R"(usage: sseload [options]
  --url URL               http://HOST[:PORT]/PATH (default http://127.0.0.1:9000/chat/stream)
  --unix PATH             connect to this Unix socket instead (the URL still gives path and Host)
  --streams N             concurrent streams (default 100)
  --total M               streams to run in all; finished ones are replaced at once (default N)
  --ramp SECONDS          spread the first N connection opens over this time (default 2)
  --duration SECONDS      hard stop: close everything, report, exit (default 600)
  --timeout SECONDS       per stream, connect to terminal event; 0 = none (default 120, off in --hold)
  --idle-timeout SECONDS  fail a stream that receives nothing for this long; 0 = none (default 45)
  --body JSON             request body (default {"message":"hello"})
  --sources K             bind sockets round-robin to 127.0.0.1 .. 127.0.0.K
                          (default 1, or enough addresses when N > 20000)
  --keep-alive            run the next stream on a finished stream's connection
  --hold                  open the streams and keep them open; no tokens expected
  --hold-seconds S        in --hold, how long to hold once all are established (default 10)
  --cut-after-tokens N    once every stream has N tokens, close all their connections at once
  --resume                then resume each cut stream (GET PATH/{run_id}, Last-Event-ID) and read
                          it to the end; needs --cut-after-tokens
  --resume-delay SECONDS  between the last cut connection closed and the resumes (default 1)
  --expect-rate R         server token rate per stream, for on_time_ratio
  --check-order           token contents must concatenate to "t0 t1 t2 ... "
  --max-token-event-rate E  count streams that received at most E token events per second
  --pid PID               server process for CPU (and RSS in --hold); repeat to sum several
  --quiet                 no progress lines on stderr
Prints one JSON object with the figures on stdout.
)";

const FlagParser kFlags("sseload", kUsage);

bool fail(std::string_view flag, const char* why) { return kFlags.fail(flag, why); }

// Splits http://HOST[:PORT]/PATH and resolves HOST once, before the loop starts (getaddrinfo blocks).
bool parse_url(Options& options) {
  constexpr std::string_view kScheme = "http://";
  std::string_view url(options.url);
  if (url.substr(0, kScheme.size()) != kScheme) return fail("--url", "only http:// URLs are supported");
  url.remove_prefix(kScheme.size());
  size_t slash = url.find('/');
  std::string_view authority = url.substr(0, slash);
  options.path = slash == std::string_view::npos ? "/" : std::string(url.substr(slash));
  if (authority.empty()) return fail("--url", "has no host");
  options.host = std::string(authority);

  std::string_view host_name = authority;
  options.port = 80;
  if (!authority.empty() && authority.front() == '[') {  // [IPv6]:port
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return fail("--url", "has an unclosed [IPv6] host");
    host_name = authority.substr(1, close - 1);
    std::string_view rest = authority.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return fail("--url", "has garbage after the [IPv6] host");
      if (!kFlags.integer<uint16_t>("--url port", rest.substr(1), 1, 65535, options.port)) return false;
    }
  } else if (size_t colon = authority.rfind(':'); colon != std::string_view::npos) {
    host_name = authority.substr(0, colon);
    if (!kFlags.integer<uint16_t>("--url port", authority.substr(colon + 1), 1, 65535, options.port)) return false;
  }
  if (!options.unix_path.empty()) return true;

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  std::string name(host_name);
  if (int rc = getaddrinfo(name.c_str(), nullptr, &hints, &found); rc != 0 || found == nullptr) {
    std::fprintf(stderr, "sseload: cannot resolve %s: %s\n", name.c_str(), gai_strerror(rc));
    return false;
  }
  char text[INET6_ADDRSTRLEN] = {};
  const void* raw =
      found->ai_family == AF_INET6
          ? static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(found->ai_addr)->sin6_addr)
          : static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(found->ai_addr)->sin_addr);
  inet_ntop(found->ai_family, raw, text, sizeof text);
  freeaddrinfo(found);
  options.address = text;
  return true;
}

}  // namespace

bool parse_options(int argc, char** argv, Options& options, bool& exit_now) {
  exit_now = false;
  bool timeout_given = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view flag(argv[i]);
    if (flag == "--help" || flag == "-h") {
      std::fputs(kUsage, stdout);
      exit_now = true;
      return true;
    }
    if (flag == "--hold") {
      options.hold = true;
      continue;
    }
    if (flag == "--check-order") {
      options.check_order = true;
      continue;
    }
    if (flag == "--keep-alive") {
      options.keep_alive = true;
      continue;
    }
    if (flag == "--resume") {
      options.resume = true;
      continue;
    }
    if (flag == "--quiet") {
      options.quiet = true;
      continue;
    }
    if (i + 1 >= argc) return fail(argv[i], "unknown flag or missing value");
    const char* value = argv[++i];
    bool ok = true;
    if (flag == "--url") {
      options.url = value;
    } else if (flag == "--unix") {
      options.unix_path = value;
    } else if (flag == "--streams") {
      ok = kFlags.integer<uint32_t>(argv[i - 1], value, 1, 10'000'000, options.streams);
    } else if (flag == "--total") {
      ok = kFlags.integer<uint64_t>(argv[i - 1], value, 1, UINT64_MAX / 2, options.total);
    } else if (flag == "--ramp") {
      ok = kFlags.number(argv[i - 1], value, 0, options.ramp_s);
    } else if (flag == "--duration") {
      ok = kFlags.number(argv[i - 1], value, 0.001, options.duration_s);
    } else if (flag == "--timeout") {
      ok = kFlags.number(argv[i - 1], value, 0, options.timeout_s);
      timeout_given = true;
    } else if (flag == "--idle-timeout") {
      ok = kFlags.number(argv[i - 1], value, 0, options.idle_timeout_s);
    } else if (flag == "--body") {
      options.body = value;
    } else if (flag == "--sources") {
      ok = kFlags.integer<uint32_t>(argv[i - 1], value, 1, 254, options.sources);
    } else if (flag == "--hold-seconds") {
      ok = kFlags.number(argv[i - 1], value, 0, options.hold_s);
    } else if (flag == "--cut-after-tokens") {
      ok = kFlags.integer<uint32_t>(argv[i - 1], value, 1, UINT32_MAX, options.cut_after_tokens);
    } else if (flag == "--resume-delay") {
      ok = kFlags.number(argv[i - 1], value, 0, options.resume_delay_s);
    } else if (flag == "--expect-rate") {
      ok = kFlags.number(argv[i - 1], value, 0, options.expect_rate);
    } else if (flag == "--max-token-event-rate") {
      ok = kFlags.number(argv[i - 1], value, 0, options.max_token_event_rate);
    } else if (flag == "--pid") {
      int pid = 0;
      ok = kFlags.integer<int>(argv[i - 1], value, 1, INT32_MAX, pid);
      options.server_pids.push_back(pid);
    } else {
      return fail(argv[i - 1], "unknown flag");
    }
    if (!ok) return false;
  }

  if (options.total == 0) options.total = options.streams;
  // Fewer streams in all than in flight: the extra slots would never open.
  if (options.total < options.streams) options.streams = static_cast<uint32_t>(options.total);
  // A held stream is meant to outlive any per-stream deadline; the hold time bounds it instead.
  if (options.hold && !timeout_given) options.timeout_s = 0;
  if (options.sources == 0) {
    // One source address gives ~28k ephemeral ports towards one server port; stay well under.
    constexpr uint32_t kStreamsPerSource = 20'000;
    options.sources = options.streams > kStreamsPerSource
                          ? (options.streams + kStreamsPerSource - 1) / kStreamsPerSource
                          : 1;
  }
  if (options.resume && options.cut_after_tokens == 0) return fail("--resume", "needs --cut-after-tokens");
  if (options.cut_after_tokens > 0) {
    // Every stream is cut once and resumed on its own slot: no replacements, no reused connections.
    if (options.total > options.streams) return fail("--total", "cannot exceed --streams with --cut-after-tokens");
    if (options.keep_alive) return fail("--keep-alive", "does not go with --cut-after-tokens");
    if (options.hold) return fail("--hold", "does not go with --cut-after-tokens");
  }
  if (!options.unix_path.empty() && options.sources > 1) return fail("--sources", "is for TCP only");
  return parse_url(options);
}

}  // namespace chatstream::bench
