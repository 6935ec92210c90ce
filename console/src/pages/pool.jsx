// Pool page: summary and size chart, members paged through the API's
// cursor with their key fields in the same call (members?fields=1; rank
// order kept; a column sort reorders the current page only), a
// tag-expression filter over the whole pool (POST /api/query with "pool"),
// the live join/leave ticker (change feed, long-poll), pins and exclusions
// edited through a draft, CSV export with the key fields as columns.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, get, post, enc, missing, can, denyReason } from '../api.js';
import { usePoll, Chart, Err, Note, SkuLink, StateBadge, Loading, toast } from '../components.jsx';
import { POLL_MS, poolState, sizeSeries } from './overview.jsx';
import {
  fmtInt, fmtNum, fmtPct, fmtTime, fmtAgo, parseTagExpr, readList, writeList, mapLimit, csvLine, download,
} from '../util.js';

export const COLUMNS = [
  ['sku', 'SKU'], ['market', 'Market'], ['category', 'Category'], ['brand', 'Brand'], ['price', 'Price'],
  ['list_price', 'List price'], ['discount', 'Discount'], ['stock', 'Stock'], ['rating', 'Rating'], ['sales_24h', 'Sales 24h'],
];
const NUMERIC = new Set(['price', 'list_price', 'discount', 'stock', 'rating', 'sales_24h']);

// One SKU answer (GET /api/skus/SKU, or a member/sample object) -> a row.
export function skuRow(d) {
  if (typeof d === 'string') return { sku: d };
  const f = d.fields || d;
  const w = d.windows || d.counters || {};
  const s24 = f.sales_24h ?? (w['24h'] && w['24h'].sales) ?? w.sales_24h;
  return {
    sku: d.sku, market: f.market, category: f.category, brand: f.brand, price: f.price, list_price: f.list_price,
    discount: f.discount, stock: f.stock, rating: f.rating, sales_24h: s24, tags: d.tags,
  };
}

export function cell(key, v) {
  if (v == null) return '—';
  if (key === 'discount') return fmtPct(v);
  if (key === 'price' || key === 'list_price') return fmtNum(v, 2);
  return typeof v === 'number' ? fmtNum(v) : String(v);
}

// The rows of a members page: the API's `rows` (members?fields=1, same
// order as `members`; a SKU deleted since comes as {sku, deleted}) when it
// has them, else null.
export function pageRows(pg) {
  if (!Array.isArray(pg.rows) || pg.rows.length !== pg.members.length) return null;
  return pg.rows.map((r) => (r.deleted ? { sku: r.sku, gone: true } : skuRow(r)));
}

// Fields for a list of members: objects are used as they are; SKU ids are
// looked up one by one (at most 8 requests in flight).
export async function loadRows(members, signal) {
  return mapLimit(members, 8, async (m) => {
    if (typeof m === 'object' && m.market !== undefined) return skuRow(m);
    const sku = typeof m === 'object' ? m.sku : m;
    try {
      return skuRow(await get(`/api/skus/${enc(sku)}`, { signal }));
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      return { sku, gone: true };
    }
  });
}

export function MembersTable({ rows, offset = 0, ranked, pins, id = 'members', order }) {
  const [sort, setSort] = useState(null); // {key, dir}
  const sorted = rows.map((r, i) => ({ ...r, rank: offset + i + 1 }));
  if (sort) {
    const k = sort.key, d = sort.dir;
    sorted.sort((a, b) => {
      const x = a[k], y = b[k];
      if (x == null && y == null) return 0;
      if (x == null) return 1;
      if (y == null) return -1;
      return (NUMERIC.has(k) ? x - y : String(x).localeCompare(String(y))) * d;
    });
  }
  const click = (k) => setSort((s) => (!s || s.key !== k ? { key: k, dir: 1 } : s.dir === 1 ? { key: k, dir: -1 } : null));
  return (
    <table class="grid members" id={id}>
      <thead>
        <tr>
          <th class="num" title={order || (ranked ? 'rank order' : 'API order')}>
            <button class="th" onClick={() => setSort(null)}>#{!sort ? ' ▾' : ''}</button>
          </th>
          {COLUMNS.map(([k, label]) => (
            <th class={NUMERIC.has(k) ? 'num' : ''}>
              <button class="th" data-sort={k} onClick={() => click(k)}>
                {label}{sort && sort.key === k ? (sort.dir === 1 ? ' ▴' : ' ▾') : ''}
              </button>
            </th>
          ))}
        </tr>
      </thead>
      <tbody>
        {sorted.map((r) => (
          <tr key={r.sku} data-sku={r.sku} class={r.gone ? 'gone' : ''}>
            <td class="num muted">{r.rank}</td>
            {COLUMNS.map(([k]) => (
              <td class={NUMERIC.has(k) ? 'num' : ''}>
                {k === 'sku' ? <><SkuLink sku={r.sku} />{pins && pins.includes(r.sku) && <span class="badge pin" title="pinned">pin</span>}</> : cell(k, r[k])}
              </td>
            ))}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Joins and leaves as they happen: long-polls the change feed from `since`.
// Hidden when this poold has no change feed (404 "no such endpoint").
function Ticker({ name, since, onChanges }) {
  const [items, setItems] = useState([]);
  const [state, setState] = useState('connecting');
  const [counts, setCounts] = useState({ add: 0, remove: 0 });
  const cb = useRef(onChanges);
  cb.current = onChanges;
  useEffect(() => {
    if (since == null) return undefined;
    let stop = false;
    const ctl = new AbortController();
    (async () => {
      let seq = since, first = true;
      while (!stop) {
        const t0 = Date.now();
        try {
          // The first call answers at once (the feed is there), then long-polls.
          const r = await api('GET', `/api/pools/${enc(name)}/changes?since=${seq}&limit=500&wait=${first ? 0 : 20}`,
            { signal: ctl.signal, okStatus: [410] });
          if (r._status === 410) {
            const p = await get(`/api/pools/${enc(name)}`, { signal: ctl.signal });
            seq = p.seq;
            setItems((it) => [{ resync: true, t: Date.now(), seq }, ...it].slice(0, 100));
            continue;
          }
          const ch = r.changes || [];
          if (ch.length) {
            const t = Date.now();
            setItems((it) => [...ch.slice(-100).reverse().map((c) => ({ ...c, t })), ...it].slice(0, 100));
            setCounts((c) => {
              const n = { ...c };
              for (const x of ch) n[x.op === 'remove' ? 'remove' : 'add']++;
              return n;
            });
            if (cb.current) cb.current(ch);
          }
          const last = ch.length ? ch[ch.length - 1].seq : seq;
          seq = r.next != null ? r.next : last;
          setState('live');
          if (!ch.length && !first && Date.now() - t0 < 1000) await sleep(1000);
          first = false;
        } catch (e) {
          if (e.name === 'AbortError' || stop) return;
          if (e.missing) { setState('missing'); return; }
          setState('error');
          await sleep(3000);
        }
      }
    })();
    return () => { stop = true; ctl.abort(); };
  }, [name, since]);
  if (state === 'missing') return null;
  const cause = (c) => {
    if (!c) return '';
    if (typeof c === 'string') return c;
    if (c.kind === 'publish' || c.kind === 'rollback') return `${c.kind} v${c.version}`;
    if (c.kind === 'event') return c.seq != null ? `event #${c.seq}` : 'event';
    if (c.kind === 'schedule') return `schedule${c.version ? ` (v${c.version})` : ''}`;
    return c.kind || '';
  };
  return (
    <section class="card" id="ticker">
      <h3>Live changes <span class={`dot dot-${state}`} title={state} />
        <span class="muted small"> +{fmtInt(counts.add)} joined, −{fmtInt(counts.remove)} left since you opened the page</span></h3>
      {state === 'error' && <Note kind="error">The change feed is not answering; retrying.</Note>}
      <ul class="ticker">
        {items.length === 0 && <li class="muted">No change yet (following from seq {since}).</li>}
        {items.map((c) => (c.resync
          ? <li class="muted">resynced at seq {c.seq} (changes older than the feed keeps were skipped)</li>
          : <li key={c.seq} class={c.op === 'remove' ? 'leave' : 'join'} data-op={c.op}>
            <span class="op">{c.op === 'remove' ? '−' : '+'}</span> <SkuLink sku={c.sku} />
            <span class="muted small"> seq {c.seq} · {cause(c.cause)} · {fmtTime(c.at || c.t)}</span>
          </li>))}
      </ul>
    </section>
  );
}

function ListEditor({ id, label, help, items, onSave, disabled, reason }) {
  const [add, setAdd] = useState('');
  const submit = (e) => {
    e.preventDefault();
    const v = add.trim();
    if (!v || items.includes(v)) return;
    onSave([...items, v]).then((ok) => ok && setAdd(''));
  };
  return (
    <div class="listedit" id={id}>
      <h4>{label} <span class="muted small">{help}</span></h4>
      <div class="chips">
        {items.length === 0 && <span class="muted">none</span>}
        {items.map((s) => (
          <span class="chip" data-sku={s}><SkuLink sku={s} />
            <button class="x" title={reason || `remove ${s}`} disabled={disabled} onClick={() => onSave(items.filter((x) => x !== s))}>×</button>
          </span>
        ))}
      </div>
      <form onSubmit={submit} class="inline">
        <input placeholder="SKU" value={add} onInput={(e) => setAdd(e.target.value)} disabled={disabled} title={reason} />
        <button class="btn" disabled={disabled || !add.trim()} title={reason}>Add</button>
      </form>
    </div>
  );
}

function PinsPanel({ name, rule, who, reload }) {
  if (!rule) return null;
  const base = (rule.draft && rule.draft.source) || rule.source || '';
  const pins = rule.pin || readList(rule.source, 'pin') || [];
  const excl = rule.exclude || readList(rule.source, 'exclude') || [];
  const draftPins = rule.draft ? readList(rule.draft.source, 'pin') || [] : null;
  const draftExcl = rule.draft ? readList(rule.draft.source, 'exclude') || [] : null;
  const ok = can(who, 'rules');
  const reason = denyReason(who, 'rules');
  async function save(key, list) {
    try {
      const src = writeList(base, key, list);
      await api('PUT', `/api/rules/${enc(name)}`, { text: src });
      toast(`Draft saved with ${key} = ${list.length} SKU(s). Preview and publish it in the rule editor.`);
      reload();
      return true;
    } catch (e) {
      toast(e.message, 'error');
      return false;
    }
  }
  const same = (a, b) => a && b && a.length === b.length && a.every((x, i) => x === b[i]);
  return (
    <section class="card" id="pins">
      <h3>Pins and exclusions</h3>
      {rule.draft && (
        <Note>A draft exists{rule.draft.author ? ` (by ${rule.draft.author})` : ''}: edits here are added to it.
          {' '}<a href={`#/rules/${enc(name)}`}>Preview and publish it in the editor</a>.</Note>
      )}
      <ListEditor id="pin-list" label="Pinned" help="always members, first" items={draftPins && !same(draftPins, pins) ? draftPins : pins}
        onSave={(l) => save('pin', l)} disabled={!ok} reason={reason} />
      <ListEditor id="exclude-list" label="Excluded" help="never members" items={draftExcl && !same(draftExcl, excl) ? draftExcl : excl}
        onSave={(l) => save('exclude', l)} disabled={!ok} reason={reason} />
      {(draftPins && !same(draftPins, pins)) || (draftExcl && !same(draftExcl, excl))
        ? <p class="muted small">Shown: the draft's lists. Live: pin {pins.length}, exclude {excl.length}.</p> : null}
    </section>
  );
}

// Every member with its key fields (members?fields=1), one CSV row each:
// [rank,] sku, market, ... sales_24h. A SKU deleted since the page was read
// keeps its id and empty fields. 2,000 a page: poold reads the fields on
// its writer thread, which a 10,000-row page held for 50-130 ms (events
// waited), a 2,000-row page for 12-45 ms (200,000 SKUs, busy 2-core box).
const EXPORT_PAGE = 2000;
async function exportCsv(name, ranked, setProgress) {
  const keys = COLUMNS.map(([k]) => k);
  const parts = [csvLine(ranked ? ['rank', ...keys] : keys)];
  let cursor = '', n = 0, seq = null;
  for (;;) {
    const page = await get(`/api/pools/${enc(name)}/members?limit=${EXPORT_PAGE}&fields=1${cursor ? `&cursor=${enc(cursor)}` : ''}`);
    if (seq == null) seq = page.seq;
    const rows = Array.isArray(page.rows) && page.rows.length === page.members.length
      ? page.rows : page.members.map((m) => (typeof m === 'object' ? m : { sku: m }));
    let out = '';
    for (const r of rows) {
      n++;
      const cells = keys.map((k) => (r.deleted && k !== 'sku' ? null : r[k]));
      out += csvLine(ranked ? [n, ...cells] : cells);
    }
    parts.push(out);
    setProgress(`${fmtInt(n)} / ${fmtInt(page.size)}`);
    if (page.next == null) break;
    cursor = String(page.next);
  }
  download(`${name}-seq${seq}.csv`, parts.join(''));
  return n;
}

export function PoolPage({ name, who }) {
  const [info, setInfo] = useState(null);
  const [infoErr, setInfoErr] = useState(null);
  const [rule, setRule] = useState(null);
  const [limit, setLimit] = useState(50);
  const [cursors, setCursors] = useState(['']);
  const [pageIdx, setPageIdx] = useState(0);
  const [page, setPage] = useState(null); // {members, size, seq, next, rows}
  const [pageErr, setPageErr] = useState(null);
  const [loading, setLoading] = useState(false);
  const [since, setSince] = useState(null);
  const [pending, setPending] = useState(0);
  const [filterText, setFilterText] = useState('');
  const [filter, setFilter] = useState(null); // {expr, count, skus, at}: the pool's members that match
  const [filterErr, setFilterErr] = useState(null);
  const [fpage, setFpage] = useState(0);
  const [frows, setFrows] = useState(null);
  const [progress, setProgress] = useState('');
  const [reload, setReload] = useState(0);

  usePoll(async (signal) => {
    try {
      const p = await get(`/api/pools/${enc(name)}`, { signal });
      setInfo(p);
      setInfoErr(null);
    } catch (e) { if (e.name !== 'AbortError') setInfoErr(e); }
  }, POLL_MS, [name]);

  const loadRule = () => {
    if (missing.has('rules.GET')) return;
    get(`/api/rules/${enc(name)}`).then(setRule, () => setRule(null));
  };
  useEffect(loadRule, [name]);

  // The members page.
  useEffect(() => {
    const ctl = new AbortController();
    setLoading(true);
    (async () => {
      try {
        const c = cursors[pageIdx];
        const pg = await get(`/api/pools/${enc(name)}/members?limit=${limit}&fields=1${c ? `&cursor=${enc(c)}` : ''}`, { signal: ctl.signal });
        const rows = pageRows(pg) || await loadRows(pg.members, ctl.signal);
        setPage({ ...pg, rows });
        setPageErr(null);
        if (pageIdx === 0 && since == null) setSince(pg.seq);
        setCursors((cs) => {
          const n = cs.slice(0, pageIdx + 1);
          if (pg.next != null) n.push(String(pg.next));
          return n;
        });
      } catch (e) {
        if (e.name !== 'AbortError') setPageErr(e);
      } finally {
        if (!ctl.signal.aborted) setLoading(false);
      }
    })();
    return () => ctl.abort();
  }, [name, limit, pageIdx, reload]);

  // Filtered view: POST /api/query with "pool" counts the matching members
  // over the whole pool and returns up to 1,000 of them (catalog order);
  // the table shows a page of those with their fields (GET /api/skus).
  async function applyFilter(e) {
    e && e.preventDefault();
    const expr = filterText.trim();
    setFilterErr(null);
    if (!expr) { setFilter(null); setFrows(null); return; }
    try { parseTagExpr(expr); } catch (err) { setFilterErr(`Tag expression: ${err.message}`); return; }
    try {
      const r = await post('/api/query', { where: expr, pool: name, sample: 1000 });
      if (r.pool !== name) { setFilterErr('This poold cannot filter within a pool (its POST /api/query has no "pool").'); return; }
      setFilter({ expr: r.where || expr, count: r.count, skus: r.sample || [], at: Date.now() });
      setFpage(0);
    } catch (err) { setFilterErr(err.message); }
  }
  useEffect(() => {
    setFrows(null);
    if (!filter) return undefined;
    const ctl = new AbortController();
    loadRows(filter.skus.slice(fpage * limit, (fpage + 1) * limit), ctl.signal).then(setFrows, () => {});
    return () => ctl.abort();
  }, [filter, fpage, limit]);

  const ranked = info && (info.ranked || info.limit);
  const pins = rule ? rule.pin || readList(rule.source, 'pin') || [] : [];
  const offset = (() => {
    // rows before this page: pages are full except the last
    return pageIdx * limit;
  })();

  const series = info ? sizeSeries(info) : null;
  return (
    <div class="page" id="pool">
      <div class="page-head">
        <h2><a href="#/">Pools</a> / {name}</h2>
        {info && <StateBadge state={poolState(info)} />}
        <span class="grow" />
        <a class="btn" href={`#/rules/${enc(name)}`} id="edit-rule">Edit rule</a>
        <button class="btn" id="export" disabled={!!progress && !/done/.test(progress)} onClick={async () => {
          try {
            setProgress('starting');
            const n = await exportCsv(name, ranked, setProgress);
            setProgress(`done: ${fmtInt(n)} rows`);
          } catch (e) { setProgress(''); toast(e.message, 'error'); }
        }}>Export CSV</button>
        {progress && <span class="muted small" id="export-progress">{progress}</span>}
      </div>
      <Err error={infoErr} />
      {info && (
        <section class="summary">
          <div class="kv">
            <div><span>Title</span>{info.title || '—'}</div>
            <div><span>Size</span><b id="pool-size">{fmtInt(info.size)}</b></div>
            <div><span>Version</span>v{info.version}</div>
            <div><span>Seq</span>{fmtInt(info.seq)}</div>
            <div><span>Where</span><code>{info.where || '—'}</code></div>
            <div><span>Order</span>{info.ranked ? `ranked${info.limit ? `, top ${fmtInt(info.limit)}` : ''}` : 'catalog order'}</div>
            {(info.active_from || info.active_to) && <div><span>Active</span>{fmtTime(info.active_from)} → {fmtTime(info.active_to)}</div>}
            <div><span>Updated</span>{fmtAgo(info.updated_at)}</div>
            {info.published_at && <div><span>Published</span>{fmtAgo(info.published_at)}{info.author ? ` by ${info.author}` : ''}</div>}
            <div><span>Errors</span>{fmtInt(info.errors)}</div>
          </div>
          <div>
            <Chart values={series.values} step={series.step} spark={false} width={420} height={160} />
            <div class="muted small">size, {series.step === 60 ? 'last hour' : 'since this page opened'}</div>
          </div>
        </section>
      )}
      {info && info.last_error && <Note kind="error">Last error: {info.last_error}</Note>}

      <div class="cols">
        <section class="card wide">
          <h3>Members</h3>
          <form class="inline" onSubmit={applyFilter} id="filter-form">
            <input class="expr" id="filter" placeholder="filter the whole pool by tag expression, e.g. lazmall & !brand:b0001"
              value={filterText} onInput={(e) => setFilterText(e.target.value)} />
            <button class="btn">Filter</button>
            {filter && <button class="btn" type="button" id="filter-clear" onClick={() => { setFilterText(''); setFilter(null); }}>Clear</button>}
            <span class="grow" />
            <label class="small">per page{' '}
              <select value={limit} onChange={(e) => { setLimit(+e.target.value); setPageIdx(0); setCursors(['']); setFpage(0); }}>
                {[25, 50, 100, 200].map((n) => <option value={n}>{n}</option>)}
              </select>
            </label>
          </form>
          <Err error={filterErr} />
          {filter ? (
            <>
              <p class="muted small" id="filter-count">
                <b id="filter-n">{fmtInt(filter.count)}</b> {filter.count === 1 ? 'member of this pool matches' : 'members of this pool match'} “{filter.expr}”,
                counted over the whole pool (not just a page) at {fmtTime(filter.at)}.
                {filter.count > 0 && <> Listed in catalog order{ranked ? ', not rank order' : ''}
                  {filter.count > filter.skus.length ? `; the first ${fmtInt(filter.skus.length)} only` : ''}.</>}
                {' '}Press Filter again to recount.</p>
              {frows ? <MembersTable rows={frows} offset={fpage * limit} pins={pins} order="catalog order (the filter's order)" /> : <Loading />}
              <div class="pager" id="filter-pager">
                <button class="btn" disabled={fpage === 0} onClick={() => setFpage(fpage - 1)}>‹ Prev</button>
                <span>page {fpage + 1} of {Math.max(1, Math.ceil(filter.skus.length / limit))}</span>
                <button class="btn" id="filter-next" disabled={(fpage + 1) * limit >= filter.skus.length} onClick={() => setFpage(fpage + 1)}>Next ›</button>
              </div>
            </>
          ) : (
            <>
              <Err error={pageErr} />
              {page ? <MembersTable rows={page.rows} offset={offset} ranked={ranked} pins={pins} /> : <Loading what="Loading members" />}
              <div class="pager" id="pager">
                <button class="btn" id="first" disabled={pageIdx === 0 || loading} onClick={() => setPageIdx(0)}>« First</button>
                <button class="btn" id="prev" disabled={pageIdx === 0 || loading} onClick={() => setPageIdx(pageIdx - 1)}>‹ Prev</button>
                <span id="page-info">page {pageIdx + 1}{page ? ` of ${Math.max(1, Math.ceil(page.size / limit))} · ${fmtInt(page.size)} members · read at seq ${fmtInt(page.seq)}` : ''}</span>
                <button class="btn" id="next" disabled={!page || page.next == null || loading} onClick={() => setPageIdx(pageIdx + 1)}>Next ›</button>
                {loading && <span class="muted small">loading…</span>}
                {pending > 0 && (
                  <button class="btn small" id="refresh" onClick={() => { setPending(0); setReload(reload + 1); }}>
                    {fmtInt(pending)} change(s) since read — refresh
                  </button>
                )}
              </div>
            </>
          )}
        </section>
        <div class="side">
          <Ticker name={name} since={since} onChanges={(ch) => setPending((n) => n + ch.length)} />
          <PinsPanel name={name} rule={rule} who={who} reload={loadRule} />
        </div>
      </div>
    </div>
  );
}
