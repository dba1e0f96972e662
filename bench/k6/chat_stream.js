// k6 load test of POST /chat/stream, for users who have k6 (https://k6.io); sseload is the
// reference tool in this repository (bench/README.md).
//
//   k6 run bench/k6/chat_stream.js
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e VUS=500 -e HOLD=60s bench/k6/chat_stream.js
//
// k6's HTTP client reads the whole response before returning, so each virtual user holds one stream
// at a time and the checks look at the complete event stream. `http_req_waiting` is the time to the
// response's first byte (chatstream writes the headers and the `meta` event at once);
// `http_req_receiving` is how long the stream then lasted.
import http from 'k6/http';
import { check } from 'k6';
import { Rate } from 'k6/metrics';

const BASE_URL = __ENV.BASE_URL || 'http://127.0.0.1:9000';
const VUS = parseInt(__ENV.VUS || '100', 10);
const MESSAGE = __ENV.MESSAGE || 'hello';

// A stream counts as completed when it answered 200 with an event stream that ends in `done`.
const streamCompleted = new Rate('stream_completed');

export const options = {
  scenarios: {
    streams: {
      executor: 'ramping-vus',
      startVUs: 0,
      stages: [
        { duration: __ENV.RAMP || '10s', target: VUS },
        { duration: __ENV.HOLD || '30s', target: VUS },
        { duration: '5s', target: 0 },
      ],
      // Let streams in flight finish instead of cutting them when the ramp-down starts.
      gracefulRampDown: __ENV.GRACE || '60s',
    },
  },
  thresholds: {
    http_req_failed: ['rate<0.01'],
    stream_completed: ['rate>0.99'],
    checks: ['rate>0.99'],
    http_req_waiting: ['p(95)<500', 'p(99)<1000'],
  },
};

const params = {
  headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream' },
  timeout: __ENV.TIMEOUT || '120s',
  tags: { name: 'POST /chat/stream' },
};

export default function () {
  const res = http.post(`${BASE_URL}/chat/stream`, JSON.stringify({ message: MESSAGE }), params);
  const body = typeof res.body === 'string' ? res.body : '';
  const ok = check(res, {
    'status is 200': (r) => r.status === 200,
    'content type is text/event-stream': (r) =>
      (r.headers['Content-Type'] || '').startsWith('text/event-stream'),
    'meta is the first event': () => body.includes('event: meta') && body.indexOf('event: ') === body.indexOf('event: meta'),
    'has event: done': () => body.includes('event: done'),
    'no error event': () => !body.includes('event: error'),
  });
  streamCompleted.add(ok);
}
