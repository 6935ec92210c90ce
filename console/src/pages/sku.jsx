// SKU page: search by id; fields, tags, windowed counters, attributes;
// freshness (when and from which input each field group was last set:
// `sources` of GET /api/skus/SKU); every pool with in/out and, per pool,
// the clause-by-clause explain.
import { useEffect, useState } from 'preact/hooks';
import { get, enc, missing } from '../api.js';
import { Err, Note, Loading, PoolLink } from '../components.jsx';
import { fmtNum, fmtTime, fmtPct, fmtAgo } from '../util.js';

const WINDOWS = ['1h', '24h', '7d'];
const METRICS = ['sales', 'gmv', 'views', 'clicks', 'carts'];

// windows: {"1h": {sales, ...}} or {sales_1h: n, ...} -> value(metric, window)
function windowValue(w, m, win) {
  if (!w) return null;
  if (w[win] && typeof w[win] === 'object') return w[win][m];
  return w[`${m}_${win}`];
}

function fieldText(k, v) {
  if (v == null) return '—';
  if (k === 'discount') return `${fmtPct(v)} (${fmtNum(v, 4)})`;
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  if (typeof v === 'number') return fmtNum(v, 4);
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

function causeText(c) {
  if (!c) return '';
  if (c.kind === 'event') return `event #${c.seq}`;
  if (c.kind === 'publish') return `publish of v${c.version}`;
  if (c.kind === 'tick') return 'a window expiring (time passed)';
  if (c.kind === 'schedule') return 'the schedule';
  return c.kind || JSON.stringify(c);
}

// One sentence: why in or out.
export function verdict(x) {
  if (x.reason) return `${x.member ? 'In' : 'Out'}: ${x.reason}.`.replace(/\.\.$/, '.');
  if (x.excluded) return 'Out: excluded by the rule.';
  if (x.pinned) return 'In: pinned by the rule.';
  if (x.active === false) return 'Out: the pool is not active now (schedule).';
  const failed = (x.where || []).filter((c) => !c.has);
  if (x.where_result === false || (x.where_result == null && failed.length && !x.member))
    return failed.length ? `Out: where fails at ${failed.map((c) => c.clause).join(', ')}.` : 'Out: where does not hold.';
  if (x.match && x.match.error) return `Out: match raised an error: ${x.match.error}`;
  if (x.match && x.match.result === false) return 'Out: match returned false.';
  if (!x.member && x.rank) return 'Out: passes where and match, but ranks below the limit.';
  return x.member ? 'In: where holds' + (x.match ? ' and match returned true.' : '.') : 'Out.';
}

export function Explain({ x }) {
  return (
    <div class="explain" data-explain={x.pool} data-member={String(!!x.member)}>
      <p class={`verdict ${x.member ? 'in' : 'out'}`}>{verdict(x)}</p>
      <div class="muted small">
        rule v{x.version}{x.active === false ? ' · inactive' : ''}{x.pinned ? ' · pinned' : ''}{x.excluded ? ' · excluded' : ''}
      </div>
      {x.where && x.where.length > 0 && (
        <table class="grid clauses">
          <thead><tr><th>where clause</th><th>holds</th></tr></thead>
          <tbody>
            {x.where.map((c) => (
              <tr data-clause={c.clause} data-has={String(!!c.has)}>
                <td><code>{c.clause}</code></td><td class={c.has ? 'ok' : 'bad'}>{c.has ? '✓ yes' : '✗ no'}</td>
              </tr>
            ))}
            {x.where_result != null && (
              <tr class="total"><td>where</td><td class={x.where_result ? 'ok' : 'bad'} data-where-result={String(x.where_result)}>{x.where_result ? '✓ holds' : '✗ fails'}</td></tr>
            )}
          </tbody>
        </table>
      )}
      {x.match && (
        <div class="match">
          <b>match</b> → <span class={x.match.result ? 'ok' : 'bad'} data-match={String(x.match.result)}>{String(x.match.result)}</span>
          {x.match.error && <span class="bad"> error: {x.match.error}</span>}
          {x.match.reads && Object.keys(x.match.reads).length > 0 && (
            <span class="reads"> reading {Object.entries(x.match.reads).map(([k, v]) => (
              <code class="read">{k} = {fieldText(k, v)}</code>
            ))}</span>
          )}
        </div>
      )}
      {x.rank && <div><b>rank</b> score {fmtNum(x.rank.score, 4)}</div>}
      {x.last_change && (
        <div class="muted small">
          Last {x.last_change.op === 'remove' ? 'left' : 'joined'} at {fmtTime(x.last_change.at)} (seq {x.last_change.seq}),
          caused by {causeText(x.last_change.cause)}.
        </div>
      )}
    </div>
  );
}

// Field groups as poold stamps them (src/freshness.h), in this order; any
// other group the API names comes after.
const GROUPS = ['catalog', 'price', 'stock', 'tags', 'attrs'];
const dash = (v) => (v == null || v === '' ? '—' : String(v));
export const sourceOffset = (s) => (s.offset != null ? String(s.offset) : s.offset_at_most != null ? `≤ ${s.offset_at_most}` : '—');

function Sources({ sources }) {
  const groups = [...GROUPS.filter((g) => sources[g]), ...Object.keys(sources).filter((g) => !GROUPS.includes(g))];
  const tz = Intl.DateTimeFormat().resolvedOptions().timeZone || 'local time';
  return (
    <section class="card">
      <h3>Freshness <span class="muted small">when, and from which input, each group of fields was last set</span></h3>
      {!groups.length ? <p class="muted" id="sources">No field group has been set by an input this poold remembers.</p> : (
        <table class="grid" id="sources">
          <thead><tr>
            <th>group</th><th>fields</th><th>set at ({tz})</th><th>source</th><th>input</th>
            <th class="num">partition</th><th class="num">offset</th><th class="num" title="poold's input sequence number">seq</th>
          </tr></thead>
          <tbody>
            {groups.map((g) => {
              const x = sources[g];
              return (
                <tr data-group={g}>
                  <th data-col="group">{g}</th>
                  <td data-col="fields" class="small">{String(x.fields || '').split(/\s+/).filter(Boolean).join(', ') || '—'}</td>
                  <td data-col="ts" data-ts={x.ts} title={fmtAgo(x.ts)}>{fmtTime(x.ts)}</td>
                  <td data-col="source">{dash(x.source)}</td>
                  <td data-col="input"><code>{dash(x.input)}</code></td>
                  <td data-col="partition" class="num">{dash(x.partition)}</td>
                  <td data-col="offset" class="num">{sourceOffset(x)}</td>
                  <td data-col="seq" class="num">{dash(x.seq)}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </section>
  );
}

function PoolRow({ sku, p, open, onToggle, eager }) {
  const [x, setX] = useState(null);
  const [err, setErr] = useState(null);
  useEffect(() => {
    if (!(open || eager) || x || missing.has('explain')) return;
    get(`/api/skus/${enc(sku)}/explain?pool=${enc(p.name)}`).then(setX, setErr);
  }, [open, eager]);
  return (
    <li class={`poolrow ${p.member ? 'in' : 'out'}`} data-pool={p.name}>
      <button class="link" onClick={onToggle} aria-expanded={open}>{open ? '▾' : '▸'}</button>
      <span class={`badge ${p.member ? 'in' : 'out'}`}>{p.member ? 'in' : 'out'}</span>{' '}
      <PoolLink name={p.name} />
      {x && !open && <span class="muted small"> — {verdict(x)}</span>}
      {open && (
        <div class="explain-box">
          {err ? (err.missing ? <Note>This poold cannot explain yet (no /api/skus/SKU/explain).</Note> : <Err error={err} />)
            : x ? <Explain x={x} /> : <Loading what="Explaining" />}
        </div>
      )}
    </li>
  );
}

export function SkuPage({ sku }) {
  const [q, setQ] = useState(sku);
  const [d, setD] = useState(null);
  const [err, setErr] = useState(null);
  const [open, setOpen] = useState({});
  useEffect(() => {
    setD(null);
    setErr(null);
    if (!sku) return;
    get(`/api/skus/${enc(sku)}`).then(setD, setErr);
  }, [sku]);
  const go = (e) => { e.preventDefault(); if (q.trim()) location.hash = `#/skus/${enc(q.trim())}`; };
  const fields = d ? d.fields || Object.fromEntries(Object.entries(d).filter(([k, v]) =>
    !['sku', 'tags', 'windows', 'counters', 'attrs', 'pools', 'sources', 'internal_id'].includes(k) && typeof v !== 'object')) : null;
  const windows = d ? d.windows || d.counters : null;
  const pools = d ? (d.pools || []).map((p) => (typeof p === 'string' ? { name: p, member: true } : p)) : [];
  const eager = pools.length <= 30;
  return (
    <div class="page" id="sku">
      <div class="page-head">
        <h2>SKU {sku && <code id="sku-id">{sku}</code>}</h2>
        <form class="inline" onSubmit={go}>
          <input class="search" id="sku-search" placeholder="SKU id, e.g. SG-0000154" value={q} onInput={(e) => setQ(e.target.value)} />
          <button class="btn">Open</button>
        </form>
      </div>
      {!sku && <p class="muted">Type a SKU id to see its fields, tags, counters, where they came from and why it is in or out of each pool.</p>}
      <Err error={err} />
      {sku && !d && !err && <Loading />}
      {d && (
        <div class="cols">
          <div class="wide">
            <section class="card" id="pools-in-out">
              <h3>Pools <span class="muted small">{pools.filter((p) => p.member).length} in, {pools.filter((p) => !p.member).length} out</span></h3>
              <ul class="poolrows">
                {pools.map((p) => (
                  <PoolRow key={p.name} sku={sku} p={p} eager={eager} open={!!open[p.name]}
                    onToggle={() => setOpen({ ...open, [p.name]: !open[p.name] })} />
                ))}
              </ul>
              <p class="small"><button class="link" id="expand-all" onClick={() => setOpen(Object.fromEntries(pools.map((p) => [p.name, true])))}>explain every pool</button></p>
            </section>
            {d.sources && <Sources sources={d.sources} />}
            <section class="card">
              <h3>Attributes</h3>
              <pre class="json" id="attrs">{JSON.stringify(d.attrs || {}, null, 2)}</pre>
            </section>
          </div>
          <div class="side">
            <section class="card">
              <h3>Fields</h3>
              <table class="kvtable" id="fields">
                <tbody>
                  {Object.entries(fields).map(([k, v]) => <tr data-field={k}><th>{k}</th><td>{fieldText(k, v)}</td></tr>)}
                </tbody>
              </table>
            </section>
            {windows && (
              <section class="card">
                <h3>Windowed counters</h3>
                <table class="grid" id="windows">
                  <thead><tr><th />{WINDOWS.map((w) => <th class="num">{w}</th>)}</tr></thead>
                  <tbody>
                    {METRICS.map((m) => (
                      <tr><th>{m}</th>{WINDOWS.map((w) => <td class="num">{fmtNum(windowValue(windows, m, w), 2)}</td>)}</tr>
                    ))}
                  </tbody>
                </table>
              </section>
            )}
            <section class="card">
              <h3>Tags</h3>
              <div class="chips" id="tags">
                {(d.tags || []).slice().sort().map((t) => <a class="chip" href={`#/query?q=${enc(t)}`}>{t}</a>)}
              </div>
            </section>
          </div>
        </div>
      )}
    </div>
  );
}
