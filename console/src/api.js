// The one door to poold's HTTP API: bearer token (sessionStorage), author
// header on writes, JSON in and out, and errors turned into messages a
// campaign manager can act on. Endpoints this poold does not have yet answer
// 404 "no such endpoint": they are remembered in `missing` so pages hide
// what depends on them instead of failing.

const TOKEN_KEY = 'poold.token';
const AUTHOR_KEY = 'poold.author';

export const session = {
  get token() { return sessionStorage.getItem(TOKEN_KEY) || ''; },
  set token(v) { v ? sessionStorage.setItem(TOKEN_KEY, v) : sessionStorage.removeItem(TOKEN_KEY); },
  get author() { return localStorage.getItem(AUTHOR_KEY) || ''; },
  set author(v) { v ? localStorage.setItem(AUTHOR_KEY, v) : localStorage.removeItem(AUTHOR_KEY); },
};

export class ApiError extends Error {
  constructor(status, data, message) {
    super(message);
    this.status = status;
    this.data = data || {};
    this.missing = status === 404 && /no such endpoint/.test(this.data.error || '');
  }
}

// Endpoint families that answered "no such endpoint" (keys: see family()).
export const missing = new Set();
const listeners = new Set();
export function onAuthProblem(fn) { listeners.add(fn); return () => listeners.delete(fn); }

function family(method, path) {
  const p = path.replace(/\?.*$/, '');
  if (/^\/api\/pools\/[^/]+\/changes$/.test(p)) return 'changes';
  if (/^\/api\/skus\/[^/]+\/explain$/.test(p)) return 'explain';
  if (/^\/api\/rules/.test(p)) {
    const m = /^\/api\/rules\/[^/]+\/(\w+)$/.exec(p);
    return m ? `rules.${m[1]}` : `rules.${method}`;
  }
  return p.replace(/^\/api\/(\w+).*$/, '$1');
}

function describe(status, data, method, path) {
  const e = (data && data.error) || '';
  if (status === 0) return `poold is not reachable (${e || 'network error'})`;
  if (status === 401) return `Sign in: ${e || 'this needs a token'} (use "Sign in" at the top right).`;
  if (status === 403) return `Not allowed: ${e || 'your role may not do this'}.`;
  if (status === 404 && /no such endpoint/.test(e)) return `This poold has no ${method} ${path.replace(/\?.*$/, '')} yet.`;
  return e || `${method} ${path} answered ${status}`;
}

export async function api(method, path, opts = {}) {
  const headers = { Accept: 'application/json', ...(opts.headers || {}) };
  const tok = session.token;
  if (tok) headers.Authorization = `Bearer ${tok}`;
  if (method !== 'GET' && session.author && !tok) headers['X-Poold-Author'] = session.author;
  let body;
  if (opts.text != null) {
    body = opts.text;
    headers['Content-Type'] = 'text/x-lua';
  } else if (opts.json !== undefined) {
    body = JSON.stringify(opts.json);
    headers['Content-Type'] = 'application/json';
  }
  let r;
  try {
    r = await fetch(path, { method, headers, body, signal: opts.signal, cache: 'no-store' });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, { error: err.message }, describe(0, { error: err.message }, method, path));
  }
  const ct = r.headers.get('content-type') || '';
  let data = null;
  if (ct.includes('json')) {
    try { data = await r.json(); } catch { data = null; }
  } else {
    data = { text: await r.text() };
  }
  if (r.ok) {
    missing.delete(family(method, path));
    return data;
  }
  const err = new ApiError(r.status, data, describe(r.status, data, method, path));
  if (opts.okStatus && opts.okStatus.includes(r.status)) return Object.assign(data || {}, { _status: r.status });
  if (err.missing) missing.add(family(method, path));
  if (r.status === 401 || r.status === 403) listeners.forEach((fn) => fn(err));
  throw err;
}

export const get = (path, opts) => api('GET', path, opts);
export const post = (path, json, opts = {}) => api('POST', path, { ...opts, json });

export const enc = encodeURIComponent;

// What each role may do (src/auth.h): ingest posts events; editor changes
// rules (draft, preview, publish, rollback, delete); admin does everything.
const ROLE_PERMS = { ingest: ['events'], editor: ['rules'], admin: ['events', 'rules', 'admin'] };

// who: {name, role, auth} from /api/whoami (auth: does the server check
// tokens); null when unknown. authRequired is learnt from a 401 too.
export function can(who, what) {
  if (!who) return true; // unknown: let the server decide, its 401/403 is shown
  if (who.role) return (ROLE_PERMS[who.role] || []).includes(what);
  return !who.auth;
}

export function denyReason(who, what) {
  if (can(who, what)) return '';
  const need = what === 'rules' ? 'an editor or admin' : what === 'events' ? 'an ingest or admin' : 'an admin';
  if (who && who.role) return `Your role "${who.role}" may not do this: it needs ${need} token.`;
  return `Sign in with ${need} token to do this.`;
}
