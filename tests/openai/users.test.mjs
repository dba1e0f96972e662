// Sign-in with the official `openai` Node SDK (issue 11): the bearer JWT is the SDK's `apiKey`, and
// conversations are scoped to its `sub` — against a real `chatstream serve` with --jwt-secret and a
// real PostgreSQL:
// - a token of another user, an expired token, or a made-up key: the SDK raises AuthenticationError
//   (401, code unauthorized), for create() and models.list();
// - Alice continues her stored conversation (session_id in the body); Bob, with his own token, gets
//   NotFoundError for the same session id, and his attempt writes nothing into it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import OpenAI from 'openai';
import { Postgres, Server, isUuid, shutdown } from './harness.mjs';

const SECRET = `openai-e2e-${crypto.randomBytes(12).toString('hex')}-secret`;
const TEXT = 'Signed in answers.';

function jwt(sub, { exp = Math.floor(Date.now() / 1000) + 600, secret = SECRET } = {}) {
  const b64 = (s) => Buffer.from(s).toString('base64url');
  const head = b64(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64(JSON.stringify({ sub, exp }));
  return `${head}.${body}.${crypto.createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url')}`;
}

let pg;
let server;
before(async () => {
  pg = new Postgres();
  await pg.start();
  server = new Server({ text: TEXT, rate: 0, databaseUrl: pg.url, extra: ['--jwt-secret', SECRET] });
  await server.start();
});
after(async () => {
  await shutdown({ server, pg });
});

const sdk = (apiKey) => server.client({ apiKey, maxRetries: 0 });
const ask = (client, content, extra = {}) =>
  client.chat.completions.create({ model: 'chatstream', messages: [{ role: 'user', content }], ...extra });

test('the JWT is the apiKey; bad keys are AuthenticationError', async () => {
  const alice = sdk(jwt('alice'));
  const completion = await ask(alice, 'Hello as Alice');
  assert.equal(completion.choices[0].message.content, TEXT);
  assert.ok(isUuid(completion.session_id));
  assert.deepEqual((await alice.models.list()).data.map((m) => m.id), ['chatstream']);

  for (const [what, key] of [['made-up key', 'sk-not-a-jwt'], ['expired', jwt('alice', { exp: 1 })],
    ['other secret', jwt('alice', { secret: 'a-different-secret-of-enough-length!' })]]) {
    const client = sdk(key);
    await assert.rejects(ask(client, 'let me in'), (err) => {
      assert.ok(err instanceof OpenAI.AuthenticationError, `${what}: ${err}`);
      assert.equal(err.status, 401);
      assert.equal(err.error?.code, 'unauthorized', JSON.stringify(err.error));
      return true;
    });
    await assert.rejects(client.models.list(), OpenAI.AuthenticationError, what);
  }
});

test("a conversation continues for its owner only (streamed and not)", async () => {
  const alice = sdk(jwt('alice'));
  const bob = sdk(jwt('bob'));
  const first = await ask(alice, 'Turn one');
  const sessionId = first.session_id;
  const stream = await ask(alice, 'Turn two', { stream: true, session_id: sessionId });
  let text = '';
  for await (const chunk of stream) text += chunk.choices?.[0]?.delta?.content ?? '';
  assert.equal(text, TEXT);

  for (const extra of [{ session_id: sessionId }, { session_id: sessionId, stream: true }]) {
    await assert.rejects(ask(bob, 'Turn from Bob', extra), (err) => {
      assert.ok(err instanceof OpenAI.NotFoundError, String(err));
      assert.equal(err.error?.code, 'not_found');
      return true;
    });
  }
  const res = await fetch(`${server.url}/sessions/${sessionId}/messages`, {
    headers: { Authorization: `Bearer ${jwt('alice')}` },
  });
  const stored = await res.json();
  assert.deepEqual(stored.messages.map((m) => m.content), ['Turn one', TEXT, 'Turn two', TEXT]);
});
