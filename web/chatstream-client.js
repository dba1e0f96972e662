// chatstream-client.js — a small client for the chatstream wire protocol (docs/protocol.md).
//
// No dependencies, no build step: an ES module that runs in browsers and in node >= 18.
//
//   SSEParser        incremental Server-Sent Events parser (bytes or text in, events out): events
//                    split across chunks, CRLF / CR / LF line ends, comments, several `data:` lines,
//                    UTF-8 characters split across chunks, a leading BOM.
//   streamChat()     POST /chat/stream with fetch, parse the stream, call onEvent for every event,
//                    resolve with the terminal event (done / error / cancelled) or reject with a
//                    ChatStreamError (HTTP error before the stream, network failure, stalled stream,
//                    aborted by the caller, protocol violation).
//   cancelRun()      POST /chat/cancel for a run id.
//   fetchHistory()   GET /sessions/{id}/messages (null when the server does not have it).
//   withRetry()      run an attempt again after 1 s, 2 s, 4 s while its error is retryable.
//
// Text from the server is data: nothing here builds HTML.

/** Event types that end a stream (exactly one per stream). */
export const TERMINAL_EVENTS = Object.freeze(['done', 'error', 'cancelled']);

/** Delays between automatic attempts after a retryable failure. */
export const RETRY_DELAYS_MS = Object.freeze([1000, 2000, 4000]);

/** HTTP statuses worth retrying automatically: rate limited, and the gateway/overload family. */
export const RETRYABLE_STATUSES = Object.freeze([429, 502, 503, 504]);

const DEFAULT_MAX_LINE = 1 << 20; // 1 MiB: a longer line is a broken or hostile stream

/**
 * Incremental SSE parser following the WHATWG "event stream interpretation" rules.
 *
 *   const p = new SSEParser({ onEvent(ev) {}, onComment(text) {}, onRetry(ms) {} });
 *   p.feed(chunk);   // Uint8Array or string, any split
 *   p.end();         // end of stream: an event without its blank line is discarded
 *
 * ev = { type, data, id, lastEventId }: type defaults to "message"; data joins several `data:`
 * lines with "\n"; id is the `id:` of this event (or undefined), lastEventId the stream's last one.
 */
export class SSEParser {
  constructor({ onEvent = () => {}, onComment = () => {}, onRetry = () => {}, maxLineLength = DEFAULT_MAX_LINE } = {}) {
    this.onEvent = onEvent;
    this.onComment = onComment;
    this.onRetry = onRetry;
    this.maxLineLength = maxLineLength;
    this.decoder = null;        // created on the first byte chunk (streaming UTF-8 decode)
    this.buffer = '';
    this.skipLeadingLF = false; // the previous chunk ended with CR: a LF starting this one ends the same line
    this.sawFirstChunk = false;
    this.lastEventId = '';
    this.resetEvent();
  }

  resetEvent() {
    this.eventType = '';
    this.dataLines = [];
    this.eventId = undefined;
  }

  /** Feed a chunk: a Uint8Array (decoded as UTF-8, characters may straddle chunks) or a string. */
  feed(chunk) {
    let text;
    if (typeof chunk === 'string') {
      text = chunk;
    } else {
      this.decoder ??= new TextDecoder('utf-8');
      text = this.decoder.decode(chunk, { stream: true });
    }
    this.pushText(text);
  }

  /** End of the stream: flush the decoder and the last line; a half-received event is dropped. */
  end() {
    if (this.decoder) this.pushText(this.decoder.decode());
    if (this.buffer.length > 0) {
      this.processLine(this.buffer);
      this.buffer = '';
    }
    this.resetEvent();
  }

  pushText(text) {
    if (!text) return;
    if (!this.sawFirstChunk) {
      this.sawFirstChunk = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      if (!text) return;
    }
    if (this.skipLeadingLF) {
      this.skipLeadingLF = false;
      if (text.charCodeAt(0) === 0x0a) text = text.slice(1);
    }
    let buf = this.buffer + text;
    let start = 0;
    for (;;) {
      const cr = buf.indexOf('\r', start);
      const lf = buf.indexOf('\n', start);
      if (cr < 0 && lf < 0) break;
      let end;
      let next;
      if (cr >= 0 && (lf < 0 || cr < lf)) {
        end = cr;
        if (cr + 1 < buf.length) {
          next = buf.charCodeAt(cr + 1) === 0x0a ? cr + 2 : cr + 1;
        } else {
          next = cr + 1;             // CR at the end of what we have: maybe CRLF split in two
          this.skipLeadingLF = true;
        }
      } else {
        end = lf;
        next = lf + 1;
      }
      this.processLine(buf.slice(start, end));
      start = next;
    }
    this.buffer = start === 0 ? buf : buf.slice(start);
    if (this.buffer.length > this.maxLineLength) {
      this.buffer = '';
      throw new SSEParseError(`SSE line longer than ${this.maxLineLength} characters`);
    }
  }

  processLine(line) {
    if (line === '') {
      this.dispatch();
      return;
    }
    const colon = line.indexOf(':');
    if (colon === 0) {
      this.onComment(line.charCodeAt(1) === 0x20 ? line.slice(2) : line.slice(1));
      return;
    }
    let field = line;
    let value = '';
    if (colon > 0) {
      field = line.slice(0, colon);
      value = line.slice(line.charCodeAt(colon + 1) === 0x20 ? colon + 2 : colon + 1);
    }
    switch (field) {
      case 'event':
        this.eventType = value;
        break;
      case 'data':
        this.dataLines.push(value);
        break;
      case 'id':
        if (!value.includes('\0')) {
          this.eventId = value;
          this.lastEventId = value;
        }
        break;
      case 'retry':
        if (/^\d+$/.test(value)) this.onRetry(Number(value));
        break;
      default:
        break; // unknown fields are ignored (spec)
    }
  }

  dispatch() {
    if (this.dataLines.length === 0) {
      this.resetEvent();
      return;
    }
    const ev = {
      type: this.eventType || 'message',
      data: this.dataLines.join('\n'),
      id: this.eventId,
      lastEventId: this.lastEventId,
    };
    this.resetEvent();
    this.onEvent(ev);
  }
}

export class SSEParseError extends Error {
  constructor(message) {
    super(message);
    this.name = 'SSEParseError';
  }
}

/**
 * Every failure of streamChat() and cancelRun(): `kind` says what happened.
 *   'http'      the server answered an error status before any stream (status, code, message set)
 *   'network'   the connection failed or ended before the terminal event
 *   'stalled'   nothing (no event, no heartbeat) arrived for twice the announced heartbeat
 *   'protocol'  the answer was not the event stream of docs/protocol.md
 *   'aborted'   the caller's signal aborted
 * `retryable` is true for network failures, stalls and statuses in RETRYABLE_STATUSES.
 */
export class ChatStreamError extends Error {
  constructor(kind, message, { status = 0, code = '', retryable = false, retryAfterMs = 0, cause } = {}) {
    super(message, cause ? { cause } : undefined);
    this.name = 'ChatStreamError';
    this.kind = kind;
    this.status = status;
    this.code = code;
    this.retryable = retryable;
    this.retryAfterMs = retryAfterMs;
  }
}

/** Plain words for a failure, fit to show to a person. */
export function describeError(err) {
  if (!(err instanceof ChatStreamError)) return 'Something went wrong. Please try again.';
  switch (err.kind) {
    case 'network':
      return 'The connection to the server was lost.';
    case 'stalled':
      return 'The server stopped responding.';
    case 'aborted':
      return 'Stopped.';
    case 'protocol':
      return 'The server sent an answer this page does not understand.';
    default:
      break;
  }
  if (err.message) return err.message;
  if (err.status === 429) return 'Too many requests. Please wait a moment and retry.';
  if (err.status >= 500) return 'The chat service is unavailable right now. Please retry shortly.';
  return `The request failed (HTTP ${err.status}).`;
}

function parseRetryAfter(value) {
  if (!value) return 0;
  const s = Number(value);
  if (Number.isFinite(s) && s >= 0) return s * 1000;
  const t = Date.parse(value);
  return Number.isFinite(t) ? Math.max(0, t - Date.now()) : 0;
}

async function errorFromResponse(res) {
  let code = '';
  let message = '';
  try {
    const body = await res.json();
    if (body && typeof body.error === 'object' && body.error) {
      code = typeof body.error.code === 'string' ? body.error.code : '';
      message = typeof body.error.message === 'string' ? body.error.message : '';
    }
  } catch {
    // not JSON (a proxy's HTML page, an empty body): plain words come from the status
  }
  return new ChatStreamError('http', message, {
    status: res.status,
    code,
    retryable: RETRYABLE_STATUSES.includes(res.status),
    retryAfterMs: parseRetryAfter(res.headers.get('Retry-After')),
  });
}

function linkSignal(outer, controller) {
  if (!outer) return () => {};
  if (outer.aborted) {
    controller.abort(outer.reason);
    return () => {};
  }
  const onAbort = () => controller.abort(outer.reason);
  outer.addEventListener('abort', onAbort, { once: true });
  return () => outer.removeEventListener('abort', onAbort);
}

/**
 * Stream one chat answer.
 *
 *   const end = await streamChat({
 *     url: '/chat/stream', body: { message, session_id },
 *     signal,                  // AbortSignal of the caller (stop button)
 *     onEvent(data, raw) {},   // every event: data is the parsed JSON object, raw the SSE event
 *     onHeartbeat() {},        // every `: ping`
 *     onOpen(response) {},     // the 200 answer's headers arrived
 *   });
 *   // end is the terminal event's data: { type: 'done' | 'error' | 'cancelled', ... }
 *
 * A stream is treated as dropped ('stalled') when neither an event nor a heartbeat arrives for
 * stallFactor × meta.heartbeat_ms; before meta, within firstByteTimeoutMs of the request.
 * Rejects with ChatStreamError; never resolves without a terminal event.
 */
export async function streamChat({
  url = '/chat/stream',
  body,
  signal,
  onEvent = () => {},
  onHeartbeat = () => {},
  onOpen = () => {},
  headers = {},
  fetch: fetchImpl = globalThis.fetch,
  stallFactor = 2,
  firstByteTimeoutMs = 30000,
  log = () => {},
} = {}) {
  const controller = new AbortController();
  const unlink = linkSignal(signal, controller);
  let stalled = false;
  let watchdog = null;
  let watchdogMs = firstByteTimeoutMs;
  const armWatchdog = () => {
    clearTimeout(watchdog);
    if (watchdogMs > 0) {
      watchdog = setTimeout(() => {
        stalled = true;
        log('stream stalled', { after_ms: watchdogMs });
        controller.abort(new Error('stalled'));
      }, watchdogMs);
    }
  };
  const failure = (err) => {
    if (signal?.aborted) return new ChatStreamError('aborted', 'Stopped by the user.', { cause: err });
    if (stalled) {
      return new ChatStreamError('stalled', `No event or heartbeat for ${watchdogMs} ms.`, { retryable: true, cause: err });
    }
    if (err instanceof ChatStreamError) return err;
    return new ChatStreamError('network', String(err?.message || err), { retryable: true, cause: err });
  };

  armWatchdog();
  try {
    let res;
    try {
      log('POST', url, body);
      res = await fetchImpl(url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream', ...headers },
        body: JSON.stringify(body),
        signal: controller.signal,
        cache: 'no-store',
      });
    } catch (err) {
      throw failure(err);
    }
    if (!res.ok) {
      const err = await errorFromResponse(res);
      log('HTTP error', err.status, err.code, err.message);
      throw err;
    }
    const type = res.headers.get('Content-Type') || '';
    if (!type.startsWith('text/event-stream') || !res.body) {
      throw new ChatStreamError('protocol', `Expected an event stream, got "${type || 'nothing'}".`);
    }
    onOpen(res);
    armWatchdog();

    let terminal = null;
    let protocolError = null;
    const parser = new SSEParser({
      onComment(text) {
        log('comment', text);
        if (text.trim() === 'ping') onHeartbeat();
      },
      onEvent(ev) {
        if (terminal || protocolError) return;
        let data;
        try {
          data = JSON.parse(ev.data);
        } catch {
          protocolError = new ChatStreamError('protocol', `Event "${ev.type}" does not carry JSON.`);
          return;
        }
        if (data === null || typeof data !== 'object') {
          protocolError = new ChatStreamError('protocol', `Event "${ev.type}" does not carry a JSON object.`);
          return;
        }
        if (typeof data.type !== 'string') data.type = ev.type;
        if (ev.type === 'meta' && Number.isFinite(data.heartbeat_ms) && data.heartbeat_ms > 0) {
          watchdogMs = data.heartbeat_ms * stallFactor;
          armWatchdog();
        }
        log('event', ev.type, data);
        onEvent(data, ev);
        if (TERMINAL_EVENTS.includes(ev.type)) terminal = data;
      },
    });

    const reader = res.body.getReader();
    try {
      for (;;) {
        let chunk;
        try {
          chunk = await reader.read();
        } catch (err) {
          throw failure(err);
        }
        if (chunk.done) break;
        armWatchdog();
        parser.feed(chunk.value);
        if (protocolError) throw protocolError;
        if (terminal) break;
      }
      if (!terminal) {
        parser.end();
        if (protocolError) throw protocolError;
      }
    } catch (err) {
      if (err instanceof SSEParseError) throw new ChatStreamError('protocol', err.message);
      throw err;
    } finally {
      // The terminal event is the end of the answer: do not wait for the chunked body's last
      // bytes, and release the connection for keep-alive if anything is left.
      reader.cancel().catch(() => {});
    }
    if (!terminal) {
      if (signal?.aborted) throw failure(signal.reason);
      if (stalled) throw failure(new Error('stalled'));
      throw new ChatStreamError('network', 'The stream ended before the answer was complete.', { retryable: true });
    }
    return terminal;
  } finally {
    clearTimeout(watchdog);
    unlink();
  }
}

/**
 * Ask the server to stop a run: POST /chat/cancel {run_id}. Resolves true when the server
 * cancelled it, false when the run was unknown or already finished (404) or the call failed.
 */
export async function cancelRun({ url = '/chat/cancel', runId, fetch: fetchImpl = globalThis.fetch, timeoutMs = 3000, log = () => {} } = {}) {
  if (!runId) return false;
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  try {
    const res = await fetchImpl(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ run_id: runId }),
      signal: controller.signal,
      cache: 'no-store',
    });
    log('cancel', runId, res.status);
    return res.ok;
  } catch (err) {
    log('cancel failed', runId, err);
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The messages of a session: GET /sessions/{id}/messages. Resolves an array of
 * { role: 'user' | 'assistant', content, status?, citations? } — or null when the server has no
 * history for it (404, which is also what a server without the endpoint answers). Other failures
 * reject with ChatStreamError.
 */
export async function fetchHistory({ baseUrl = '', sessionId, fetch: fetchImpl = globalThis.fetch, signal, log = () => {} } = {}) {
  let res;
  try {
    res = await fetchImpl(`${baseUrl}/sessions/${encodeURIComponent(sessionId)}/messages`, {
      headers: { Accept: 'application/json' },
      signal,
      cache: 'no-store',
    });
  } catch (err) {
    throw new ChatStreamError('network', String(err?.message || err), { retryable: true, cause: err });
  }
  log('history', sessionId, res.status);
  if (res.status === 404) return null;
  if (!res.ok) throw await errorFromResponse(res);
  let body;
  try {
    body = await res.json();
  } catch {
    throw new ChatStreamError('protocol', 'The history is not JSON.');
  }
  const list = Array.isArray(body) ? body : Array.isArray(body?.messages) ? body.messages : null;
  if (!list) throw new ChatStreamError('protocol', 'The history has no "messages" list.');
  return list
    .filter((m) => m && (m.role === 'user' || m.role === 'assistant'))
    .map((m) => ({
      role: m.role,
      content: typeof m.content === 'string' ? m.content : typeof m.text === 'string' ? m.text : '',
      status: typeof m.status === 'string' ? m.status : undefined,
      citations: Array.isArray(m.citations) ? m.citations : [],
    }));
}

/** Resolve after ms, or reject with the signal's reason as soon as it aborts. */
export function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Run attempt(n) (n = 0, 1, …) until it resolves, retrying a retryable ChatStreamError after
 * each of delays (1 s, 2 s, 4 s by default; a longer Retry-After wins). onRetry({attempt, delayMs,
 * error}) is called before each wait. The last error is thrown when the delays are used up.
 */
export async function withRetry(attempt, { delays = RETRY_DELAYS_MS, signal, onRetry = () => {}, maxRetryAfterMs = 30000 } = {}) {
  for (let n = 0; ; n++) {
    try {
      return await attempt(n);
    } catch (err) {
      const retryable = err instanceof ChatStreamError && err.retryable && !signal?.aborted;
      if (!retryable || n >= delays.length) throw err;
      const delayMs = Math.max(delays[n], Math.min(err.retryAfterMs || 0, maxRetryAfterMs));
      onRetry({ attempt: n + 1, of: delays.length, delayMs, error: err });
      await sleep(delayMs, signal);
    }
  }
}
