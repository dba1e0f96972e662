// chatstream: see README.md. `chatstream serve` runs the master (master.hpp) and its workers
// (server.hpp); configuration comes from flags and CHATSTREAM_* variables (config.hpp).

#include <curl/curl.h>

#include <cstdio>
#include <string>
#include <vector>

#ifdef CHATSTREAM_MIMALLOC
#include <mimalloc.h>
#endif

#include "config.hpp"
#include "db/migrations.hpp"
#include "ingest_command.hpp"
#include "master.hpp"

extern char** environ;

namespace {
std::string allocator_name() {
#ifdef CHATSTREAM_MIMALLOC
  int version = mi_version();
  return "mimalloc " + std::to_string(version / 100) + "." + std::to_string(version / 10 % 10) + "." +
         std::to_string(version % 10);
#else
  return "system malloc (sanitizer build)";
#endif
}
}  // namespace

int main(int argc, char** argv) {
  // Once, before any worker is forked (libcurl's global state is shared by the workers' copies).
  curl_global_init(CURL_GLOBAL_DEFAULT);
  std::vector<std::string> args(argv, argv + argc);
  auto parsed = chatstream::parse_command_line(args, environ);
  if (!parsed) {
    std::fprintf(stderr, "chatstream: %s\n", parsed.error().message.c_str());
    return 2;
  }
  switch (parsed->command) {
    case chatstream::Command::kHelp:
      std::fputs(chatstream::help_text().c_str(), stdout);
      return 0;
    case chatstream::Command::kVersion:
      std::printf("chatstream %s (%s)\n", CHATSTREAM_VERSION_STRING, allocator_name().c_str());
      return 0;
    case chatstream::Command::kServe:
      return chatstream::run_master(parsed->config);
    case chatstream::Command::kMigrate: {
      auto applied = chatstream::db::migrate(parsed->config.database_url);
      if (!applied) {
        std::fprintf(stderr, "chatstream migrate: %s\n", applied.error().message.c_str());
        return 1;
      }
      std::printf("chatstream migrate: %d migration(s) applied, schema up to date\n", *applied);
      return 0;
    }
    case chatstream::Command::kIngest:
      return chatstream::run_ingest(parsed->config, parsed->paths);
  }
  return 0;
}
