// Ad-hoc query: a tag expression, its count and a sample, and a way to
// start a new pool from it.
import { useEffect, useState } from 'preact/hooks';
import { post, enc } from '../api.js';
import { Err, SkuLink } from '../components.jsx';
import { fmtInt } from '../util.js';

export function QueryPage({ q }) {
  const [text, setText] = useState(q || 'market:SG & lazmall & !blocked');
  const [res, setRes] = useState(null);
  const [err, setErr] = useState(null);
  const [busy, setBusy] = useState(false);
  async function run(e, expr = text) {
    e && e.preventDefault();
    setBusy(true);
    setErr(null);
    const t0 = performance.now();
    try {
      const r = await post('/api/query', { where: expr.trim(), sample: 50 });
      setRes({ ...r, ms: performance.now() - t0, expr: expr.trim() });
    } catch (x) {
      setRes(null);
      setErr(x);
    } finally {
      setBusy(false);
    }
  }
  useEffect(() => { if (q) { setText(q); run(null, q); } }, [q]);
  return (
    <div class="page" id="query">
      <div class="page-head"><h2>Query</h2></div>
      <form class="inline" onSubmit={run}>
        <input class="expr big" id="query-input" value={text} onInput={(e) => setText(e.target.value)}
          placeholder="market:SG & lazmall & !blocked" spellcheck={false} />
        <button class="btn primary" id="query-run" disabled={busy}>Run</button>
      </form>
      <p class="muted small">Tags: market:XX, brand:b, category:top, category:top/leaf, seller:s, lazmall, free_shipping, in_stock and free tags.
        {' '}<code>!</code> binds tighter than <code>&amp;</code>, <code>&amp;</code> tighter than <code>|</code>; parentheses group.</p>
      <Err error={err} />
      {res && (
        <section class="card" id="query-result">
          <h3><span id="query-count">{fmtInt(res.count)}</span> SKUs match <code>{res.where || res.expr}</code>
            <span class="muted small"> ({Math.round(res.ms)} ms)</span></h3>
          <div class="chips" id="query-sample">
            {(res.sample || []).map((s) => <span class="chip"><SkuLink sku={typeof s === 'object' ? s.sku : s} /></span>)}
          </div>
          {res.count > (res.sample || []).length && <p class="muted small">Showing {(res.sample || []).length} of {fmtInt(res.count)}.</p>}
          <p><a class="btn" id="query-new-pool" href={`#/new?where=${enc(res.expr)}`}>New pool from this query</a></p>
        </section>
      )}
    </div>
  );
}
