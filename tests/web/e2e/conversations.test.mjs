// The conversation list and sign-in on the page (issue 11), through the real nginx and a worker with
// sign-in on (HS256, tokens made here) and PostgreSQL: the token handed over as #token=… (then gone
// from the address bar), list newest first, switch, rename, delete, another user's conversations
// never shown, the phone menu, and the signed-out state after a 401.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import {
  startStack, sendMessage, waitAnswerState, screenshotPath, waitUntil,
} from './harness.mjs';

const SECRET = `web-e2e-${crypto.randomBytes(12).toString('hex')}-secret`;
const b64 = (data) => Buffer.from(data).toString('base64url');

function jwt(sub, { exp = Math.floor(Date.now() / 1000) + 600 } = {}) {
  const head = b64(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64(JSON.stringify({ sub, exp }));
  const sig = crypto.createHmac('sha256', SECRET).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

let stack;
before(async () => {
  stack = await startStack({ rate: 200, database: true, extra: ['--jwt-secret', SECRET] });
});
after(async () => {
  await stack?.stop();
});

/** A page signed in with `token` handed over the way a site would: #token=… in the address. */
async function openSignedIn(token, { viewport = { width: 1100, height: 820 } } = {}) {
  const context = await stack.browser.newContext({ viewport, colorScheme: 'light', reducedMotion: 'reduce' });
  const page = await context.newPage();
  page.pageErrors = [];
  page.on('pageerror', (e) => page.pageErrors.push(String(e)));
  await page.goto(`${stack.nginx.url}${token ? `#token=${token}` : ''}`);
  await page.waitForSelector('#input:not([disabled])');
  return page;
}

async function api(method, path, token, body) {
  const res = await fetch(`${stack.nginx.url}${path.replace(/^\//, '')}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, body: await res.json().catch(() => null) };
}

const titles = (page) => page.locator('#conversation-list .conv-title').allTextContents();

test('list, switch, rename and delete conversations; another user sees none of them', async () => {
  const alice = jwt(`alice-${crypto.randomUUID()}`);
  const bob = jwt(`bob-${crypto.randomUUID()}`);
  const bobs = await api('POST', '/chat', bob, { message: "Bob's private question" });
  assert.equal(bobs.status, 200);

  const page = await openSignedIn(alice);
  assert.ok(!page.url().includes('token'), `the token left the address bar: ${page.url()}`);
  assert.equal(await page.evaluate(() => sessionStorage.getItem('chatstream.token')), alice);

  await sendMessage(page, 'First question');
  await waitAnswerState(page, 'done');
  const first = await page.evaluate(() => localStorage.getItem('chatstream.session_id'));
  await page.locator('#new-chat').click();
  await sendMessage(page, 'Second question');
  await waitAnswerState(page, 'done');
  await waitUntil(async () => (await titles(page)).length === 2, { what: 'two conversations listed' });
  assert.deepEqual(await titles(page), ['Second question', 'First question'], 'newest first');
  assert.equal(await page.locator('.conv-open[aria-current="true"] .conv-title').textContent(), 'Second question');
  await page.screenshot({ path: screenshotPath('conversations-list') });

  // Switch to the first conversation.
  await page.locator('.conv-open', { hasText: 'First question' }).click();
  await page.locator('.msg-user .text', { hasText: 'First question' }).waitFor();
  assert.deepEqual(await page.locator('.msg-user .text').allTextContents(), ['First question']);
  assert.equal(await page.evaluate(() => localStorage.getItem('chatstream.session_id')), first);

  // Rename it inline.
  await page.locator('.conv', { hasText: 'First question' }).locator('.conv-rename').click();
  await page.locator('.conv-input').fill('Renamed by Alice');
  await page.locator('.conv-input').press('Enter');
  await waitUntil(async () => (await titles(page)).includes('Renamed by Alice'), { what: 'the new name listed' });
  const listed = await api('GET', '/sessions', alice);
  assert.deepEqual(listed.body.sessions.map((c) => c.title), ['Second question', 'Renamed by Alice']);

  // Delete the open one (after the confirmation): the page starts a new chat.
  page.once('dialog', (dialog) => dialog.accept());
  await page.locator('.conv', { hasText: 'Renamed by Alice' }).locator('.conv-delete').click();
  await waitUntil(async () => (await titles(page)).length === 1, { what: 'one conversation left' });
  assert.deepEqual(await titles(page), ['Second question']);
  assert.equal(await page.locator('.msg').count(), 0, 'the deleted conversation is gone from the page');
  assert.equal((await api('GET', `/sessions/${first}/messages`, alice)).status, 404);

  // Bob's conversation never appeared; his own list has only it.
  assert.ok(!(await titles(page)).includes("Bob's private question"));
  assert.deepEqual((await api('GET', '/sessions', bob)).body.sessions.map((c) => c.title), ["Bob's private question"]);
  assert.deepEqual(page.pageErrors, []);
  await page.context().close();
});

test('on a phone the list is a menu', async () => {
  const carol = jwt(`carol-${crypto.randomUUID()}`);
  await api('POST', '/chat', carol, { message: 'A question from the phone' });
  const page = await openSignedIn(carol, { viewport: { width: 390, height: 780 } });
  assert.equal(await page.locator('#conversations').isVisible(), false, 'the list is folded away');
  await page.locator('#menu').click();
  await page.locator('.conv-open', { hasText: 'A question from the phone' }).waitFor({ state: 'visible' });
  assert.equal(await page.locator('#menu').getAttribute('aria-expanded'), 'true');
  await page.screenshot({ path: screenshotPath('conversations-phone-menu') });
  await page.locator('.conv-open', { hasText: 'A question from the phone' }).click();
  await page.locator('.msg-user .text', { hasText: 'A question from the phone' }).waitFor();
  await waitUntil(async () => !(await page.locator('#conversations').isVisible()), { what: 'the menu closed' });
  await page.context().close();
});

test('without a valid token the page shows a signed-out state, and a new token signs it in', async () => {
  const expired = jwt('dave', { exp: Math.floor(Date.now() / 1000) - 3600 });
  const page = await openSignedIn(expired);
  await page.locator('#signed-out').waitFor({ state: 'visible' });
  assert.match(await page.locator('#conversation-note').textContent(), /Signed out/);
  await sendMessage(page, 'Am I in?');
  await waitAnswerState(page, 'error');
  assert.equal(await page.locator('#signed-out').isVisible(), true);
  await page.screenshot({ path: screenshotPath('signed-out') });

  const dave = jwt(`dave-${crypto.randomUUID()}`);
  await api('POST', '/chat', dave, { message: 'Dave asked earlier' });
  await page.evaluate((t) => window.chatstreamAuth.setToken(t), dave);
  await page.locator('#signed-out').waitFor({ state: 'hidden' });
  await waitUntil(async () => (await titles(page)).includes('Dave asked earlier'), { what: 'the list after signing in' });
  await sendMessage(page, 'Now I am in');
  await waitAnswerState(page, 'done');
  await page.context().close();
});
