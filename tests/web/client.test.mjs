// Unit tests of streamChat (and its resumption) / resumeChat / cancelRun / fetchHistory / withRetry of
// web/chatstream-client.js
// against a fake fetch (node --test, no dependencies, no server).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  streamChat, resumeChat, cancelRun, fetchHistory, fetchConversation, withRetry, ChatStreamError, describeError,
  parseEventId, resumeUrlFor,
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

// --- resuming a dropped stream (GET /chat/stream/{run_id} + Last-Event-ID) ---------------------

const RUN = '6f1c2a9e-3b4d-4e5f-8a9b-0c1d2e3f4a5b';
const ev = (seq, type, obj = {}) => sse(type, obj, `${RUN}:${seq}`);
const RUN_META = ev(0, 'meta', { run_id: RUN, session_id: 's', heartbeat_ms: 50 });
const tok = (seq, content) => ev(seq, 'token', { content });

/** A fetch that answers call i with answers[i] (a fakeFetch, or a function (url, init) → Response). */
function sequenceFetch(answers) {
  const calls = [];
  const fn = async (url, init) => {
    calls.push({ url, method: init.method, headers: { ...init.headers }, at: Date.now() });
    const answer = answers[Math.min(calls.length - 1, answers.length - 1)];
    return answer(url, init);
  };
  fn.calls = calls;
  return fn;
}
const refuse = async () => { throw new TypeError('Failed to fetch'); };
const httpError = (status, code) => async () => new Response(JSON.stringify({ error: { status, code, message: code } }), { status, headers: { 'Content-Type': 'application/json' } });

test('a dropped stream is resumed with Last-Event-ID; replayed events are not delivered twice', async () => {
  const events = [];
  const reconnects = [];
  const opens = [];
  const fetch = sequenceFetch([
    fakeFetch([RUN_META, tok(1, 'One '), tok(2, 'two '), tok(3, 'thr'), 10], { failAfter: true }),
    // The server replays from the cursor; one event too many here must still be skipped.
    fakeFetch(['retry: 3000\n\n', tok(3, 'thr'), tok(4, 'ee '), ': ping\n\n', tok(5, 'four'), ev(6, 'done', { status: 'complete' })]),
  ]);
  const end = await streamChat({
    body: { message: 'hi' }, fetch, resume: true, resumeDelays: [5, 10, 20],
    onEvent: (d, raw) => events.push([raw.id, d.type, d.content]),
    onReconnect: (r) => reconnects.push(r),
    onOpen: () => opens.push(fetch.calls.length),
  });
  assert.equal(end.type, 'done');
  assert.equal(events.filter((e) => e[1] === 'token').map((e) => e[2]).join(''), 'One two three four');
  assert.deepEqual(events.map((e) => Number(e[0].split(':')[1])), [0, 1, 2, 3, 4, 5, 6], 'every seq once, in order');
  assert.equal(fetch.calls.length, 2);
  assert.equal(fetch.calls[1].url, `/chat/stream/${RUN}`);
  assert.equal(fetch.calls[1].method, 'GET');
  assert.equal(fetch.calls[1].headers['Last-Event-ID'], `${RUN}:3`);
  assert.equal(fetch.calls[1].headers['Content-Type'], undefined);
  assert.equal(reconnects.length, 1);
  assert.deepEqual([reconnects[0].attempt, reconnects[0].of, reconnects[0].delayMs, reconnects[0].runId, reconnects[0].lastEventId, reconnects[0].error.kind],
    [1, 3, 5, RUN, `${RUN}:3`, 'network']);
  assert.deepEqual(opens, [1, 2], 'onOpen again for the resumed stream');
});

test('a body that ends early and a stalled stream are resumed too; the resume URL follows the stream URL', async () => {
  const ended = sequenceFetch([
    fakeFetch([RUN_META, tok(1, 'a')]),
    fakeFetch([tok(2, 'b'), ev(3, 'done', { status: 'complete' })]),
  ]);
  let text = '';
  const onEvent = (d) => { if (d.type === 'token') text += d.content; };
  assert.equal((await streamChat({ url: '/api/u%40x/chat/stream', body: {}, fetch: ended, resume: true, resumeDelays: [5], onEvent })).type, 'done');
  assert.equal(text, 'ab');
  assert.equal(ended.calls[1].url, `/api/u%40x/chat/stream/${RUN}`);
  assert.equal(ended.calls[1].headers['Last-Event-ID'], `${RUN}:1`);

  // heartbeat_ms 50: silent for 100 ms → stalled → resumed
  text = '';
  const stalled = sequenceFetch([
    fakeFetch([RUN_META, tok(1, 'x'), 5000], { end: false }),
    fakeFetch([tok(2, 'y'), ev(3, 'done', { status: 'complete' })]),
  ]);
  const reasons = [];
  const t0 = Date.now();
  await streamChat({ body: {}, fetch: stalled, resume: true, resumeDelays: [5], onEvent, onReconnect: (r) => reasons.push(r.error.kind) });
  assert.equal(text, 'xy');
  assert.deepEqual(reasons, ['stalled']);
  assert.ok(Date.now() - t0 < 1500);
});

test('reconnection backs off over resumeDelays, then gives up with the retryable drop', async () => {
  const fetch = sequenceFetch([fakeFetch([RUN_META, tok(1, 'a'), 10], { failAfter: true }), refuse]);
  const waits = [];
  await assert.rejects(streamChat({ body: {}, fetch, resume: true, resumeDelays: [10, 20, 40], onReconnect: (r) => waits.push(r.delayMs) }),
    (err) => err instanceof ChatStreamError && err.kind === 'network' && err.retryable && err.runId === RUN);
  assert.deepEqual(waits, [10, 20, 40]);
  assert.equal(fetch.calls.length, 4);
  assert.ok(fetch.calls.slice(1).every((c) => c.headers['Last-Event-ID'] === `${RUN}:1`));
  const gaps = fetch.calls.slice(1).map((c, i) => c.at - fetch.calls[i].at);
  assert.ok(gaps[1] >= 18 && gaps[2] >= 38, `gaps ${gaps}`);

  // A gateway error while reconnecting is waited out too; the next attempt continues the answer.
  const flaky = sequenceFetch([
    fakeFetch([RUN_META, tok(1, 'a'), 10], { failAfter: true }),
    httpError(502, 'bad_gateway'),
    fakeFetch([tok(2, 'b'), ev(3, 'done', { status: 'complete' })]),
  ]);
  assert.equal((await streamChat({ body: {}, fetch: flaky, resume: true, resumeDelays: [5, 5, 5] })).type, 'done');
  assert.equal(flaky.calls.length, 3);
});

test('a run the server no longer knows (404, 410) is not retried: the drop is thrown at once', async () => {
  for (const [status, code] of [[404, 'not_found'], [410, 'gone']]) {
    const fetch = sequenceFetch([fakeFetch([RUN_META, tok(1, 'a'), 10], { failAfter: true }), httpError(status, code)]);
    await assert.rejects(streamChat({ body: {}, fetch, resume: true, resumeDelays: [5, 5, 5] }),
      (err) => err.kind === 'network' && err.retryable && err.runId === RUN);
    assert.equal(fetch.calls.length, 2);
  }
  // 401 (signed out meanwhile) is the caller's to show.
  const fetch = sequenceFetch([fakeFetch([RUN_META, tok(1, 'a'), 10], { failAfter: true }), httpError(401, 'unauthorized')]);
  await assert.rejects(streamChat({ body: {}, fetch, resume: true, resumeDelays: [5, 5] }), (err) => err.kind === 'http' && err.status === 401);
});

test('worker_lost from the resumed run is its terminal event', async () => {
  const fetch = sequenceFetch([
    fakeFetch([RUN_META, tok(1, 'half'), 10], { failAfter: true }),
    fakeFetch([ev(2, 'error', { code: 'worker_lost', message: 'The server answering this was lost.', retryable: true })], { end: false }),
  ]);
  const end = await streamChat({ body: {}, fetch, resume: true, resumeDelays: [5] });
  assert.deepEqual([end.type, end.code, end.retryable], ['error', 'worker_lost', true]);
  assert.equal(fetch.calls.length, 2);

  // Numbered after the run's last checkpoint, which this client had already passed: still the end.
  const behind = sequenceFetch([
    fakeFetch([RUN_META, tok(1, 'a'), tok(2, 'b'), tok(3, 'c'), 10], { failAfter: true }),
    fakeFetch([ev(2, 'error', { code: 'worker_lost', retryable: true })], { end: false }),
  ]);
  const seen = [];
  const last = await streamChat({ body: {}, fetch: behind, resume: true, resumeDelays: [5], onEvent: (d) => seen.push(d.type) });
  assert.equal(last.code, 'worker_lost');
  assert.deepEqual(seen, ['meta', 'token', 'token', 'token', 'error']);
});

test('no reconnection without resume, or before the first event', async () => {
  const plain = sequenceFetch([fakeFetch([RUN_META, tok(1, 'a'), 10], { failAfter: true })]);
  await assert.rejects(streamChat({ body: {}, fetch: plain }), (err) => err.kind === 'network');
  assert.equal(plain.calls.length, 1);
  const early = sequenceFetch([fakeFetch(['retry: 3000\n\n', 10], { failAfter: true })]);
  await assert.rejects(streamChat({ body: {}, fetch: early, resume: true, resumeDelays: [5] }), (err) => err.kind === 'network' && !err.runId);
  assert.equal(early.calls.length, 1);
  // An HTTP error of the POST is not a drop.
  const busy = sequenceFetch([async () => new Response(JSON.stringify({ error: { status: 409, code: 'run_in_progress', message: 'busy', run_id: RUN } }), { status: 409 })]);
  await assert.rejects(streamChat({ body: {}, fetch: busy, resume: true, resumeDelays: [5] }),
    (err) => err.kind === 'http' && err.status === 409 && err.code === 'run_in_progress' && err.runId === RUN && !err.retryable);
  assert.equal(busy.calls.length, 1);
});

test('stop while reconnecting: the wait and the resumed request end at once as "aborted"', async () => {
  const controller = new AbortController();
  const fetch = sequenceFetch([fakeFetch([RUN_META, tok(1, 'a'), 10], { failAfter: true }), refuse]);
  const t0 = Date.now();
  const p = streamChat({ body: {}, fetch, signal: controller.signal, resume: true, resumeDelays: [10000], onReconnect: () => setTimeout(() => controller.abort(), 10) });
  await assert.rejects(p, (err) => err.kind === 'aborted' && !err.retryable);
  assert.ok(Date.now() - t0 < 1000);
  assert.equal(fetch.calls.length, 1, 'no request after the stop');

  // …and during a resumed stream.
  const c2 = new AbortController();
  const hanging = sequenceFetch([fakeFetch([RUN_META, tok(1, 'a'), 10], { failAfter: true }), fakeFetch([tok(2, 'b'), 5000], { end: false })]);
  const p2 = streamChat({ body: {}, fetch: hanging, signal: c2.signal, resume: true, resumeDelays: [5], stallFactor: 1000,
    onEvent: (d) => { if (d.content === 'b') c2.abort(); } });
  await assert.rejects(p2, (err) => err.kind === 'aborted');
});

test('resumeChat follows a run from meta, reconnects with the cursor, and reports an unknown run', async () => {
  const events = [];
  const fetch = sequenceFetch([
    fakeFetch([RUN_META, tok(1, 'Hel'), 10], { failAfter: true }),
    refuse,
    fakeFetch([tok(1, 'Hel'), tok(2, 'lo'), ev(3, 'done', { status: 'complete' })]),
  ]);
  const end = await resumeChat({ runId: RUN, fetch, resumeDelays: [5, 5, 5], onEvent: (d) => events.push(d.type === 'token' ? d.content : d.type) });
  assert.equal(end.type, 'done');
  assert.deepEqual(events, ['meta', 'Hel', 'lo', 'done']);
  assert.deepEqual(fetch.calls.map((c) => [c.url, c.method, c.headers['Last-Event-ID']]), [
    [`/chat/stream/${RUN}`, 'GET', undefined],
    [`/chat/stream/${RUN}`, 'GET', `${RUN}:1`],
    [`/chat/stream/${RUN}`, 'GET', `${RUN}:1`],
  ]);

  // From a cursor given as a seq or as an event id; a first request that fails is retried too.
  const fromCursor = sequenceFetch([refuse, fakeFetch([tok(5, 'x'), ev(6, 'done', {})])]);
  await resumeChat({ runId: RUN, lastEventId: 4, fetch: fromCursor, resumeDelays: [5] });
  assert.deepEqual(fromCursor.calls.map((c) => c.headers['Last-Event-ID']), [`${RUN}:4`, `${RUN}:4`]);

  for (const [status, code] of [[404, 'not_found'], [410, 'gone']]) {
    const gone = sequenceFetch([httpError(status, code)]);
    await assert.rejects(resumeChat({ runId: RUN, fetch: gone, resumeDelays: [5] }), (err) => err.kind === 'http' && err.status === status && err.code === code);
    assert.equal(gone.calls.length, 1);
  }
  const dropThenGone = sequenceFetch([fakeFetch([RUN_META, 10], { failAfter: true }), httpError(410, 'gone')]);
  await assert.rejects(resumeChat({ runId: RUN, fetch: dropThenGone, resumeDelays: [5] }), (err) => err.kind === 'http' && err.status === 410);
});

test('parseEventId and resumeUrlFor', () => {
  assert.deepEqual(parseEventId(`${RUN}:12`), { runId: RUN, seq: 12 });
  for (const bad of [undefined, '', '12', ':3', `${RUN}:`, `${RUN}:x`, `${RUN}:-1`]) assert.equal(parseEventId(bad), null, String(bad));
  assert.equal(resumeUrlFor('/chat/stream', 'a b'), '/chat/stream/a%20b');
  assert.equal(resumeUrlFor('https://h/chat/stream/', RUN), `https://h/chat/stream/${RUN}`);
});

test('fetchConversation gives the running run; fetchHistory only the messages', async () => {
  const body = { session_id: 's', running_run_id: RUN, messages: [{ role: 'user', content: 'still answering?' }] };
  const fetch = async () => new Response(JSON.stringify(body), { status: 200 });
  const conv = await fetchConversation({ sessionId: 's', fetch });
  assert.equal(conv.runningRunId, RUN);
  assert.equal(conv.sessionId, 's');
  assert.deepEqual(conv.messages.map((m) => m.content), ['still answering?']);
  assert.deepEqual((await fetchHistory({ sessionId: 's', fetch })).map((m) => m.role), ['user']);
  const idle = async () => new Response(JSON.stringify({ session_id: 's', running_run_id: null, messages: [] }), { status: 200 });
  assert.equal((await fetchConversation({ sessionId: 's', fetch: idle })).runningRunId, null);
  assert.equal(await fetchConversation({ sessionId: 's', fetch: async () => new Response('{}', { status: 404 }) }), null);
});
