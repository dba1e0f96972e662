// The conversation list: a side panel on wide screens, a menu on phones. Lists the user's stored
// conversations newest first (GET /sessions, "Show more" pages with ?before=), opens one, renames it
// inline (PATCH /sessions/{id}), deletes it after a confirmation (DELETE /sessions/{id}, which also
// stops its running answer). The page (app.js) owns the open conversation: this module asks it to
// open one with the event `chatstream:open` {id} (null: a new chat) and hears `chatstream:session`
// (the open conversation changed) and `chatstream:run-ended` (a conversation got a new answer).

const SESSION_KEY = 'chatstream.session_id'; // app.js keeps the open conversation here
const PAGE = 30;

const $ = (id) => document.getElementById(id);
const ui = {
  panel: $('conversations'),
  list: $('conversation-list'),
  empty: $('conversation-empty'),
  more: $('conversation-more'),
  note: $('conversation-note'),
  menu: $('menu'),
  newChat: $('conversation-new'),
};

const state = {
  items: [],
  next: null,
  loading: null, // the refresh in flight
};

function currentId() {
  try {
    return window.localStorage.getItem(SESSION_KEY);
  } catch {
    return null;
  }
}

function when(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return '';
  const seconds = (Date.now() - date.getTime()) / 1000;
  if (seconds < 60) return 'just now';
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400 && new Date().getDate() === date.getDate()) {
    return date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }
  return date.toLocaleDateString([], { month: 'short', day: 'numeric' });
}

async function getJson(url, init) {
  const res = await fetch(url, { headers: { Accept: 'application/json' }, ...init });
  let body = null;
  try {
    body = await res.json();
  } catch {
    body = null;
  }
  if (!res.ok) {
    const message = body?.error?.message || `The server answered ${res.status}.`;
    throw Object.assign(new Error(message), { status: res.status });
  }
  return body;
}

function setNote(text) {
  ui.note.textContent = text;
  ui.note.hidden = !text;
}

function icon(path) {
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  const p = document.createElementNS('http://www.w3.org/2000/svg', 'path');
  p.setAttribute('d', path);
  svg.append(p);
  return svg;
}

function render() {
  const open = currentId();
  ui.list.replaceChildren(...state.items.map((c) => {
    const li = document.createElement('li');
    li.className = 'conv';
    li.dataset.id = c.id;
    const title = c.title || 'Untitled conversation';

    const openButton = document.createElement('button');
    openButton.type = 'button';
    openButton.className = 'conv-open';
    if (c.id === open) openButton.setAttribute('aria-current', 'true');
    const name = document.createElement('span');
    name.className = 'conv-title';
    name.textContent = title;
    const meta = document.createElement('span');
    meta.className = 'conv-meta';
    meta.textContent = `${when(c.updated_at)} · ${c.message_count} message${c.message_count === 1 ? '' : 's'}`;
    if (c.running) {
      const dot = document.createElement('span');
      dot.className = 'conv-running';
      dot.textContent = 'answering';
      meta.append(' · ', dot);
    }
    openButton.append(name, meta);
    openButton.addEventListener('click', () => openConversation(c.id));

    const rename = document.createElement('button');
    rename.type = 'button';
    rename.className = 'conv-action conv-rename';
    rename.setAttribute('aria-label', `Rename “${title}”`);
    rename.title = 'Rename';
    rename.append(icon('M4 20h4L19 9l-4-4L4 16v4zM13.5 6.5l4 4'));
    rename.addEventListener('click', () => startRename(li, c));

    const remove = document.createElement('button');
    remove.type = 'button';
    remove.className = 'conv-action conv-delete';
    remove.setAttribute('aria-label', `Delete “${title}”`);
    remove.title = 'Delete';
    remove.append(icon('M5 7h14M10 11v6M14 11v6M7 7l1 12h8l1-12M9 7V4h6v3'));
    remove.addEventListener('click', () => deleteConversation(c));

    li.append(openButton, rename, remove);
    return li;
  }));
  ui.empty.hidden = state.items.length > 0 || state.loading !== null;
  ui.more.hidden = !state.next;
}

/** Reloads the first page (coalesced: events often come in pairs). */
function refresh() {
  if (state.loading) return state.loading;
  state.loading = (async () => {
    try {
      const page = await getJson(`/sessions?limit=${PAGE}`);
      state.items = Array.isArray(page?.sessions) ? page.sessions : [];
      // A server without a database keeps no conversations: no list to show.
      document.body.classList.toggle('no-conversations', page?.stored === false);
      state.next = page?.next_before || null;
      setNote('');
    } catch (err) {
      if (err.status === 401) {
        state.items = [];
        state.next = null;
        setNote('Signed out: your conversations are hidden.');
      } else {
        setNote(`Conversations could not be loaded. ${err.message}`);
      }
    } finally {
      state.loading = null;
      render();
    }
  })();
  return state.loading;
}

async function loadMore() {
  if (!state.next) return;
  try {
    const page = await getJson(`/sessions?limit=${PAGE}&before=${encodeURIComponent(state.next)}`);
    const known = new Set(state.items.map((c) => c.id));
    state.items.push(...(page.sessions || []).filter((c) => !known.has(c.id)));
    state.next = page.next_before || null;
  } catch (err) {
    setNote(`More conversations could not be loaded. ${err.message}`);
  }
  render();
}

function closeMenu() {
  document.body.classList.remove('list-open');
  ui.menu?.setAttribute('aria-expanded', 'false');
}

function openConversation(id) {
  closeMenu();
  window.dispatchEvent(new CustomEvent('chatstream:open', { detail: { id } }));
}

function startRename(li, conversation) {
  const openButton = li.querySelector('.conv-open');
  const input = document.createElement('input');
  input.className = 'conv-input';
  input.value = conversation.title;
  input.maxLength = 200;
  input.setAttribute('aria-label', 'New name of the conversation');
  let done = false;
  const finish = async (save) => {
    if (done) return;
    done = true;
    const title = input.value.trim();
    if (save && title && title !== conversation.title) {
      try {
        await getJson(`/sessions/${encodeURIComponent(conversation.id)}`, {
          method: 'PATCH',
          headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
          body: JSON.stringify({ title }),
        });
        conversation.title = title;
      } catch (err) {
        setNote(`The conversation could not be renamed. ${err.message}`);
      }
    }
    render();
    ui.list.querySelector(`[data-id="${conversation.id}"] .conv-rename`)?.focus();
  };
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') {
      e.preventDefault();
      finish(true);
    } else if (e.key === 'Escape') {
      e.preventDefault();
      e.stopPropagation(); // Escape also stops an answer in app.js: not here
      finish(false);
    }
  });
  input.addEventListener('blur', () => finish(true));
  openButton.replaceWith(input);
  input.focus();
  input.select();
}

async function deleteConversation(conversation) {
  const title = conversation.title || 'this conversation';
  if (!window.confirm(`Delete “${title}”? This cannot be undone.`)) return;
  try {
    await getJson(`/sessions/${encodeURIComponent(conversation.id)}`, { method: 'DELETE' });
  } catch (err) {
    if (err.status !== 404) {
      setNote(`The conversation could not be deleted. ${err.message}`);
      return;
    }
  }
  state.items = state.items.filter((c) => c.id !== conversation.id);
  render();
  if (conversation.id === currentId()) openConversation(null);
  refresh();
}

ui.more.addEventListener('click', loadMore);
ui.newChat?.addEventListener('click', () => openConversation(null));
ui.menu?.addEventListener('click', () => {
  const open = document.body.classList.toggle('list-open');
  ui.menu.setAttribute('aria-expanded', String(open));
  if (open) {
    refresh();
    ui.panel.querySelector('button')?.focus();
  }
});
ui.panel.addEventListener('keydown', (e) => {
  if (e.key === 'Escape' && document.body.classList.contains('list-open')) {
    closeMenu();
    ui.menu?.focus();
  }
});
$('conversation-backdrop')?.addEventListener('click', closeMenu);
window.addEventListener('chatstream:session', () => {
  render();
  refresh();
});
window.addEventListener('chatstream:run-ended', refresh);
window.addEventListener('chatstream:signed-in', refresh);
window.addEventListener('chatstream:signed-out', () => {
  state.items = [];
  state.next = null;
  setNote('Signed out: your conversations are hidden.');
  render();
});

refresh();
