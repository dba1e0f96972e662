// What this file proves, with the official `openai` Node SDK against a real `chatstream serve` backed
// by a real PostgreSQL (scripts/pg.sh, migrated with `chatstream migrate`; scripted provider):
// - every answer names its session (X-Chatstream-Session-Id, and session_id in the non-streamed object);
// - the SDK passes an unknown body field through: `session_id` in create()'s body reaches the server
//   (seen in the recorded request) and continues the stored conversation — GET /sessions/{id}/messages
//   then holds both turns, 4 messages in order, with the exact texts and status complete;
// - the header X-Chatstream-Session-Id given as a request option continues it as well;
// - the stored turns are the conversation context of the next answer: chatstream's own SSE endpoint
//   announces generation_start.context_messages = 6 after three turns;
// - multi-byte UTF-8 and text parts (joined with "\n") are stored exactly as sent;
// - aborting a stream with an AbortController ends the run server-side: runs_total{status=
//   "disconnected"} increments and the partial answer is stored with status cancelled.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { Postgres, Server, collect, contentOf, isUuid, shutdown, waitUntil, wordsOf } from './harness.mjs';

const TEXT = 'Sessions keep the conversation: each turn is stored, and the next answer sees the earlier ones. '
  + 'Ünïcödé 日本語 🚀 too.';
const WORDS = wordsOf(TEXT);
const RATE = 50;

let pg;
let server;
let client;

before(async () => {
  pg = new Postgres();
  await pg.start();
  server = new Server({ text: TEXT, rate: RATE, databaseUrl: pg.url });
  await server.start();
  client = server.client();
});

after(async () => {
  await shutdown({ server, pg });
});

async function storedMessages(sessionId) {
  const { status, body } = await server.getJson(`/sessions/${sessionId}/messages`);
  assert.equal(status, 200, `GET /sessions/${sessionId}/messages: ${JSON.stringify(body)}`);
  assert.equal(body.session_id, sessionId);
  return body.messages;
}

function assertInOrder(messages) {
  for (let i = 1; i < messages.length; i++) {
    assert.ok(messages[i].id > messages[i - 1].id, 'message ids not increasing');
    assert.ok(messages[i].created_at >= messages[i - 1].created_at, 'created_at not in order');
  }
}

/** The chatstream SSE endpoint's events for one message in a session. */
async function chatstreamEvents(sessionId, message) {
  const res = await fetch(`${server.url}/chat/stream`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ message, session_id: sessionId }),
  });
  assert.equal(res.status, 200);
  const events = [];
  for (const block of (await res.text()).split('\n\n')) {
    const data = block.split('\n').find((l) => l.startsWith('data: '));
    if (data) events.push(JSON.parse(data.slice(6)));
  }
  return events;
}

test('continuing a conversation: session_id in the body, then the header, stores every turn in one session', async () => {
  // Turn 1, not streamed: a new session.
  const first = await client.chat.completions
    .create({ model: 'chatstream', messages: [{ role: 'user', content: 'What is a session?' }] })
    .withResponse();
  const sessionId = first.response.headers.get('x-chatstream-session-id');
  assert.ok(isUuid(sessionId), `X-Chatstream-Session-Id: ${sessionId}`);
  assert.equal(first.data.session_id, sessionId);
  assert.equal(first.data.choices[0].message.content, TEXT);

  // Turn 2, streamed, continuing through an extra body field.
  const second = await client.chat.completions
    .create({ model: 'chatstream', messages: [{ role: 'user', content: 'And the next turn?' }], stream: true, session_id: sessionId })
    .withResponse();
  const sent = JSON.parse(client.exchanges.at(-1).requestBody);
  assert.equal(sent.session_id, sessionId, 'the SDK did not pass session_id through in the body');
  assert.equal(second.response.headers.get('x-chatstream-session-id'), sessionId, 'session_id in the body was not honoured');
  assert.equal(contentOf(await collect(second.data)), TEXT);

  const afterTwo = await storedMessages(sessionId);
  assert.deepEqual(afterTwo.map((m) => [m.role, m.content, m.status]), [
    ['user', 'What is a session?', 'complete'],
    ['assistant', TEXT, 'complete'],
    ['user', 'And the next turn?', 'complete'],
    ['assistant', TEXT, 'complete'],
  ]);
  assertInOrder(afterTwo);

  // Turn 3, continuing through the request header (a request option of the SDK).
  const third = await client.chat.completions.create(
    { model: 'chatstream', messages: [{ role: 'user', content: 'Third?' }] },
    { headers: { 'X-Chatstream-Session-Id': sessionId } },
  );
  assert.equal(third.session_id, sessionId, 'X-Chatstream-Session-Id request header was not honoured');
  const afterThree = await storedMessages(sessionId);
  assert.equal(afterThree.length, 6);
  assert.deepEqual(afterThree.slice(4).map((m) => [m.role, m.content]), [['user', 'Third?'], ['assistant', TEXT]]);
  assertInOrder(afterThree);

  // The stored turns are the context the provider gets for the session's next answer.
  const events = await chatstreamEvents(sessionId, 'Fourth?');
  const start = events.find((e) => e.type === 'generation_start');
  assert.ok(start, `no generation_start in ${JSON.stringify(events.map((e) => e.type))}`);
  assert.equal(start.context_messages, 6);
  assert.equal(events.at(-1).type, 'done');
});

test('a new conversation without session_id starts a new session every time', async () => {
  const a = await client.chat.completions.create({ model: 'chatstream', messages: [{ role: 'user', content: 'a' }] });
  const b = await client.chat.completions.create({ model: 'chatstream', messages: [{ role: 'user', content: 'b' }] });
  assert.notEqual(a.session_id, b.session_id);
  assert.equal((await storedMessages(a.session_id)).length, 2);
  assert.equal((await storedMessages(b.session_id)).length, 2);
});

test('a session_id that is not a UUID is a BadRequestError (body and header)', async () => {
  const messages = [{ role: 'user', content: 'hi' }];
  await assert.rejects(client.chat.completions.create({ model: 'chatstream', messages, session_id: 'nope' }), (err) => {
    assert.ok(err instanceof OpenAI.BadRequestError, `got ${err?.constructor?.name}: ${err}`);
    assert.equal(err.error.message, "'session_id' must be a UUID");
    return true;
  });
  await assert.rejects(
    client.chat.completions.create({ model: 'chatstream', messages }, { headers: { 'X-Chatstream-Session-Id': 'nope' } }),
    (err) => {
      assert.ok(err instanceof OpenAI.BadRequestError, `got ${err?.constructor?.name}: ${err}`);
      assert.equal(err.error.message, 'X-Chatstream-Session-Id must be a UUID');
      return true;
    },
  );
});

test('UTF-8 and text parts are stored exactly as sent', async () => {
  const question = 'Ça marche? 你好 👩‍👩‍👧 — naïve';
  const { data, response } = await client.chat.completions
    .create({ model: 'chatstream', messages: [{ role: 'user', content: question }], stream: true })
    .withResponse();
  assert.equal(contentOf(await collect(data)), TEXT);
  const sessionId = response.headers.get('x-chatstream-session-id');
  assert.deepEqual((await storedMessages(sessionId)).map((m) => m.content), [question, TEXT]);

  const parts = await client.chat.completions.create({
    model: 'chatstream',
    messages: [{ role: 'user', content: [{ type: 'text', text: 'Part one, 🚀.' }, { type: 'text', text: 'Part two, 日本.' }] }],
  });
  // The parts' texts are joined with a newline (the server's rule; the protocol does not say).
  assert.deepEqual((await storedMessages(parts.session_id)).map((m) => m.content), ['Part one, 🚀.\nPart two, 日本.', TEXT]);
});

test('aborting a stream ends the run server-side and stores the partial answer as cancelled', async () => {
  const disconnected = (await server.metrics()).value('chatstream_runs_total', { status: 'disconnected' });
  const controller = new AbortController();
  const { data: stream, response } = await client.chat.completions
    .create({ model: 'chatstream', messages: [{ role: 'user', content: 'Stop me' }], stream: true }, { signal: controller.signal })
    .withResponse();
  const sessionId = response.headers.get('x-chatstream-session-id');
  const received = [];
  try {
    for await (const chunk of stream) {
      const text = chunk.choices[0]?.delta?.content;
      if (text) received.push(text);
      if (received.length === 4) controller.abort();
    }
  } catch (err) {
    assert.ok(err instanceof OpenAI.APIUserAbortError || err.name === 'AbortError', `unexpected ${err}`);
  }
  assert.deepEqual(received, WORDS.slice(0, 4));
  await waitUntil(async () => (await server.metrics()).value('chatstream_runs_total', { status: 'disconnected' }) === disconnected + 1, {
    timeout: 5000, what: 'chatstream_runs_total{status="disconnected"} to increment',
  });
  const messages = await waitUntil(async () => {
    const list = await storedMessages(sessionId);
    return list.length === 2 ? list : null;
  }, { timeout: 5000, what: 'the cancelled answer to be stored' });
  assert.deepEqual(messages.map((m) => [m.role, m.status]), [['user', 'complete'], ['assistant', 'cancelled']]);
  // What was produced before the disconnect: at least what the client saw, a prefix of the text, not all of it.
  const partial = messages[1].content;
  assert.ok(partial.startsWith(received.join('')), `stored ${JSON.stringify(partial)}`);
  assert.ok(TEXT.startsWith(partial) && partial.length < TEXT.length, `stored ${JSON.stringify(partial)}`);
});
