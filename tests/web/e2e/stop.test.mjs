// Stop: the partial answer stays, marked as stopped, and the server records the run as cancelled.
// New chat: the conversation and the session are forgotten.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startStack, sendMessage, answerText, lastAnswer, waitAnswerState, screenshotPath, sleep, waitUntil,
  captureChatRequests, ANSWER_TEXT,
} from './harness.mjs';

let stack;
before(async () => {
  // 16 words/s: a ~3.5 s answer, stopped after its first few words.
  stack = await startStack({ rate: 16 });
});
after(async () => {
  await stack?.stop();
});

async function runCounts() {
  const m = await stack.server.metrics();
  return {
    cancelled: m.value('chatstream_runs_total', { status: 'cancelled' }),
    disconnected: m.value('chatstream_runs_total', { status: 'disconnected' }),
    complete: m.value('chatstream_runs_total', { status: 'complete' }),
    active: m.value('chatstream_active_streams'),
  };
}

test('the stop button stops the answer; the server counts the run as cancelled', async () => {
  const page = await stack.open();
  const before = await runCounts();
  await sendMessage(page, 'Tell me a long story');
  await page.waitForFunction(() => (document.querySelector('.msg-assistant .answer')?.textContent.length ?? 0) > 30);

  const send = page.locator('#send');
  assert.equal(await send.getAttribute('aria-label'), 'Stop generating');
  await send.click();
  await waitAnswerState(page, 'stopped', 3000);
  const atStop = await answerText(page);
  assert.ok(atStop.length > 30 && atStop.length < ANSWER_TEXT.length && ANSWER_TEXT.startsWith(atStop), JSON.stringify(atStop));
  assert.equal(await lastAnswer(page).locator('.badge-stopped').textContent(), 'Stopped');
  assert.equal(await send.getAttribute('data-mode'), 'send');
  assert.equal(await page.locator('#input').isDisabled(), false);
  assert.equal(await page.locator('#error').isHidden(), true, 'a stop is not an error');

  const after = await waitUntil(async () => {
    const c = await runCounts();
    return c.cancelled === before.cancelled + 1 && c.active === 0 && c;
  }, { timeout: 5000, what: 'chatstream_runs_total{status="cancelled"} +1' });
  assert.equal(after.disconnected, before.disconnected, 'the run must be cancelled, not dropped');
  assert.equal(after.complete, before.complete);

  await sleep(500);
  assert.equal(await answerText(page), atStop, 'no text after the stop');
  await page.screenshot({ path: screenshotPath('stopped') });

  // Escape stops too, and the next message works normally after a stop.
  await sendMessage(page, 'Another one, please');
  await page.waitForFunction(() => (document.querySelectorAll('.msg-assistant')[1]?.querySelector('.answer').textContent.length ?? 0) > 10);
  await page.keyboard.press('Escape');
  await waitAnswerState(page, 'stopped', 3000);
  await waitUntil(async () => (await runCounts()).cancelled === before.cancelled + 2, { timeout: 5000, what: 'second cancel' });

  await sendMessage(page, 'Now finish one');
  await waitAnswerState(page, 'done', 20000);
  assert.equal(await answerText(page), ANSWER_TEXT);
  assert.deepEqual(page.pageErrors, []);
  await page.context().close();
});

test('stop before the first token: the run is cancelled and the answer says so', async () => {
  await stack.replaceServer({ extra: ['--scripted-first-token-delay', '3s'] });
  try {
    const page = await stack.open();
    const before = await runCounts();
    await sendMessage(page, 'Slow start');
    await lastAnswer(page).locator('.stage[data-stage="generating"]').waitFor();
    await page.locator('#send').click();
    await waitAnswerState(page, 'stopped', 3000);
    assert.equal(await answerText(page), '');
    assert.match(await lastAnswer(page).locator('.msg-foot').textContent(), /Stopped/);
    await waitUntil(async () => (await runCounts()).cancelled === before.cancelled + 1, { timeout: 5000, what: 'cancel counted' });
    await page.context().close();
  } finally {
    await stack.replaceServer({ extra: [] });
  }
});

test('new chat clears the conversation and starts a new session', async () => {
  const page = await stack.open();
  const requests = captureChatRequests(page);
  await sendMessage(page, 'First conversation');
  await waitAnswerState(page, 'done', 20000);
  const firstSession = await page.evaluate(() => localStorage.getItem('chatstream.session_id'));
  assert.ok(firstSession);

  await page.locator('#new-chat').click();
  assert.equal(await page.locator('.msg').count(), 0);
  assert.equal(await page.locator('#empty').isVisible(), true);
  assert.equal(await page.evaluate(() => localStorage.getItem('chatstream.session_id')), null);
  assert.ok(await page.locator('#input').evaluate((n) => n === document.activeElement));

  await sendMessage(page, 'Second conversation');
  await waitAnswerState(page, 'done', 20000);
  assert.deepEqual(requests[1].body, { message: 'Second conversation' }, 'no session id after "new chat"');
  const secondSession = await page.evaluate(() => localStorage.getItem('chatstream.session_id'));
  assert.ok(secondSession && secondSession !== firstSession);
  await page.context().close();
});

test('new chat during an answer stops it first', async () => {
  const page = await stack.open();
  const before = await runCounts();
  await sendMessage(page, 'Interrupt me');
  await page.waitForFunction(() => (document.querySelector('.msg-assistant .answer')?.textContent.length ?? 0) > 10);
  await page.locator('#new-chat').click();
  assert.equal(await page.locator('.msg').count(), 0);
  assert.equal(await page.locator('#input').isDisabled(), false);
  await waitUntil(async () => (await runCounts()).cancelled === before.cancelled + 1, { timeout: 5000, what: 'cancel counted' });
  await page.context().close();
});
