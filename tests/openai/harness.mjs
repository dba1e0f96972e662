// Shared machinery of the OpenAI SDK end-to-end tests (node --test + the official `openai` package).
//
// Every test file starts the REAL chatstream binary (and, for the session tests, a private PostgreSQL
// cluster through scripts/pg.sh) on free loopback ports and stops everything at the end, also when a
// test fails or the runner is interrupted: chatstream runs in its own process group and the whole group
// is killed; the cluster is stopped with `pg.sh stop`.
//
//   CHATSTREAM_BIN        the server binary (default <source>/build/chatstream)
//   CHATSTREAM_E2E_SLOW   multiplies the waits and timing slack (default 3 for a sanitizer binary, else 1)
//   CHATSTREAM_E2E_KEEP=1 keeps the logs and the cluster directory
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const SOURCE_DIR = process.env.CHATSTREAM_SOURCE_DIR || path.resolve(HERE, '../..');
export const BIN = process.env.CHATSTREAM_BIN || path.join(SOURCE_DIR, 'build', 'chatstream');
const PG_SH = path.join(SOURCE_DIR, 'scripts', 'pg.sh');

function isSanitizerBuild(file) {
  try {
    return fs.readFileSync(file).includes('__asan_init');
  } catch {
    return false;
  }
}
export const SANITIZED = isSanitizerBuild(BIN);
export const SLOW = Number(process.env.CHATSTREAM_E2E_SLOW || (SANITIZED ? '3' : '1'));
const KEEP = process.env.CHATSTREAM_E2E_KEEP === '1';

const SANITIZER_REPORT =
  /ERROR: (AddressSanitizer|LeakSanitizer|ThreadSanitizer|MemorySanitizer)|runtime error:|SUMMARY: UndefinedBehaviorSanitizer/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
export const isUuid = (s) => typeof s === 'string' && UUID.test(s);

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** The scripted provider's tokens: each word with the whitespace that follows it. */
export const wordsOf = (text) => text.match(/\S+\s*/g) ?? [];

// --- cleanup of everything started, whatever happens --------------------------------------------

const children = new Set();
const clusters = new Set();
const scratchDirs = new Set(); // removed when the runner is interrupted
function killGroup(child, signal) {
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}
function cleanupNow() {
  for (const c of children) killGroup(c, 'SIGKILL');
  for (const dir of clusters) {
    clusters.delete(dir); // once: pg.sh would recreate a removed directory
    try {
      execFileSync('bash', [PG_SH, 'stop', dir], { stdio: 'ignore', timeout: 30000 });
    } catch {
      // best effort
    }
  }
}
process.on('exit', cleanupNow);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, () => {
    cleanupNow();
    if (!KEEP) for (const dir of scratchDirs) fs.rmSync(dir, { recursive: true, force: true });
    process.exit(128 + os.constants.signals[signal]);
  });
}

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

/**
 * The environment of the server: ours without anything that would change its configuration
 * behind the test's back (CHATSTREAM_*, DATABASE_URL, libpq's PG*, LLM_*), plus sanitizer options.
 */
function serverEnv() {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(CHATSTREAM_|PG|LLM_)/.test(k) || k === 'DATABASE_URL') continue;
    env[k] = v;
  }
  env.ASAN_OPTIONS ??= 'detect_leaks=1:halt_on_error=1:abort_on_error=0';
  env.UBSAN_OPTIONS ??= 'print_stacktrace=1:halt_on_error=1';
  return env;
}

function tmpDir(prefix) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `chatstream-openai-${prefix}-`));
  scratchDirs.add(dir);
  return dir;
}

// --- chatstream -------------------------------------------------------------------------------

/** One `chatstream serve` master with --workers 1 and the scripted provider, on a loopback port. */
export class Server {
  constructor({ text, rate = 50, databaseUrl = null, extra = [] }) {
    this.text = text;
    this.rate = rate;
    this.databaseUrl = databaseUrl;
    this.extra = extra;
  }

  get argv() {
    return [BIN, 'serve', '--listen', `127.0.0.1:${this.port}`, '--workers', '1',
      ...(this.databaseUrl ? ['--database-url', this.databaseUrl] : []),
      '--provider', 'scripted', '--scripted-text', this.text, '--scripted-rate', String(this.rate),
      '--drain-timeout', '1s', ...this.extra];
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  async start() {
    if (!fs.existsSync(BIN)) throw new Error(`chatstream binary not found: ${BIN} (build it, or set CHATSTREAM_BIN)`);
    this.dir = tmpDir('server');
    this.log = path.join(this.dir, 'chatstream.log');
    this.port = await freePort();
    const log = fs.openSync(this.log, 'a');
    const child = spawn(this.argv[0], this.argv.slice(1), { stdio: ['ignore', log, log], detached: true, env: serverEnv() });
    fs.closeSync(log);
    children.add(child);
    child.exitPromise = new Promise((resolve) => child.on('exit', (code, sig) => {
      children.delete(child);
      resolve(code ?? sig);
    }));
    this.proc = child;
    await waitUntil(async () => {
      if (!children.has(child)) throw new Error(`chatstream exited early:\n${this.logTail()}`);
      const res = await fetch(`${this.url}/healthz`, { signal: AbortSignal.timeout(1000) });
      const health = await res.json();
      return res.status === 200 && (!this.databaseUrl || health.database === 'connected');
    }, { timeout: 15000, what: `chatstream on port ${this.port}` }).catch((err) => {
      throw new Error(`${err.message}\n--- ${this.log}:\n${this.logTail()}`);
    });
    return this;
  }

  /** SIGTERM to the group (drains), SIGKILL after a while; returns the exit status. */
  async stop() {
    const child = this.proc;
    if (!child) return undefined;
    this.proc = null;
    if (!children.has(child)) return child.exitPromise;
    killGroup(child, 'SIGTERM');
    let timer;
    const done = await Promise.race([
      child.exitPromise.then(() => true),
      new Promise((resolve) => { timer = setTimeout(resolve, 10000 * SLOW, false); }),
    ]);
    clearTimeout(timer);
    if (!done) killGroup(child, 'SIGKILL');
    return child.exitPromise;
  }

  logText() {
    try {
      return fs.readFileSync(this.log, 'utf8');
    } catch {
      return '';
    }
  }

  logTail(n = 30) {
    return this.logText().split('\n').slice(-n).join('\n');
  }

  /** The sanitizer report in the log, if any (the sanitizer build writes it to stderr). */
  sanitizerReport() {
    const text = this.logText();
    const m = SANITIZER_REPORT.exec(text);
    return m ? text.slice(Math.max(0, m.index - 200), m.index + 4000) : null;
  }

  removeFiles() {
    if (this.dir && !KEEP) fs.rmSync(this.dir, { recursive: true, force: true });
  }

  async metrics() {
    const res = await fetch(`${this.url}/metrics`);
    return parseMetrics(await res.text());
  }

  async getJson(pathname) {
    const res = await fetch(`${this.url}${pathname}`);
    return { status: res.status, body: await res.json() };
  }

  /**
   * An SDK client for this server. Every HTTP exchange it makes is recorded in `client.exchanges`
   * ({ url, requestBody, status, headers, raw }) through a wrapping fetch, so tests can check what
   * really went over the wire; `raw` resolves to the full response text.
   */
  client(options = {}) {
    const exchanges = [];
    const recordingFetch = async (url, init = {}) => {
      const response = await fetch(url, init);
      const copy = response.clone();
      exchanges.push({
        url: String(url),
        requestBody: typeof init.body === 'string' ? init.body : null,
        status: response.status,
        headers: response.headers,
        raw: copy.text().catch((err) => `<body not read: ${err.name}>`),
      });
      return response;
    };
    const client = new OpenAI({ baseURL: `${this.url}/v1`, apiKey: 'unused', fetch: recordingFetch, ...options });
    client.exchanges = exchanges;
    return client;
  }
}

/** Prometheus text → { value(name, labels) } (sum over the matching samples). */
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

// --- PostgreSQL -------------------------------------------------------------------------------

/** A throwaway cluster (scripts/pg.sh with PG_FAST=1), migrated with `chatstream migrate`. */
export class Postgres {
  async start() {
    this.dir = tmpDir('pg');
    this.port = await freePort();
    clusters.add(this.dir);
    this.url = execFileSync('bash', [PG_SH, 'start', this.dir, String(this.port)], {
      env: { ...process.env, PG_FAST: '1' }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 60000 * SLOW,
    }).trim().split('\n').pop();
    execFileSync(BIN, ['migrate', '--database-url', this.url], {
      env: serverEnv(), stdio: ['ignore', 'ignore', 'inherit'], timeout: 60000 * SLOW,
    });
    return this;
  }

  stop() {
    if (!this.dir || !clusters.has(this.dir)) return;
    execFileSync('bash', [PG_SH, 'stop', this.dir], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 60000 });
    clusters.delete(this.dir);
    if (!KEEP) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

// --- test file lifecycle ----------------------------------------------------------------------

/**
 * Stops the server (and the cluster), then fails when the server left a sanitizer report or did
 * not exit cleanly on SIGTERM. Meant for `after()`; the log is kept and named on failure.
 */
export async function shutdown({ server, pg = null }) {
  let status;
  try {
    status = server ? await server.stop() : undefined;
  } finally {
    pg?.stop();
  }
  if (!server?.dir) return; // never started
  const report = server.sanitizerReport();
  if (report) throw new Error(`sanitizer report in the chatstream log (${server.log}):\n${report}`);
  if (status !== 0) throw new Error(`chatstream exited with ${status} on SIGTERM (log ${server.log}):\n${server.logTail()}`);
  server.removeFiles();
}

/** Reads a whole SDK stream, noting when each chunk arrived (ms since `t0`). */
export async function collect(stream, t0 = performance.now()) {
  const chunks = [];
  for await (const chunk of stream) chunks.push({ at: performance.now() - t0, chunk });
  return chunks;
}

export const contentOf = (chunks) => chunks.map(({ chunk }) => chunk.choices?.[0]?.delta?.content ?? '').join('');
