// Durable streams in the browser: an answer survives a cut connection (the page resumes the run with
// GET /chat/stream/{run_id} and Last-Event-ID) and a reload (the page follows the conversation's
// running run, running_run_id), with no text lost or repeated, and ends equal to the stored answer.
// A message sent to a conversation still answering (409) follows the running answer; a run whose
// worker dies ends as worker_lost with a retry.
//
// The cut: chromium does not end an in-flight fetch for context.setOffline() (offline emulation only
// refuses new requests), so the page is loaded through a TCP proxy in front of nginx whose
// connections the test resets, as a network that goes away does (net::ERR_CONNECTION_RESET).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import {
  startStack, sendMessage, answerText, lastAnswer, waitAnswerState, screenshotPath, waitUntil, sleep,
  ANSWER_TEXT, SLOW,
} from './harness.mjs';

/**
 * A TCP proxy whose connections the test can cut: cut() resets every open connection at once (the
 * browser's stream fails mid-body) and refuses new ones for downMs.
 */
class CuttableProxy {
  constructor(targetPort) {
    this.targetPort = targetPort;
    this.sockets = new Set();
    this.downUntil = 0;
  }

  async start() {
    this.server = net.createServer((client) => {
      client.on('error', () => {});
      if (Date.now() < this.downUntil) {
        client.resetAndDestroy();
        return;
      }
      const upstream = net.connect(this.targetPort, '127.0.0.1');
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('error', () => {});
        s.on('close', () => this.sockets.delete(s));
      }
      client.pipe(upstream);
      upstream.pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = this.server.address().port;
    return this;
  }

  get url() {
    return `http://127.0.0.1:${this.port}/`;
  }

  cut({ downMs = 0 } = {}) {
    this.downUntil = Date.now() + downMs;
    const open = this.sockets.size;
    for (const s of this.sockets) s.resetAndDestroy();
    return open;
  }

  async stop() {
    this.cut();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

let stack;
let proxy;
before(async () => {
  // 12 words/s: the answer (about 60 words) takes ~5 s, so it is surely in flight when cut, reloaded
  // or sent to from a second tab (each within its first 10 words).
  stack = await startStack({ rate: 12, database: true });
  proxy = await new CuttableProxy(stack.nginx.port).start();
});
after(async () => {
  await proxy?.stop();
  await stack?.stop();
});

const sessionOf = (page) => page.evaluate(() => localStorage.getItem('chatstream.session_id'));

/** The conversation as stored: GET /sessions/{id}/messages (sign-in off: the anonymous user). */
async function stored(sessionId) {
  const res = await fetch(`${stack.nginx.url}sessions/${sessionId}/messages`);
  assert.equal(res.status, 200, await res.clone().text());
  return res.json();
}

/** Every /chat/stream request of the page: method, path, Last-Event-ID. */
function captureStreams(page) {
  const list = [];
  page.on('request', (req) => {
    const { pathname } = new URL(req.url());
    if (pathname.startsWith('/chat/stream')) {
      list.push({ method: req.method(), path: pathname, lastEventId: req.headers()['last-event-id'], at: Date.now() });
    }
  });
  return list;
}

async function waitForText(page, chars, index = -1) {
  await page.waitForFunction(([n, i]) => {
    const answers = document.querySelectorAll('.msg-assistant .answer');
    const a = answers[i < 0 ? answers.length + i : i];
    return (a?.textContent.length ?? 0) > n;
  }, [chars, index], { timeout: 15000 * SLOW });
}

/** Wait until the session has no running run and return its stored conversation. */
async function storedWhenIdle(sessionId) {
  return waitUntil(async () => {
    const conv = await stored(sessionId);
    return conv.running_run_id === null && conv;
  }, { timeout: 15000, what: 'no running run' });
}

test('resume: a network cut mid-answer: the same answer continues, no text lost or repeated, equal to the stored one', async () => {
  const page = await stack.open({ url: proxy.url });
  const streams = captureStreams(page);
  await sendMessage(page, 'Survive a network cut');
  await waitForText(page, 40);
  const atCut = await answerText(page);

  // Down for 1.5 s: the reconnection after 1 s is refused too, the one 2 s later gets through.
  assert.ok(proxy.cut({ downMs: 1500 }) > 0, 'the stream was open through the proxy');
  await page.locator('#status').waitFor({ state: 'visible', timeout: 5000 * SLOW });
  assert.match(await page.locator('#status-text').textContent(), /connection to the server was lost.*Retrying in 1 s/);
  assert.equal(await lastAnswer(page).getAttribute('data-state'), 'streaming', 'the answer is not given up');
  assert.ok((await answerText(page)).startsWith(atCut), 'the text so far stays');
  await page.screenshot({ path: screenshotPath('resume-reconnecting') });

  await waitAnswerState(page, 'done', 30000);
  const shown = await answerText(page);
  assert.equal(shown, ANSWER_TEXT, 'the answer is whole: nothing lost, nothing repeated');
  assert.equal(await page.locator('#status').isHidden(), true);
  assert.equal(await page.locator('#error').isHidden(), true);
  assert.equal(await page.locator('.msg-assistant').count(), 1);

  // One POST, then GETs of the same run from the last event received.
  const [post, ...resumes] = streams;
  assert.equal(post.method, 'POST');
  assert.ok(resumes.length >= 1, JSON.stringify(streams));
  for (const r of resumes) {
    assert.equal(r.method, 'GET');
    assert.match(r.path, /^\/chat\/stream\/[0-9a-f-]{36}$/);
    const runId = r.path.split('/').pop();
    assert.match(r.lastEventId ?? '', new RegExp(`^${runId}:\\d+$`));
  }
  assert.equal(new Set(resumes.map((r) => r.path)).size, 1, 'every resume follows the same run');
  assert.equal(new Set(resumes.map((r) => r.lastEventId)).size, 1, 'nothing arrived between the cut and the resume');
  if (resumes.length >= 2) {
    const gap = resumes[1].at - resumes[0].at;
    // 0.8 of the 2 s delay: node hears of each request late on a loaded machine, not always equally late.
    assert.ok(gap >= 1600 && gap < 3500 * SLOW, `second reconnection ${gap} ms after the first, want ~2 s`);
  }

  const conv = await storedWhenIdle(await sessionOf(page));
  assert.deepEqual(conv.messages.map((m) => [m.role, m.status]), [['user', 'complete'], ['assistant', 'complete']]);
  assert.equal(conv.messages[1].content, shown, 'the page shows the stored answer');
  assert.deepEqual(page.pageErrors, []);
  await page.context().close();
});

test('resume: a reload mid-answer follows the running answer to its end, with the stop button live', async () => {
  const page = await stack.open();
  await sendMessage(page, 'Survive a reload');
  await waitForText(page, 40);
  const sessionId = await sessionOf(page);
  const before = await stored(sessionId);
  assert.ok(before.running_run_id, 'the answer is running');
  assert.deepEqual(before.messages.map((m) => m.role), ['user'], 'the running answer is not stored yet');

  const streams = captureStreams(page);
  await page.reload();
  await page.locator('.msg-assistant[data-state="streaming"]').waitFor({ timeout: 5000 * SLOW });
  assert.deepEqual(await page.locator('.msg-user .text').allTextContents(), ['Survive a reload']);
  assert.equal(await page.locator('#send').getAttribute('data-mode'), 'stop');
  assert.equal(await page.locator('#send').getAttribute('aria-label'), 'Stop generating');
  await waitForText(page, 10);
  await page.screenshot({ path: screenshotPath('resume-after-reload') });

  await waitAnswerState(page, 'done', 30000);
  const shown = await answerText(page);
  assert.equal(shown, ANSWER_TEXT, 'the whole answer, from its first word, once');
  assert.deepEqual(streams.map((r) => [r.method, r.path, r.lastEventId]), [['GET', `/chat/stream/${before.running_run_id}`, undefined]],
    'no message sent again: the running run is followed from its start');
  assert.equal(await page.locator('#send').getAttribute('data-mode'), 'send');

  const conv = await storedWhenIdle(sessionId);
  assert.deepEqual(conv.messages.map((m) => [m.role, m.status]), [['user', 'complete'], ['assistant', 'complete']]);
  assert.equal(conv.messages[1].content, shown);

  // The conversation goes on after it.
  await sendMessage(page, 'And after');
  await waitAnswerState(page, 'done', 30000);
  assert.equal((await stored(sessionId)).messages.length, 4);
  assert.deepEqual(page.pageErrors, []);
  await page.context().close();
});

test('resume: stop after a reload cancels the running answer on the server', async () => {
  const page = await stack.open();
  await sendMessage(page, 'Stop me after the reload');
  await waitForText(page, 20);
  const sessionId = await sessionOf(page);
  await page.reload();
  await page.locator('.msg-assistant[data-state="streaming"]').waitFor({ timeout: 5000 * SLOW });
  await waitForText(page, 30);
  await page.locator('#send').click();
  await waitAnswerState(page, 'stopped', 3000);
  const atStop = await answerText(page);
  const conv = await storedWhenIdle(sessionId);
  assert.deepEqual(conv.messages.map((m) => [m.role, m.status]), [['user', 'complete'], ['assistant', 'cancelled']]);
  assert.ok(ANSWER_TEXT.startsWith(conv.messages[1].content) && conv.messages[1].content.length >= atStop.length,
    `stored ${JSON.stringify(conv.messages[1].content)}, shown ${JSON.stringify(atStop)}`);
  await sleep(500);
  assert.equal(await answerText(page), atStop, 'no text after the stop');
  await page.context().close();
});

test('resume: a message to a conversation still answering (409) follows the running answer and keeps the message', async () => {
  const first = await stack.open();
  await sendMessage(first, 'Start a conversation');
  await waitAnswerState(first, 'done', 30000);
  const sessionId = await sessionOf(first);
  // A second tab of the same browser (same localStorage): the same conversation, idle for now.
  const second = await first.context().newPage();
  second.pageErrors = [];
  second.on('pageerror', (e) => second.pageErrors.push(String(e)));
  await second.goto(stack.nginx.url);
  await second.locator('.msg-assistant[data-state="done"]').waitFor();

  await sendMessage(first, 'A long answer, please');
  await waitForText(first, 20, 1);
  await sendMessage(second, 'Meanwhile, in the other tab');
  await second.locator('.msg-assistant[data-state="streaming"]').waitFor({ timeout: 5000 * SLOW });
  // The page renders the conversation as stored, then follows its running answer: wait for the
  // render (it may land a moment after the streaming answer appears).
  const expectedUsers = ['Start a conversation', 'A long answer, please'];
  let shownUsers = [];
  for (const deadline = Date.now() + 5000 * SLOW; Date.now() < deadline; await sleep(50)) {
    shownUsers = await second.locator('.msg-user .text').allTextContents();
    if (JSON.stringify(shownUsers) === JSON.stringify(expectedUsers)) break;
  }
  assert.deepEqual(shownUsers, expectedUsers, 'the conversation as stored: the refused message is not shown as sent');
  assert.equal(await second.locator('#input').inputValue(), 'Meanwhile, in the other tab', 'the refused message is back in the box');
  assert.match(await second.locator('#status-text').textContent(), /still answering/);
  assert.equal(await second.locator('#error').isHidden(), true, 'not an error');
  await second.screenshot({ path: screenshotPath('resume-busy-conversation') });

  await waitAnswerState(second, 'done', 30000);
  assert.equal(await answerText(second), ANSWER_TEXT);
  await waitAnswerState(first, 'done', 30000);
  assert.equal(await second.locator('#status').isHidden(), true);
  const conv = await storedWhenIdle(sessionId);
  assert.deepEqual(conv.messages.filter((m) => m.role === 'user').map((m) => m.content), ['Start a conversation', 'A long answer, please']);

  // Now it can be sent.
  await second.locator('#input').press('Enter');
  await waitAnswerState(second, 'done', 30000);
  assert.deepEqual((await stored(sessionId)).messages.filter((m) => m.role === 'user').map((m) => m.content),
    ['Start a conversation', 'A long answer, please', 'Meanwhile, in the other tab']);
  assert.deepEqual([...first.pageErrors, ...second.pageErrors], []);
  await first.context().close();
});

// The client read further than the last checkpoint (it was reading live): the resume still ends with
// the run's `error` worker_lost event, numbered right after that checkpoint.
test('resume: a worker killed mid-answer: the resumed run ends as worker_lost, shown with a retry that works', async () => {
  const page = await stack.open();
  const streams = captureStreams(page);
  await sendMessage(page, 'Lose the worker');
  // Past the first checkpoint (--checkpoint-interval 2s): ~2.8 s of answer at 12 words/s, ~2 s before its end.
  await waitForText(page, 220);
  const workers = stack.server.workerPids();
  assert.equal(workers.length, 1, `one worker expected, got ${workers}`);
  process.kill(workers[0], 'SIGKILL');

  await waitAnswerState(page, 'error', 30000);
  assert.equal(await page.locator('#error').isVisible(), true);
  const shown = await answerText(page);
  assert.ok(ANSWER_TEXT.startsWith(shown), `no text repeated: ${JSON.stringify(shown)}`);
  assert.ok(streams.some((r) => r.method === 'GET'), 'the run was resumed');
  assert.equal(streams.filter((r) => r.method === 'POST').length, 1, 'not sent again automatically');
  const conv = await storedWhenIdle(await sessionOf(page));
  assert.deepEqual(conv.messages.map((m) => [m.role, m.status]), [['user', 'complete'], ['assistant', 'error']]);
  assert.ok(shown.startsWith(conv.messages[1].content), 'the stored text is the last checkpoint, at most what was shown');
  await page.screenshot({ path: screenshotPath('resume-worker-lost') });

  await page.locator('#retry').click();
  await waitAnswerState(page, 'done', 30000);
  assert.equal(await answerText(page), ANSWER_TEXT);
  assert.deepEqual(page.pageErrors, []);
  await page.context().close();
});
