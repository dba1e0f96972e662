// Shared machinery of the browser end-to-end tests (node --test + playwright-core).
//
// Every test file starts the REAL chatstream binary and the REAL nginx (the config rendered by
// scripts/render-nginx.sh, serving web/) on free loopback ports, drives Debian's chromium headless
// through them, and stops everything at the end, also when a test fails (each process runs in its
// own process group; the whole group is killed).
//
//   CHATSTREAM_BIN     the server binary (default <source>/build/chatstream)
//   CHATSTREAM_NGINX   nginx (default /usr/sbin/nginx)
//   CHROMIUM           the browser (default /usr/bin/chromium)
//   CHATSTREAM_E2E_SLOW  multiplies the generous waits (sanitizer builds, a busy machine)
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const SOURCE_DIR = process.env.CHATSTREAM_SOURCE_DIR || path.resolve(HERE, '../../..');
export const BIN = process.env.CHATSTREAM_BIN || path.join(SOURCE_DIR, 'build', 'chatstream');
export const NGINX = process.env.CHATSTREAM_NGINX || '/usr/sbin/nginx';
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const WEB_ROOT = path.join(SOURCE_DIR, 'web');
export const ARTIFACTS = path.join(SOURCE_DIR, 'tests', 'artifacts', 'web');
export const SLOW = Number(process.env.CHATSTREAM_E2E_SLOW || '1');

/** The scripted provider streams this text word by word (one token per word). */
export const ANSWER_TEXT =
  'Server-Sent Events keep one HTTP response open and write each piece of the answer the moment it '
  + 'exists, so the words appear while the model is still thinking. A heartbeat comment keeps idle '
  + 'proxies from closing the connection, and a stop button cancels the run on the server instead of '
  + 'merely hiding it. Unicode travels too: café, naïve, 日本語, emoji 🚀.';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const children = new Set();
function killGroup(child, signal) {
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}
process.on('exit', () => {
  for (const c of children) killGroup(c, 'SIGKILL');
});

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export async function waitUntil(fn, { timeout = 10000, interval = 50, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout * SLOW;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${last})`);
    await sleep(interval);
  }
}

async function httpOk(url) {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

function startProcess(argv, logFile) {
  const log = fs.openSync(logFile, 'a');
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', log, log], detached: true });
  fs.closeSync(log);
  children.add(child);
  child.exitPromise = new Promise((resolve) => child.on('exit', (code, sig) => {
    children.delete(child);
    resolve(code ?? sig);
  }));
  return child;
}

async function stopProcess(child, timeoutMs = 5000) {
  if (!child || !children.has(child)) return;
  killGroup(child, 'SIGTERM');
  const done = await Promise.race([child.exitPromise.then(() => true), sleep(timeoutMs).then(() => false)]);
  if (!done) {
    killGroup(child, 'SIGKILL');
    await child.exitPromise;
  }
}

export function tmpDir(prefix) {
  return fs.mkdtempSync(path.join(os.tmpdir(), `chatstream-web-${prefix}-`));
}

/**
 * A private PostgreSQL cluster (scripts/pg.sh, durability off) with chatstream's schema: for the
 * tests that need stored conversations (reload shows the history).
 */
export class Postgres {
  constructor() {
    this.dir = tmpDir('pg');
  }

  async start() {
    const port = await freePort();
    const env = { ...process.env, PG_FAST: '1' };
    this.url = execFileSync('bash', [path.join(SOURCE_DIR, 'scripts', 'pg.sh'), 'start', this.dir, String(port)],
      { encoding: 'utf8', env }).trim().split('\n').pop();
    execFileSync(BIN, ['migrate', '--database-url', this.url], { encoding: 'utf8' });
    return this;
  }

  stop() {
    try {
      execFileSync('bash', [path.join(SOURCE_DIR, 'scripts', 'pg.sh'), 'stop', this.dir]);
    } catch {
      // already stopped
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** One `chatstream serve` master (with --workers 1) on a loopback port. */
export class Server {
  constructor({ port, text = ANSWER_TEXT, rate = 10, heartbeat = '1s', extra = [], databaseUrl } = {}) {
    this.databaseUrl = databaseUrl;
    this.port = port;
    this.text = text;
    this.rate = rate;
    this.heartbeat = heartbeat;
    this.extra = extra;
    this.dir = tmpDir('server');
    this.log = path.join(this.dir, 'chatstream.log');
  }

  get argv() {
    return [BIN, 'serve', '--listen', `127.0.0.1:${this.port}`, '--workers', '1', '--provider', 'scripted',
      '--scripted-text', this.text, '--scripted-rate', String(this.rate), '--heartbeat', this.heartbeat,
      '--drain-timeout', '1s', ...(this.databaseUrl ? ['--database-url', this.databaseUrl] : []), ...this.extra];
  }

  async start() {
    this.port ??= await freePort();
    if (!fs.existsSync(BIN)) throw new Error(`chatstream binary not found: ${BIN} (build it, or set CHATSTREAM_BIN)`);
    this.proc = startProcess(this.argv, this.log);
    await waitUntil(() => httpOk(`http://127.0.0.1:${this.port}/healthz`), { timeout: 15000, what: `chatstream on ${this.port}\n${this.logTail()}` });
    return this;
  }

  async stop() {
    await stopProcess(this.proc, 5000);
    this.proc = null;
  }

  logTail(n = 20) {
    try {
      return fs.readFileSync(this.log, 'utf8').split('\n').slice(-n).join('\n');
    } catch {
      return '';
    }
  }

  workerPids() {
    try {
      return execFileSync('pgrep', ['-P', String(this.proc.pid)], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
    } catch {
      return [];
    }
  }

  async metrics() {
    const res = await fetch(`http://127.0.0.1:${this.port}/metrics`);
    return parseMetrics(await res.text());
  }
}

/** Prometheus text → { value(name, labels) }. */
export function parseMetrics(text) {
  const samples = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = line.match(/^([a-zA-Z_:][\w:]*)(\{([^}]*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    for (const lm of (m[3] || '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[lm[1]] = lm[2];
    samples.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return {
    samples,
    value(name, want = {}) {
      let sum = 0;
      for (const s of samples) {
        if (s.name === name && Object.entries(want).every(([k, v]) => s.labels[k] === v)) sum += s.value;
      }
      return sum;
    },
  };
}

/** nginx with the project's rendered config, in front of `upstream`, serving web/. */
export class Nginx {
  constructor({ upstream, port } = {}) {
    this.upstream = upstream;
    this.port = port;
    this.dir = tmpDir('nginx');
  }

  async start() {
    this.port ??= await freePort();
    execFileSync('bash', [path.join(SOURCE_DIR, 'scripts', 'render-nginx.sh'), '--out', this.dir, '--port', String(this.port),
      '--web-root', WEB_ROOT, '--upstream', this.upstream], { stdio: ['ignore', 'ignore', 'inherit'] });
    this.proc = startProcess([NGINX, '-p', `${this.dir}/`, '-c', path.join(this.dir, 'nginx.conf'), '-e', path.join(this.dir, 'error.log')],
      path.join(this.dir, 'stdout.log'));
    await waitUntil(() => httpOk(`http://127.0.0.1:${this.port}/`), { timeout: 10000, what: `nginx on ${this.port}` });
    return this;
  }

  get url() {
    return `http://127.0.0.1:${this.port}/`;
  }

  async stop() {
    await stopProcess(this.proc, 5000);
    this.proc = null;
  }
}

/** Debian's chromium, headless, with a fresh profile; flags that keep it off the network. */
export async function launchBrowser() {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: apt-get install -y chromium (tests/web/run.sh does it)`);
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
}

/**
 * Everything one test file needs: a server, nginx in front of it, a browser. `open()` gives a page
 * in a fresh context (fresh localStorage) with console output and page errors collected.
 */
export async function startStack(serverOptions = {}) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const { database, ...options } = serverOptions;
  const postgres = database ? await new Postgres().start() : null;
  if (postgres) options.databaseUrl = postgres.url;
  const server = await new Server(options).start();
  const nginx = await new Nginx({ upstream: `127.0.0.1:${server.port}` }).start();
  let browser = await launchBrowser();
  // Chromium itself crashed once on a loaded CI machine (sanitizer builds of the server, every
  // browser test after it in the file failed with "Target ... closed"). A crash of the browser is
  // not a finding about chatstream: it is logged and the next page gets a new browser.
  const relaunchIfGone = async () => {
    if (browser.isConnected()) return;
    console.error('# chromium disconnected (crashed?): launching a new browser for the next page');
    browser = await launchBrowser();
  };
  const stack = {
    server,
    nginx,
    get browser() {
      return browser;
    },
    // url: the page's address (default nginx's; e.g. a proxy in front of it).
    async open(options = {}) {
      try {
        return await this.openOnce(options);
      } catch (err) {
        if (browser.isConnected()) throw err;
        await relaunchIfGone(); // the browser died while the page opened: once more, in a new one
        return this.openOnce(options);
      }
    },
    // clock: the page's timers (setTimeout, Date, …) run on Playwright's fake clock, installed before
    // the page loads; time flows as usual until a test pauses it (pauseClock) and steps it.
    async openOnce({ viewport = { width: 1100, height: 820 }, colorScheme = 'light', debug = false, url = nginx.url, clock = false } = {}) {
      await relaunchIfGone();
      // Reduced motion: the page's endless animations (typing dots, stage shimmer, caret) stop, as
      // style.css does for users who ask for it; seven headless browsers at once otherwise spend a
      // core on repainting them, which slows every test beside them. Nothing here times an animation.
      const context = await browser.newContext({ viewport, colorScheme, reducedMotion: 'reduce' });
      if (debug) await context.addInitScript(() => localStorage.setItem('DEBUG_STREAMING', 'true'));
      if (clock) await context.clock.install();
      const page = await context.newPage();
      page.consoleMessages = [];
      page.pageErrors = [];
      page.on('console', (m) => page.consoleMessages.push({ type: m.type(), text: m.text() }));
      page.on('pageerror', (e) => page.pageErrors.push(String(e)));
      await page.goto(url);
      await page.waitForSelector('#input:not([disabled])');
      return page;
    },
    async replaceServer(options) {
      await server.stop();
      Object.assign(server, options);
      await server.start();
    },
    async stop() {
      await browser.close().catch(() => {});
      await nginx.stop();
      await server.stop();
      postgres?.stop();
      // Logs stay for a look when CHATSTREAM_E2E_KEEP=1.
      if (process.env.CHATSTREAM_E2E_KEEP !== '1') {
        for (const dir of [nginx.dir, server.dir]) fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  };
  return stack;
}

export function screenshotPath(name) {
  return path.join(ARTIFACTS, `${name}.png`);
}

// --- page helpers -----------------------------------------------------------------------------

export async function sendMessage(page, text) {
  await page.locator('#input').fill(text);
  await page.locator('#input').press('Enter');
}

export const lastAnswer = (page) => page.locator('.msg-assistant').last();

export async function answerText(page) {
  return lastAnswer(page).locator('.answer').evaluate((n) => n.textContent);
}

export async function waitAnswerState(page, state, timeout = 20000) {
  try {
    await lastAnswer(page).and(page.locator(`[data-state="${state}"]`)).waitFor({ timeout: timeout * SLOW });
  } catch (err) {
    // What the page showed instead: the answer's state and text, the status and error lines.
    const shown = await page.evaluate(() => {
      const answers = document.querySelectorAll('.msg-assistant');
      const last = answers[answers.length - 1];
      return {
        answers: answers.length,
        state: last?.dataset.state,
        text: last?.querySelector('.answer')?.textContent.slice(-120),
        status: document.querySelector('#status')?.hidden ? null : document.querySelector('#status-text')?.textContent,
        error: document.querySelector('#error')?.hidden ? null : document.querySelector('#error-text')?.textContent,
      };
    }).catch((e) => String(e));
    err.message += `\n  waiting for the answer to be ${state}; the page shows ${JSON.stringify(shown)}`;
    throw err;
  }
}

/**
 * Record every value the stage indicators take (a MutationObserver with old values sees each
 * change, even several within one task). stageHistory() returns them in order, without blanks.
 */
export async function recordStages(page) {
  await page.evaluate(() => {
    window.__stageRecords = [];
    const observer = new MutationObserver((records) => {
      for (const r of records) window.__stageRecords.push({ target: r.target, old: r.oldValue });
    });
    observer.observe(document.getElementById('messages'), {
      subtree: true, attributes: true, attributeFilter: ['data-stage'], attributeOldValue: true,
    });
  });
}

export async function stageHistory(page) {
  return page.evaluate(() => {
    const perTarget = new Map();
    for (const { target, old } of window.__stageRecords) {
      if (!perTarget.has(target)) perTarget.set(target, []);
      perTarget.get(target).push(old);
    }
    const out = [];
    for (const [target, olds] of perTarget) {
      out.push(...olds.slice(1), target.dataset.stage);
    }
    return out.filter(Boolean);
  });
}

/** The JSON bodies of the page's POST /chat/stream requests, as sent. */
/**
 * Stops the page's clock (opened with { clock: true }) where it is: from here on its timers fire only
 * when the test steps the clock (page.clock.runFor), so a backoff of 1 s is checked to the
 * millisecond without waiting for it. page.clock.resume() lets time flow again.
 */
export async function pauseClock(page) {
  // pauseAt takes a time that must not have passed yet when it arrives: a moment ahead of the page's
  // now (again should a loaded machine take longer than that between the two calls).
  for (let attempt = 1; ; attempt += 1) {
    try {
      await page.clock.pauseAt(await page.evaluate(() => Date.now() + 100));
      return;
    } catch (err) {
      if (attempt >= 5 || !/to the past/.test(String(err))) throw err;
    }
  }
}

/**
 * Steps the paused clock by `ms` and checks that no new request of `requests` was made meanwhile
 * (`before` of them were made before); a request a timer started shows up in node within a moment,
 * so the check waits a little real time after the step.
 */
export async function runForWithoutRequests(page, ms, requests, before, what) {
  await page.clock.runFor(ms);
  await sleep(250);
  assert.equal(requests.length, before, `${what}: a request ${ms} ms into the wait`);
}

/**
 * The paused clock's next retry comes exactly `delayMs` after the last request: none at delayMs − 1,
 * the next one (request number before + 1) at delayMs.
 */
export async function expectRetryAfter(page, delayMs, requests, before, what) {
  await runForWithoutRequests(page, delayMs - 1, requests, before, what);
  await page.clock.runFor(1);
  await waitUntil(() => requests.length === before + 1, { what: `${what} at ${delayMs} ms` });
}

export function captureChatRequests(page) {
  const list = [];
  page.on('request', (req) => {
    if (req.url().endsWith('/chat/stream') && req.method() === 'POST') {
      list.push({ at: Date.now(), body: JSON.parse(req.postData() || '{}') });
    }
  });
  return list;
}
