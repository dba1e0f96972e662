// What this file proves, with the official `openai` Node SDK against a real `chatstream serve` whose
// scripted provider fails after 3 tokens (--scripted-fail-after 3, no database):
// - streamed: the SDK yields the role chunk and the first 3 words, then its iteration throws an
//   APIError carrying chatstream's error (type server_error, code upstream, the user-safe message),
//   because the stream ends with `data: {"error":{…}}` — no finish chunk, no [DONE];
// - not streamed: the SDK throws InternalServerError with status 502, code upstream, and the error
//   response still names the session in X-Chatstream-Session-Id;
// - both runs are counted as errors with code upstream in /metrics.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { Server, isUuid, shutdown, wordsOf } from './harness.mjs';

const TEXT = 'One two three four five six seven eight nine ten.';
const WORDS = wordsOf(TEXT);
const FAIL_AFTER = 3;
const MESSAGE = 'The language model failed while answering. Please try again.';
const HI = [{ role: 'user', content: 'hi' }];

let server;
let client;

before(async () => {
  server = new Server({ text: TEXT, rate: 50, extra: ['--scripted-fail-after', String(FAIL_AFTER)] });
  await server.start();
  // The SDK retries 5xx answers by default; one request per call keeps the counts exact.
  client = server.client({ maxRetries: 0 });
});

after(async () => {
  await shutdown({ server });
});

async function upstreamErrors() {
  return (await server.metrics()).value('chatstream_run_errors_total', { code: 'upstream' });
}

test('streamed: the first tokens arrive, then the SDK iteration throws an APIError', async () => {
  const errorsBefore = await upstreamErrors();
  const stream = await client.chat.completions.create({
    model: 'chatstream', messages: HI, stream: true, stream_options: { include_usage: true },
  });
  const received = [];
  let finishReason = null;
  let thrown;
  try {
    for await (const chunk of stream) {
      const text = chunk.choices[0]?.delta?.content;
      if (text) received.push(text);
      finishReason ??= chunk.choices[0]?.finish_reason ?? null;
    }
  } catch (err) {
    thrown = err;
  }
  assert.ok(thrown, 'the iteration ended without an error');
  assert.ok(thrown instanceof OpenAI.APIError, `got ${thrown?.constructor?.name}: ${thrown}`);
  assert.equal(thrown.status, undefined, 'an error inside a 200 stream has no status');
  assert.equal(thrown.type, 'server_error');
  assert.equal(thrown.code, 'upstream');
  assert.equal(thrown.message, MESSAGE);
  assert.deepEqual(thrown.error, { message: MESSAGE, type: 'server_error', code: 'upstream' });
  assert.deepEqual(received, WORDS.slice(0, FAIL_AFTER));
  assert.equal(finishReason, null, 'a finish_reason before the error');

  const exchange = client.exchanges.at(-1);
  assert.equal(exchange.status, 200);
  const raw = await exchange.raw;
  const events = raw.split('\n\n').filter(Boolean);
  assert.equal(events.at(-1), `data: ${JSON.stringify({ error: { message: MESSAGE, type: 'server_error', code: 'upstream' } })}`);
  assert.ok(!raw.includes('[DONE]'), 'data: [DONE] after an error');
  assert.equal(await upstreamErrors(), errorsBefore + 1);
});

test('not streamed: the SDK throws InternalServerError with status 502', async () => {
  const errorsBefore = await upstreamErrors();
  await assert.rejects(client.chat.completions.create({ model: 'chatstream', messages: HI }), (err) => {
    assert.ok(err instanceof OpenAI.InternalServerError, `got ${err?.constructor?.name}: ${err}`);
    assert.equal(err.status, 502);
    assert.equal(err.code, 'upstream');
    assert.deepEqual(err.error, { status: 502, code: 'upstream', message: MESSAGE });
    assert.equal(err.message, `502 ${MESSAGE}`);
    assert.ok(isUuid(err.headers.get('x-chatstream-session-id')), 'no X-Chatstream-Session-Id on the error');
    return true;
  });
  assert.equal(await upstreamErrors(), errorsBefore + 1);
});
