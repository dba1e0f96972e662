#pragma once
// One immutable, validated Config per process, from command-line flags and environment variables
// (flag `--run-timeout` <-> variable CHATSTREAM_RUN_TIMEOUT; a flag wins over the variable).
// parse_config() never exits: it returns an Error whose message names the bad setting and why.

#include <cstdint>
#include <string>
#include <vector>

#include "auth/jwt_verifier.hpp"
#include "core/result.hpp"

namespace chatstream {

struct ListenAddress {
  bool is_unix = false;
  std::string host;  // TCP host (numeric IPv4/IPv6) or unix socket path
  int port = 0;
  std::string describe() const;
};

struct Config {
  ListenAddress listen{false, "127.0.0.1", 9000};
  int workers = 0;  // 0 = number of cores, resolved by parse_config

  // Token source.
  std::string provider = "scripted";
  int64_t scripted_tokens = 50;
  double scripted_rate = 20;            // tokens per second, 0 = as fast as possible
  std::string scripted_text;            // when set, streamed word by word instead of numbered tokens
  uint64_t scripted_first_token_delay_ms = 0;
  int64_t scripted_fail_after = -1;     // end with error{upstream} after this many tokens, -1 = never

  // SSE stream.
  uint64_t heartbeat_ms = 15000;
  uint64_t run_timeout_ms = 30000;      // 0 = none
  uint64_t token_timeout_ms = 0;        // 0 = none
  uint64_t flush_ms = 0;                // 0 = frame tokens as soon as the socket takes them
  uint64_t retry_ms = 3000;
  size_t output_high_water = 16 * 1024;
  size_t output_hard_cap = 256 * 1024;
  uint64_t slow_consumer_grace_ms = 5000;
  // Kernel send buffer per client socket (SO_SNDBUF), 0 = the kernel's autotuning (up to 4 MiB on
  // Linux). Bounded, so a client that stops reading is noticed in seconds, not megabytes.
  int send_buffer = 256 * 1024;

  // HTTP.
  int max_connections = 10000;          // per worker
  size_t max_body = 64 * 1024;
  size_t max_header_bytes = 8 * 1024;
  uint64_t header_timeout_ms = 10000;
  uint64_t keepalive_timeout_ms = 75000;

  // PostgreSQL. Empty database_url with database_configured = libpq's PG* variables.
  std::string database_url;
  // `chatstream ingest --base-url URL`: the link a browser opens for each ingested file (URL + the
  // file's path under the ingested directory); empty: citations show the file's path.
  std::string ingest_base_url;
  bool database_configured = false;
  size_t db_pool_size = 4;
  uint64_t db_wait_timeout_ms = 2000;
  bool db_prepared_statements = true;  // db::Statement prepared once per connection (worker/db/statement.hpp)
  size_t history_messages = 10;     // earlier messages passed to the provider as context
  size_t history_chars = 6000;      // and at most this much of their text
  size_t retrieval_candidates = 20; // top K of the full-text query
  size_t rerank_keep = 4;           // passages kept after reranking (cited)
  double extractive_rate = 30;      // tokens per second, 0 = as fast as possible
  // Durable runs: the answer so far is written this often (one statement per worker per interval),
  // and it renews the runs' lease; a run whose lease ran out (10 intervals) has lost its owner.
  uint64_t checkpoint_interval_ms = 2000;
  uint64_t disconnect_grace_ms = 10000;
  uint64_t resume_retention_ms = 600000;
  // Who owns the running runs in PostgreSQL; default "<hostname>:<listen address>". Two instances
  // sharing a database need different ids (the default differs by host or listen address).
  std::string instance_id;

  // OpenAI-compatible upstream (provider openai). The key is never logged nor shown.
  std::string llm_base_url;
  std::string llm_api_key;
  std::string llm_model;
  std::vector<std::string> llm_headers;  // "Name: value"
  std::string llm_ca_file;               // PEM bundle trusted for the upstream; empty = system store
  uint64_t llm_connect_timeout_ms = 10000;
  int llm_max_retries = 3;
  int llm_max_tool_turns = 10;

  // Sign-in (worker/auth). With neither a secret nor a public key, sign-in is off: one anonymous user.
  // The secret and the key are never logged nor shown.
  std::string jwt_secret;           // HS256
  std::string jwt_public_key_path;  // PEM file: RS256 (RSA) and/or ES256 (EC P-256) public keys
  std::string jwt_public_key_pem;   // its contents, read once at start
  std::string jwt_issuer;           // checked when set
  std::string jwt_audience;         // checked when set
  uint64_t jwt_leeway_ms = 30000;   // clock skew allowed on exp and nbf
  size_t max_active_runs_per_user = 4;  // running runs of one user across workers (sign-in on), 0 = no limit
  bool sign_in() const { return !jwt_secret.empty() || !jwt_public_key_path.empty(); }

  // Process model.
  uint64_t drain_timeout_ms = 30000;
  std::string log_level = "info";
};

enum class Command { kServe, kMigrate, kIngest, kHelp, kVersion };

struct ParsedCommandLine {
  Command command = Command::kHelp;
  Config config;
  std::vector<std::string> paths;  // chatstream ingest PATH…
};

// argv[0] is the program; argv[1] the subcommand. `environment` is the process environment (envp).
Result<ParsedCommandLine> parse_command_line(const std::vector<std::string>& args, char** environment);

// The text printed by `chatstream --help`.
std::string help_text();

// The verifier settings of the sign-in flags (Config::sign_in()).
auth::JwtSettings jwt_settings(const Config& config);

// Parses "1.5", "1.5s", "500ms", "2m" into milliseconds.
Result<uint64_t> parse_duration_ms(const std::string& text);

}  // namespace chatstream
