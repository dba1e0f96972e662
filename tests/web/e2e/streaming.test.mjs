// The answer appears progressively; stages, citations and tool calls; keyboard; phone width.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startStack, sendMessage, answerText, lastAnswer, waitAnswerState, screenshotPath, sleep,
  recordStages, stageHistory, captureChatRequests, ANSWER_TEXT, SLOW,
} from './harness.mjs';

let stack;
before(async () => {
  // 20 words/s: a ~3 s answer, still growing 0.8 s after its first word; the first word after 1.5 s,
  // so the stage indicator can be seen.
  stack = await startStack({ rate: 20, extra: ['--scripted-first-token-delay', '1500ms'] });
});
after(async () => {
  await stack?.stop();
});

test('the answer grows progressively, Enter sends, Shift+Enter adds a line, nothing is logged', async () => {
  const page = await stack.open();
  const requests = captureChatRequests(page);
  await recordStages(page);

  // Shift+Enter is a new line, Enter sends.
  const input = page.locator('#input');
  await input.click();
  await page.keyboard.type('What is');
  await page.keyboard.press('Shift+Enter');
  await page.keyboard.type('streaming?');
  assert.equal(await input.inputValue(), 'What is\nstreaming?');
  assert.equal(await page.locator('.msg-user').count(), 0, 'Shift+Enter must not send');
  await page.keyboard.press('Enter');

  await page.locator('.msg-user').first().waitFor();
  assert.equal(await page.locator('.msg-user .text').first().textContent(), 'What is\nstreaming?');
  assert.equal(await input.inputValue(), '');
  assert.deepEqual(requests[0].body, { message: 'What is\nstreaming?' });

  // While the run is in progress: a stop button, the input disabled, a stage shown.
  const send = page.locator('#send');
  await page.waitForFunction(() => document.querySelector('#send').dataset.mode === 'stop');
  assert.equal(await send.getAttribute('aria-label'), 'Stop generating');
  assert.equal(await input.isDisabled(), true);
  await lastAnswer(page).locator('.stage[data-stage="generating"]').waitFor({ timeout: 5000 * SLOW });
  assert.equal(await lastAnswer(page).locator('.stage-label').textContent(), 'Generating response…');
  await page.screenshot({ path: screenshotPath('stage-generating') });

  // Progressive: two moments of one answer, the second longer and starting with the first.
  await page.waitForFunction(() => (document.querySelector('.msg-assistant .answer')?.textContent.length ?? 0) > 0,
    null, { timeout: 10000 * SLOW });
  const first = await answerText(page);
  await sleep(800);
  const second = await answerText(page);
  assert.ok(first.length > 0 && first.length < ANSWER_TEXT.length, `first moment: ${JSON.stringify(first)}`);
  assert.ok(second.length > first.length, `text did not grow: ${JSON.stringify(first)} → ${JSON.stringify(second)}`);
  assert.ok(second.startsWith(first));
  assert.ok(ANSWER_TEXT.startsWith(second));
  assert.equal(await lastAnswer(page).locator('.answer').getAttribute('aria-live'), 'polite');
  // once text flows, the stage indicator gives way to it
  assert.equal(await lastAnswer(page).locator('.stage').getAttribute('data-stage'), '');
  await sleep(700);
  await page.screenshot({ path: screenshotPath('streaming') });

  await waitAnswerState(page, 'done');
  assert.equal(await answerText(page), ANSWER_TEXT);
  assert.equal(await send.getAttribute('data-mode'), 'send');
  assert.equal(await send.getAttribute('aria-label'), 'Send message');
  assert.equal(await input.isDisabled(), false);
  assert.ok(await input.evaluate((n) => n === document.activeElement), 'focus returns to the input');
  assert.deepEqual(await stageHistory(page), ['connecting', 'generating']);

  // The session id announced in meta is kept and sent back with the next message.
  const sessionId = await page.evaluate(() => localStorage.getItem('chatstream.session_id'));
  assert.match(sessionId, /^[0-9a-f-]{36}$/);
  await sendMessage(page, 'and again');
  await waitAnswerState(page, 'done');
  assert.deepEqual(requests[1].body, { message: 'and again', session_id: sessionId });

  assert.deepEqual(page.consoleMessages, [], 'nothing is logged without DEBUG_STREAMING');
  assert.deepEqual(page.pageErrors, []);
  await page.context().close();
});

test('debug logging when localStorage.DEBUG_STREAMING is "true"', async () => {
  const page = await stack.open({ debug: true });
  await sendMessage(page, 'log please');
  await waitAnswerState(page, 'done');
  const lines = page.consoleMessages.filter((m) => m.text.startsWith('[chatstream]'));
  assert.ok(lines.some((m) => m.text.includes('event meta')), JSON.stringify(lines.slice(0, 5)));
  assert.ok(lines.some((m) => m.text.includes('event token')));
  assert.ok(lines.some((m) => m.text.includes('event done')));
  await page.context().close();
});

test('phone width (360 px, dark): no horizontal scrolling, the answer streams', async () => {
  const page = await stack.open({ viewport: { width: 360, height: 740 }, colorScheme: 'dark' });
  await page.screenshot({ path: screenshotPath('empty-phone-dark') });
  await sendMessage(page, 'Does it fit on a phone?');
  await page.waitForFunction(() => (document.querySelector('.msg-assistant .answer')?.textContent.length ?? 0) > 60,
    null, { timeout: 15000 * SLOW });
  await page.screenshot({ path: screenshotPath('streaming-phone-dark') });
  const widths = await page.evaluate(() => ({ doc: document.documentElement.scrollWidth, scroller: document.getElementById('scroller').scrollWidth }));
  assert.ok(widths.doc <= 360 && widths.scroller <= 360, `content wider than the screen: ${JSON.stringify(widths)}`);
  const box = await page.locator('#send').boundingBox();
  assert.ok(box.x + box.width <= 360 && box.width >= 36, `send/stop button must fit and stay tappable: ${JSON.stringify(box)}`);
  await waitAnswerState(page, 'done');
  await page.context().close();
});

test('keyboard: suggestions are reachable with Tab, Escape stops, every control is labelled', async () => {
  const page = await stack.open();
  const names = await page.evaluate(() => [...document.querySelectorAll('button, textarea')].map((n) => {
    const label = n.getAttribute('aria-label') || (n.id && document.querySelector(`label[for="${n.id}"]`)?.textContent) || n.textContent;
    return label.trim();
  }));
  assert.ok(names.every(Boolean), `unlabelled control: ${JSON.stringify(names)}`);
  // The page opens with the focus in the message box; Shift+Tab goes back to the last suggestion.
  assert.ok(await page.locator('#input').evaluate((n) => n === document.activeElement));
  await page.keyboard.press('Shift+Tab');
  const focused = await page.evaluate(() => document.activeElement.textContent);
  assert.equal(focused, 'What happens when I press stop?');
  await page.keyboard.press('Enter');
  await lastAnswer(page).waitFor();
  assert.equal(await page.locator('.msg-user .text').textContent(), 'What happens when I press stop?');
  await page.waitForFunction(() => document.querySelector('#send').dataset.mode === 'stop');
  await page.keyboard.press('Escape');
  await waitAnswerState(page, 'stopped', 5000);
  await page.context().close();
});

/**
 * A full protocol stream (retrieval, reranking, citations, a tool call, tokens carrying markup)
 * played by a fetch stand-in inside the page with realistic pauses: the chatstream server only
 * runs the generation stage until the knowledge base exists.
 */
function fakeRichStream() {
  const ev = (i, type, obj) => `id: r:${i}\nevent: ${type}\ndata: ${JSON.stringify({ type, ...obj })}\n\n`;
  const citations = [
    { index: 1, title: 'Server-sent events', source: 'https://html.spec.whatwg.org/multipage/server-sent-events.html', snippet: 'The EventSource interface is used to receive server-sent events over HTTP.' },
    { index: 2, title: 'nginx proxy_buffering', source: 'javascript:alert(1)', snippet: 'When buffering is disabled, the response is passed to a client synchronously, immediately as it is received.' },
  ];
  const tokens = ['Streams ', 'stay ', 'open ', '[1]. ', 'Markup ', 'is ', 'text: ', '<img src=x onerror="window.__xss=1">', ' <b>bold?</b> ', 'done.'];
  const steps = [
    [50, 'retry: 3000\n\n' + ev(0, 'meta', { run_id: 'r', session_id: '11111111-2222-4333-8444-555555555555', heartbeat_ms: 15000 })],
    [150, ev(1, 'retrieval_start', { query: 'streams' })],
    [700, ev(2, 'retrieval_complete', { count: 12, ms: 8.5 })],
    [150, ev(3, 'reranking_start', { count: 12 })],
    [700, ev(4, 'reranking_complete', { kept: 2, ms: 31 })],
    [50, ev(5, 'citations', { citations })],
    [100, ev(6, 'generation_start', { provider: 'scripted' })],
    [400, ev(7, 'tool_call', { id: 'call_1', name: 'search_docs', arguments: { query: 'proxy_buffering', limit: 3 } })],
    [500, ev(8, 'tool_result', { id: 'call_1', name: 'search_docs', content: 'proxy_buffering off: pass every read at once', truncated: false })],
    ...tokens.map((t, i) => [120, ev(9 + i, 'token', { content: t })]),
    [50, ev(30, 'done', { status: 'complete', tokens: tokens.length, ttft_ms: 2000, duration_ms: 3500 })],
  ];
  return { steps, answer: tokens.join('') };
}

test('stages appear in order, citations and tool calls are shown, markup stays text', async () => {
  const page = await stack.open();
  const { steps, answer } = fakeRichStream();
  await page.evaluate((steps) => {
    const realFetch = window.fetch;
    window.fetch = async (input, init) => {
      const url = typeof input === 'string' ? input : input.url;
      if (!url.endsWith('/chat/stream')) return realFetch(input, init);
      const enc = new TextEncoder();
      const body = new ReadableStream({
        async start(c) {
          for (const [ms, text] of steps) {
            await new Promise((r) => setTimeout(r, ms));
            c.enqueue(enc.encode(text));
          }
          c.close();
        },
      });
      return new Response(body, { status: 200, headers: { 'Content-Type': 'text/event-stream; charset=utf-8' } });
    };
  }, steps);
  await recordStages(page);
  await sendMessage(page, 'How do streams stay open?');

  await lastAnswer(page).locator('.stage[data-stage="retrieval"]').waitFor();
  assert.equal(await lastAnswer(page).locator('.stage-label').textContent(), 'Searching the knowledge base…');
  await lastAnswer(page).locator('.stage[data-stage="reranking"]').waitFor();
  assert.equal(await lastAnswer(page).locator('.stage-label').textContent(), 'Reranking results…');
  await page.screenshot({ path: screenshotPath('stage-reranking') });
  await lastAnswer(page).locator('.tool[data-state="running"]').waitFor();
  assert.equal(await lastAnswer(page).locator('.stage-label').textContent(), 'Generating response…');
  assert.equal(await lastAnswer(page).locator('.tool-name').textContent(), 'search_docs');
  await page.screenshot({ path: screenshotPath('tool-call') });
  await waitAnswerState(page, 'done');
  await page.screenshot({ path: screenshotPath('rich-answer') });
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.screenshot({ path: screenshotPath('rich-answer-dark') });

  assert.deepEqual(await stageHistory(page), ['connecting', 'retrieval', 'reranking', 'generating']);
  assert.equal(await answerText(page), answer);
  assert.equal(await lastAnswer(page).locator('.answer img, .answer b').count(), 0, 'server text must never become HTML');
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  assert.equal(await lastAnswer(page).locator('.tool[data-state="done"] .tool-result').textContent(), 'proxy_buffering off: pass every read at once');
  const cites = lastAnswer(page).locator('.citation');
  assert.equal(await cites.count(), 2);
  assert.equal(await cites.nth(0).locator('a').getAttribute('href'), 'https://html.spec.whatwg.org/multipage/server-sent-events.html');
  assert.equal(await cites.nth(1).locator('a').count(), 0, 'a javascript: source is not a link');
  assert.deepEqual(page.pageErrors, []);
  await page.context().close();
});
