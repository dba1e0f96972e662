// Unit tests of streamChat / cancelRun / fetchHistory / withRetry of web/chatstream-client.js
// against a fake fetch (node --test, no dependencies, no server).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  streamChat, cancelRun, fetchHistory, withRetry, ChatStreamError, describeError,
} from '../../web/chatstream-client.js';

const enc = new TextEncoder();

function sse(type, obj, id) {
  return `id: ${id ?? 'r:0'}\nevent: ${type}\ndata: ${JSON.stringify({ type, ...obj })}\n\n`;
}

/** A fake fetch answering with `parts` (strings, or numbers = pause in ms); `end` closes the body. */
function fakeFetch(parts, { status = 200, contentType = 'text/event-stream; charset=utf-8', end = true, failAfter = false, headers = {} } = {}) {
  const calls = [];
  const fn = async (url, init) => {
    calls.push({ url, init, body: init.body ? JSON.parse(init.body) : undefined });
    if (init.signal?.aborted) throw init.signal.reason;
    const signal = init.signal;
    const stream = new ReadableStream({
      async start(controller) {
        const onAbort = () => controller.error(new DOMException('aborted', 'AbortError'));
        signal?.addEventListener('abort', onAbort, { once: true });
        for (const p of parts) {
          if (signal?.aborted) return;
          if (typeof p === 'number') await new Promise((r) => setTimeout(r, p));
          else controller.enqueue(enc.encode(p));
        }
        if (failAfter) controller.error(new TypeError('network error'));
        else if (end) controller.close();
      },
    });
    return new Response(stream, { status, headers: { 'Content-Type': contentType, ...headers } });
  };
  fn.calls = calls;
  return fn;
}

const META = sse('meta', { run_id: 'r', session_id: 's', heartbeat_ms: 50 });

test('streams events in order and resolves with the terminal event', async () => {
  const events = [];
  let beats = 0;
  const fetch = fakeFetch([
    'retry: 3000\n\n', META, ': ping\n\n',
    sse('generation_start', { provider: 'scripted' }),
    sse('token', { content: 'Hel' }), 'id: r:3\nevent: tok', 'en\ndata: {"type":"token","content":"lo"}\r\n\r\n',
    sse('done', { status: 'complete', tokens: 2 }),
  ]);
  const end = await streamChat({ url: '/chat/stream', body: { message: 'hi', session_id: 's' }, fetch, onEvent: (d) => events.push(d), onHeartbeat: () => beats++ });
  assert.equal(end.type, 'done');
  assert.deepEqual(events.map((e) => e.type), ['meta', 'generation_start', 'token', 'token', 'done']);
  assert.equal(events.filter((e) => e.type === 'token').map((e) => e.content).join(''), 'Hello');
  assert.equal(beats, 1);
  assert.deepEqual(fetch.calls[0].body, { message: 'hi', session_id: 's' });
  assert.equal(fetch.calls[0].init.method, 'POST');
  assert.equal(fetch.calls[0].init.headers['Content-Type'], 'application/json');
});

test('error and cancelled events are terminal too', async () => {
  for (const type of ['error', 'cancelled']) {
    const end = await streamChat({ body: {}, fetch: fakeFetch([META, sse(type, { code: 'upstream', message: 'x' })], { end: false }) });
    assert.equal(end.type, type);
  }
});

test('HTTP errors before the stream carry status, code and the server message', async () => {
  const body = JSON.stringify({ error: { status: 503, code: 'overloaded', message: 'The server is at its connection limit.' } });
  const fetch = async () => new Response(body, { status: 503, headers: { 'Content-Type': 'application/json', 'Retry-After': '2' } });
  await assert.rejects(streamChat({ body: {}, fetch }), (err) => {
    assert.ok(err instanceof ChatStreamError);
    assert.equal(err.kind, 'http');
    assert.equal(err.status, 503);
    assert.equal(err.code, 'overloaded');
    assert.equal(err.retryable, true);
    assert.equal(err.retryAfterMs, 2000);
    assert.equal(describeError(err), 'The server is at its connection limit.');
    return true;
  });
  const bad = async () => new Response(JSON.stringify({ error: { status: 400, code: 'bad_request', message: 'message is empty' } }), { status: 400 });
  await assert.rejects(streamChat({ body: {}, fetch: bad }), (err) => err.kind === 'http' && !err.retryable && err.status === 400);
  const html = async () => new Response('<html>bad gateway</html>', { status: 502 });
  await assert.rejects(streamChat({ body: {}, fetch: html }), (err) => err.retryable && /unavailable/.test(describeError(err)));
});

test('a stream that ends before the terminal event is a retryable network failure', async () => {
  await assert.rejects(streamChat({ body: {}, fetch: fakeFetch([META, sse('token', { content: 'a' })]) }),
    (err) => err.kind === 'network' && err.retryable);
  await assert.rejects(streamChat({ body: {}, fetch: fakeFetch([META], { failAfter: true }) }),
    (err) => err.kind === 'network' && err.retryable);
  const refused = async () => { throw new TypeError('Failed to fetch'); };
  await assert.rejects(streamChat({ body: {}, fetch: refused }), (err) => err.kind === 'network' && err.retryable);
});

test('no event and no heartbeat for twice heartbeat_ms: the stream is dropped as stalled', async () => {
  const t0 = Date.now();
  // heartbeat_ms 50 → stalled after 100 ms of silence; pings every 30 ms keep it alive first
  const fetch = fakeFetch([META, 30, ': ping\n\n', 30, ': ping\n\n', 30, sse('token', { content: 'a' }), 5000], { end: false });
  await assert.rejects(streamChat({ body: {}, fetch }), (err) => err.kind === 'stalled' && err.retryable);
  const took = Date.now() - t0;
  assert.ok(took >= 180 && took < 1500, `stalled after ${took} ms`);
});

test('the first byte must come within firstByteTimeoutMs', async () => {
  const never = (url, init) => new Promise((_, reject) => init.signal.addEventListener('abort', () => reject(init.signal.reason)));
  await assert.rejects(streamChat({ body: {}, fetch: never, firstByteTimeoutMs: 50 }), (err) => err.kind === 'stalled');
});

test('the caller aborting gives an "aborted", non-retryable error', async () => {
  const controller = new AbortController();
  const fetch = fakeFetch([META, sse('token', { content: 'a' }), 5000], { end: false });
  const p = streamChat({ body: {}, fetch, signal: controller.signal, onEvent: (d) => { if (d.type === 'token') controller.abort(); } });
  await assert.rejects(p, (err) => err.kind === 'aborted' && !err.retryable);
});

test('a non-event-stream 200 answer is a protocol error', async () => {
  const fetch = async () => new Response('{}', { status: 200, headers: { 'Content-Type': 'application/json' } });
  await assert.rejects(streamChat({ body: {}, fetch }), (err) => err.kind === 'protocol');
  await assert.rejects(streamChat({ body: {}, fetch: fakeFetch([META, 'event: token\ndata: not json\n\n']) }), (err) => err.kind === 'protocol');
});

test('cancelRun posts the run id', async () => {
  const calls = [];
  const fetch = async (url, init) => { calls.push([url, JSON.parse(init.body)]); return new Response('{"cancelled":true}', { status: 200 }); };
  assert.equal(await cancelRun({ runId: 'abc', fetch }), true);
  assert.deepEqual(calls, [['/chat/cancel', { run_id: 'abc' }]]);
  assert.equal(await cancelRun({ runId: 'abc', fetch: async () => new Response('{}', { status: 404 }) }), false);
  assert.equal(await cancelRun({ runId: '', fetch }), false);
});

test('fetchHistory: 404 is "no history", 200 lists messages', async () => {
  assert.equal(await fetchHistory({ sessionId: 's', fetch: async () => new Response('{}', { status: 404 }) }), null);
  const body = { session_id: 's', messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello', status: 'cancelled' }, { role: 'system', content: 'x' }] };
  let asked = '';
  const list = await fetchHistory({ sessionId: 's/1', fetch: async (url) => { asked = url; return new Response(JSON.stringify(body), { status: 200 }); } });
  assert.equal(asked, '/sessions/s%2F1/messages');
  assert.deepEqual(list.map((m) => [m.role, m.content, m.status]), [['user', 'hi', undefined], ['assistant', 'hello', 'cancelled']]);
});

test('withRetry waits 1 s, 2 s, 4 s between retryable failures, then gives up', async () => {
  const waits = [];
  let attempts = 0;
  const failing = async () => { attempts++; throw new ChatStreamError('network', 'x', { retryable: true }); };
  await assert.rejects(withRetry(failing, { delays: [10, 20, 40], onRetry: (r) => waits.push(r.delayMs) }), (err) => err.kind === 'network');
  assert.equal(attempts, 4);
  assert.deepEqual(waits, [10, 20, 40]);

  attempts = 0;
  const fatal = async () => { attempts++; throw new ChatStreamError('http', 'bad', { status: 400 }); };
  await assert.rejects(withRetry(fatal, { delays: [10] }));
  assert.equal(attempts, 1);

  attempts = 0;
  const flaky = async (n) => { attempts++; if (n < 2) throw new ChatStreamError('stalled', 'x', { retryable: true }); return 'ok'; };
  assert.equal(await withRetry(flaky, { delays: [5, 5, 5] }), 'ok');
  assert.equal(attempts, 3);
});

test('withRetry stops waiting when the signal aborts', async () => {
  const controller = new AbortController();
  const failing = async () => { throw new ChatStreamError('network', 'x', { retryable: true }); };
  const p = withRetry(failing, { delays: [10000], signal: controller.signal });
  setTimeout(() => controller.abort(new Error('stop')), 20);
  await assert.rejects(p, /stop/);
});
