#pragma once
// The one error vocabulary of chatstream. Every failure a client can see is an Errc, and one table row
// per code says how it looks everywhere: the HTTP status of a JSON error answer, the stable `code` of
// that answer and of an SSE `error` event (docs/protocol.md), whether retrying the same request later
// may succeed, and the label it is counted under in chatstream_errors_total. A new error is one new
// enumerator and one new row.
//
// Several rows may share a public code (a database that is down and a bug both show `internal`, the
// client can do nothing different) while keeping their own metric label, so operators still tell
// them apart.

#include <cstdint>
#include <string_view>

namespace chatstream {

enum class Errc : uint8_t {
  // Requests that cannot be answered as sent.
  kBadRequest,
  kNotFound,
  kMethodNotAllowed,
  kRequestTimeout,
  kPayloadTooLarge,
  kUnsupportedMediaType,
  kHeadersTooLarge,
  kRunInProgress,
  kGone,
  // Sign-in and ownership (worker/auth).
  kUnauthorized,
  kForbidden,
  kTooManyRuns,
  // Capacity and lifecycle.
  kOverloaded,
  kShutdown,
  kConnectionLimit,
  // A run that failed.
  kTimeout,
  kUpstream,
  kSlowConsumer,
  kWorkerLost,
  kDatabaseUnavailable,
  kInternal,
  kCount
};

struct ErrcRow {
  Errc errc;
  int http_status;            // of a JSON error answer (and of POST /chat when a run fails)
  std::string_view code;      // the stable client-visible code
  bool retryable;             // the same request, sent again later, may succeed
  std::string_view metric;    // label value of chatstream_errors_total{reason=…}
  std::string_view retry_after;  // a Retry-After header line to send with it, or empty
};

inline constexpr size_t kErrcCount = static_cast<size_t>(Errc::kCount);

// The row of `errc` (every enumerator has exactly one; checked at compile time in errc.cpp).
const ErrcRow& errc_row(Errc errc);
inline int http_status(Errc errc) { return errc_row(errc).http_status; }
inline std::string_view error_code(Errc errc) { return errc_row(errc).code; }
inline bool retryable(Errc errc) { return errc_row(errc).retryable; }

}  // namespace chatstream
