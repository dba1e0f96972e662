#pragma once
// Structured logs: one JSON object per line on stderr, {"ts","level","pid","msg",…fields}.
// Messages never carry secrets or request bodies.

#include <string>
#include <string_view>

namespace chatstream::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

void set_level(std::string_view level);
bool enabled(Level level);

// `fields_json` is either empty or a run of `"key":value` pairs (no braces) appended to the object.
void write(Level level, std::string_view message, std::string_view fields_json = {});

inline void debug(std::string_view m, std::string_view f = {}) { if (enabled(Level::kDebug)) write(Level::kDebug, m, f); }
inline void info(std::string_view m, std::string_view f = {}) { if (enabled(Level::kInfo)) write(Level::kInfo, m, f); }
inline void warn(std::string_view m, std::string_view f = {}) { if (enabled(Level::kWarn)) write(Level::kWarn, m, f); }
inline void error(std::string_view m, std::string_view f = {}) { write(Level::kError, m, f); }

// Helper to build the fields: field("worker", 1) + "," + field("path", "/x").
std::string field(std::string_view key, std::string_view value);
std::string field(std::string_view key, long long value);

}  // namespace chatstream::log
