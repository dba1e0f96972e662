// The chat page: a conversation over chatstream's event stream (docs/protocol.md).
//
// Everything the server sends is rendered with textContent (or as attribute values checked
// here): no HTML from the server, ever. The protocol itself lives in chatstream-client.js.
import {
  streamChat, resumeChat, cancelRun, fetchConversation, withRetry, describeError, ChatStreamError, RETRY_DELAYS_MS,
} from './chatstream-client.js';

const SESSION_KEY = 'chatstream.session_id';
const STAGES = {
  connecting: 'Connecting…',
  retrieval: 'Searching the knowledge base…',
  reranking: 'Reranking results…',
  generating: 'Generating response…',
};
const ERROR_WORDS = {
  timeout: 'The answer took too long and was stopped.',
  upstream: 'The language model failed while answering.',
  internal: 'Something went wrong on the server.',
  bad_request: 'The server could not answer this message.',
  overloaded: 'The server is busy right now.',
  shutdown: 'The server is restarting.',
  slow_consumer: 'The connection was too slow to keep up with the answer.',
  worker_lost: 'The server writing this answer stopped before it was finished.',
};
const BUSY_NOTE = 'This conversation is still answering an earlier message: the answer continues here. '
  + 'Your new message is kept in the box; send it when the answer is finished.';

// --- small helpers ---------------------------------------------------------------------------

function storage() {
  try {
    return window.localStorage;
  } catch {
    return null; // storage disabled: the page still works, it just forgets on reload
  }
}

function debugEnabled() {
  return storage()?.getItem('DEBUG_STREAMING') === 'true';
}

/** console.debug only when localStorage.DEBUG_STREAMING === 'true'; silent otherwise. */
function debug(...args) {
  if (debugEnabled()) console.debug('[chatstream]', ...args);
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function svgIcon(pathD) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  const path = document.createElementNS(ns, 'path');
  path.setAttribute('d', pathD);
  svg.append(path);
  return svg;
}

/** Only http(s) URLs become links; anything else (javascript:, data:, …) stays text. */
function safeHref(value) {
  if (typeof value !== 'string') return null;
  try {
    const url = new URL(value, window.location.href);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
  } catch {
    return null;
  }
}

function stringify(value) {
  if (typeof value === 'string') {
    try {
      return JSON.stringify(JSON.parse(value), null, 2);
    } catch {
      return value;
    }
  }
  try {
    return JSON.stringify(value, null, 2);
  } catch {
    return String(value);
  }
}

// --- one message in the conversation -------------------------------------------------------

class UserMessage {
  constructor(text) {
    this.root = el('li', 'msg msg-user');
    const bubble = el('div', 'bubble');
    bubble.append(el('span', 'visually-hidden', 'You said: '), el('p', 'text', text));
    this.root.append(bubble);
  }
}

/** An answer: stage indicator, tool calls, the growing text, citations, a status line. */
class AnswerView {
  constructor() {
    this.root = el('li', 'msg msg-assistant');
    this.root.dataset.state = 'streaming';
    const avatar = el('div', 'avatar');
    avatar.setAttribute('aria-hidden', 'true');
    avatar.append(svgIcon('M6 8.5h12M6 12h8.5M6 15.5h5'));
    const body = el('div', 'bubble');

    this.stage = el('div', 'stage');
    this.stage.dataset.stage = '';
    this.stage.setAttribute('role', 'status'); // "Searching the knowledge base…" is announced
    this.stageLabel = el('span', 'stage-label');
    this.stageDetail = el('span', 'stage-detail');
    const dots = el('span', 'stage-dots');
    dots.setAttribute('aria-hidden', 'true');
    dots.append(el('i'), el('i'), el('i'));
    this.stage.append(dots, this.stageLabel, this.stageDetail);

    this.tools = el('ul', 'tools');
    this.tools.setAttribute('aria-label', 'Tool calls');
    this.tools.hidden = true;

    // The streaming answer: a polite live region that only ever gains text nodes, so a screen
    // reader announces the new words instead of re-reading the whole answer.
    this.text = el('div', 'text answer');
    this.text.setAttribute('aria-live', 'polite');
    this.text.setAttribute('aria-atomic', 'false');
    this.text.setAttribute('aria-busy', 'true');
    this.label = el('span', 'visually-hidden', 'Assistant: ');

    this.citations = el('section', 'citations');
    this.citations.hidden = true;

    this.foot = el('div', 'msg-foot');
    this.foot.hidden = true;

    body.append(this.stage, this.tools, this.label, this.text, this.citations, this.foot);
    this.root.append(avatar, body);
    this.toolItems = new Map();
    this.frozen = false;
  }

  /** A fresh attempt (automatic retry): forget what the failed attempt showed. */
  reset() {
    this.text.replaceChildren();
    this.pendingLine = '';
    this.midLine = false;
    this.code = null;
    this.tools.replaceChildren();
    this.tools.hidden = true;
    this.toolItems.clear();
    this.citations.replaceChildren();
    this.citations.hidden = true;
    this.foot.replaceChildren();
    this.foot.hidden = true;
    this.root.dataset.state = 'streaming';
    this.text.setAttribute('aria-busy', 'true');
    this.setStage('connecting');
  }

  setStage(stage, detail = '') {
    if (this.stage.dataset.stage === stage) {
      this.stageDetail.textContent = detail;
      return;
    }
    this.stage.dataset.stage = stage;
    // A new label element restarts the CSS entrance animation: the stages slide into each other.
    const label = el('span', 'stage-label', STAGES[stage] ?? '');
    this.stageLabel.replaceWith(label);
    this.stageLabel = label;
    this.stageDetail.textContent = detail;
  }

  setStageDetail(detail) {
    this.stageDetail.textContent = detail;
  }

  hideStage() {
    this.stage.dataset.stage = '';
  }

  /** Text as it streams; Markdown code fences (a line of ```) become <pre><code> blocks. A line that
   *  could still become a fence waits for its end; every other piece is shown at once. */
  appendText(content) {
    if (this.frozen || !content) return;
    if (this.stage.dataset.stage) this.hideStage();
    this.pendingLine = (this.pendingLine ?? '') + content;
    let newline;
    while ((newline = this.pendingLine.indexOf('\n')) !== -1) {
      const line = this.pendingLine.slice(0, newline);
      this.pendingLine = this.pendingLine.slice(newline + 1);
      if (!this.midLine && /^\s*`{3,}[^`]*$/.test(line)) {
        this.code = this.code ? null : this.text.appendChild(el('pre', 'answer-code')).appendChild(el('code'));
      } else {
        this.writeText(line + '\n');
      }
      this.midLine = false;
    }
    if (this.pendingLine && !(!this.midLine && this.pendingLine.trimStart().startsWith('`'))) {
      this.writeText(this.pendingLine);
      this.pendingLine = '';
      this.midLine = true;
    }
  }

  /** The end of the text: a last line still held back is shown as it is. */
  flushText() {
    if (this.pendingLine) this.writeText(this.pendingLine);
    this.pendingLine = '';
  }

  writeText(text) {
    (this.code ?? this.text).append(document.createTextNode(text));
  }

  get textContent() {
    return this.text.textContent;
  }

  addToolCall({ id, name, arguments: args }) {
    this.tools.hidden = false;
    const item = el('li', 'tool');
    item.dataset.state = 'running';
    const head = el('div', 'tool-head');
    head.append(el('span', 'tool-dot'), el('span', 'tool-verb', 'Using tool'), el('code', 'tool-name', String(name ?? 'tool')));
    const details = el('details', 'tool-details');
    details.append(el('summary', '', 'Arguments'), el('pre', 'tool-args', stringify(args ?? {})));
    item.append(head, details);
    this.tools.append(item);
    this.toolItems.set(String(id), item);
  }

  addToolResult({ id, name, content, truncated }) {
    let item = this.toolItems.get(String(id));
    if (!item) {
      this.addToolCall({ id, name, arguments: {} });
      item = this.toolItems.get(String(id));
    }
    item.dataset.state = 'done';
    item.querySelector('.tool-verb').textContent = 'Used tool';
    const details = el('details', 'tool-details');
    const summary = truncated ? 'Result (truncated)' : 'Result';
    details.append(el('summary', '', summary), el('pre', 'tool-result', stringify(content ?? '')));
    item.append(details);
  }

  setCitations(list) {
    if (!Array.isArray(list) || list.length === 0) return;
    this.citations.replaceChildren();
    const heading = el('h2', 'citations-title', 'Sources');
    const ol = el('ol', 'citation-list');
    for (const c of list) {
      const li = el('li', 'citation');
      const n = el('span', 'citation-index', String(c?.index ?? ol.children.length + 1));
      n.setAttribute('aria-hidden', 'true');
      const main = el('div', 'citation-main');
      const title = String(c?.title || c?.source || 'Source');
      // A source is a link when it is one (ingested with --base-url); a file path on the server is not.
      const href = /^https?:\/\//i.test(String(c?.source ?? '')) ? safeHref(c.source) : null;
      if (href) {
        const a = el('a', 'citation-title', title);
        a.href = href;
        a.target = '_blank';
        a.rel = 'noopener noreferrer';
        main.append(a);
      } else {
        main.append(el('span', 'citation-title', title));
      }
      if (c?.source && c.source !== title) main.append(el('span', 'citation-source', String(c.source)));
      if (c?.snippet) main.append(el('p', 'citation-snippet', String(c.snippet)));
      li.append(n, main);
      ol.append(li);
    }
    this.citations.append(heading, ol);
    this.citations.hidden = false;
  }

  /** state: 'done' | 'stopped' | 'error'. */
  finish(state, note = '') {
    this.flushText();
    this.frozen = true;
    this.hideStage();
    this.root.dataset.state = state;
    this.text.setAttribute('aria-busy', 'false');
    this.text.normalize();
    for (const item of this.toolItems.values()) {
      if (item.dataset.state === 'running') item.dataset.state = 'done';
    }
    this.foot.replaceChildren();
    if (state === 'stopped') {
      this.foot.append(el('span', 'badge badge-stopped', 'Stopped'));
      if (!this.textContent) this.foot.append(el('span', 'foot-note', 'before any text was written'));
    } else if (state === 'error') {
      this.foot.append(el('span', 'badge badge-error', 'Not finished'));
      if (note || !this.textContent) this.foot.append(el('span', 'foot-note', note || 'No answer arrived.'));
    } else if (note) {
      this.foot.append(el('span', 'foot-note', note));
    }
    this.foot.hidden = this.foot.childElementCount === 0;
  }
}

// --- the page ------------------------------------------------------------------------------

const $ = (id) => document.getElementById(id);
const ui = {
  scroller: $('scroller'),
  messages: $('messages'),
  empty: $('empty'),
  historyNote: $('history-note'),
  form: $('composer'),
  input: $('input'),
  send: $('send'),
  status: $('status'),
  statusText: $('status-text'),
  error: $('error'),
  errorText: $('error-text'),
  retry: $('retry'),
  newChat: $('new-chat'),
};

const state = {
  sessionId: storage()?.getItem(SESSION_KEY) || null,
  run: null,          // the run in progress: { controller, runId, view, stopped, reconnecting, note }
  lastMessage: null,  // what the retry button sends again
  failedView: null,   // the answer that ended in an error (replaced on retry)
};

function saveSession(id) {
  const changed = state.sessionId !== id;
  state.sessionId = id;
  const s = storage();
  if (s) {
    if (id) s.setItem(SESSION_KEY, id);
    else s.removeItem(SESSION_KEY);
  }
  // The conversation list (conversations.js) highlights the open conversation.
  if (changed) window.dispatchEvent(new CustomEvent('chatstream:session', { detail: { id } }));
}

function isNearBottom() {
  const s = ui.scroller;
  return s.scrollHeight - s.scrollTop - s.clientHeight < 80;
}

function scrollToBottom(force = false) {
  if (force || state.stickToBottom) ui.scroller.scrollTop = ui.scroller.scrollHeight;
}

function updateEmpty() {
  ui.empty.hidden = ui.messages.childElementCount > 0 || !ui.historyNote.hidden;
}

function autosize() {
  ui.input.style.height = 'auto';
  ui.input.style.height = `${Math.min(ui.input.scrollHeight, 200)}px`;
}

function updateSendButton() {
  const busy = state.run !== null;
  ui.send.dataset.mode = busy ? 'stop' : 'send';
  ui.send.setAttribute('aria-label', busy ? 'Stop generating' : 'Send message');
  ui.send.title = busy ? 'Stop (Esc)' : 'Send (Enter)';
  ui.send.disabled = !busy && ui.input.value.trim() === '';
}

function setBusy(busy) {
  const hadFocus = document.activeElement === ui.input;
  ui.input.disabled = busy;
  document.body.classList.toggle('is-streaming', busy);
  updateSendButton();
  if (busy && hadFocus) ui.send.focus(); // keyboard users land on the stop button
}

function showStatus(text) {
  ui.statusText.textContent = text;
  ui.status.hidden = !text;
}

function showError(text) {
  ui.errorText.textContent = text;
  ui.error.hidden = false;
}

function hideError() {
  ui.error.hidden = true;
  ui.errorText.textContent = '';
}

function errorEventWords(data) {
  const base = ERROR_WORDS[data.code] || 'The answer could not be completed.';
  if (typeof data.message === 'string' && data.message.trim()) return data.message.trim();
  return base;
}

function failureWords(err, retried) {
  const text = describeError(err);
  return retried > 0 ? `${text} Gave up after ${retried + 1} attempts.` : text;
}

/** The run the page follows from now on (the stop button stops it). */
function startRun(view, runId = null) {
  const run = { controller: new AbortController(), runId, view, stopped: false, onMeta: null, reconnecting: false, note: '' };
  state.run = run;
  setBusy(true);
  return run;
}

/** Callbacks shared by every stream of a run: events, the reconnection status, its end. */
function streamCallbacks(run) {
  return {
    signal: run.controller.signal,
    log: debug,
    onOpen: () => {
      run.reconnecting = false;
      showStatus(run.note);
    },
    onEvent: (data) => onEvent(run, data),
    // The stream dropped: the same answer continues from its last event once reconnected.
    onReconnect: ({ attempt, of, delayMs, error }) => {
      run.reconnecting = true;
      showStatus(`${describeError(error)} Retrying in ${Math.round(delayMs / 1000)} s… (attempt ${attempt} of ${of})`);
    },
  };
}

/**
 * Wait for the end of a run's stream and show it. Resolves with the error the caller handles itself
 * (`handled(err)` true), else undefined.
 */
async function follow(run, stream, { handled = () => false } = {}) {
  const { view } = run;
  const retries = { count: 0 };
  try {
    const end = await stream(retries);
    if (run.stopped) return undefined; // stop() already showed the outcome; a late end event changes nothing
    showStatus('');
    if (end.type === 'done') {
      view.finish('done');
    } else if (end.type === 'cancelled') {
      view.finish('stopped');
    } else {
      const words = errorEventWords(end);
      view.finish('error');
      state.failedView = view;
      showError(words);
    }
  } catch (err) {
    if (run.stopped) return undefined;
    showStatus('');
    if ((err instanceof ChatStreamError && err.kind === 'aborted') || run.controller.signal.aborted) {
      view.finish('stopped');
    } else if (handled(err)) {
      return err;
    } else {
      debug('failed', err);
      const words = failureWords(err, retries.count);
      view.finish('error');
      state.failedView = view;
      showError(words);
    }
  } finally {
    window.dispatchEvent(new CustomEvent('chatstream:run-ended')); // the list shows the new answer
    if (state.run === run) {
      state.run = null;
      setBusy(false);
      if (!ui.error.hidden) ui.retry.focus();
      else if (document.activeElement === ui.send || document.activeElement === document.body) ui.input.focus();
    }
  }
  return undefined;
}

const isBusySession = (err) => err instanceof ChatStreamError && err.kind === 'http' && err.code === 'run_in_progress';

async function send(message, { retry = false } = {}) {
  if (state.run) return;
  const text = message.trim();
  if (!text) return;
  hideError();
  showStatus('');
  state.lastMessage = text;

  let asked = null;
  if (retry && state.failedView) {
    state.failedView.root.remove();
  } else if (!retry) {
    asked = new UserMessage(text).root;
    ui.messages.append(asked);
  }
  state.failedView = null;
  const view = new AnswerView();
  ui.messages.append(view.root);
  updateEmpty();
  state.stickToBottom = true;
  scrollToBottom(true);

  const run = startRun(view);
  const callbacks = streamCallbacks(run);
  const busy = await follow(run, (retries) => withRetry((attempt) => {
    run.runId = null;
    view.reset();
    if (attempt > 0) debug('attempt', attempt + 1);
    return streamChat({
      url: '/chat/stream',
      body: state.sessionId ? { message: text, session_id: state.sessionId } : { message: text },
      resume: true,
      ...callbacks,
    });
  }, {
    delays: RETRY_DELAYS_MS,
    signal: run.controller.signal,
    onRetry: ({ attempt, of, delayMs, error }) => {
      retries.count = attempt;
      debug('retry', { attempt, delayMs, kind: error.kind, status: error.status });
      view.reset();
      showStatus(`${describeError(error)} Retrying in ${Math.round(delayMs / 1000)} s… (attempt ${attempt} of ${of})`);
    },
  }), { handled: (err) => isBusySession(err) && Boolean(state.sessionId) });

  if (busy) {
    // 409 run_in_progress: the conversation is still answering an earlier message (another tab, a
    // reload's lost stream). Nothing of this message was stored: show the conversation as the server
    // has it, follow the running answer, and keep the new message in the box to send afterwards.
    debug('session busy with run', busy.runId);
    view.root.remove();
    asked?.remove();
    updateEmpty();
    if (!ui.input.value.trim()) {
      ui.input.value = text;
      autosize();
    }
    await loadHistory({ replace: true, note: BUSY_NOTE, runId: busy.runId });
  }
}

/**
 * Follow a run that is already answering (found by loadHistory, or the run a 409 named): a new
 * answer view, fed from the run's first event (GET /chat/stream/{run_id}), with the stop button.
 */
async function attach(runId, { note = '' } = {}) {
  if (state.run) return;
  hideError();
  state.failedView = null;
  const view = new AnswerView();
  view.reset();
  ui.messages.append(view.root);
  updateEmpty();
  state.stickToBottom = true;
  scrollToBottom(true);
  const run = startRun(view, runId);
  run.note = note;
  showStatus(note);
  const gone = await follow(run, () => resumeChat({ runId, url: '/chat/stream', ...streamCallbacks(run) }), {
    // 404 / 410: the run ended and is no longer kept (or is not ours): show what was stored.
    handled: (err) => err instanceof ChatStreamError && err.kind === 'http' && (err.status === 404 || err.status === 410),
  });
  if (gone) {
    debug('run not followable', runId, gone.status);
    view.root.remove();
    await loadHistory({ replace: true, follow: false });
  }
}

function onEvent(run, data) {
  const { view } = run;
  if (data.type === 'meta') {
    run.runId = data.run_id || null;
    run.onMeta?.();
  }
  if (run.stopped) return; // only the run id still matters: stop() needs it to cancel
  switch (data.type) {
    case 'meta':
      if (typeof data.session_id === 'string' && data.session_id) saveSession(data.session_id);
      break;
    case 'retrieval_start':
      view.setStage('retrieval');
      break;
    case 'retrieval_complete':
      view.setStageDetail(Number.isFinite(data.count) ? `${data.count} found` : '');
      break;
    case 'reranking_start':
      view.setStage('reranking', Number.isFinite(data.count) ? `${data.count} candidates` : '');
      break;
    case 'reranking_complete':
      view.setStageDetail(Number.isFinite(data.kept) ? `${data.kept} kept` : '');
      break;
    case 'citations':
      view.setCitations(data.citations);
      break;
    case 'generation_start':
      view.setStage('generating');
      break;
    case 'token':
      if (typeof data.content === 'string') {
        view.appendText(data.content);
        scrollToBottom();
      }
      break;
    case 'tool_call':
      view.addToolCall(data);
      scrollToBottom();
      break;
    case 'tool_result':
      view.addToolResult(data);
      scrollToBottom();
      break;
    default:
      break; // done / error / cancelled end the stream (handled by send); unknown types are ignored
  }
}

/**
 * Stop the answer in progress: the partial text stays, marked as stopped. The server is asked to
 * cancel the run first (so it records it as cancelled, not as a dropped connection); then the
 * fetch is aborted, whatever the cancel call answered.
 */
async function stop() {
  const run = state.run;
  if (!run || run.stopped) return;
  run.stopped = true;
  run.view.finish('stopped');
  showStatus('');
  state.run = null;
  setBusy(false);
  ui.input.focus();
  // Waiting to reconnect: there is no stream to keep open until the cancel is sent.
  if (run.reconnecting) run.controller.abort(new DOMException('Stopped by the user', 'AbortError'));
  if (!run.runId) {
    // meta is the stream's first event and is written at once: wait a moment for the run id, so
    // even an early stop is a cancel and not a dropped connection.
    await new Promise((resolve) => {
      run.onMeta = resolve;
      setTimeout(resolve, 1000);
    });
  }
  if (run.runId) await cancelRun({ runId: run.runId, log: debug, timeoutMs: 2000 });
  run.controller.abort(new DOMException('Stopped by the user', 'AbortError'));
}

function newChat() {
  if (state.run) stop();
  saveSession(null);
  ui.messages.replaceChildren();
  ui.historyNote.hidden = true;
  state.lastMessage = null;
  state.failedView = null;
  hideError();
  showStatus('');
  updateEmpty();
  ui.input.value = '';
  autosize();
  updateSendButton();
  ui.input.focus();
}

/**
 * Show the open conversation as stored (GET /sessions/{id}/messages) and, when it is still
 * answering (`running_run_id`), follow that answer. With `replace` the messages on screen are
 * replaced; else nothing is done once the user has started writing to it.
 */
async function loadHistory({ replace = false, follow: followRun = true, note = '', runId = null } = {}) {
  if (!state.sessionId) return;
  const sessionId = state.sessionId;
  let conversation;
  try {
    conversation = await fetchConversation({ sessionId, log: debug });
  } catch (err) {
    debug('history failed', err);
    conversation = null;
  }
  if (state.sessionId !== sessionId || state.run) return; // the user moved on
  if (!replace && ui.messages.childElementCount > 0) return;
  if (!conversation) {
    if (replace && runId && followRun) {
      attach(runId, { note }); // no stored history to show, but the server named the running answer
      return;
    }
    if (replace) ui.messages.replaceChildren();
    ui.historyNote.textContent = 'You are continuing an earlier conversation; its previous messages cannot be shown.';
    ui.historyNote.hidden = false;
    updateEmpty();
    return;
  }
  if (replace) ui.messages.replaceChildren();
  for (const m of conversation.messages) {
    if (m.role === 'user') {
      ui.messages.append(new UserMessage(m.content).root);
      state.lastMessage = m.content; // what Retry sends again should the running answer fail
    } else {
      const view = new AnswerView();
      view.appendText(m.content);
      view.flushText();
      view.setCitations(m.citations);
      view.finish(m.status === 'cancelled' ? 'stopped' : m.status === 'error' ? 'error' : 'done');
      ui.messages.append(view.root);
    }
  }
  updateEmpty();
  scrollToBottom(true);
  const running = conversation.runningRunId;
  if (running && followRun) attach(running, { note });
}

// --- wiring --------------------------------------------------------------------------------

ui.form.addEventListener('submit', (e) => {
  e.preventDefault();
  if (state.run) {
    stop();
    return;
  }
  const text = ui.input.value;
  if (!text.trim()) return;
  ui.input.value = '';
  autosize();
  send(text);
});

ui.input.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
    e.preventDefault();
    ui.form.requestSubmit();
  }
});

ui.input.addEventListener('input', () => {
  autosize();
  updateSendButton();
});

document.addEventListener('keydown', (e) => {
  if (e.key === 'Escape' && state.run) {
    e.preventDefault();
    stop();
  }
});

ui.scroller.addEventListener('scroll', () => {
  state.stickToBottom = isNearBottom();
}, { passive: true });

ui.retry.addEventListener('click', () => {
  if (state.lastMessage) send(state.lastMessage, { retry: true });
});

ui.newChat.addEventListener('click', newChat);
// The conversation list (conversations.js) opens a stored conversation, or a new chat (id null).
window.addEventListener('chatstream:open', (e) => {
  const id = e.detail?.id || null;
  if (id && id === state.sessionId && !state.run) return;
  newChat();
  if (id) {
    saveSession(id);
    loadHistory();
  }
});

for (const button of document.querySelectorAll('.suggestion')) {
  button.addEventListener('click', () => send(button.textContent));
}

updateSendButton();
updateEmpty();
loadHistory();
ui.input.focus();
debug('ready', { session: state.sessionId });
