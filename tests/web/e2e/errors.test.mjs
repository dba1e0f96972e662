// Failures: a server error event (shown, retry works), HTTP errors before the stream (429/503 retried
// with backoff), network failures (retried 1 s, 2 s, 4 s, then shown) — both on a fake clock —, a
// killed worker (no database: its run cannot be resumed, so the message is sent again), a stalled
// stream (resumed).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startStack, sendMessage, answerText, lastAnswer, waitAnswerState, screenshotPath, sleep, waitUntil,
  captureChatRequests, pauseClock, expectRetryAfter, ANSWER_TEXT, SLOW,
} from './harness.mjs';

let stack;
before(async () => {
  // 20 words/s: a 3 s answer; each failure below strikes within its first words.
  stack = await startStack({ rate: 20 });
});
after(async () => {
  await stack?.stop();
});

/** The `error` event the real server sends (read with node's fetch, through nginx). */
async function serverErrorEvent() {
  const res = await fetch(`${stack.nginx.url}chat/stream`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ message: 'probe' }),
  });
  const text = await res.text();
  const m = text.match(/event: error\ndata: (.*)\n/);
  assert.ok(m, `no error event in ${text.slice(-300)}`);
  return JSON.parse(m[1]);
}

test('a server error event is shown in plain words with a retry button, and retry works', async () => {
  await stack.replaceServer({ extra: ['--scripted-fail-after', '6'] });
  const expected = await serverErrorEvent();
  assert.equal(expected.code, 'upstream');

  const page = await stack.open();
  const requests = captureChatRequests(page);
  await sendMessage(page, 'This one will fail');
  await page.locator('#error').waitFor({ state: 'visible', timeout: 10000 * SLOW });
  assert.equal(await page.locator('#error-text').textContent(), expected.message);
  assert.equal(await page.locator('#error').getAttribute('role'), 'alert');
  await waitAnswerState(page, 'error', 2000);
  const partial = await answerText(page);
  assert.equal(partial, ANSWER_TEXT.split(' ').slice(0, 6).join(' ') + ' ', 'the partial answer stays visible');
  assert.equal(requests.length, 1, 'an error event is not retried automatically');
  assert.ok(await page.locator('#retry').evaluate((n) => n === document.activeElement), 'focus moves to Retry');
  await page.screenshot({ path: screenshotPath('error') });
  await page.setViewportSize({ width: 360, height: 740 });
  await page.screenshot({ path: screenshotPath('error-phone') });
  await page.setViewportSize({ width: 1100, height: 820 });

  // The server recovers; Retry sends the same message again and replaces the failed answer.
  await stack.replaceServer({ extra: [] });
  await page.locator('#retry').click();
  assert.equal(await page.locator('#error').isHidden(), true);
  await waitAnswerState(page, 'done', 20000);
  assert.equal(await answerText(page), ANSWER_TEXT);
  assert.equal(await page.locator('.msg-user').count(), 1);
  assert.equal(await page.locator('.msg-assistant').count(), 1);
  assert.equal(requests.length, 2);
  assert.equal(requests[1].body.message, 'This one will fail');
  assert.ok(requests[1].body.session_id, 'the retry continues the session');
  assert.deepEqual(page.pageErrors, []);
  await page.context().close();
});

// The backoff tests run the page on a paused fake clock (Playwright's page.clock) and step it: each
// retry is checked to come neither a millisecond early nor late, without waiting the delays out.

test('429 and 503 before the stream are retried after 1 s and 2 s, then the answer streams', async () => {
  const page = await stack.open({ clock: true });
  const requests = captureChatRequests(page);
  let n = 0;
  await page.route('**/chat/stream', async (route) => {
    n += 1;
    if (n === 1) {
      await route.fulfill({ status: 429, contentType: 'application/json', body: '{"error":{"status":429,"code":"rate_limited","message":"Too many requests from this address; retry shortly."}}' });
    } else if (n === 2) {
      await route.fulfill({ status: 503, contentType: 'application/json', headers: { 'Retry-After': '1' }, body: '{"error":{"status":503,"code":"overloaded","message":"The server is at its connection limit. Please retry shortly."}}' });
    } else {
      await route.continue();
    }
  });
  await pauseClock(page);
  await sendMessage(page, 'Busy server');
  await page.locator('#status').waitFor({ state: 'visible' });
  assert.match(await page.locator('#status-text').textContent(), /Too many requests.*Retrying in 1 s/);
  assert.equal(requests.length, 1);
  // 1 s after the 429; then 2 s (the backoff's second step; its Retry-After of 1 s is shorter).
  await expectRetryAfter(page, 1000, requests, 1, 'the first retry');
  await page.locator('#status-text', { hasText: /connection limit.*Retrying in 2 s/ }).waitFor();
  await expectRetryAfter(page, 2000, requests, 2, 'the second retry');
  await page.clock.resume();
  await waitAnswerState(page, 'done', 25000);
  assert.equal(await answerText(page), ANSWER_TEXT);
  assert.equal(requests.length, 3);
  assert.equal(await page.locator('#status').isHidden(), true);
  assert.equal(await page.locator('#error').isHidden(), true);
  await page.context().close();
});

test('network failures are retried after 1 s, 2 s, 4 s, then shown with a retry button', async () => {
  const page = await stack.open({ clock: true });
  const requests = captureChatRequests(page);
  await page.route('**/chat/stream', (route) => route.abort('connectionrefused'));
  await pauseClock(page);
  await sendMessage(page, 'Nobody home');
  await page.locator('#status').waitFor({ state: 'visible' });
  await page.screenshot({ path: screenshotPath('retrying') });
  assert.match(await page.locator('#status-text').textContent(), /connection to the server was lost.*Retrying in 1 s… \(attempt 1 of 3\)/);
  for (const [i, delay] of [1000, 2000, 4000].entries()) {
    await expectRetryAfter(page, delay, requests, i + 1, `retry ${i + 1}`);
  }
  await page.locator('#error').waitFor({ state: 'visible', timeout: 5000 * SLOW });
  await page.clock.runFor(10000);
  await sleep(250);
  assert.equal(requests.length, 4, 'no retry after the third');
  assert.match(await page.locator('#error-text').textContent(), /connection to the server was lost.*4 attempts/);
  await page.screenshot({ path: screenshotPath('network-error') });

  await page.clock.resume();
  await page.unroute('**/chat/stream');
  await page.locator('#retry').click();
  await waitAnswerState(page, 'done', 20000);
  assert.equal(await answerText(page), ANSWER_TEXT);
  assert.equal(await page.locator('#error').isHidden(), true);
  await page.context().close();
});

test('a killed connection (worker killed mid-stream) is retried and the answer completes', async () => {
  const page = await stack.open();
  const requests = captureChatRequests(page);
  await sendMessage(page, 'Survive a crash');
  await page.waitForFunction(() => (document.querySelector('.msg-assistant .answer')?.textContent.length ?? 0) > 20);
  const workers = stack.server.workerPids();
  assert.equal(workers.length, 1, `one worker expected, got ${workers}`);
  process.kill(workers[0], 'SIGKILL');

  await page.locator('#status').waitFor({ state: 'visible', timeout: 5000 * SLOW });
  assert.match(await page.locator('#status-text').textContent(), /Retrying in 1 s/);
  await waitAnswerState(page, 'done', 30000);
  assert.equal(await answerText(page), ANSWER_TEXT, 'the retried answer is whole, not appended to the broken one');
  assert.ok(requests.length >= 2, `${requests.length} requests`);
  assert.equal(await page.locator('#error').isHidden(), true);
  assert.equal(await page.locator('#status').isHidden(), true);
  const newWorkers = stack.server.workerPids();
  assert.ok(newWorkers.length === 1 && newWorkers[0] !== workers[0], 'the master replaced the worker');
  await page.context().close();
});

test('a stream silent for twice the heartbeat is dropped and resumed', async () => {
  // --heartbeat 1s: a stream with no byte for 2 s is treated as dropped. The worker keeps the run
  // (it was only stopped): the page resumes it (GET /chat/stream/{run_id}) instead of sending again.
  // At 8 words/s the answer (~7 s) outlasts the stall (~3.5 s): a worker woken after its answer's end
  // sends the words it owes at once and finishes, and a finished run without a database cannot be
  // resumed (the page would rightly send the message again).
  const { rate } = stack.server;
  await stack.replaceServer({ rate: 8 });
  try {
    await stalledAndResumed();
  } finally {
    await stack.replaceServer({ rate });
  }
});

async function stalledAndResumed() {
  const page = await stack.open();
  const requests = captureChatRequests(page);
  const resumes = [];
  page.on('request', (req) => {
    if (req.method() === 'GET' && /\/chat\/stream\/[^/]+$/.test(new URL(req.url()).pathname)) resumes.push(req.headers()['last-event-id']);
  });
  await sendMessage(page, 'Stall please');
  await page.waitForFunction(() => (document.querySelector('.msg-assistant .answer')?.textContent.length ?? 0) > 10);
  const [worker] = stack.server.workerPids();
  const stoppedAt = Date.now();
  process.kill(worker, 'SIGSTOP');
  try {
    await page.locator('#status').waitFor({ state: 'visible', timeout: 5000 * SLOW });
    const detectedAfter = Date.now() - stoppedAt;
    assert.ok(detectedAfter >= 1500 && detectedAfter < 4000, `stall noticed after ${detectedAfter} ms, want ~2 s`);
    assert.match(await page.locator('#status-text').textContent(), /stopped responding.*Retrying/);
    await sleep(1500);
  } finally {
    process.kill(worker, 'SIGCONT');
  }
  await waitAnswerState(page, 'done', 30000);
  assert.equal(await answerText(page), ANSWER_TEXT, 'the same answer, nothing repeated');
  assert.equal(requests.length, 1, 'the message is not sent again');
  assert.ok(resumes.length >= 1 && resumes.every((id) => /^[0-9a-f-]{36}:\d+$/.test(id ?? '')), JSON.stringify(resumes));
  await page.context().close();
}
