// Sign-in for the chat page. chatstream does not sign users in itself: a site that has sign-in hands
// the page a bearer token (a JWT whose `sub` is the user), either once in the address as
// `#token=<jwt>` (taken out of the address bar at once, kept in sessionStorage for this tab) or by
// calling `window.chatstreamAuth.setToken(jwt)` (README: "Sign-in").
//
// Every request of the page goes through fetch: this module wraps it once, so the streaming client
// (chatstream-client.js) and the page send `Authorization: Bearer <token>` on every same-origin API
// request without knowing about sign-in. A 401 answer means the token is missing, expired or
// refused: the page shows a "signed out" state (event `chatstream:signed-out`) until a new token
// arrives (event `chatstream:signed-in`).

const TOKEN_KEY = 'chatstream.token';
const API_PATHS = /^\/(chat|sessions|api|v1)(\/|$)/;

function storage() {
  try {
    return window.sessionStorage;
  } catch {
    return null; // storage disabled: the token lives as long as the page
  }
}

let token = storage()?.getItem(TOKEN_KEY) || null;
let signedOut = false;

/** Takes `#token=…` out of the address (so it is neither bookmarked nor shared) and keeps it. */
function takeTokenFromAddress() {
  const hash = window.location.hash.slice(1);
  if (!hash) return;
  const params = new URLSearchParams(hash);
  const given = params.get('token');
  if (given === null) return;
  params.delete('token');
  const rest = params.toString();
  history.replaceState(history.state, '', window.location.pathname + window.location.search + (rest ? `#${rest}` : ''));
  if (given) setToken(given);
}

export function getToken() {
  return token;
}

export function isSignedOut() {
  return signedOut;
}

export function setToken(value) {
  token = value || null;
  const s = storage();
  if (s) {
    if (token) s.setItem(TOKEN_KEY, token);
    else s.removeItem(TOKEN_KEY);
  }
  if (token && signedOut) {
    signedOut = false;
    window.dispatchEvent(new CustomEvent('chatstream:signed-in'));
  }
}

function markSignedOut(reason) {
  if (signedOut) return;
  signedOut = true;
  window.dispatchEvent(new CustomEvent('chatstream:signed-out', { detail: { reason } }));
}

function isApiRequest(input) {
  const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url, window.location.href);
  return url.origin === window.location.origin && API_PATHS.test(url.pathname);
}

const originalFetch = globalThis.fetch.bind(globalThis);

/** fetch with the bearer token on API requests; a 401 answer signs the page out. */
export async function authorizedFetch(input, init = {}) {
  if (!isApiRequest(input)) return originalFetch(input, init);
  const headers = new Headers(init.headers || (input instanceof Request ? input.headers : undefined));
  if (token) headers.set('Authorization', `Bearer ${token}`);
  const response = await originalFetch(input, { ...init, headers });
  if (response.status === 401) {
    let reason = '';
    try {
      reason = (await response.clone().json())?.error?.message || '';
    } catch {
      // not the JSON error shape: the status says enough
    }
    markSignedOut(reason);
  }
  return response;
}

globalThis.fetch = authorizedFetch;
window.chatstreamAuth = Object.freeze({ setToken, getToken, isSignedOut });
takeTokenFromAddress();

// The signed-out notice (index.html #signed-out): shown on a 401 until a token arrives.
function showSignedOut(visible, reason = '') {
  const notice = document.getElementById('signed-out');
  if (!notice) return;
  notice.hidden = !visible;
  const detail = notice.querySelector('[data-reason]');
  if (detail) detail.textContent = reason;
}
window.addEventListener('chatstream:signed-out', (e) => showSignedOut(true, e.detail?.reason || ''));
window.addEventListener('chatstream:signed-in', () => showSignedOut(false));
