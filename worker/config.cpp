#include "config.hpp"

#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <fstream>
#include <iterator>
#include <map>

#include "auth/jwt_verifier.hpp"

namespace chatstream {

std::string ListenAddress::describe() const {
  if (is_unix) return "unix:" + host;
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

namespace {

Result<int64_t> parse_integer(const std::string& text, int64_t min, int64_t max) {
  int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) {
    return Error{"'" + text + "' is not an integer"};
  }
  if (value < min || value > max) {
    return Error{"'" + text + "' is out of range [" + std::to_string(min) + ", " + std::to_string(max) + "]"};
  }
  return value;
}

Result<double> parse_real(const std::string& text, double min, double max) {
  char* end = nullptr;
  double value = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(value)) {
    return Error{"'" + text + "' is not a number"};
  }
  if (value < min || value > max) return Error{"'" + text + "' is out of range"};
  return value;
}

Result<ListenAddress> parse_listen(const std::string& text) {
  ListenAddress address;
  if (text.rfind("unix:", 0) == 0) {
    address.is_unix = true;
    address.host = text.substr(5);
    if (address.host.empty()) return Error{"unix socket path is empty"};
    if (address.host.size() >= 108) return Error{"unix socket path is longer than 107 bytes"};
    return address;
  }
  size_t colon = text.rfind(':');
  if (colon == std::string::npos) return Error{"'" + text + "' is not host:port or unix:/path"};
  address.host = text.substr(0, colon);
  if (address.host.size() >= 2 && address.host.front() == '[' && address.host.back() == ']') {
    address.host = address.host.substr(1, address.host.size() - 2);
  }
  if (address.host.empty()) address.host = "0.0.0.0";
  auto port = parse_integer(text.substr(colon + 1), 1, 65535);
  if (!port) return Error{"port: " + port.error().message};
  address.port = static_cast<int>(*port);
  return address;
}

struct Option {
  const char* name;  // flag without the leading dashes
  const char* value_name;
  const char* help;
  std::function<Status(Config&, const std::string&)> apply;
};

Status to_status(const Error& error) { return error; }

template <typename T, typename Fn>
Status assign(Result<T> result, Fn&& set) {
  if (!result) return to_status(result.error());
  set(*result);
  return {};
}

const std::vector<Option>& options() {
  static const std::vector<Option> kOptions = {
      {"listen", "ADDR", "host:port or unix:/path to listen on (default 127.0.0.1:9000)",
       [](Config& c, const std::string& v) { return assign(parse_listen(v), [&](auto a) { c.listen = a; }); }},
      {"workers", "N", "worker processes (default: number of cores)",
       [](Config& c, const std::string& v) {
         return assign(parse_integer(v, 1, 256), [&](auto n) { c.workers = static_cast<int>(n); });
       }},
      {"provider", "NAME",
       "token source: openai, extractive or scripted (default: openai when LLM_BASE_URL is set, else extractive "
       "with a database, else scripted)",
       [](Config& c, const std::string& v) -> Status {
         if (v != "scripted" && v != "extractive" && v != "openai") {
           return Error{"unknown provider '" + v + "' (available: openai, extractive, scripted)"};
         }
         c.provider = v;
         return {};
       }},
      {"llm-base-url", "URL", "OpenAI-compatible API base, e.g. https://api.openai.com/v1 (also LLM_BASE_URL)",
       [](Config& c, const std::string& v) -> Status {
         if (!v.empty() && v.rfind("http://", 0) != 0 && v.rfind("https://", 0) != 0) {
           return Error{"must start with http:// or https://"};
         }
         c.llm_base_url = v;
         return {};
       }},
      {"llm-api-key", "KEY", "API key sent as a Bearer token (also LLM_API_KEY); never logged",
       [](Config& c, const std::string& v) -> Status {
         c.llm_api_key = v;
         return {};
       }},
      {"llm-model", "NAME", "model name sent upstream (also LLM_MODEL)",
       [](Config& c, const std::string& v) -> Status {
         c.llm_model = v;
         return {};
       }},
      {"llm-headers", "LINES", "extra upstream headers, 'Name: value' separated by newlines or ';' (also LLM_EXTRA_HEADERS)",
       [](Config& c, const std::string& v) -> Status {
         c.llm_headers.clear();
         size_t start = 0;
         while (start <= v.size()) {
           size_t end = v.find_first_of(";\n", start);
           if (end == std::string::npos) end = v.size();
           std::string header = v.substr(start, end - start);
           while (!header.empty() && header.front() == ' ') header.erase(0, 1);
           while (!header.empty() && (header.back() == ' ' || header.back() == '\r')) header.pop_back();
           if (!header.empty()) {
             if (header.find(':') == std::string::npos || header.front() == ':') {
               return Error{"'" + header + "' is not 'Name: value'"};
             }
             c.llm_headers.push_back(header);
           }
           start = end + 1;
         }
         return {};
       }},
      {"llm-ca-file", "PATH", "PEM file of the CA certificates that sign the upstream's TLS certificate, instead "
       "of the system's store: a private CA, or a self-signed certificate (also LLM_CA_FILE)",
       [](Config& c, const std::string& v) -> Status {
         // Checked here, before any worker starts: a typo would otherwise surface as every answer
         // failing with a certificate error.
         if (!v.empty()) {
           std::FILE* file = std::fopen(v.c_str(), "rb");
           if (!file) return Error{"cannot read '" + v + "': " + std::strerror(errno)};
           char head[64] = {};
           size_t read = std::fread(head, 1, sizeof head - 1, file);
           std::fclose(file);
           if (std::string_view(head, read).find("-----BEGIN") == std::string_view::npos) {
             return Error{"'" + v + "' is not a PEM file (no -----BEGIN line at its start)"};
           }
         }
         c.llm_ca_file = v;
         return {};
       }},
      {"llm-connect-timeout", "DUR", "upstream connect timeout (default 10s)",
       [](Config& c, const std::string& v) -> Status {
         auto ms = parse_duration_ms(v);
         if (!ms) return ms.error();
         if (*ms == 0) return Error{"must be above 0"};
         c.llm_connect_timeout_ms = *ms;
         return {};
       }},
      {"llm-max-retries", "N", "retries of a failed upstream request before the first token (default 3)",
       [](Config& c, const std::string& v) {
         return assign(parse_integer(v, 0, 10), [&](auto n) { c.llm_max_retries = static_cast<int>(n); });
       }},
      {"llm-max-tool-turns", "N", "tool call rounds per answer (default 10)",
       [](Config& c, const std::string& v) {
         return assign(parse_integer(v, 0, 50), [&](auto n) { c.llm_max_tool_turns = static_cast<int>(n); });
       }},
      {"database-url", "URL", "PostgreSQL connection URL or conninfo (also DATABASE_URL, or libpq's PG* variables)",
       [](Config& c, const std::string& v) -> Status {
         c.database_url = v;
         c.database_configured = !v.empty();
         return {};
       }},
      {"db-pool-size", "N", "database connections per worker, plus one for LISTEN (default 4)",
       [](Config& c, const std::string& v) {
         return assign(parse_integer(v, 1, 64), [&](auto n) { c.db_pool_size = static_cast<size_t>(n); });
       }},
      {"db-wait-timeout", "DUR", "how long a request waits for a free database connection (default 2s)",
       [](Config& c, const std::string& v) -> Status {
         auto ms = parse_duration_ms(v);
         if (!ms) return ms.error();
         if (*ms == 0) return Error{"must be above 0"};
         c.db_wait_timeout_ms = *ms;
         return {};
       }},
      {"db-prepared-statements", "on|off",
       "prepare our statements once per connection (default on; off for a pooler without prepared statements)",
       [](Config& c, const std::string& v) -> Status {
         if (v != "on" && v != "off") return Error{"must be on or off"};
         c.db_prepared_statements = v == "on";
         return {};
       }},
      {"checkpoint-interval", "DUR", "write the answers in progress to the database this often (default 2s)",
       [](Config& c, const std::string& v) -> Status {
         auto ms = parse_duration_ms(v);
         if (!ms) return ms.error();
         if (*ms < 100) return Error{"must be at least 100ms"};
         c.checkpoint_interval_ms = *ms;
         return {};
       }},
      {"disconnect-grace", "DUR",
       "a streamed answer whose client left waits this long for a resume before it is cancelled (default 10s)",
       [](Config& c, const std::string& v) {
         return assign(parse_duration_ms(v), [&](auto ms) { c.disconnect_grace_ms = ms; });
       }},
      {"resume-retention", "DUR", "a finished answer's stream can be resumed (replayed) this long (default 10m)",
       [](Config& c, const std::string& v) -> Status {
         auto ms = parse_duration_ms(v);
         if (!ms) return ms.error();
         if (*ms > 7 * 24 * 3600 * 1000ull) return Error{"must be at most 7d"};
         c.resume_retention_ms = *ms;
         return {};
       }},
      {"instance-id", "ID", "this instance's name for the runs it owns (default <hostname>:<listen>)",
       [](Config& c, const std::string& v) -> Status {
         if (v.size() > 200) return Error{"must be at most 200 bytes"};
         c.instance_id = v;
         return {};
       }},
      {"history-messages", "N", "earlier messages of the session given to the provider (default 10)",
       [](Config& c, const std::string& v) {
         return assign(parse_integer(v, 0, 1000), [&](auto n) { c.history_messages = static_cast<size_t>(n); });
       }},
      {"history-chars", "N", "at most this much text of earlier messages (default 6000)",
       [](Config& c, const std::string& v) {
         return assign(parse_integer(v, 0, 1 << 20), [&](auto n) { c.history_chars = static_cast<size_t>(n); });
       }},
      {"retrieval-candidates", "N", "passages fetched by the full-text search (default 20)",
       [](Config& c, const std::string& v) {
         return assign(parse_integer(v, 1, 1000), [&](auto n) { c.retrieval_candidates = static_cast<size_t>(n); });
       }},
      {"rerank-keep", "N", "passages kept after reranking and cited (default 4)",
       [](Config& c, const std::string& v) {
         return assign(parse_integer(v, 1, 50), [&](auto n) { c.rerank_keep = static_cast<size_t>(n); });
       }},
      {"extractive-rate", "R", "extractive provider: tokens per second, 0 = as fast as possible (default 30)",
       [](Config& c, const std::string& v) {
         return assign(parse_real(v, 0, 1e6), [&](auto r) { c.extractive_rate = r; });
       }},
      {"scripted-tokens", "N", "scripted provider: tokens per answer, token i is \"t<i> \" (default 50)",
       [](Config& c, const std::string& v) {
         return assign(parse_integer(v, 0, 100000000), [&](auto n) { c.scripted_tokens = n; });
       }},
      {"scripted-rate", "R", "scripted provider: tokens per second, 0 = as fast as possible (default 20)",
       [](Config& c, const std::string& v) {
         return assign(parse_real(v, 0, 1e6), [&](auto r) { c.scripted_rate = r; });
       }},
      {"scripted-text", "TEXT", "scripted provider: stream this text word by word instead",
       [](Config& c, const std::string& v) -> Status {
         c.scripted_text = v;
         return {};
       }},
      {"scripted-first-token-delay", "DUR", "scripted provider: wait before the first token (default 0)",
       [](Config& c, const std::string& v) {
         return assign(parse_duration_ms(v), [&](auto ms) { c.scripted_first_token_delay_ms = ms; });
       }},
      {"scripted-fail-after", "N", "scripted provider: end with error{upstream} after N tokens (default never)",
       [](Config& c, const std::string& v) {
         return assign(parse_integer(v, -1, 100000000), [&](auto n) { c.scripted_fail_after = n; });
       }},
      {"heartbeat", "DUR", "interval of ': ping' comments on every stream (default 15s)",
       [](Config& c, const std::string& v) -> Status {
         auto ms = parse_duration_ms(v);
         if (!ms) return ms.error();
         if (*ms < 10) return Error{"must be at least 10ms"};
         c.heartbeat_ms = *ms;
         return {};
       }},
      {"run-timeout", "DUR", "limit on a whole run, 0 = none (default 30s)",
       [](Config& c, const std::string& v) {
         return assign(parse_duration_ms(v), [&](auto ms) { c.run_timeout_ms = ms; });
       }},
      {"token-timeout", "DUR", "limit on the gap between tokens, 0 = none (default 0)",
       [](Config& c, const std::string& v) {
         return assign(parse_duration_ms(v), [&](auto ms) { c.token_timeout_ms = ms; });
       }},
      {"flush-ms", "MS", "send token text at most once per MS milliseconds per stream, 0 = at once (default 0)",
       [](Config& c, const std::string& v) {
         return assign(parse_integer(v, 0, 60000), [&](auto n) { c.flush_ms = static_cast<uint64_t>(n); });
       }},
      {"retry-ms", "MS", "the SSE retry: field sent first on every stream (default 3000)",
       [](Config& c, const std::string& v) {
         return assign(parse_integer(v, 0, 3600000), [&](auto n) { c.retry_ms = static_cast<uint64_t>(n); });
       }},
      {"output-high-water", "BYTES", "unsent bytes above which token text is merged (default 16384)",
       [](Config& c, const std::string& v) {
         return assign(parse_integer(v, 256, 1 << 30), [&](auto n) { c.output_high_water = static_cast<size_t>(n); });
       }},
      {"output-hard-cap", "BYTES", "unsent bytes above which the provider pauses (default 262144)",
       [](Config& c, const std::string& v) {
         return assign(parse_integer(v, 1024, 1 << 30), [&](auto n) { c.output_hard_cap = static_cast<size_t>(n); });
       }},
      {"slow-consumer-grace", "DUR", "time over the hard cap before a client is dropped (default 5s)",
       [](Config& c, const std::string& v) {
         return assign(parse_duration_ms(v), [&](auto ms) { c.slow_consumer_grace_ms = ms; });
       }},
      {"send-buffer", "BYTES", "kernel send buffer per client socket, 0 = kernel autotuning (default 262144)",
       [](Config& c, const std::string& v) -> Status {
         auto n = parse_integer(v, 0, 64 << 20);
         if (!n) return n.error();
         if (*n != 0 && *n < 4096) return Error{"must be 0 or at least 4096"};
         c.send_buffer = static_cast<int>(*n);
         return {};
       }},
      {"max-connections", "N", "open connections per worker; more get 503 (default 10000)",
       [](Config& c, const std::string& v) {
         return assign(parse_integer(v, 1, 1000000), [&](auto n) { c.max_connections = static_cast<int>(n); });
       }},
      {"max-body", "BYTES", "request body limit, over it 413 (default 65536)",
       [](Config& c, const std::string& v) {
         return assign(parse_integer(v, 64, 64 << 20), [&](auto n) { c.max_body = static_cast<size_t>(n); });
       }},
      {"max-header-bytes", "BYTES", "request line + headers limit, over it 431 (default 8192)",
       [](Config& c, const std::string& v) {
         return assign(parse_integer(v, 256, 1 << 20), [&](auto n) { c.max_header_bytes = static_cast<size_t>(n); });
       }},
      {"header-timeout", "DUR", "time to receive a whole request once it started (default 10s)",
       [](Config& c, const std::string& v) -> Status {
         auto ms = parse_duration_ms(v);
         if (!ms) return ms.error();
         if (*ms == 0) return Error{"must be above 0"};
         c.header_timeout_ms = *ms;
         return {};
       }},
      {"keepalive-timeout", "DUR", "idle time before a keep-alive connection is closed (default 75s)",
       [](Config& c, const std::string& v) -> Status {
         auto ms = parse_duration_ms(v);
         if (!ms) return ms.error();
         if (*ms == 0) return Error{"must be above 0"};
         c.keepalive_timeout_ms = *ms;
         return {};
       }},
      {"jwt-secret", "SECRET", "sign-in: HS256 secret of the bearer tokens (at least 32 bytes); never logged",
       [](Config& c, const std::string& v) -> Status {
         c.jwt_secret = v;
         return {};
       }},
      {"jwt-public-key", "FILE", "sign-in: PEM public key(s) of RS256/ES256 bearer tokens (several during a rollover)",
       [](Config& c, const std::string& v) -> Status {
         c.jwt_public_key_path = v;
         return {};
       }},
      {"jwt-issuer", "ISS", "sign-in: required iss claim (default: not checked)",
       [](Config& c, const std::string& v) -> Status {
         c.jwt_issuer = v;
         return {};
       }},
      {"jwt-audience", "AUD", "sign-in: required aud claim (default: not checked)",
       [](Config& c, const std::string& v) -> Status {
         c.jwt_audience = v;
         return {};
       }},
      {"jwt-leeway", "DUR", "sign-in: clock skew allowed on exp and nbf (default 30s)",
       [](Config& c, const std::string& v) -> Status {
         auto ms = parse_duration_ms(v);
         if (!ms) return ms.error();
         if (*ms > 3600000) return Error{"must be at most 1h"};
         c.jwt_leeway_ms = *ms;
         return {};
       }},
      {"max-active-runs-per-user", "N", "running answers per user across workers, more get 429 (default 4, 0 = no limit)",
       [](Config& c, const std::string& v) {
         return assign(parse_integer(v, 0, 100000), [&](auto n) { c.max_active_runs_per_user = static_cast<size_t>(n); });
       }},
      {"drain-timeout", "DUR", "on SIGTERM, time running streams get to finish (default 30s)",
       [](Config& c, const std::string& v) {
         return assign(parse_duration_ms(v), [&](auto ms) { c.drain_timeout_ms = ms; });
       }},
      {"log-level", "LEVEL", "debug, info, warn or error (default info)",
       [](Config& c, const std::string& v) -> Status {
         if (v != "debug" && v != "info" && v != "warn" && v != "error") {
           return Error{"'" + v + "' is not one of debug, info, warn, error"};
         }
         c.log_level = v;
         return {};
       }},
  };
  return kOptions;
}

std::string env_name(const char* flag) {
  std::string name = "CHATSTREAM_";
  for (const char* p = flag; *p; ++p) name.push_back(*p == '-' ? '_' : static_cast<char>(std::toupper(*p)));
  return name;
}

const Option* find_option(std::string_view name) {
  for (const Option& option : options()) {
    if (name == option.name) return &option;
  }
  return nullptr;
}

bool provider_given(const std::map<std::string, std::string>& env, const std::vector<std::string>& args) {
  if (env.count("CHATSTREAM_PROVIDER")) return true;
  for (const std::string& arg : args) {
    if (arg == "--provider" || arg.rfind("--provider=", 0) == 0) return true;
  }
  return false;
}

Status validate(Config& config) {
  if (config.workers == 0) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    config.workers = cores > 0 ? static_cast<int>(cores) : 1;
  }
  if (config.instance_id.empty()) {
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    config.instance_id = std::string(host) + ":" + config.listen.describe();
  }
  if (config.output_hard_cap < config.output_high_water) {
    return Error{"--output-hard-cap (" + std::to_string(config.output_hard_cap) +
                 ") must not be below --output-high-water (" + std::to_string(config.output_high_water) + ")"};
  }
  if (config.run_timeout_ms != 0 && config.token_timeout_ms > config.run_timeout_ms) {
    return Error{"--token-timeout must not exceed --run-timeout"};
  }
  if (!config.jwt_public_key_path.empty()) {
    std::ifstream file(config.jwt_public_key_path, std::ios::binary);
    if (!file) return Error{"--jwt-public-key: cannot read " + config.jwt_public_key_path};
    config.jwt_public_key_pem.assign(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
  }
  if (config.sign_in()) {
    auto verifier = auth::JwtVerifier::create(jwt_settings(config));
    if (!verifier) {
      return Error{(config.jwt_public_key_path.empty() ? std::string("--jwt-secret: ") : "--jwt-secret/--jwt-public-key: ") +
                   verifier.error().message};
    }
  }
  return {};
}

}  // namespace

auth::JwtSettings jwt_settings(const Config& config) {
  auth::JwtSettings settings;
  settings.hs256_secret = config.jwt_secret;
  settings.public_keys_pem = config.jwt_public_key_pem;
  settings.issuer = config.jwt_issuer;
  settings.audience = config.jwt_audience;
  settings.leeway_s = static_cast<int64_t>(config.jwt_leeway_ms / 1000);
  return settings;
}

Result<uint64_t> parse_duration_ms(const std::string& text) {
  std::string number = text;
  double scale = 1000;  // seconds by default
  auto ends_with = [&](const char* suffix) {
    size_t n = std::strlen(suffix);
    return number.size() > n && number.compare(number.size() - n, n, suffix) == 0;
  };
  if (ends_with("ms")) {
    number.resize(number.size() - 2);
    scale = 1;
  } else if (ends_with("s")) {
    number.resize(number.size() - 1);
  } else if (ends_with("m")) {
    number.resize(number.size() - 1);
    scale = 60000;
  } else if (ends_with("h")) {
    number.resize(number.size() - 1);
    scale = 3600000;
  } else if (ends_with("d")) {
    number.resize(number.size() - 1);
    scale = 86400000;
  }
  auto value = parse_real(number, 0, 1e9);
  if (!value) return Error{"'" + text + "' is not a duration (e.g. 15, 1.5s, 500ms, 2m, 1h)"};
  return static_cast<uint64_t>(std::llround(*value * scale));
}

Result<ParsedCommandLine> parse_command_line(const std::vector<std::string>& args, char** environment) {
  ParsedCommandLine parsed;
  if (args.size() < 2) return parsed;  // help
  const std::string& command = args[1];
  if (command == "--help" || command == "-h" || command == "help") return parsed;
  if (command == "--version" || command == "version") {
    parsed.command = Command::kVersion;
    return parsed;
  }
  if (command == "serve") parsed.command = Command::kServe;
  else if (command == "migrate") parsed.command = Command::kMigrate;
  else if (command == "ingest") parsed.command = Command::kIngest;
  else return Error{"unknown command '" + command + "' (try: chatstream --help)"};
  Config& config = parsed.config;

  // Environment first, flags after: a flag overrides its variable.
  std::map<std::string, std::string> env;
  for (char** entry = environment; entry && *entry; ++entry) {
    const char* eq = std::strchr(*entry, '=');
    if (eq) env.emplace(std::string(*entry, static_cast<size_t>(eq - *entry)), std::string(eq + 1));
  }
  // DATABASE_URL is the common convention; CHATSTREAM_DATABASE_URL (below) and the flag win over it.
  if (auto it = env.find("DATABASE_URL"); it != env.end() && !it->second.empty()) {
    config.database_url = it->second;
    config.database_configured = true;
  } else if (env.count("PGHOST") || env.count("PGDATABASE") || env.count("PGSERVICE")) {
    config.database_configured = true;  // libpq reads its PG* variables itself
  }
  // The usual names of OpenAI-compatible clients; CHATSTREAM_LLM_* and the flags win over them.
  static const std::pair<const char*, const char*> kLlmVariables[] = {
      {"LLM_BASE_URL", "llm-base-url"}, {"LLM_API_KEY", "llm-api-key"}, {"LLM_MODEL", "llm-model"},
      {"LLM_EXTRA_HEADERS", "llm-headers"}, {"LLM_CA_FILE", "llm-ca-file"}};
  for (const auto& [variable, flag] : kLlmVariables) {
    auto it = env.find(variable);
    if (it == env.end()) continue;
    Status status = find_option(flag)->apply(config, it->second);
    if (!status) return Error{std::string(variable) + ": " + status.error().message};
  }
  for (const Option& option : options()) {
    auto it = env.find(env_name(option.name));
    if (it == env.end()) continue;
    Status status = option.apply(config, it->second);
    if (!status) return Error{it->first + ": " + status.error().message};
  }
  for (size_t i = 2; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") {
      parsed.command = Command::kHelp;
      return parsed;
    }
    if (arg.rfind("--", 0) != 0) {
      if (parsed.command != Command::kIngest) return Error{"unexpected argument '" + arg + "'"};
      parsed.paths.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2), value;
    bool has_value = false;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
      has_value = true;
    }
    if (parsed.command == Command::kIngest && name == "base-url") {
      if (!has_value) {
        if (i + 1 >= args.size()) return Error{"--base-url needs a value (URL)"};
        value = args[++i];
      }
      if (!value.starts_with("http://") && !value.starts_with("https://")) {
        return Error{"--base-url: '" + value + "' is not an http:// or https:// URL"};
      }
      config.ingest_base_url = value;
      continue;
    }
    const Option* option = find_option(name);
    if (!option) return Error{"unknown flag --" + name + " (try: chatstream --help)"};
    if (!has_value) {
      if (i + 1 >= args.size()) return Error{"--" + name + " needs a value (" + option->value_name + ")"};
      value = args[++i];
    }
    Status status = option->apply(config, value);
    if (!status) return Error{"--" + name + ": " + status.error().message};
  }
  if (parsed.command == Command::kIngest && parsed.paths.empty()) {
    return Error{"ingest needs at least one PATH (a file or a directory)"};
  }
  if (parsed.command != Command::kServe && !config.database_configured) {
    return Error{"no database configured: set --database-url, DATABASE_URL or PGHOST/PGDATABASE"};
  }
  if (!provider_given(env, args)) {
    config.provider = !config.llm_base_url.empty() ? "openai" : config.database_configured ? "extractive" : "scripted";
  }
  if (parsed.command == Command::kServe && config.provider == "openai") {
    if (config.llm_base_url.empty()) return Error{"--provider openai needs LLM_BASE_URL (or --llm-base-url)"};
    if (config.llm_model.empty()) return Error{"--provider openai needs LLM_MODEL (or --llm-model)"};
  }
  Status status = validate(config);
  if (!status) return status.error();
  return parsed;
}

std::string help_text() {
  std::string text =
      "chatstream - streams AI chat answers to browsers over Server-Sent Events\n"
      "\n"
      "usage:\n"
      "  chatstream serve [flags]   run the master and its worker processes\n"
      "  chatstream migrate         apply the pending database migrations (sql/, built in)\n"
      "  chatstream ingest PATH…    load Markdown, text and HTML files (or directories) into the\n"
      "                             knowledge base; idempotent by source path. --base-url URL:\n"
      "                             cite each file as URL + its path under PATH (a link to open)\n"
      "  chatstream --version\n"
      "  chatstream --help\n"
      "\n"
      "flags (each also read from the environment variable shown; a flag wins):\n";
  for (const Option& option : options()) {
    std::string left = std::string("  --") + option.name + " " + option.value_name;
    if (left.size() < 36) left.resize(36, ' ');
    text += left + " " + option.help + "\n";
    text += std::string(37, ' ') + "env " + env_name(option.name) + "\n";
  }
  text +=
      "\n"
      "durations (DUR) take seconds by default: 15, 1.5s, 500ms, 2m.\n"
      "signals: SIGTERM/SIGINT drain (stop accepting, let streams finish for --drain-timeout,\n"
      "then end them with error{code:\"shutdown\"}); a worker that dies is restarted.\n";
  return text;
}

}  // namespace chatstream
