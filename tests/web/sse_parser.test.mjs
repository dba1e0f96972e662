// Unit tests of the SSE parser of web/chatstream-client.js (node --test, no dependencies).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SSEParser, SSEParseError } from '../../web/chatstream-client.js';

function collect(options = {}) {
  const out = { events: [], comments: [], retries: [] };
  const parser = new SSEParser({
    onEvent: (ev) => out.events.push(ev),
    onComment: (c) => out.comments.push(c),
    onRetry: (ms) => out.retries.push(ms),
    ...options,
  });
  return { parser, out };
}

function parseChunks(chunks) {
  const { parser, out } = collect();
  for (const c of chunks) parser.feed(c);
  parser.end();
  return out;
}

const enc = new TextEncoder();

// A stream as chatstream writes it (docs/protocol.md).
const STREAM = [
  'retry: 3000\n\n',
  'id: r1:0\nevent: meta\ndata: {"type":"meta","run_id":"r1","session_id":"s1","heartbeat_ms":15000}\n\n',
  ': ping\n\n',
  'id: r1:1\nevent: generation_start\ndata: {"type":"generation_start","provider":"scripted"}\n\n',
  'id: r1:2\nevent: token\ndata: {"type":"token","content":"Héllo "}\n\n',
  'id: r1:3\nevent: token\ndata: {"type":"token","content":"wörld 🌍 — 日本"}\n\n',
  'id: r1:4\nevent: done\ndata: {"type":"done","status":"complete","tokens":2,"ttft_ms":1.5,"duration_ms":20}\n\n',
].join('');

function summary(out) {
  return out.events.map((e) => [e.type, e.id, JSON.parse(e.data)]);
}

test('a whole stream in one chunk', () => {
  const out = parseChunks([STREAM]);
  assert.deepEqual(out.events.map((e) => e.type), ['meta', 'generation_start', 'token', 'token', 'done']);
  assert.deepEqual(out.events.map((e) => e.id), ['r1:0', 'r1:1', 'r1:2', 'r1:3', 'r1:4']);
  assert.deepEqual(out.comments, ['ping']);
  assert.deepEqual(out.retries, [3000]);
  const text = out.events.filter((e) => e.type === 'token').map((e) => JSON.parse(e.data).content).join('');
  assert.equal(text, 'Héllo wörld 🌍 — 日本');
});

test('every split of the stream into two string chunks gives the same events', () => {
  const whole = summary(parseChunks([STREAM]));
  for (let i = 0; i <= STREAM.length; i++) {
    const out = parseChunks([STREAM.slice(0, i), STREAM.slice(i)]);
    assert.deepEqual(summary(out), whole, `split at ${i}`);
    assert.deepEqual(out.comments, ['ping'], `split at ${i}`);
  }
});

test('one character at a time', () => {
  assert.deepEqual(summary(parseChunks([...STREAM])), summary(parseChunks([STREAM])));
});

test('unicode: multi-byte UTF-8 characters split across byte chunks', () => {
  const bytes = enc.encode(STREAM);
  const whole = summary(parseChunks([STREAM]));
  // every single split point, including inside 2-, 3- and 4-byte characters
  for (let i = 0; i <= bytes.length; i++) {
    const out = parseChunks([bytes.subarray(0, i), bytes.subarray(i)]);
    assert.deepEqual(summary(out), whole, `byte split at ${i}`);
  }
  // and byte by byte
  assert.deepEqual(summary(parseChunks([...bytes].map((b) => Uint8Array.of(b)))), whole);
});

test('CRLF line ends, also with CR and LF in different chunks', () => {
  const crlf = STREAM.replaceAll('\n', '\r\n');
  const whole = summary(parseChunks([STREAM]));
  assert.deepEqual(summary(parseChunks([crlf])), whole);
  for (let i = 0; i <= crlf.length; i++) {
    assert.deepEqual(summary(parseChunks([crlf.slice(0, i), crlf.slice(i)])), whole, `CRLF split at ${i}`);
  }
  assert.deepEqual(summary(parseChunks([...crlf])), whole);
});

test('bare CR line ends', () => {
  const cr = STREAM.replaceAll('\n', '\r');
  assert.deepEqual(summary(parseChunks([cr])), summary(parseChunks([STREAM])));
  assert.deepEqual(summary(parseChunks([...cr])), summary(parseChunks([STREAM])));
});

test('mixed line ends in one stream', () => {
  const out = parseChunks(['data: a\r\ndata: b\rdata: c\n\r\n', 'event: x\r\rdata: d\n\n']);
  assert.deepEqual(out.events.map((e) => [e.type, e.data]), [['message', 'a\nb\nc'], ['message', 'd']]);
});

test('several data: lines are joined with a newline', () => {
  const out = parseChunks(['event: token\ndata: first\ndata:second\ndata:  third\ndata\n\n']);
  assert.equal(out.events.length, 1);
  assert.equal(out.events[0].type, 'token');
  // one leading space is removed, a second one is kept; `data` alone adds an empty line
  assert.equal(out.events[0].data, 'first\nsecond\n third\n');
});

test('comments: with and without a space, between events and inside one', () => {
  const out = parseChunks([': ping\n', ':no-space\n\n', 'event: a\n: inside\ndata: 1\n\n', ':\n\n']);
  assert.deepEqual(out.comments, ['ping', 'no-space', 'inside', '']);
  assert.deepEqual(out.events.map((e) => [e.type, e.data]), [['a', '1']]);
});

test('heartbeats alone dispatch no event', () => {
  const out = parseChunks([': ping\n\n: ping\n\n']);
  assert.equal(out.events.length, 0);
  assert.deepEqual(out.comments, ['ping', 'ping']);
});

test('an event without data is not dispatched and does not leak its type into the next one', () => {
  const out = parseChunks(['event: lonely\n\n', 'data: x\n\n']);
  assert.deepEqual(out.events.map((e) => [e.type, e.data]), [['message', 'x']]);
});

test('an unfinished event at the end of the stream is dropped', () => {
  const out = parseChunks(['event: token\ndata: {"content":"a"}\n\n', 'event: token\ndata: {"content":"b"}\n']);
  assert.equal(out.events.length, 1);
});

test('id: is remembered, an id with NUL is ignored, unknown fields are ignored', () => {
  const out = parseChunks(['id: 7\ndata: a\n\n', 'data: b\n\n', 'id: x\0y\nfoo: bar\ndata: c\n\n']);
  assert.deepEqual(out.events.map((e) => [e.id, e.lastEventId]), [['7', '7'], [undefined, '7'], [undefined, '7']]);
});

test('retry: only with digits', () => {
  const out = parseChunks(['retry: 1500\n', 'retry: 1.5\n', 'retry: abc\n\n']);
  assert.deepEqual(out.retries, [1500]);
});

test('a field without a colon is a field with an empty value', () => {
  const out = parseChunks(['event\ndata\n\n']);
  assert.deepEqual(out.events.map((e) => [e.type, e.data]), [['message', '']]);
});

test('a leading byte order mark is skipped, only at the very start', () => {
  const bytes = enc.encode('\ufeffdata: a\n\n\ufeffdata: b\n\n');
  const out = parseChunks([bytes.subarray(0, 1), bytes.subarray(1)]);
  assert.deepEqual(out.events.map((e) => e.data), ['a']); // "\ufeffdata" is an unknown field
});

test('JSON with escaped newlines and unicode escapes stays one data line', () => {
  const payload = { type: 'token', content: 'line1\nline2 \u00e9 \ud83d\ude00 <b>not html</b>' };
  const out = parseChunks([`event: token\ndata: ${JSON.stringify(payload)}\n\n`]);
  assert.deepEqual(JSON.parse(out.events[0].data), payload);
});

test('a line longer than the limit throws instead of growing without bound', () => {
  const { parser } = collect({ maxLineLength: 64 });
  parser.feed('data: ' + 'x'.repeat(40));
  assert.throws(() => parser.feed('y'.repeat(40)), SSEParseError);
});

test('events are delivered while feeding, before the stream ends', () => {
  const { parser, out } = collect();
  parser.feed('event: token\ndata: {"content":"a"}\n');
  assert.equal(out.events.length, 0);
  parser.feed('\n');
  assert.equal(out.events.length, 1);
});
