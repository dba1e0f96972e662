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
//                    aborted by the caller, protocol violation). With `resume: true` a stream that
//                    drops after its first event is continued with GET /chat/stream/{run_id} and
//                    Last-Event-ID (1 s, 2 s, 4 s apart), events already seen skipped by seq.
//   resumeChat()     follow a run already running (or finished) from its start or from a cursor:
//                    GET /chat/stream/{run_id}, with the same reconnection.
//   cancelRun()      POST /chat/cancel for a run id.
//   fetchConversation()  GET /sessions/{id}/messages: the messages and the run still answering.
//   fetchHistory()   the same, only the messages (null when the server does not have them).
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
 * `retryable` is true for network failures, stalls and statuses in RETRYABLE_STATUSES. `runId` is
 * the run the failure is about when known: the running run of a `409 run_in_progress`, the run whose
 * stream dropped (and could not be resumed).
 */
export class ChatStreamError extends Error {
  constructor(kind, message, { status = 0, code = '', retryable = false, retryAfterMs = 0, runId = '', cause } = {}) {
    super(message, cause ? { cause } : undefined);
    this.name = 'ChatStreamError';
    this.kind = kind;
    this.status = status;
    this.code = code;
    this.retryable = retryable;
    this.retryAfterMs = retryAfterMs;
    this.runId = runId;
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
  let runId = '';
  try {
    const body = await res.json();
    if (body && typeof body.error === 'object' && body.error) {
      code = typeof body.error.code === 'string' ? body.error.code : '';
      message = typeof body.error.message === 'string' ? body.error.message : '';
      runId = typeof body.error.run_id === 'string' ? body.error.run_id : '';
    }
  } catch {
    // not JSON (a proxy's HTML page, an empty body): plain words come from the status
  }
  return new ChatStreamError('http', message, {
    status: res.status,
    code,
    retryable: RETRYABLE_STATUSES.includes(res.status),
    retryAfterMs: parseRetryAfter(res.headers.get('Retry-After')),
    runId,
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
 * The position of an event in its run: `id: {run_id}:{seq}` → { runId, seq }, or null when the id
 * is not of that shape (a server without ids, a comment).
 */
export function parseEventId(id) {
  if (typeof id !== 'string') return null;
  const colon = id.lastIndexOf(':');
  if (colon <= 0 || colon === id.length - 1) return null;
  const seq = id.slice(colon + 1);
  if (!/^\d+$/.test(seq)) return null;
  return { runId: id.slice(0, colon), seq: Number(seq) };
}

/** GET URL that resumes run `runId`, next to the POST URL of its stream (/chat/stream/{run_id}). */
export function resumeUrlFor(streamUrl, runId) {
  return `${String(streamUrl).replace(/\/+$/, '')}/${encodeURIComponent(runId)}`;
}

/**
 * One HTTP request that answers an event stream (the POST that starts a run, or a GET that resumes
 * one). `cursor` ({ runId, lastSeq, heartbeatMs }) is shared by every request of one run: it learns
 * the run id and the heartbeat from meta and the last seq delivered; with `dedupe` an event whose seq
 * is not past the cursor was delivered by an earlier request and is skipped.
 */
async function readEventStream({
  url, method, body, headers, signal, onEvent, onHeartbeat, onOpen, fetchImpl, stallFactor, firstByteTimeoutMs, log,
  cursor, dedupe,
}) {
  const controller = new AbortController();
  const unlink = linkSignal(signal, controller);
  const streamWatchdogMs = () => (cursor.heartbeatMs > 0 ? cursor.heartbeatMs * stallFactor : 0);
  let stalled = false;
  let watchdog = null;
  // A resumed run's heartbeat is known: its server answers at once, so silence is a stall from the start.
  let watchdogMs = streamWatchdogMs() > 0 && firstByteTimeoutMs > 0
    ? Math.min(firstByteTimeoutMs, streamWatchdogMs()) : firstByteTimeoutMs;
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
      log(method, url, body ?? headers['Last-Event-ID'] ?? '');
      res = await fetchImpl(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
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
    if (streamWatchdogMs() > 0) watchdogMs = streamWatchdogMs();
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
        const at = parseEventId(ev.id);
        // A terminal event always ends the stream, even under a seq already seen: a run closed by
        // another worker (worker_lost) may number it after its last checkpoint, behind this client.
        if (dedupe && at && at.seq <= cursor.lastSeq && !TERMINAL_EVENTS.includes(ev.type)) {
          log('already seen', ev.id);
          return;
        }
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
        if (at) {
          cursor.lastSeq = Math.max(cursor.lastSeq, at.seq);
          cursor.runId ||= at.runId;
        }
        if (ev.type === 'meta') {
          if (typeof data.run_id === 'string' && data.run_id) cursor.runId = data.run_id;
          if (Number.isFinite(data.heartbeat_ms) && data.heartbeat_ms > 0) {
            cursor.heartbeatMs = data.heartbeat_ms;
            watchdogMs = data.heartbeat_ms * stallFactor;
            armWatchdog();
          }
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

/** A dropped or stalled stream: the run may still be answering, worth following again. */
const isDrop = (err) => err instanceof ChatStreamError && (err.kind === 'network' || err.kind === 'stalled');

/**
 * Follow run cursor.runId again after `drop`: GET {resumeUrl} with `Last-Event-ID: {run_id}:{seq}`
 * (none before the first event: from meta) after each of `delays`, until one reaches the terminal
 * event. A retryable failure waits for the next delay; when they are used up the last one is thrown.
 * 404 / 410 (the run is unknown here, or finished too long ago) end the attempts at once: with
 * `dropIfUnknown` the drop itself is thrown (the caller may start the run again), else the HTTP error.
 */
async function reconnect(drop, cursor, { delays, resumeUrl, dropIfUnknown, onReconnect, stream }) {
  const { signal, log, headers } = stream;
  let last = drop;
  for (let n = 0; n < delays.length; n++) {
    const delayMs = Math.max(delays[n], Math.min(last.retryAfterMs || 0, 30000));
    const lastEventId = cursor.lastSeq >= 0 ? `${cursor.runId}:${cursor.lastSeq}` : '';
    log('reconnect', { attempt: n + 1, delayMs, lastEventId, after: last.kind });
    onReconnect({ attempt: n + 1, of: delays.length, delayMs, error: last, runId: cursor.runId, lastEventId });
    try {
      await sleep(delayMs, signal);
    } catch (err) {
      throw new ChatStreamError('aborted', 'Stopped by the user.', { cause: err });
    }
    const resumeHeaders = { Accept: 'text/event-stream', ...headers };
    if (lastEventId) resumeHeaders['Last-Event-ID'] = lastEventId;
    try {
      return await readEventStream({ ...stream, url: resumeUrl, method: 'GET', body: undefined, headers: resumeHeaders, cursor, dedupe: true });
    } catch (err) {
      if (!(err instanceof ChatStreamError) || err.kind === 'aborted' || err.kind === 'protocol') throw err;
      if (err.kind === 'http' && !err.retryable) {
        if (dropIfUnknown && (err.status === 404 || err.status === 410)) {
          drop.runId = cursor.runId;
          throw drop;
        }
        throw err;
      }
      last = err;
    }
  }
  last.runId ||= cursor.runId;
  throw last;
}

function streamOptions({
  signal, onEvent = () => {}, onHeartbeat = () => {}, onOpen = () => {}, headers = {}, fetch: fetchImpl = globalThis.fetch,
  stallFactor = 2, firstByteTimeoutMs = 30000, log = () => {},
}) {
  return { signal, onEvent, onHeartbeat, onOpen, headers, fetchImpl, stallFactor, firstByteTimeoutMs, log };
}

/**
 * Stream one chat answer.
 *
 *   const end = await streamChat({
 *     url: '/chat/stream', body: { message, session_id },
 *     signal,                  // AbortSignal of the caller (stop button)
 *     onEvent(data, raw) {},   // every event: data is the parsed JSON object, raw the SSE event
 *     onHeartbeat() {},        // every `: ping`
 *     onOpen(response) {},     // the 200 answer's headers arrived (again after each reconnection)
 *     resume: true,            // continue a dropped stream (below); off by default
 *     onReconnect({ attempt, of, delayMs, error, runId, lastEventId }) {},  // before each wait
 *   });
 *   // end is the terminal event's data: { type: 'done' | 'error' | 'cancelled', ... }
 *
 * A stream is treated as dropped ('stalled') when neither an event nor a heartbeat arrives for
 * stallFactor × meta.heartbeat_ms; before meta, within firstByteTimeoutMs of the request.
 *
 * With `resume`, a stream that drops (network failure, stall, the body ending early) after its first
 * event is followed again with GET {url}/{run_id} and `Last-Event-ID: {run_id}:{last seq}` after
 * each of resumeDelays (1 s, 2 s, 4 s): the server replays what came after that event, and any event
 * not past it is skipped, so onEvent sees each event once, in order. When the delays are used up, or
 * the server no longer knows the run (404, 410), the drop is thrown (retryable, with its runId).
 * Rejects with ChatStreamError; never resolves without a terminal event.
 */
export async function streamChat({
  url = '/chat/stream',
  body,
  headers = {},
  resume = false,
  resumeDelays = RETRY_DELAYS_MS,
  onReconnect = () => {},
  ...options
} = {}) {
  const stream = streamOptions({ ...options, headers });
  const cursor = { runId: '', lastSeq: -1, heartbeatMs: 0 };
  try {
    return await readEventStream({
      ...stream, url, method: 'POST', body, cursor, dedupe: false,
      headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream', ...headers },
    });
  } catch (err) {
    // Before the first event (with its id) there is no run to follow: the caller starts it again.
    if (!resume || !isDrop(err) || !cursor.runId || cursor.lastSeq < 0) throw err;
    return reconnect(err, cursor, {
      delays: resumeDelays, resumeUrl: resumeUrlFor(url, cursor.runId), dropIfUnknown: true, onReconnect, stream,
    });
  }
}

/**
 * Follow a run that was started elsewhere (before a reload, by another tab): GET {url}/{run_id},
 * from its first event (meta) or, with lastEventId (`{run_id}:{seq}` or a seq), from the event after
 * it. Takes the options of streamChat; reconnects as streamChat's `resume` does, also when the first
 * request fails. Resolves with the terminal event; a run the server does not know (404) or no
 * longer keeps (410 `gone`) rejects with that HTTP error.
 */
export async function resumeChat({
  runId,
  lastEventId = '',
  url = '/chat/stream',
  headers = {},
  resumeDelays = RETRY_DELAYS_MS,
  onReconnect = () => {},
  ...options
} = {}) {
  if (!runId) throw new ChatStreamError('protocol', 'resumeChat needs a run id.');
  const stream = streamOptions({ ...options, headers });
  const from = parseEventId(String(lastEventId)) ?? (/^\d+$/.test(String(lastEventId)) ? { seq: Number(lastEventId) } : null);
  const cursor = { runId, lastSeq: from ? from.seq : -1, heartbeatMs: 0 };
  const resumeUrl = resumeUrlFor(url, runId);
  const resumeHeaders = { Accept: 'text/event-stream', ...headers };
  if (cursor.lastSeq >= 0) resumeHeaders['Last-Event-ID'] = `${runId}:${cursor.lastSeq}`;
  try {
    return await readEventStream({ ...stream, url: resumeUrl, method: 'GET', body: undefined, headers: resumeHeaders, cursor, dedupe: true });
  } catch (err) {
    if (!isDrop(err)) throw err;
    return reconnect(err, cursor, { delays: resumeDelays, resumeUrl, dropIfUnknown: false, onReconnect, stream });
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
 * A stored conversation: GET /sessions/{id}/messages. Resolves
 * { sessionId, messages: [{ role: 'user' | 'assistant', content, status?, citations? }], runningRunId }
 * — runningRunId is the run still answering the conversation's last question (its answer is not
 * among the messages yet; follow it with resumeChat), or null. Resolves null when the server has no
 * history for it (404, which is also what a server without the endpoint answers). Other failures
 * reject with ChatStreamError.
 */
export async function fetchConversation({ baseUrl = '', sessionId, fetch: fetchImpl = globalThis.fetch, signal, log = () => {} } = {}) {
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
  const running = body?.running_run_id;
  return {
    sessionId: typeof body?.session_id === 'string' ? body.session_id : sessionId,
    runningRunId: typeof running === 'string' && running ? running : null,
    messages: list
      .filter((m) => m && (m.role === 'user' || m.role === 'assistant'))
      .map((m) => ({
        role: m.role,
        content: typeof m.content === 'string' ? m.content : typeof m.text === 'string' ? m.text : '',
        status: typeof m.status === 'string' ? m.status : undefined,
        citations: Array.isArray(m.citations) ? m.citations : [],
      })),
  };
}

/**
 * The messages of a session (fetchConversation's `messages`): an array of
 * { role: 'user' | 'assistant', content, status?, citations? } — or null when the server has no
 * history for it (404). Other failures reject with ChatStreamError.
 */
export async function fetchHistory(options = {}) {
  const conversation = await fetchConversation(options);
  return conversation ? conversation.messages : null;
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
