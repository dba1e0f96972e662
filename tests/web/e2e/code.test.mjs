// Answers quoting code (the extractive answerer's "```" blocks) show it as code; sources that are
// URLs are links, file paths on the server are not.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, sendMessage, lastAnswer, waitAnswerState, screenshotPath } from './harness.mjs';

let stack;
before(async () => {
  stack = await startStack({ rate: 10 });
});
after(async () => {
  await stack?.stop();
});

/** An answer as the extractive provider streams it, one word a token, a fence split across two. */
function codeStream() {
  const ev = (i, type, obj) => `id: r:${i}\nevent: ${type}\ndata: ${JSON.stringify({ type, ...obj })}\n\n`;
  const citations = [
    { index: 1, title: '11.8. Partial Indexes', source: 'https://www.postgresql.org/docs/15/indexes-partial.html#INDEXES-PARTIAL', snippet: 'A partial index is an index built over a subset of a table.' },
    { index: 2, title: 'CREATE INDEX', source: '/usr/share/doc/postgresql-doc-15/html/sql-createindex.html', snippet: 'CREATE INDEX constructs an index.' },
  ];
  const tokens = ['To ', 'create ', 'a ', 'partial ', 'index, ', 'use ', 'a ', 'command ', 'such ', 'as ', 'this: ', '[1]\n\n',
    '``', '`\n', 'CREATE ', 'INDEX ', 'orders_unbilled_index ', 'ON ', 'orders ', '(order_nr)\n    ', 'WHERE ', 'billed ', 'is ',
    'not ', 'true;\n', '```\n\n', 'See ', 'also ', 'CREATE ', 'INDEX. ', '[2]'];
  const steps = [
    [20, 'retry: 3000\n\n' + ev(0, 'meta', { run_id: 'r', session_id: '11111111-2222-4333-8444-555555555555', heartbeat_ms: 15000 })],
    [20, ev(1, 'citations', { citations })],
    [20, ev(2, 'generation_start', { provider: 'extractive' })],
    ...tokens.map((t, i) => [30, ev(3 + i, 'token', { content: t })]),
    [20, ev(60, 'done', { status: 'complete', tokens: tokens.length, ttft_ms: 2, duration_ms: 900 })],
  ];
  return steps;
}

test('a fenced code block in the answer is shown as code, whole, the fences hidden', async () => {
  const page = await stack.open();
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
  }, codeStream());
  await sendMessage(page, 'How do I create a partial index?');
  await waitAnswerState(page, 'done');
  await page.screenshot({ path: screenshotPath('code-answer') });

  const answer = lastAnswer(page).locator('.answer');
  const code = answer.locator('pre.answer-code code');
  assert.equal(await code.count(), 1);
  assert.equal(await code.textContent(),
    'CREATE INDEX orders_unbilled_index ON orders (order_nr)\n    WHERE billed is not true;\n');
  const text = await answer.textContent();
  assert.ok(!text.includes('```'), `fences must not show: ${JSON.stringify(text)}`);
  assert.ok(text.startsWith('To create a partial index, use a command such as this: [1]\n\n'), text);
  assert.ok(text.endsWith('See also CREATE INDEX. [2]'), text);

  const cites = lastAnswer(page).locator('.citation');
  assert.equal(await cites.count(), 2);
  assert.equal(await cites.nth(0).locator('a').getAttribute('href'),
    'https://www.postgresql.org/docs/15/indexes-partial.html#INDEXES-PARTIAL');
  assert.equal(await cites.nth(1).locator('a').count(), 0, 'a path on the server is not a link');
  assert.deepEqual(page.pageErrors, []);
  await page.context().close();
});
