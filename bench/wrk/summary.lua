-- Shared by chat.lua and healthz.lua: at the end of a wrk run, print one JSON line (after wrk's own
-- text report) so bench/run.sh can show the figures in the same form as sseload's.
-- Latencies from wrk are in microseconds; non-2xx/3xx answers are counted in errors.status.
function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  io.write(string.format(
    '{"requests":%d,"duration_s":%.3f,"requests_per_s":%.1f,"bytes":%d,' ..
    '"latency_ms":{"p50":%.3f,"p99":%.3f,"max":%.3f},' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\n',
    summary.requests, seconds, summary.requests / seconds, summary.bytes,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout))
end
