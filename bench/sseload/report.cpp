#include "report.hpp"

#include <cinttypes>
#include <cstdio>
#include <optional>
#include <string_view>

namespace chatstream::bench {
namespace {

// Builds a JSON object field by field; keys and strings are escaped, numbers printed as is.
class JsonObject {
 public:
  JsonObject& number(std::string_view key, uint64_t value) {
    char text[32];
    std::snprintf(text, sizeof text, "%" PRIu64, value);
    return raw(key, text);
  }
  JsonObject& number(std::string_view key, double value, int decimals = 3) {
    char text[64];
    std::snprintf(text, sizeof text, "%.*f", decimals, value);
    return raw(key, text);
  }
  template <typename T>
  JsonObject& optional(std::string_view key, const std::optional<T>& value) {
    return value ? number(key, *value) : raw(key, "null");
  }
  JsonObject& object(std::string_view key, const JsonObject& inner) { return raw(key, inner.str()); }
  JsonObject& raw(std::string_view key, std::string_view json) {
    text_ += text_.empty() ? "{" : ",";
    append_string(key);
    text_ += ":";
    text_ += json;
    return *this;
  }
  std::string str() const { return text_.empty() ? "{}" : text_ + "}"; }

 private:
  void append_string(std::string_view text) {
    text_ += '"';
    for (unsigned char c : text) {
      if (c == '"' || c == '\\') {
        text_ += '\\';
        text_ += static_cast<char>(c);
      } else if (c < 0x20) {
        char escaped[8];
        std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
        text_ += escaped;
      } else {
        text_ += static_cast<char>(c);
      }
    }
    text_ += '"';
  }

  std::string text_;
};

JsonObject latency_ms(const Histogram& histogram) {
  JsonObject object;
  object.number("count", histogram.count());
  if (histogram.count() == 0) {
    return object.raw("p50", "null").raw("p99", "null").raw("max", "null");
  }
  auto ms = [](uint64_t micros) { return static_cast<double>(micros) / 1000; };
  return object.number("p50", ms(histogram.percentile(0.50)))
      .number("p99", ms(histogram.percentile(0.99)))
      .number("max", ms(histogram.max()));
}

}  // namespace

std::string format_report(const Options& options, const RunResult& result) {
  const Totals& totals = *result.totals;
  double seconds = result.duration_s > 0 ? result.duration_s : 1;

  JsonObject failures;
  for (const auto& [reason, count] : totals.failures_by_reason) failures.number(reason, count);

  JsonObject report;
  report.number("streams_requested", options.total)
      .number("streams_in_flight", uint64_t{options.streams})
      .number("streams_started", totals.streams_started)
      .number("streams_established", totals.streams_established)
      .number("streams_completed", totals.streams_completed)
      .number("streams_failed", totals.streams_failed);
  if (options.hold) report.number("streams_held", totals.streams_held);
  report.object("failures_by_reason", failures)
      .number("events", totals.events)
      .number("token_events", totals.token_events)
      .number("tokens", totals.tokens)
      .number("heartbeats", totals.heartbeats)
      .number("bytes", totals.bytes)
      .number("duration_s", result.duration_s)
      .number("events_per_s", static_cast<double>(totals.events) / seconds, 1)
      .number("tokens_per_s", static_cast<double>(totals.tokens) / seconds, 1)
      .object("first_event_ms", latency_ms(totals.first_event_us))
      .object("first_token_ms", latency_ms(totals.first_token_us))
      .object("gap_ms", latency_ms(totals.gap_us));
  if (options.expect_rate > 0 && totals.tokens_timed > 0) {
    report.number("on_time_ratio",
                  static_cast<double>(totals.tokens_on_time) / static_cast<double>(totals.tokens_timed), 4);
  } else {
    report.raw("on_time_ratio", "null");
  }
  if (options.check_order) {
    report.number("order_errors", totals.order_errors);
  } else {
    report.raw("order_errors", "null");
  }
  report.number("id_errors", totals.id_errors).number("data_errors", totals.data_errors);
  if (options.max_token_event_rate > 0) {
    JsonObject rate;
    rate.number("limit_per_s", options.max_token_event_rate, 1)
        .number("streams_checked", totals.rate_checked)
        .number("streams_held", totals.rate_held)
        .number("max_observed_per_s", totals.rate_max_observed, 2);
    report.object("token_event_rate", rate);
  }
  report.number("client_cpu_seconds", result.client_cpu_seconds)
      .number("client_max_rss_kib", result.client_max_rss_kib);
  if (!options.server_pids.empty()) report.optional("server_cpu_seconds", result.server_cpu_seconds);
  if (options.hold && !options.server_pids.empty()) {
    report.optional("rss_before_kib", result.rss_before_kib)
        .optional("rss_after_kib", result.rss_after_kib)
        .optional("rss_end_kib", result.rss_end_kib);
    std::optional<uint64_t> bytes_per_stream;
    if (result.rss_before_kib && result.rss_after_kib && result.streams_established_at_rss > 0) {
      int64_t grown_kib =
          static_cast<int64_t>(*result.rss_after_kib) - static_cast<int64_t>(*result.rss_before_kib);
      bytes_per_stream =
          grown_kib > 0 ? static_cast<uint64_t>(grown_kib) * 1024 / result.streams_established_at_rss : 0;
    }
    report.optional("bytes_per_stream", bytes_per_stream);
  }
  if (options.hold) report.raw("hold_reached", result.hold_reached ? "true" : "false");
  if (options.cut_after_tokens > 0) {
    JsonObject resume;
    resume.number("cut_after_tokens", uint64_t{options.cut_after_tokens})
        .optional("cut_at_s", result.cut_at_s)
        .number("streams_cut", totals.streams_cut);
    if (options.resume) {
      resume.optional("resumed_at_s", result.resumed_at_s)
          .number("resumes_sent", totals.resumes_sent)
          .number("resumes_established", totals.resumes_established)
          .number("resumes_completed", totals.resumes_completed)
          .object("first_replayed_event_ms", latency_ms(totals.resume_first_event_us))
          .number("first_replayed_seq_mismatches", totals.resume_seq_mismatches)
          .number("id_errors_after_resume", totals.resume_id_errors);
    }
    report.object("resume", resume);
  }
  return report.str();
}

}  // namespace chatstream::bench
