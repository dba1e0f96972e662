#include "config.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <initializer_list>
#include <string>
#include <vector>

namespace chatstream {
namespace {

// An envp-style array that owns its strings.
class Environment {
 public:
  Environment(std::initializer_list<std::string> entries) : entries_(entries) {
    for (std::string& entry : entries_) pointers_.push_back(entry.data());
    pointers_.push_back(nullptr);
  }
  Environment(const Environment&) = delete;
  Environment(Environment&&) = default;  // the strings stay where they are: pointers_ remain valid
  char** get() { return pointers_.data(); }

 private:
  std::vector<std::string> entries_;
  std::vector<char*> pointers_;
};

Result<ParsedCommandLine> serve(std::vector<std::string> flags, Environment env = {}) {
  std::vector<std::string> args = {"chatstream", "serve"};
  args.insert(args.end(), flags.begin(), flags.end());
  return parse_command_line(args, env.get());
}

// The error message of a command line that must fail; empty (and a test failure) if it succeeded.
std::string error_of(std::vector<std::string> flags, Environment env = {}) {
  Result<ParsedCommandLine> parsed = serve(std::move(flags), std::move(env));
  EXPECT_FALSE(parsed.ok());
  return parsed.ok() ? std::string() : parsed.error().message;
}

// Checks that a bad command line fails with a message that names `name`.
#define EXPECT_ERROR_NAMES(name, ...)                                                   \
  do {                                                                                  \
    std::string message = error_of(__VA_ARGS__);                                        \
    EXPECT_NE(message.find(name), std::string::npos) << "message: '" << message << "'"; \
  } while (0)

TEST(ParseCommandLine, IngestTakesABaseUrlForLinks) {
  Environment env{};
  Result<ParsedCommandLine> parsed = parse_command_line(
      {"chatstream", "ingest", "--base-url", "https://www.postgresql.org/docs/15/", "/kb", "--database-url", "postgresql://x/db"},
      env.get());
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_EQ(parsed->config.ingest_base_url, "https://www.postgresql.org/docs/15/");
  EXPECT_EQ(parsed->paths, std::vector<std::string>{"/kb"});
  parsed = parse_command_line({"chatstream", "ingest", "--base-url=http://kb.local", "/kb", "--database-url", "x"}, env.get());
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_EQ(parsed->config.ingest_base_url, "http://kb.local");
  // Not a URL, no value, or on another command: a clear error.
  parsed = parse_command_line({"chatstream", "ingest", "--base-url", "/var/www", "/kb", "--database-url", "x"}, env.get());
  ASSERT_FALSE(parsed.ok());
  EXPECT_NE(parsed.error().message.find("--base-url"), std::string::npos) << parsed.error().message;
  parsed = parse_command_line({"chatstream", "ingest", "/kb", "--database-url", "x", "--base-url"}, env.get());
  ASSERT_FALSE(parsed.ok());
  EXPECT_NE(parsed.error().message.find("--base-url"), std::string::npos) << parsed.error().message;
  EXPECT_ERROR_NAMES("base-url", {"--base-url", "https://x/"});
}

TEST(ParseCommandLine, NoCommandOrHelpMeansHelp) {
  Environment env{};
  Result<ParsedCommandLine> none = parse_command_line({"chatstream"}, env.get());
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->command, Command::kHelp);
  for (const char* help : {"--help", "-h", "help"}) {
    Result<ParsedCommandLine> parsed = parse_command_line({"chatstream", help}, env.get());
    ASSERT_TRUE(parsed.ok()) << help;
    EXPECT_EQ(parsed->command, Command::kHelp) << help;
  }
  Result<ParsedCommandLine> after_serve = serve({"--workers", "2", "--help"});
  ASSERT_TRUE(after_serve.ok());
  EXPECT_EQ(after_serve->command, Command::kHelp);
}

TEST(ParseCommandLine, VersionCommand) {
  Environment env{};
  Result<ParsedCommandLine> parsed = parse_command_line({"chatstream", "--version"}, env.get());
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->command, Command::kVersion);
}

TEST(ParseCommandLine, UnknownCommandIsAnError) {
  Environment env{};
  Result<ParsedCommandLine> parsed = parse_command_line({"chatstream", "serv"}, env.get());
  ASSERT_FALSE(parsed.ok());
  EXPECT_NE(parsed.error().message.find("'serv'"), std::string::npos) << parsed.error().message;
}

TEST(ParseCommandLine, Defaults) {
  Result<ParsedCommandLine> parsed = serve({});
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_EQ(parsed->command, Command::kServe);
  const Config& c = parsed->config;
  EXPECT_EQ(c.heartbeat_ms, 15000u);
  EXPECT_EQ(c.run_timeout_ms, 30000u);
  EXPECT_EQ(c.drain_timeout_ms, 30000u);
  EXPECT_EQ(c.token_timeout_ms, 0u);
  EXPECT_EQ(c.retry_ms, 3000u);
  EXPECT_EQ(c.flush_ms, 0u);
  EXPECT_EQ(c.output_high_water, 16u * 1024);
  EXPECT_EQ(c.output_hard_cap, 256u * 1024);
  EXPECT_EQ(c.slow_consumer_grace_ms, 5000u);
  EXPECT_EQ(c.send_buffer, 256 * 1024);
  EXPECT_EQ(c.max_connections, 10000);
  EXPECT_EQ(c.max_body, 64u * 1024);
  EXPECT_EQ(c.max_header_bytes, 8u * 1024);
  EXPECT_EQ(c.header_timeout_ms, 10000u);
  EXPECT_EQ(c.keepalive_timeout_ms, 75000u);
  EXPECT_EQ(c.provider, "scripted");
  EXPECT_EQ(c.log_level, "info");
  EXPECT_FALSE(c.listen.is_unix);
  EXPECT_EQ(c.listen.host, "127.0.0.1");
  EXPECT_EQ(c.listen.port, 9000);
}

TEST(ParseCommandLine, WorkersDefaultToTheNumberOfCores) {
  Result<ParsedCommandLine> parsed = serve({});
  ASSERT_TRUE(parsed.ok());
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  ASSERT_GT(cores, 0);
  EXPECT_EQ(parsed->config.workers, static_cast<int>(cores));
}

TEST(ParseCommandLine, ReadsFlagsWithSeparateValues) {
  Result<ParsedCommandLine> parsed = serve({"--listen",
                                            "0.0.0.0:8081",
                                            "--workers",
                                            "3",
                                            "--run-timeout",
                                            "45s",
                                            "--token-timeout",
                                            "2s",
                                            "--heartbeat",
                                            "500ms",
                                            "--flush-ms",
                                            "25",
                                            "--output-high-water",
                                            "4096",
                                            "--output-hard-cap",
                                            "65536",
                                            "--scripted-rate",
                                            "0",
                                            "--scripted-tokens",
                                            "7",
                                            "--log-level",
                                            "debug"});
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  const Config& c = parsed->config;
  EXPECT_EQ(c.listen.host, "0.0.0.0");
  EXPECT_EQ(c.listen.port, 8081);
  EXPECT_EQ(c.workers, 3);
  EXPECT_EQ(c.run_timeout_ms, 45000u);
  EXPECT_EQ(c.token_timeout_ms, 2000u);
  EXPECT_EQ(c.heartbeat_ms, 500u);
  EXPECT_EQ(c.flush_ms, 25u);
  EXPECT_EQ(c.output_high_water, 4096u);
  EXPECT_EQ(c.output_hard_cap, 65536u);
  EXPECT_EQ(c.scripted_rate, 0.0);
  EXPECT_EQ(c.scripted_tokens, 7);
  EXPECT_EQ(c.log_level, "debug");
}

TEST(ParseCommandLine, ReadsFlagsWithEqualsValues) {
  Result<ParsedCommandLine> parsed =
      serve({"--workers=5", "--drain-timeout=2m", "--scripted-text=a=b c", "--scripted-fail-after=-1"});
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_EQ(parsed->config.workers, 5);
  EXPECT_EQ(parsed->config.drain_timeout_ms, 120000u);
  EXPECT_EQ(parsed->config.scripted_text, "a=b c");
  EXPECT_EQ(parsed->config.scripted_fail_after, -1);
}

TEST(ParseCommandLine, ReadsEnvironmentVariables) {
  Result<ParsedCommandLine> parsed =
      serve({}, {"PATH=/usr/bin", "CHATSTREAM_RUN_TIMEOUT=10s", "CHATSTREAM_WORKERS=2",
                 "CHATSTREAM_LISTEN=unix:/tmp/chatstream.sock", "CHATSTREAM_OUTPUT_HIGH_WATER=8192",
                 "CHATSTREAM_SCRIPTED_TEXT=hello = world", "CHATSTREAM_SLOW_CONSUMER_GRACE=250ms"});
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  const Config& c = parsed->config;
  EXPECT_EQ(c.run_timeout_ms, 10000u);
  EXPECT_EQ(c.workers, 2);
  EXPECT_TRUE(c.listen.is_unix);
  EXPECT_EQ(c.listen.host, "/tmp/chatstream.sock");
  EXPECT_EQ(c.output_high_water, 8192u);
  EXPECT_EQ(c.scripted_text, "hello = world");
  EXPECT_EQ(c.slow_consumer_grace_ms, 250u);
}

TEST(ParseCommandLine, FlagOverridesItsEnvironmentVariable) {
  Result<ParsedCommandLine> parsed =
      serve({"--run-timeout", "20s", "--workers=4"}, {"CHATSTREAM_RUN_TIMEOUT=10s", "CHATSTREAM_WORKERS=2"});
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_EQ(parsed->config.run_timeout_ms, 20000u);
  EXPECT_EQ(parsed->config.workers, 4);
}

TEST(ParseCommandLine, PreparedStatementsAreOnUnlessTurnedOff) {
  Result<ParsedCommandLine> parsed = serve({});
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_TRUE(parsed->config.db_prepared_statements);
  parsed = serve({"--db-prepared-statements", "off"});
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_FALSE(parsed->config.db_prepared_statements);
  parsed = serve({}, {"CHATSTREAM_DB_PREPARED_STATEMENTS=off"});
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_FALSE(parsed->config.db_prepared_statements);
  parsed = serve({"--db-prepared-statements=on"}, {"CHATSTREAM_DB_PREPARED_STATEMENTS=off"});
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_TRUE(parsed->config.db_prepared_statements);
}

TEST(ParseCommandLine, ReadsListenAddresses) {
  Result<ParsedCommandLine> v6 = serve({"--listen", "[::1]:8080"});
  ASSERT_TRUE(v6.ok()) << v6.error().message;
  EXPECT_EQ(v6->config.listen.host, "::1");
  EXPECT_EQ(v6->config.listen.port, 8080);
  EXPECT_EQ(v6->config.listen.describe(), "[::1]:8080");

  Result<ParsedCommandLine> any = serve({"--listen", ":9001"});
  ASSERT_TRUE(any.ok()) << any.error().message;
  EXPECT_EQ(any->config.listen.host, "0.0.0.0");
  EXPECT_EQ(any->config.listen.describe(), "0.0.0.0:9001");

  Result<ParsedCommandLine> unix_socket = serve({"--listen", "unix:/run/cs.sock"});
  ASSERT_TRUE(unix_socket.ok()) << unix_socket.error().message;
  EXPECT_TRUE(unix_socket->config.listen.is_unix);
  EXPECT_EQ(unix_socket->config.listen.describe(), "unix:/run/cs.sock");

  std::string longest = "/" + std::string(106, 's');  // 107 bytes + NUL fills sun_path
  EXPECT_TRUE(serve({"--listen", "unix:" + longest}).ok());
}

TEST(ParseDuration, ReadsEveryUnit) {
  auto ms = [](const std::string& text) -> uint64_t {
    Result<uint64_t> value = parse_duration_ms(text);
    EXPECT_TRUE(value.ok()) << text;
    return value.ok() ? *value : ~uint64_t{0};
  };
  EXPECT_EQ(ms("15"), 15000u);
  EXPECT_EQ(ms("0"), 0u);
  EXPECT_EQ(ms("0.5"), 500u);
  EXPECT_EQ(ms("1.5s"), 1500u);
  EXPECT_EQ(ms("30s"), 30000u);
  EXPECT_EQ(ms("500ms"), 500u);
  EXPECT_EQ(ms("0ms"), 0u);
  EXPECT_EQ(ms("2m"), 120000u);
  EXPECT_EQ(ms("1.5m"), 90000u);
  EXPECT_EQ(ms("1h"), 3600000u);
  EXPECT_EQ(ms("1d"), 86400000u);
}

TEST(ParseDuration, RejectsWhatIsNotADuration) {
  for (const char* text :
       {"", "s", "ms", "m", "abc", "5x", "h", "-1", "-5s", "1.5.5", "10 s", "inf", "nan", "1e10"}) {
    Result<uint64_t> value = parse_duration_ms(text);
    EXPECT_FALSE(value.ok()) << "'" << text << "' gave " << (value.ok() ? *value : 0);
  }
}

TEST(ParseCommandLine, DurationsWorkInFlagsAndVariables) {
  Result<ParsedCommandLine> parsed =
      serve({"--heartbeat", "1.5s", "--header-timeout", "500ms"}, {"CHATSTREAM_KEEPALIVE_TIMEOUT=2m"});
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_EQ(parsed->config.heartbeat_ms, 1500u);
  EXPECT_EQ(parsed->config.header_timeout_ms, 500u);
  EXPECT_EQ(parsed->config.keepalive_timeout_ms, 120000u);
}

TEST(ParseCommandLineErrors, UnknownFlag) {
  EXPECT_ERROR_NAMES("--frobnicate", {"--frobnicate", "1"});
}

TEST(ParseCommandLineErrors, UnexpectedArgument) {
  EXPECT_ERROR_NAMES("'stray'", {"stray"});
}

TEST(ParseCommandLineErrors, MissingValue) {
  EXPECT_ERROR_NAMES("--workers", {"--workers"});
  EXPECT_ERROR_NAMES("--listen", {"--run-timeout", "5s", "--listen"});
}

TEST(ParseCommandLineErrors, BadInteger) {
  EXPECT_ERROR_NAMES("--workers", {"--workers", "two"});
  EXPECT_ERROR_NAMES("--workers", {"--workers", "2x"});
  EXPECT_ERROR_NAMES("--workers", {"--workers", "1.5"});
  EXPECT_ERROR_NAMES("--workers", {"--workers="});
  EXPECT_ERROR_NAMES("--max-body", {"--max-body", "64k"});
  EXPECT_ERROR_NAMES("--flush-ms", {"--flush-ms", "10ms"});
}

TEST(ParseCommandLineErrors, OutOfRange) {
  EXPECT_ERROR_NAMES("--workers", {"--workers", "0"});
  EXPECT_ERROR_NAMES("--workers", {"--workers", "257"});
  EXPECT_ERROR_NAMES("--max-connections", {"--max-connections", "0"});
  EXPECT_ERROR_NAMES("--output-high-water", {"--output-high-water", "100"});
  EXPECT_ERROR_NAMES("--scripted-fail-after", {"--scripted-fail-after", "-2"});
  EXPECT_ERROR_NAMES("--scripted-rate", {"--scripted-rate", "-1"});
  EXPECT_ERROR_NAMES("--heartbeat", {"--heartbeat", "5ms"});
  EXPECT_ERROR_NAMES("--header-timeout", {"--header-timeout", "0"});
  EXPECT_ERROR_NAMES("--keepalive-timeout", {"--keepalive-timeout", "0s"});
}

TEST(ParseCommandLine, SendBufferIsZeroOrAtLeastOnePage) {
  Result<ParsedCommandLine> autotuned = serve({"--send-buffer", "0"});
  ASSERT_TRUE(autotuned.ok()) << autotuned.error().message;
  EXPECT_EQ(autotuned->config.send_buffer, 0);
  Result<ParsedCommandLine> smallest = serve({}, {"CHATSTREAM_SEND_BUFFER=4096"});
  ASSERT_TRUE(smallest.ok()) << smallest.error().message;
  EXPECT_EQ(smallest->config.send_buffer, 4096);
  EXPECT_ERROR_NAMES("--send-buffer", {"--send-buffer", "4095"});
  EXPECT_ERROR_NAMES("--send-buffer", {"--send-buffer", "-1"});
  EXPECT_ERROR_NAMES("--send-buffer", {"--send-buffer", "1M"});
}

TEST(ParseCommandLineErrors, BadDuration) {
  EXPECT_ERROR_NAMES("--run-timeout", {"--run-timeout", "soon"});
  EXPECT_ERROR_NAMES("--drain-timeout", {"--drain-timeout", "-1s"});
  EXPECT_ERROR_NAMES("--scripted-first-token-delay", {"--scripted-first-token-delay", "1w"});
  EXPECT_ERROR_NAMES("--resume-retention", {"--resume-retention", "8d"});
}

TEST(ParseCommandLineErrors, BadListenAddress) {
  EXPECT_ERROR_NAMES("--listen", {"--listen", "localhost"});
  EXPECT_ERROR_NAMES("--listen", {"--listen", "127.0.0.1:"});
  EXPECT_ERROR_NAMES("--listen", {"--listen", "127.0.0.1:http"});
  EXPECT_ERROR_NAMES("--listen", {"--listen", "127.0.0.1:0"});
  EXPECT_ERROR_NAMES("--listen", {"--listen", "127.0.0.1:65536"});
  EXPECT_ERROR_NAMES("--listen", {"--listen", "unix:"});
}

TEST(ParseCommandLineErrors, UnixPathTooLong) {
  std::string too_long = "/" + std::string(107, 's');  // 108 bytes: no room for the NUL
  EXPECT_ERROR_NAMES("--listen", {"--listen", "unix:" + too_long});
}

TEST(ParseCommandLineErrors, HardCapBelowHighWater) {
  std::string message = error_of({"--output-high-water", "65536", "--output-hard-cap", "32768"});
  EXPECT_NE(message.find("--output-hard-cap"), std::string::npos) << message;
  EXPECT_NE(message.find("--output-high-water"), std::string::npos) << message;
  EXPECT_TRUE(serve({"--output-high-water", "32768", "--output-hard-cap", "32768"}).ok());
}

TEST(ParseCommandLineErrors, TokenTimeoutAboveRunTimeout) {
  std::string message = error_of({"--run-timeout", "10s", "--token-timeout", "11s"});
  EXPECT_NE(message.find("--token-timeout"), std::string::npos) << message;
  EXPECT_NE(message.find("--run-timeout"), std::string::npos) << message;
  EXPECT_TRUE(serve({"--run-timeout", "10s", "--token-timeout", "10s"}).ok());
  EXPECT_TRUE(serve({"--run-timeout", "0", "--token-timeout", "1m"}).ok());  // no run limit
}

TEST(ParseCommandLineErrors, UnknownProvider) {
  EXPECT_ERROR_NAMES("--provider", {"--provider", "openai-compatible-someday"});
}

TEST(ParseCommandLineErrors, PreparedStatementsTakeOnOrOff) {
  EXPECT_ERROR_NAMES("--db-prepared-statements", {"--db-prepared-statements", "yes"});
}

TEST(ParseCommandLineErrors, UnknownLogLevel) {
  EXPECT_ERROR_NAMES("--log-level", {"--log-level", "verbose"});
}

TEST(ParseCommandLineErrors, BadEnvironmentVariableNamesTheVariable) {
  EXPECT_ERROR_NAMES("CHATSTREAM_RUN_TIMEOUT", {}, {"CHATSTREAM_RUN_TIMEOUT=forever"});
  EXPECT_ERROR_NAMES("CHATSTREAM_WORKERS", {}, {"CHATSTREAM_WORKERS=0"});
  EXPECT_ERROR_NAMES("CHATSTREAM_PROVIDER", {}, {"CHATSTREAM_PROVIDER=nope"});
  EXPECT_ERROR_NAMES("CHATSTREAM_LISTEN", {}, {"CHATSTREAM_LISTEN=nowhere"});
}

TEST(HelpText, MentionsEveryFlagAndItsVariable) {
  const std::string help = help_text();
  const char* flags[] = {"listen",
                         "workers",
                         "provider",
                         "scripted-tokens",
                         "scripted-rate",
                         "scripted-text",
                         "scripted-first-token-delay",
                         "scripted-fail-after",
                         "heartbeat",
                         "run-timeout",
                         "token-timeout",
                         "flush-ms",
                         "retry-ms",
                         "output-high-water",
                         "output-hard-cap",
                         "slow-consumer-grace",
                         "send-buffer",
                         "max-connections",
                         "max-body",
                         "max-header-bytes",
                         "header-timeout",
                         "keepalive-timeout",
                         "drain-timeout",
                         "log-level"};
  for (const char* flag : flags) {
    std::string variable = "CHATSTREAM_";
    for (const char* p = flag; *p; ++p)
      variable.push_back(*p == '-' ? '_' : static_cast<char>(*p - 'a' + 'A'));
    EXPECT_NE(help.find(std::string("--") + flag + " "), std::string::npos) << flag;
    EXPECT_NE(help.find("env " + variable + "\n"), std::string::npos) << variable;
    // Every flag the help lists is accepted by the parser.
    Result<ParsedCommandLine> parsed = serve({std::string("--") + flag, "x"});
    if (!parsed.ok()) {
      EXPECT_EQ(parsed.error().message.find("unknown flag"), std::string::npos) << flag;
    }
  }
}

TEST(HelpText, ExplainsDurations) {
  EXPECT_NE(help_text().find("15, 1.5s, 500ms, 2m"), std::string::npos);
}

TEST(ParseCommandLine, SignInIsOffByDefault) {
  auto parsed = serve({});
  ASSERT_TRUE(parsed.ok());
  EXPECT_FALSE(parsed->config.sign_in());
  EXPECT_EQ(parsed->config.jwt_leeway_ms, 30000u);
  EXPECT_EQ(parsed->config.max_active_runs_per_user, 4u);
}

TEST(ParseCommandLine, SignInFlagsAndVariables) {
  const std::string secret(40, 'k');
  auto parsed = serve({"--jwt-issuer", "https://login.example", "--jwt-audience", "chatstream", "--jwt-leeway", "5s",
                       "--max-active-runs-per-user", "2"},
                      Environment{"CHATSTREAM_JWT_SECRET=" + secret});
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_TRUE(parsed->config.sign_in());
  EXPECT_EQ(parsed->config.jwt_secret, secret);
  EXPECT_EQ(parsed->config.jwt_issuer, "https://login.example");
  EXPECT_EQ(parsed->config.jwt_audience, "chatstream");
  EXPECT_EQ(parsed->config.jwt_leeway_ms, 5000u);
  EXPECT_EQ(parsed->config.max_active_runs_per_user, 2u);
  EXPECT_EQ(jwt_settings(parsed->config).leeway_s, 5);
}

TEST(ParseCommandLine, BadSignInSettingsStopTheStartWithoutShowingTheSecret) {
  std::string message = error_of({"--jwt-secret", "too-short-secret"});
  EXPECT_NE(message.find("--jwt-secret"), std::string::npos) << message;
  EXPECT_EQ(message.find("too-short-secret"), std::string::npos) << message;
  message = error_of({"--jwt-public-key", "/nonexistent/key.pem"});
  EXPECT_NE(message.find("--jwt-public-key"), std::string::npos) << message;
  char path[] = "/tmp/chatstream-config-test-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "not a key\n", 10), 10);
  close(fd);
  message = error_of({"--jwt-public-key", path});
  unlink(path);
  EXPECT_NE(message.find("PEM"), std::string::npos) << message;
  EXPECT_NE(error_of({"--jwt-leeway", "2h"}).find("--jwt-leeway"), std::string::npos);
  EXPECT_NE(error_of({"--max-active-runs-per-user", "-1"}).find("--max-active-runs-per-user"), std::string::npos);
}

TEST(ParseCommandLine, HelpListsTheSignInFlags) {
  std::string help = help_text();
  for (const char* name : {"--jwt-secret", "CHATSTREAM_JWT_SECRET", "--jwt-public-key", "CHATSTREAM_JWT_PUBLIC_KEY",
                           "--jwt-issuer", "--jwt-audience", "--jwt-leeway", "--max-active-runs-per-user"}) {
    EXPECT_NE(help.find(name), std::string::npos) << name;
  }
}

}  // namespace
}  // namespace chatstream
