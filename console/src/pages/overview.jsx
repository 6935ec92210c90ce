// Pools overview: every pool with state, size and its last hour, joins and
// leaves per minute, version, last publish, errors; global rates. Polls
// /api/pools and /api/stats every 2 s (falls back to /healthz, with rates
// derived from applied_seq, on a poold without /api/stats).
import { useRef, useState } from 'preact/hooks';
import { get, missing, can, denyReason } from '../api.js';
import { usePoll, useNow, Spark, Err, StateBadge, Stat, Loading, PoolLink } from '../components.jsx';
import { fmtInt, fmtNum, fmtAgo, fmtTime, fmtDuration } from '../util.js';

export const POLL_MS = 2000;

export function poolState(p) {
  return p.state || (p.last_error ? 'failing' : p.active === false ? 'inactive' : 'live');
}

// Client-side size history (one sample per poll) for a poold whose
// /api/pools has no sizes_1h yet; kept across page changes.
const localHist = new Map();
export function sizeSeries(p) {
  if (Array.isArray(p.sizes_1h) && p.sizes_1h.length) return { values: p.sizes_1h, step: 60 };
  let h = localHist.get(p.name);
  if (!h) localHist.set(p.name, (h = []));
  const now = Date.now();
  if (!h.length || now - h[h.length - 1].t >= POLL_MS / 2) h.push({ t: now, v: p.size });
  while (h.length > 1800) h.shift();
  return { values: h.map((x) => x.v), step: POLL_MS / 1000 };
}

let prevHealth = null;
export async function loadStats(signal) {
  if (!missing.has('stats')) {
    try {
      return { ...(await get('/api/stats', { signal })), derived: false };
    } catch (e) {
      if (!e.missing) throw e;
    }
  }
  const h = await get('/healthz', { signal });
  const now = performance.now();
  let eps = null;
  if (prevHealth && now > prevHealth.t) eps = ((h.applied_seq - prevHealth.seq) * 1000) / (now - prevHealth.t);
  prevHealth = { t: now, seq: h.applied_seq };
  return {
    events_per_s: eps, rejected_per_s: null, applied_seq: h.applied_seq, skus: h.skus, pools: h.pools,
    uptime_s: h.uptime_s, kafka: null, loading: h.loading, derived: true,
  };
}

export function StatsBar({ stats }) {
  if (!stats) return null;
  return (
    <div class="stats" id="stats">
      <Stat id="events" label={stats.derived ? 'events/s applied (derived)' : 'events/s applied'} value={fmtNum(stats.events_per_s, 1)} />
      <Stat id="rejected" label="rejected/s" value={stats.rejected_per_s == null ? '—' : fmtNum(stats.rejected_per_s, 1)} />
      <Stat id="skus" label="SKUs" value={fmtInt(stats.skus)} />
      <Stat id="pools" label="pools" value={fmtInt(stats.pools)} />
      <Stat id="applied" label="applied seq" value={fmtInt(stats.applied_seq)} />
      {stats.kafka && <Stat id="lag" label="Kafka lag" value={fmtInt(stats.kafka.lag)}
        title={(stats.kafka.partitions || []).map((p) => JSON.stringify(p)).join('\n')} />}
      <Stat id="uptime" label="uptime" value={fmtDuration(stats.uptime_s)} />
      {stats.loading && <Stat id="loading" label="state" value="loading…" />}
    </div>
  );
}

export function Overview({ who }) {
  const [pools, setPools] = useState(null);
  const [stats, setStats] = useState(null);
  const [error, setError] = useState(null);
  const [filter, setFilter] = useState('');
  const polled = useRef(0);
  const now = useNow(5000);

  usePoll(async (signal) => {
    // Each part renders as soon as it arrives.
    const p = get('/api/pools', { signal }).then((v) => {
      setPools(Array.isArray(v) ? v : v.pools || []);
      setError(null);
      polled.current = Date.now();
    }, (e) => { if (e.name !== 'AbortError') setError(e); });
    const s = loadStats(signal).then(setStats, () => {});
    await Promise.all([p, s]);
  }, POLL_MS);

  const shown = (pools || []).filter((p) => !filter || p.name.includes(filter) || (p.title || '').toLowerCase().includes(filter.toLowerCase()));
  const rulesOk = can(who, 'rules');
  return (
    <div class="page" id="overview">
      <div class="page-head">
        <h2>Pools</h2>
        <input class="search" placeholder="filter pools" value={filter} onInput={(e) => setFilter(e.target.value)} />
        <a class={`btn primary ${rulesOk ? '' : 'disabled'}`} href={rulesOk ? '#/new' : undefined}
          title={denyReason(who, 'rules') || 'Create a pool from a template'} id="new-pool">New pool</a>
      </div>
      <StatsBar stats={stats} />
      <Err error={error} />
      {!pools ? <Loading what="Loading pools" /> : (
        <table class="grid" id="pools">
          <thead>
            <tr>
              <th>Pool</th><th>State</th><th class="num">Size</th><th>Last hour</th>
              <th class="num" title="SKUs that joined in the last minute">Joins/min</th>
              <th class="num" title="SKUs that left in the last minute">Leaves/min</th>
              <th class="num">Version</th><th>Last publish</th><th class="num">Errors</th><th />
            </tr>
          </thead>
          <tbody>
            {shown.map((p) => {
              const series = sizeSeries(p);
              const st = poolState(p);
              return (
                <tr key={p.name} data-pool={p.name}>
                  <td><PoolLink name={p.name} /><div class="muted small">{p.title}</div></td>
                  <td><StateBadge state={st} /></td>
                  <td class="num size" data-col="size">{fmtInt(p.size)}</td>
                  <td><Spark values={series.values} /></td>
                  <td class="num joins">{p.joins_1m == null ? '—' : fmtInt(p.joins_1m)}</td>
                  <td class="num leaves">{p.leaves_1m == null ? '—' : fmtInt(p.leaves_1m)}</td>
                  <td class="num" data-col="version">v{p.version}</td>
                  <td title={fmtTime(p.published_at || p.updated_at)}>
                    {p.published_at ? <>{fmtAgo(p.published_at, now)}{p.author ? ` by ${p.author}` : ''}</>
                      : p.updated_at ? <span class="muted">updated {fmtAgo(p.updated_at, now)}</span> : '—'}
                  </td>
                  <td class={`num ${p.errors ? 'bad' : ''}`} title={p.last_error || ''}>{fmtInt(p.errors)}</td>
                  <td><a href={`#/rules/${encodeURIComponent(p.name)}`}>rule</a></td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      {pools && !pools.length && <p class="muted">No pools yet. Create one with “New pool”.</p>}
      <p class="muted small">Live: refreshed every {POLL_MS / 1000} s{polled.current ? `, last at ${fmtTime(polled.current)}` : ''}.</p>
    </div>
  );
}
