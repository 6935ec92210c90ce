// Shared pieces: polling hook, charts (uPlot), dialogs, messages, links.
import { useEffect, useRef, useState, useCallback } from 'preact/hooks';

let chartModule = null;
const loadChart = () => chartModule || (chartModule = import(new URL(`./chart.js${new URL(import.meta.url).search}`, import.meta.url).href));
import { enc } from './api.js';

// Calls fn now and every `ms` while mounted (and the tab is visible); fn
// gets an AbortSignal. Re-runs from scratch when deps change.
export function usePoll(fn, ms, deps = []) {
  const fnRef = useRef(fn);
  fnRef.current = fn;
  useEffect(() => {
    let stop = false, timer = 0;
    const ctl = new AbortController();
    async function tick() {
      if (stop) return;
      if (document.visibilityState !== 'hidden') {
        try { await fnRef.current(ctl.signal); } catch (e) { if (e.name !== 'AbortError') console.warn(e); }
      }
      if (!stop) timer = setTimeout(tick, ms);
    }
    tick();
    return () => { stop = true; clearTimeout(timer); ctl.abort(); };
  }, deps);
}

// Re-render every `ms` (for "3 s ago" labels).
export function useNow(ms = 1000) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => { const t = setInterval(() => setNow(Date.now()), ms); return () => clearInterval(t); }, [ms]);
  return now;
}

// A sparkline as inline SVG: cheap enough for a row per pool, re-rendered
// on every poll without any canvas or layout work.
export function Spark({ values, width = 120, height = 28 }) {
  const ys = (values || []).filter((v) => v != null);
  if (ys.length < 2) return <svg class="spark" width={width} height={height} aria-hidden="true"><line x1="0" x2={width} y1={height - 2} y2={height - 2} class="spark-base" /></svg>;
  let lo = Math.min(...ys), hi = Math.max(...ys);
  if (hi - lo < 1) { hi += 0.5; lo -= 0.5; }
  const x = (i) => ((i / (ys.length - 1)) * (width - 2) + 1).toFixed(1);
  const y = (v) => (height - 2 - ((v - lo) / (hi - lo)) * (height - 4)).toFixed(1);
  const pts = ys.map((v, i) => `${x(i)},${y(v)}`).join(' ');
  return (
    <svg class="spark" width={width} height={height} aria-label={`from ${ys[0]} to ${ys[ys.length - 1]}`}>
      <polygon points={`1,${height} ${pts} ${width - 1},${height}`} class="spark-fill" />
      <polyline points={pts} class="spark-line" />
    </svg>
  );
}

const ago = (s, step) => (s === 0 ? 'now' : step < 60 && s < 120 ? `-${Math.round(s)}s` : `-${Math.round(s / 60)}m`);

// A size-over-time line. values: numbers, oldest first; one per minute
// (xLabel 'min') or per sample.
export function Chart({ values, width = 120, height = 28, spark = true, label = 'size', step = 60 }) {
  const box = useRef(null), plot = useRef(null);
  const data = useCallback(() => {
    const ys = values && values.length ? values : [0];
    const n = ys.length;
    return [ys.map((_, i) => (i - (n - 1)) * step), ys.map((y) => (y == null ? null : y))];
  }, [values, step]);
  useEffect(() => {
    const opts = spark ? {
      width, height, pxAlign: false, cursor: { show: false }, legend: { show: false }, select: { show: false },
      scales: { x: { time: false }, y: { range: (u, lo, hi) => [Math.min(lo, hi - 1) * 0.98, hi * 1.02 + 1] } },
      axes: [{ show: false }, { show: false }],
      series: [{}, { stroke: '#2563eb', width: 1.5, fill: 'rgba(37,99,235,0.10)', points: { show: false } }],
    } : {
      width, height, legend: { show: false }, cursor: { drag: { x: false, y: false } },
      scales: { x: { time: false } },
      axes: [
        { values: (u, ticks) => ticks.map((t) => ago(-t, step)) },
        { size: 56 },
      ],
      series: [{}, { label, stroke: '#2563eb', width: 2, fill: 'rgba(37,99,235,0.08)', points: { show: false } }],
    };
    let dead = false;
    loadChart().then(({ uPlot }) => {
      if (dead) return;
      plot.current = new uPlot(opts, data(), box.current);
    }, (e) => { if (!dead && box.current) box.current.textContent = `chart unavailable: ${e.message}`; });
    return () => { dead = true; if (plot.current) plot.current.destroy(); plot.current = null; };
  }, [spark, width, height, step]);
  useEffect(() => { if (plot.current) plot.current.setData(data()); }, [data]);
  return <div class={spark ? 'spark' : 'chart'} ref={box} />;
}

export function Dialog({ title, children, onClose, actions }) {
  const ref = useRef(null);
  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
    const onCancel = (e) => { e.preventDefault(); onClose && onClose(); };
    d.addEventListener('cancel', onCancel);
    return () => d.removeEventListener('cancel', onCancel);
  }, []);
  return (
    <dialog ref={ref} class="dialog">
      <h3>{title}</h3>
      <div class="dialog-body">{children}</div>
      <div class="dialog-actions">{actions}</div>
    </dialog>
  );
}

export function Err({ error, onRetry }) {
  if (!error) return null;
  const msg = typeof error === 'string' ? error : error.message;
  return (
    <div class="msg msg-error" role="alert">
      {msg}
      {onRetry && <button class="link" onClick={onRetry}>retry</button>}
    </div>
  );
}

export const Note = ({ children, kind = 'info' }) => <div class={`msg msg-${kind}`}>{children}</div>;

export const SkuLink = ({ sku }) => <a class="sku" href={`#/skus/${enc(sku)}`}>{sku}</a>;
export const PoolLink = ({ name }) => <a href={`#/pools/${enc(name)}`}>{name}</a>;

const STATE_TIPS = {
  live: 'published and active', scheduled: 'published; its schedule has not started yet', inactive: 'published; outside its schedule',
  failing: 'the rule fails to load', deleted: 'deleted; a rollback restores it', draft: 'only a draft: never published, no pool yet',
};
export function StateBadge({ state }) {
  return <span class={`badge state-${state}`} title={STATE_TIPS[state] || ''} data-state={state}>{state}</span>;
}

export function Loading({ what = 'Loading' }) {
  return <div class="loading">{what}…</div>;
}

export function Stat({ label, value, title, id }) {
  return (
    <div class="stat" title={title} data-stat={id}>
      <div class="stat-v">{value}</div>
      <div class="stat-l">{label}</div>
    </div>
  );
}

let toastSet = null;
export function toast(text, kind = 'ok') {
  if (toastSet) toastSet({ text, kind, id: Date.now() });
}

export function Toast() {
  const [t, setT] = useState(null);
  toastSet = setT;
  useEffect(() => {
    if (!t) return;
    const h = setTimeout(() => setT(null), t.kind === 'error' ? 8000 : 4000);
    return () => clearTimeout(h);
  }, [t]);
  return t ? <div class={`toast toast-${t.kind}`} role="status" onClick={() => setT(null)}>{t.text}</div> : null;
}
