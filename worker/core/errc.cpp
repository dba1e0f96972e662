#include "core/errc.hpp"

#include <array>

namespace chatstream {

namespace {
constexpr std::string_view kRetrySoon = "Retry-After: 1\r\n";
constexpr std::string_view kRetryLater = "Retry-After: 2\r\n";

// clang-format off
constexpr std::array<ErrcRow, kErrcCount> kRows = {{
  // errc                          status code                      retry  metric                    Retry-After
  {Errc::kBadRequest,              400, "bad_request",              false, "bad_request",            {}},
  {Errc::kNotFound,                404, "not_found",                false, "not_found",              {}},
  {Errc::kMethodNotAllowed,        405, "method_not_allowed",       false, "method_not_allowed",     {}},
  {Errc::kRequestTimeout,          408, "timeout",                  true,  "request_timeout",        {}},
  {Errc::kPayloadTooLarge,         413, "payload_too_large",        false, "payload_too_large",      {}},
  {Errc::kUnsupportedMediaType,    415, "unsupported_media_type",   false, "unsupported_media_type", {}},
  {Errc::kHeadersTooLarge,         431, "headers_too_large",        false, "headers_too_large",      {}},
  {Errc::kRunInProgress,           409, "run_in_progress",          false, "run_in_progress",        {}},
  {Errc::kGone,                    410, "gone",                     false, "gone",                   {}},
  {Errc::kUnauthorized,            401, "unauthorized",             false, "unauthorized",           {}},
  {Errc::kForbidden,               403, "forbidden",                false, "forbidden",              {}},
  {Errc::kTooManyRuns,             429, "too_many_runs",            true,  "too_many_runs",          kRetrySoon},
  {Errc::kOverloaded,              503, "overloaded",               true,  "overloaded",             kRetrySoon},
  {Errc::kShutdown,                503, "shutdown",                 true,  "shutdown",               kRetryLater},
  {Errc::kConnectionLimit,         503, "overloaded",               true,  "connection_limit",       kRetrySoon},
  {Errc::kTimeout,                 504, "timeout",                  true,  "timeout",                {}},
  {Errc::kUpstream,                502, "upstream",                 true,  "upstream",               {}},
  {Errc::kSlowConsumer,            503, "slow_consumer",            true,  "slow_consumer",          {}},
  // Written by PostgreSQL itself (chat/store.cpp, closing a dead worker's runs); here for the table.
  {Errc::kWorkerLost,              503, "worker_lost",              true,  "worker_lost",            kRetrySoon},
  {Errc::kDatabaseUnavailable,     503, "internal",                 true,  "database_unavailable",   kRetrySoon},
  {Errc::kInternal,                500, "internal",                 true,  "internal",               {}},
}};
// clang-format on

constexpr bool rows_in_order() {
  for (size_t i = 0; i < kRows.size(); ++i) {
    if (static_cast<size_t>(kRows[i].errc) != i) return false;
  }
  return true;
}
static_assert(rows_in_order(), "one row per Errc, in enumerator order");
}  // namespace

const ErrcRow& errc_row(Errc errc) { return kRows[static_cast<size_t>(errc)]; }

}  // namespace chatstream
