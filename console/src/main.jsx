// poold console: layout, hash routing, sign-in (bearer token in
// sessionStorage) and toasts. Pages live in pages/*.jsx.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import 'uplot/dist/uPlot.min.css';
import './style.css';
import { get, session, onAuthProblem, ApiError } from './api.js';
import { Dialog, Toast } from './components.jsx';
import { Overview } from './pages/overview.jsx';
import { PoolPage } from './pages/pool.jsx';
import { SkuPage } from './pages/sku.jsx';
import { RulesPage, EditorPage, NewPoolPage } from './pages/editor.jsx';
import { QueryPage } from './pages/query.jsx';

function parseHash() {
  const h = location.hash.replace(/^#\/?/, '');
  const [path, qs] = h.split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  return { parts, q: new URLSearchParams(qs || '') };
}

function SignIn({ who, onDone }) {
  const [token, setToken] = useState(session.token);
  const [author, setAuthor] = useState(session.author);
  function save(e) {
    e && e.preventDefault();
    session.token = token.trim();
    session.author = author.trim();
    onDone(true);
  }
  return (
    <Dialog title="Sign in" onClose={() => onDone(false)} actions={[
      <button class="btn" onClick={() => { session.token = ''; onDone(true); }}>Sign out</button>,
      <button class="btn" onClick={() => onDone(false)}>Cancel</button>,
      <button class="btn primary" id="signin-save" onClick={save}>Save</button>,
    ]}>
      <form onSubmit={save} class="form">
        <label>Token <small>(kept for this tab only)</small>
          <input id="token" type="password" autocomplete="off" value={token} onInput={(e) => setToken(e.target.value)} />
        </label>
        <label>Your name <small>(recorded as the author when the server has no tokens)</small>
          <input id="author" value={author} onInput={(e) => setAuthor(e.target.value)} />
        </label>
        <p class="muted">{who && who.name ? `Signed in as ${who.name} (${who.role}).` : 'Not signed in.'}</p>
      </form>
    </Dialog>
  );
}

function App() {
  const [route, setRoute] = useState(parseHash());
  const [who, setWho] = useState(null);
  const [signin, setSignin] = useState(false);
  const [authMsg, setAuthMsg] = useState('');

  async function loadWho() {
    try {
      const w = await get('/api/whoami');
      setWho({ name: w.name || null, role: w.role || null, auth: w.auth ?? w.auth_required ?? !!w.role });
    } catch (e) {
      if (e instanceof ApiError && e.missing) setWho(null); // no auth on this poold
      else if (e.status === 401) setWho({ name: null, role: null, auth: true });
    }
  }
  useEffect(() => {
    const on = () => setRoute(parseHash());
    addEventListener('hashchange', on);
    loadWho();
    const off = onAuthProblem((err) => {
      setAuthMsg(err.message);
      if (err.status === 401) setWho((w) => ({ ...(w || {}), name: null, role: null, auth: true }));
    });
    return () => { removeEventListener('hashchange', on); off(); };
  }, []);

  const [p0, p1] = route.parts;
  let page;
  if (!p0 || p0 === 'pools' && !p1) page = <Overview who={who} />;
  else if (p0 === 'pools') page = <PoolPage key={p1} name={p1} who={who} />;
  else if (p0 === 'skus') page = <SkuPage key={p1 || ''} sku={p1 || ''} />;
  else if (p0 === 'rules' && p1) page = <EditorPage key={p1} name={p1} who={who} />;
  else if (p0 === 'rules') page = <RulesPage who={who} />;
  else if (p0 === 'new') page = <NewPoolPage who={who} where={route.q.get('where') || ''} />;
  else if (p0 === 'query') page = <QueryPage q={route.q.get('q') || ''} />;
  else page = <div class="page"><h2>Not found</h2><p><a href="#/">Back to the pools</a></p></div>;

  const nav = (href, label, active) => <a href={href} class={active ? 'active' : ''}>{label}</a>;
  return (
    <>
      <header class="top">
        <a class="brand" href="#/">poold</a>
        <nav>
          {nav('#/', 'Pools', !p0 || p0 === 'pools')}
          {nav('#/rules', 'Rules', p0 === 'rules' || p0 === 'new')}
          {nav('#/skus', 'SKUs', p0 === 'skus')}
          {nav('#/query', 'Query', p0 === 'query')}
        </nav>
        <button class="who" id="signin" onClick={() => setSignin(true)} title="Token and author">
          {who && who.name ? `${who.name} · ${who.role}` : who && who.auth ? 'Sign in' : session.author || 'Sign in'}
        </button>
      </header>
      {authMsg && (
        <div class="msg msg-error banner" role="alert">
          {authMsg} <button class="link" onClick={() => setSignin(true)}>Sign in</button>
          <button class="link" onClick={() => setAuthMsg('')}>dismiss</button>
        </div>
      )}
      <main>{page}</main>
      {signin && <SignIn who={who} onDone={(changed) => { setSignin(false); if (changed) { setAuthMsg(''); loadWho(); } }} />}
      <Toast />
    </>
  );
}

render(<App />, document.getElementById('app'));
