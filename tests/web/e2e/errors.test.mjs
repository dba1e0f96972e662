// Failures: a server error event (shown, retry works), HTTP errors before the stream (429/503 retried
// with backoff), network failures (retried 1 s, 2 s, 4 s, then shown), a killed worker (no database:
// its run cannot be resumed, so the message is sent again), a stalled stream (resumed).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startStack, sendMessage, answerText, lastAnswer, waitAnswerState, screenshotPath, sleep, waitUntil,
  captureChatRequests, ANSWER_TEXT, SLOW,
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

test('429 and 503 before the stream are retried after 1 s and 2 s, then the answer streams', async () => {
  const page = await stack.open();
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
  await sendMessage(page, 'Busy server');
  await page.locator('#status').waitFor({ state: 'visible' });
  assert.match(await page.locator('#status-text').textContent(), /Too many requests.*Retrying in 1 s/);
  await waitAnswerState(page, 'done', 25000);
  assert.equal(await answerText(page), ANSWER_TEXT);
  assert.equal(requests.length, 3);
  const gap1 = requests[1].at - requests[0].at;
  const gap2 = requests[2].at - requests[1].at;
  // Lower bounds at 0.8 of the delay: the times are when node hears of each request, and on a loaded
  // machine one hears later than the other; 0.8 still tells each step of the backoff from the one before.
  assert.ok(gap1 >= 800 && gap1 < 1900, `first retry after ${gap1} ms, want ~1 s`);
  assert.ok(gap2 >= 1600 && gap2 < 3500, `second retry after ${gap2} ms, want ~2 s`);
  assert.equal(await page.locator('#status').isHidden(), true);
  assert.equal(await page.locator('#error').isHidden(), true);
  await page.context().close();
});

test('network failures are retried after 1 s, 2 s, 4 s, then shown with a retry button', async () => {
  const page = await stack.open();
  const requests = captureChatRequests(page);
  await page.route('**/chat/stream', (route) => route.abort('connectionrefused'));
  await sendMessage(page, 'Nobody home');
  await page.locator('#status').waitFor({ state: 'visible' });
  await page.screenshot({ path: screenshotPath('retrying') });
  assert.match(await page.locator('#status-text').textContent(), /connection to the server was lost.*Retrying in 1 s… \(attempt 1 of 3\)/);
  await page.locator('#error').waitFor({ state: 'visible', timeout: 12000 * SLOW });
  assert.equal(requests.length, 4);
  const gaps = requests.slice(1).map((r, i) => r.at - requests[i].at);
  for (const [i, want] of [1000, 2000, 4000].entries()) {
    // At least 0.8 of each delay (see the test above): when node hears of a request lags on a loaded machine.
    assert.ok(gaps[i] >= want * 0.8 && gaps[i] < want + 1500, `gap ${i + 1} was ${gaps[i]} ms, want ~${want}`);
  }
  assert.match(await page.locator('#error-text').textContent(), /connection to the server was lost.*4 attempts/);
  await page.screenshot({ path: screenshotPath('network-error') });

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
  await stack.replaceServer({ rate: 8 });
  try {
    await stalledAndResumed();
  } finally {
    await stack.replaceServer({ rate: 20 });
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
