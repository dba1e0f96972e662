#include "obs/log.hpp"

#include <sys/time.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>

#include "json/writer.hpp"

namespace chatstream::log {

namespace {
Level g_level = Level::kInfo;
const char* level_name(Level level) {
  switch (level) {
    case Level::kDebug: return "debug";
    case Level::kInfo: return "info";
    case Level::kWarn: return "warn";
    case Level::kError: return "error";
  }
  return "info";
}
}  // namespace

void set_level(std::string_view level) {
  if (level == "debug") g_level = Level::kDebug;
  else if (level == "warn") g_level = Level::kWarn;
  else if (level == "error") g_level = Level::kError;
  else g_level = Level::kInfo;
}

bool enabled(Level level) { return level >= g_level; }

void write(Level level, std::string_view message, std::string_view fields_json) {
  timeval now;
  gettimeofday(&now, nullptr);
  tm utc;
  gmtime_r(&now.tv_sec, &utc);
  char stamp[96];
  std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", utc.tm_year + 1900, utc.tm_mon + 1,
                utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, static_cast<long>(now.tv_usec / 1000));
  std::string line = "{\"ts\":\"";
  line += stamp;
  line += "\",\"level\":\"";
  line += level_name(level);
  line += "\",\"pid\":";
  line += std::to_string(getpid());
  line += ",\"msg\":";
  json::append_string(line, message);
  if (!fields_json.empty()) {
    line.push_back(',');
    line.append(fields_json);
  }
  line += "}\n";
  // One write(2) per line so lines of different processes never interleave.
  ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

std::string field(std::string_view key, std::string_view value) {
  std::string out;
  json::append_string(out, key);
  out.push_back(':');
  json::append_string(out, value);
  return out;
}

std::string field(std::string_view key, long long value) {
  std::string out;
  json::append_string(out, key);
  out.push_back(':');
  out += std::to_string(value);
  return out;
}

}  // namespace chatstream::log
