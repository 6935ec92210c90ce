// Rules: the list, the editor (save a draft with inline compile errors,
// preview joins/leaves against the live version, publish with a
// confirmation, history with diffs and rollback, delete) and "new pool"
// from a template. The CodeMirror bundle (web/cm.js) is loaded on demand.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, get, post, enc, can, denyReason } from '../api.js';
import { Dialog, Err, Note, Loading, SkuLink, StateBadge, PoolLink, toast } from '../components.jsx';
import { MembersTable, skuRow } from './pool.jsx';
import {
  fmtInt, fmtNum, fmtAgo, fmtTime, lineDiff, diffHunks, parseTagExpr, tagExprToDsl, isPoolName,
} from '../util.js';

let cmModule = null;
const loadCm = () => cmModule || (cmModule = import(new URL(`./cm.js${new URL(import.meta.url).search}`, import.meta.url).href));

// The CodeMirror editor; `handle` receives {getDoc, setDoc, setError, clearError}.
function CodeEditor({ doc, onChange, onSave, onReady }) {
  const box = useRef(null);
  const [state, setState] = useState('loading');
  const cbs = useRef({});
  cbs.current = { onChange, onSave, doc };
  useEffect(() => {
    let ed = null, dead = false;
    loadCm().then((m) => {
      if (dead) return;
      ed = m.createEditor(box.current, {
        doc: cbs.current.doc, // the latest, not the one at mount
        onChange: (d) => cbs.current.onChange && cbs.current.onChange(d),
        onSave: () => cbs.current.onSave && cbs.current.onSave(),
      });
      window.__pooldEditor = ed; // for the browser tests and the devtools
      setState('ready');
      onReady(ed);
    }, (e) => { if (!dead) setState(`The editor failed to load: ${e.message}`); });
    return () => { dead = true; if (ed) ed.destroy(); };
  }, []);
  return (
    <>
      {state !== 'ready' && <div class={state === 'loading' ? 'loading' : 'msg msg-error'}>{state === 'loading' ? 'Loading the editor…' : state}</div>}
      <div class="editor" id="editor" ref={box} />
    </>
  );
}

export function DiffView({ a, b, aLabel, bLabel }) {
  const d = lineDiff(a || '', b || '');
  const adds = d.filter((l) => l.op === '+').length, dels = d.filter((l) => l.op === '-').length;
  return (
    <div class="diff" id="diff">
      <div class="muted small">
        <span class="del">−{dels}</span> <span class="add">+{adds}</span> lines · from {aLabel} to {bLabel}
      </div>
      {adds + dels === 0 ? <p class="muted">No difference.</p> : (
        <pre>{diffHunks(d).map((l) => (l.op === '…' ? <div class="hunk">⋯</div> : (
          <div class={l.op === '+' ? 'add' : l.op === '-' ? 'del' : ''}>
            <span class="ln">{l.a || ''}</span><span class="ln">{l.b || ''}</span>{l.op} {l.text}
          </div>
        )))}</pre>
      )}
    </div>
  );
}

const count = (x) => (x == null ? null : typeof x === 'object' ? x.count : x);

function PreviewPanel({ p, liveSize }) {
  const delta = liveSize == null ? null : p.size - liveSize;
  return (
    <section class="card" id="preview">
      <h3>Preview of the draft <span class="muted small">took {fmtNum(p.took_ms, 1)} ms</span></h3>
      <div class="stats">
        <div class="stat" data-stat="size"><div class="stat-v" id="preview-size">{fmtInt(p.size)}</div>
          <div class="stat-l">size{delta != null ? ` (${delta >= 0 ? '+' : ''}${fmtInt(delta)} vs live)` : ''}</div></div>
        <div class="stat join" data-stat="joins"><div class="stat-v" id="preview-joins">+{fmtInt(count(p.joins))}</div><div class="stat-l">join</div></div>
        <div class="stat leave" data-stat="leaves"><div class="stat-v" id="preview-leaves">−{fmtInt(count(p.leaves))}</div><div class="stat-l">leave</div></div>
        {p.candidates != null && <div class="stat"><div class="stat-v">{fmtInt(p.candidates)}</div><div class="stat-l">candidates after where</div></div>}
        {p.errors != null && <div class={`stat ${p.errors ? 'bad' : ''}`}><div class="stat-v">{fmtInt(p.errors)}</div><div class="stat-l">rule errors</div></div>}
      </div>
      <div class="cols2">
        <div>
          <h4>Joining <span class="muted small">{fmtInt(count(p.joins))}</span></h4>
          <div class="chips" id="preview-join-sample">{((p.joins && p.joins.sample) || []).map((s) => <span class="chip join"><SkuLink sku={s} /></span>)}</div>
        </div>
        <div>
          <h4>Leaving <span class="muted small">{fmtInt(count(p.leaves))}</span></h4>
          <div class="chips" id="preview-leave-sample">{((p.leaves && p.leaves.sample) || []).map((s) => <span class="chip leave"><SkuLink sku={s} /></span>)}</div>
        </div>
      </div>
      {p.where && p.where.length > 0 && (
        <>
          <h4>Prefilter, clause by clause</h4>
          <table class="grid" id="preview-clauses">
            <thead><tr><th>clause</th><th class="num">SKUs with it</th><th class="num">left after it</th></tr></thead>
            <tbody>{p.where.map((c) => <tr><td><code>{c.clause}</code></td><td class="num">{fmtInt(c.count)}</td><td class="num">{fmtInt(c.cumulative)}</td></tr>)}</tbody>
          </table>
        </>
      )}
      <h4>Sample members</h4>
      {(p.sample || []).length ? <MembersTable id="preview-sample" rows={p.sample.map(skuRow)} /> : <p class="muted">The draft selects nothing.</p>}
    </section>
  );
}

function History({ rule, onDiff, onRollback, disabled, reason }) {
  const hist = (rule.history || []).slice().reverse();
  if (!hist.length) return null;
  return (
    <section class="card" id="history">
      <h3>History</h3>
      <table class="grid">
        <thead><tr><th>version</th><th>kind</th><th>author</th><th>when</th><th class="num">size</th><th /></tr></thead>
        <tbody>
          {hist.map((h) => (
            <tr data-version={h.version} class={h.version === rule.version ? 'current' : ''}>
              <td>v{h.version}{h.version === rule.version ? <span class="badge state-live">live</span> : ''}</td>
              <td>{h.kind}</td>
              <td>{h.author || '—'}</td>
              <td title={fmtTime(h.at)}>{fmtAgo(h.at)}</td>
              <td class="num">{fmtInt(h.size)}</td>
              <td class="actions">
                {h.source != null && rule.source != null && h.version !== rule.version && <button class="link" data-action="diff" onClick={() => onDiff(h)}>diff vs live</button>}
                {h.source != null && h.version !== rule.version && h.kind !== 'delete' && (
                  <button class="link" data-action="rollback" disabled={disabled} title={reason} onClick={() => onRollback(h)}>roll back to this</button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

export function RulesPage({ who }) {
  const [rules, setRules] = useState(null);
  const [err, setErr] = useState(null);
  useEffect(() => {
    get('/api/rules').then((r) => setRules(Array.isArray(r) ? r : r.rules || []), async (e) => {
      if (!e.missing) { setErr(e); return; }
      // No rules API on this poold: list the pools instead.
      try { setRules((await get('/api/pools')).map((p) => ({ ...p, fromPools: true }))); } catch (x) { setErr(x); }
    });
  }, []);
  const ok = can(who, 'rules');
  return (
    <div class="page" id="rules">
      <div class="page-head">
        <h2>Rules</h2>
        <span class="grow" />
        <a class={`btn primary ${ok ? '' : 'disabled'}`} href={ok ? '#/new' : undefined} title={denyReason(who, 'rules')}>New pool</a>
      </div>
      <Err error={err} />
      {!rules ? <Loading /> : (
        <table class="grid">
          <thead><tr><th>rule</th><th>state</th><th class="num">version</th><th class="num">size</th><th>published</th><th>draft</th><th>error</th></tr></thead>
          <tbody>
            {rules.map((r) => (
              <tr data-rule={r.name}>
                <td><a href={`#/rules/${enc(r.name)}`}>{r.name}</a><div class="muted small">{r.title}</div></td>
                <td>{r.state ? <StateBadge state={r.state} /> : '—'}</td>
                <td class="num">{r.version ? `v${r.version}` : '—'}</td>
                <td class="num">{fmtInt(r.size)}</td>
                <td>{r.published_at ? `${fmtAgo(r.published_at)}${r.author ? ` by ${r.author}` : ''}` : '—'}</td>
                <td>{r.state === 'draft' ? <span class="muted small">never published</span> : r.has_draft ? <span class="badge draft">draft</span> : ''}</td>
                <td class="bad small">{r.error ? (typeof r.error === 'object' ? `line ${r.error.line}: ${r.error.message}` : r.error) : ''}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

function ConfirmDialog({ c, onClose }) {
  const [busy, setBusy] = useState(false);
  return (
    <Dialog title={c.title} onClose={onClose} actions={[
      <button class="btn" onClick={onClose} disabled={busy}>Cancel</button>,
      <button class={`btn ${c.danger ? 'danger' : 'primary'}`} id="confirm-ok" disabled={busy}
        onClick={async () => { setBusy(true); try { await c.run(); } finally { setBusy(false); onClose(); } }}>{c.ok}</button>,
    ]}>
      {c.body}
    </Dialog>
  );
}

export function EditorPage({ name, who }) {
  const [rule, setRule] = useState(null);
  const [loadErr, setLoadErr] = useState(null);
  const [isNew, setIsNew] = useState(false);
  const [ed, setEd] = useState(null);
  const [doc, setDoc] = useState(null);
  const [saved, setSaved] = useState(null); // text of the saved draft (or live source)
  const [saveErr, setSaveErr] = useState(null); // {line, message}
  const [busy, setBusy] = useState('');
  const [preview, setPreview] = useState(null);
  const [prevErr, setPrevErr] = useState(null);
  const [confirm, setConfirm] = useState(null);
  const [diff, setDiff] = useState(null);
  const [liveSize, setLiveSize] = useState(null);
  const [ext, setExt] = useState(0); // bumped when the doc is replaced from outside the editor
  const replaceDoc = (text) => { setDoc(text); setExt((x) => x + 1); };
  const extNow = useRef(0);
  extNow.current = ext;
  const extApplied = useRef(0); // the last replacement the editor holds
  const ok = can(who, 'rules');
  const reason = denyReason(who, 'rules');

  async function load(keepDoc) {
    try {
      const r = await get(`/api/rules/${enc(name)}`);
      setRule(r);
      setIsNew(!r.version && !(r.history || []).length);
      // A deleted rule has no source: start from its last version's.
      const last = (r.history || []).slice().reverse().find((h) => h.source);
      const text = (r.draft && r.draft.source) || r.source || (last && last.source) || '';
      setSaved(text);
      if (!keepDoc) replaceDoc(text);
      return r;
    } catch (e) {
      const stash = sessionStorage.getItem(`poold.new.${name}`);
      if (e.status === 404 && !e.missing && stash != null) {
        setIsNew(true);
        setRule({ name, version: 0, history: [], source: '', draft: { source: stash } });
        setSaved(stash);
        if (!keepDoc) replaceDoc(stash);
      } else setLoadErr(e);
      return null;
    }
  }
  useEffect(() => { load(false); }, [name]);
  useEffect(() => {
    if (!rule || !rule.version || rule.state === 'deleted') { setLiveSize(rule && rule.version ? null : 0); return; }
    get(`/api/pools/${enc(name)}`).then((p) => setLiveSize(p.size), () => setLiveSize(null));
  }, [name, rule]);
  // Push a replaced doc into the editor (not on the editor's own edits: it
  // was created with the doc current then).
  useEffect(() => {
    if (!ed || ext === extApplied.current) return;
    extApplied.current = ext;
    if (doc != null && ed.getDoc() !== doc) ed.setDoc(doc);
  }, [ed, ext]);
  const onReady = (e) => { extApplied.current = extNow.current; setEd(e); };

  const cur = () => (ed ? ed.getDoc() : doc || '');
  const dirty = doc != null && saved != null && doc !== saved;
  const hasDraft = !!(rule && rule.draft);

  async function save() {
    const text = cur();
    setBusy('save');
    setSaveErr(null);
    try {
      await api('PUT', `/api/rules/${enc(name)}`, { text });
      if (ed) ed.clearError();
      setSaved(text);
      sessionStorage.removeItem(`poold.new.${name}`);
      await load(true);
      toast('Draft saved.');
      return true;
    } catch (e) {
      const line = e.data && e.data.line;
      const message = (e.data && e.data.message) || e.message;
      setSaveErr({ line, message });
      if (line && ed) ed.setError(line, message);
      return false;
    } finally {
      setBusy('');
    }
  }

  async function runPreview() {
    if ((dirty || !hasDraft) && !(await save())) return null;
    setBusy('preview');
    setPrevErr(null);
    try {
      const p = await post(`/api/rules/${enc(name)}/preview`);
      setPreview(p);
      setTimeout(() => { const el = document.getElementById('preview'); if (el) el.scrollIntoView({ behavior: 'smooth', block: 'start' }); }, 50);
      return p;
    } catch (e) {
      setPrevErr(e);
      if (e.data && e.data.line && ed) ed.setError(e.data.line, e.data.message || e.data.error);
      return null;
    } finally {
      setBusy('');
    }
  }

  async function publish() {
    const p = await runPreview();
    if (!p) return;
    setConfirm({
      title: `Publish ${name}?`,
      ok: 'Publish',
      body: (
        <div id="publish-confirm">
          <p>The draft becomes version v{Math.max(rule.version || 0, rule.versions || 0, (rule.history || []).length) + 1} and the pool is recomputed.</p>
          <p class="big"><span class="join" id="confirm-joins">+{fmtInt(count(p.joins))}</span> join,{' '}
            <span class="leave" id="confirm-leaves">−{fmtInt(count(p.leaves))}</span> leave; new size {fmtInt(p.size)}{liveSize != null ? ` (now ${fmtInt(liveSize)})` : ''}.</p>
        </div>
      ),
      run: async () => {
        try {
          const r = await post(`/api/rules/${enc(name)}/publish`);
          toast(`Published v${r.version}: size ${fmtInt(r.size)} (+${fmtInt(count(r.joins))} −${fmtInt(count(r.leaves))}) in ${fmtNum(r.took_ms, 1)} ms.`);
          setPreview(null);
          await load(false);
        } catch (e) { toast(e.message, 'error'); }
      },
    });
  }

  function rollback(h) {
    setConfirm({
      title: `Roll back ${name} to v${h.version}?`,
      ok: 'Roll back',
      body: <p>This publishes a new version with the source of v{h.version} ({h.kind}{h.author ? ` by ${h.author}` : ''}, {fmtTime(h.at)}). The current draft, if any, is kept.</p>,
      run: async () => {
        try {
          const r = await post(`/api/rules/${enc(name)}/rollback?version=${h.version}`);
          toast(`Rolled back: v${r.version} live, size ${fmtInt(r.size)} (+${fmtInt(count(r.joins))} −${fmtInt(count(r.leaves))}).`);
          setDiff(null);
          await load(false);
        } catch (e) { toast(e.message, 'error'); }
      },
    });
  }

  async function discard() {
    const only = rule && rule.state === 'draft'; // never published: the draft is all there is
    const run = async () => {
      try {
        await api('DELETE', `/api/rules/${enc(name)}/draft`);
        if (only) {
          sessionStorage.removeItem(`poold.new.${name}`);
          toast(`Draft discarded: ${name} was never published, so it is gone.`);
          location.hash = '#/rules';
          return;
        }
        if (ed) ed.clearError();
        setSaveErr(null);
        setPreview(null);
        toast('Draft discarded.');
        await load(false);
      } catch (e) { toast(e.message, 'error'); }
    };
    if (!only) { await run(); return; }
    setConfirm({
      title: `Discard ${name}?`, ok: 'Discard', danger: true, run,
      body: <p>{name} was never published: discarding its draft removes the rule.</p>,
    });
  }

  function del() {
    setConfirm({
      title: `Delete pool ${name}?`,
      ok: 'Delete',
      danger: true,
      body: <p>The pool stops and its members are dropped. The rule stays in the history and can be restored by a rollback.</p>,
      run: async () => {
        try {
          await api('DELETE', `/api/rules/${enc(name)}`);
          toast(`Deleted ${name}.`);
          location.hash = '#/';
        } catch (e) { toast(e.message, 'error'); }
      },
    });
  }

  if (loadErr) {
    return (
      <div class="page"><h2><a href="#/rules">Rules</a> / {name}</h2>
        <Err error={loadErr} />
        {loadErr.missing && <Note>This poold has no rules API yet: the rule file is rules/{name}.lua on the server. <PoolLink name={name} /></Note>}
      </div>
    );
  }
  const fileErr = rule && rule.error;
  return (
    <div class="page" id="editor-page">
      <div class="page-head">
        <h2><a href="#/rules">Rules</a> / {name}</h2>
        {rule && rule.state && <StateBadge state={rule.state} />}
        {isNew && rule && rule.state !== 'draft' && <span class="badge draft">new, not published</span>}
        {rule && rule.state === 'deleted' && !isNew && <span class="muted small">deleted: roll back to a version below to restore it</span>}
        <span class="grow" />
        {rule && rule.version && rule.state !== 'deleted' ? <a class="btn" href={`#/pools/${enc(name)}`}>Pool</a> : null}
      </div>
      {!rule ? <Loading /> : (
        <>
          <div class="muted small" id="rule-meta">
            {rule.version ? <>live v{rule.version}{rule.published_at ? `, published ${fmtAgo(rule.published_at)}` : ''}{rule.author ? ` by ${rule.author}` : ''}</> : rule.state === 'deleted' && (rule.history || []).length ? 'deleted; the editor holds its last version'
              : rule.state === 'draft' ? 'never published: only a draft exists, there is no pool yet' : 'no live version yet'}
            {rule.file ? ` · ${rule.file}` : ''}
            {hasDraft && ` · draft${rule.draft.author ? ` by ${rule.draft.author}` : ''}${rule.draft.saved_at ? `, saved ${fmtAgo(rule.draft.saved_at)}` : ''}`}
            {rule.cost && ` · ${fmtInt(rule.cost.evaluations)} evaluations, ${fmtInt(rule.cost.errors)} errors, ${fmtNum((rule.cost.eval_seconds || 0) * 1000, 2)} ms in Lua`}
          </div>
          {fileErr && (
            <Note kind="error">The file {fileErr.file} failed to reload at line {fileErr.line}: {fileErr.message}. The live version v{rule.version} is kept.</Note>
          )}
          <div class="toolbar" id="toolbar">
            <button class="btn" id="save" disabled={!ok || !!busy} title={reason || 'Save the draft (Ctrl-S); it is compiled and checked'} onClick={save}>
              {busy === 'save' ? 'Saving…' : 'Save draft'}</button>
            <button class="btn" id="preview-btn" disabled={!ok || !!busy} title={reason || 'Compare the draft with the live pool'} onClick={runPreview}>
              {busy === 'preview' ? 'Previewing…' : 'Preview'}</button>
            <button class="btn primary" id="publish" disabled={!ok || !!busy || (!hasDraft && !dirty)}
              title={reason || (!hasDraft && !dirty ? 'Nothing to publish: edit and save a draft first' : 'Make the draft live')} onClick={publish}>Publish…</button>
            <span class="sep" />
            <button class="btn" id="diff-live" disabled={rule.source == null} onClick={() => setDiff({ a: rule.source, b: cur(), aLabel: `live v${rule.version}`, bLabel: 'the editor' })}>Diff vs live</button>
            <button class="btn" id="revert" disabled={rule.source == null} onClick={() => replaceDoc(rule.source)}>Load live source</button>
            <button class="btn" id="discard" disabled={!ok || !hasDraft || (isNew && rule.state !== 'draft') || !!busy}
              title={reason || (rule.state === 'draft' ? 'Throw the draft away: the rule was never published, so it goes too' : 'Throw the saved draft away')} onClick={discard}>Discard draft</button>
            <span class="grow" />
            <span class="muted small" id="dirty">{dirty ? 'unsaved changes' : hasDraft ? 'draft saved' : 'same as live'}</span>
            <button class="btn danger" id="delete" disabled={!ok || !rule.version || rule.state === 'deleted' || !!busy} title={reason} onClick={del}>Delete</button>
          </div>
          {saveErr && <div class="msg msg-error" id="save-error" data-line={saveErr.line || ''}>
            {saveErr.line ? `Line ${saveErr.line}: ` : ''}{saveErr.message}</div>}
          <CodeEditor doc={doc || ''} onReady={onReady} onSave={save} onChange={setDoc} />
          <Err error={prevErr} />
          {preview && <PreviewPanel p={preview} liveSize={liveSize} />}
          {diff && (
            <section class="card">
              <h3>Diff <button class="link" onClick={() => setDiff(null)}>close</button></h3>
              <DiffView {...diff} />
            </section>
          )}
          <History rule={rule} disabled={!ok} reason={reason} onRollback={rollback}
            onDiff={(h) => setDiff({ a: rule.source, b: h.source, aLabel: `live v${rule.version}`, bLabel: `v${h.version}` })} />
        </>
      )}
      {confirm && <ConfirmDialog c={confirm} onClose={() => setConfirm(null)} />}
    </div>
  );
}

// -- new pool ---------------------------------------------------------------------

function isoDay(offsetDays) {
  const d = new Date(Date.now() + offsetDays * 86400000);
  return d.toISOString().slice(0, 10);
}

const TEMPLATES = {
  filter: {
    label: 'Tag filter',
    make: (n, t, w) => `-- ${t}\nreturn pool ${JSON.stringify(n)} {\n  title = ${JSON.stringify(t)},\n  where = ${w},\n}\n`,
  },
  ranked: {
    label: 'Ranked top N (by GMV, last 24 h)',
    make: (n, t, w) => `-- ${t}: the best sellers by GMV over the last 24 hours.\nreturn pool ${JSON.stringify(n)} {\n  title = ${JSON.stringify(t)},\n  where = ${w},\n  match = function(s)\n    return s.stock > 0\n  end,\n  rank = function(s)\n    return s.gmv_24h\n  end,\n  limit = 500,\n}\n`,
  },
  flash: {
    label: 'Flash sale (scheduled, discount and stock)',
    make: (n, t, w) => `-- ${t}: 30% off or more, enough stock for the rush, live for the sale only.\nreturn pool ${JSON.stringify(n)} {\n  title = ${JSON.stringify(t)},\n  active = { from = "${isoDay(0)}T00:00:00+08:00", to = "${isoDay(2)}T00:00:00+08:00" },\n  where = ${w},\n  match = function(s)\n    return s.discount >= 0.30 and s.stock >= 20\n  end,\n}\n`,
  },
};

export function NewPoolPage({ who, where }) {
  const [name, setName] = useState('');
  const [title, setTitle] = useState('');
  const [tpl, setTpl] = useState(where ? 'filter' : 'flash');
  const [ed, setEd] = useState(null);
  const [touched, setTouched] = useState(false);
  const [err, setErr] = useState(null);
  const [busy, setBusy] = useState(false);
  let whereDsl = 'all { tag "market:SG", no_tag "blocked" }';
  let whereErr = null;
  if (where) {
    try { whereDsl = tagExprToDsl(parseTagExpr(where)); } catch (e) { whereErr = `The query "${where}" is not a tag expression: ${e.message}`; }
  }
  const src = TEMPLATES[tpl].make(name || 'new_pool', title || 'New pool', whereDsl);
  useEffect(() => { if (ed && !touched && ed.getDoc() !== src) ed.setDoc(src); }, [ed, src]);
  const ok = can(who, 'rules');
  async function create() {
    setErr(null);
    if (!isPoolName(name)) { setErr('Name: 1 to 64 of a-z, 0-9, _ and -.'); return; }
    const text = ed ? ed.getDoc() : src;
    setBusy(true);
    try {
      await api('PUT', `/api/rules/${enc(name)}`, { text });
      sessionStorage.setItem(`poold.new.${name}`, text);
      toast(`Draft of ${name} saved: preview and publish it.`);
      location.hash = `#/rules/${enc(name)}`;
    } catch (e) {
      const line = e.data && e.data.line;
      const message = (e.data && e.data.message) || e.message;
      if (line && ed) ed.setError(line, message);
      setErr(line ? `Line ${line}: ${message}` : message);
    } finally { setBusy(false); }
  }
  return (
    <div class="page" id="new-page">
      <div class="page-head"><h2><a href="#/rules">Rules</a> / new pool</h2></div>
      {whereErr && <Note kind="error">{whereErr}</Note>}
      <div class="form row">
        <label>Name <input id="new-name" value={name} placeholder="flash_sale_my" onInput={(e) => setName(e.target.value.trim())} /></label>
        <label>Title <input id="new-title" value={title} placeholder="11.11 flash sale, Malaysia" onInput={(e) => setTitle(e.target.value)} /></label>
        <label>Template
          <select id="new-template" value={tpl} onChange={(e) => { setTpl(e.target.value); setTouched(false); }}>
            {Object.entries(TEMPLATES).map(([k, t]) => <option value={k}>{t.label}</option>)}
          </select>
        </label>
        <button class="btn primary" id="new-create" disabled={!ok || busy} title={denyReason(who, 'rules')} onClick={create}>Save as draft</button>
      </div>
      {where && <p class="muted small">From the query <code>{where}</code>.</p>}
      {err && <div class="msg msg-error" id="save-error">{err}</div>}
      <CodeEditor doc={src} onReady={setEd} onSave={create} onChange={(d) => { if (d !== src) setTouched(true); }} />
    </div>
  );
}
