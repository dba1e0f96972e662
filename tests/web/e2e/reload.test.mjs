// The conversation survives a reload: the session id is kept in localStorage and the history comes
// from GET /sessions/{id}/messages, stored in a real PostgreSQL. A server without a database answers
// 404 there, and the page degrades gracefully.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startStack, sendMessage, answerText, waitAnswerState, screenshotPath, captureChatRequests, ANSWER_TEXT,
} from './harness.mjs';

let stack;       // without a database: no history
let storedStack; // with PostgreSQL: conversations are stored
before(async () => {
  stack = await startStack({ rate: 40 });
  storedStack = await startStack({ rate: 40, database: true });
});
after(async () => {
  await stack?.stop();
  await storedStack?.stop();
});

const sessionOf = (page) => page.evaluate(() => localStorage.getItem('chatstream.session_id'));

test('a reload shows the conversation (history stored in PostgreSQL)', async () => {
  const page = await storedStack.open();
  await sendMessage(page, 'Remember me');
  await waitAnswerState(page, 'done');
  await sendMessage(page, 'And me too');
  await waitAnswerState(page, 'done');
  const sessionId = await sessionOf(page);
  assert.ok(sessionId);

  const res = await page.request.get(`${storedStack.nginx.url}sessions/${sessionId}/messages`);
  assert.equal(res.status(), 200, await res.text());
  const stored = await res.json();
  assert.deepEqual(stored.messages.map((m) => [m.role, m.status]),
    [['user', 'complete'], ['assistant', 'complete'], ['user', 'complete'], ['assistant', 'complete']]);

  await page.reload();
  await page.locator('.msg-assistant').nth(1).waitFor();
  assert.deepEqual(await page.locator('.msg-user .text').allTextContents(), ['Remember me', 'And me too']);
  assert.deepEqual(await page.locator('.msg-assistant .answer').allTextContents(), [ANSWER_TEXT, ANSWER_TEXT]);
  assert.equal(await sessionOf(page), sessionId);
  await page.screenshot({ path: screenshotPath('reloaded') });
  await page.context().close();
});

test('without history (404) a reload keeps the session and says the earlier messages cannot be shown', async () => {
  const page = await stack.open();
  const requests = captureChatRequests(page);
  // Force the 404 so this path is covered also once the server has the endpoint.
  await page.route('**/sessions/*/messages', (route) => route.fulfill({
    status: 404, contentType: 'application/json', body: '{"error":{"status":404,"code":"not_found","message":"No such path."}}',
  }));
  await sendMessage(page, 'Before the reload');
  await waitAnswerState(page, 'done');
  const sessionId = await sessionOf(page);

  await page.reload();
  await page.locator('#history-note').waitFor({ state: 'visible' });
  assert.equal(await page.locator('.msg').count(), 0);
  assert.equal(await page.locator('#empty').isHidden(), true);
  assert.equal(await sessionOf(page), sessionId, 'the session id survives the reload');
  await page.screenshot({ path: screenshotPath('reload-without-history') });

  await sendMessage(page, 'After the reload');
  await waitAnswerState(page, 'done');
  assert.deepEqual(requests.at(-1).body, { message: 'After the reload', session_id: sessionId });
  assert.equal(await page.locator('#history-note').isVisible(), true, 'the note stays above the new messages');
  assert.deepEqual(page.pageErrors, []);
  await page.context().close();
});

test('history answered by the server is rendered as text, stopped answers marked', async () => {
  const page = await stack.open();
  await page.evaluate(() => localStorage.setItem('chatstream.session_id', '2b7e1c44-9a8f-4f6e-8d7a-0a1b2c3d4e5f'));
  let asked = '';
  await page.route('**/sessions/*/messages', (route) => {
    asked = new URL(route.request().url()).pathname;
    return route.fulfill({
      status: 200,
      contentType: 'application/json',
      body: JSON.stringify({
        session_id: '2b7e1c44-9a8f-4f6e-8d7a-0a1b2c3d4e5f',
        messages: [
          { role: 'user', content: 'What is <b>SSE</b>?' },
          { role: 'assistant', content: 'One long HTTP response.', status: 'complete', citations: [{ index: 1, title: 'HTML spec', source: 'https://html.spec.whatwg.org/', snippet: 'EventSource' }] },
          { role: 'user', content: 'Tell me more' },
          { role: 'assistant', content: 'It keeps', status: 'cancelled' },
        ],
      }),
    });
  });
  await page.reload();
  await page.locator('.msg-assistant').nth(1).waitFor();
  assert.equal(asked, '/sessions/2b7e1c44-9a8f-4f6e-8d7a-0a1b2c3d4e5f/messages');
  assert.deepEqual(await page.locator('.msg-user .text').allTextContents(), ['What is <b>SSE</b>?', 'Tell me more']);
  assert.equal(await page.locator('.msg b').count(), 0);
  assert.deepEqual(await page.locator('.msg-assistant').evaluateAll((ns) => ns.map((n) => n.dataset.state)), ['done', 'stopped']);
  assert.equal(await page.locator('.citation').count(), 1);
  assert.equal(await page.locator('#empty').isHidden(), true);
  await page.screenshot({ path: screenshotPath('history') });

  // The conversation continues after it.
  await sendMessage(page, 'Continue');
  await waitAnswerState(page, 'done');
  assert.equal(await answerText(page), ANSWER_TEXT);
  await page.context().close();
});
