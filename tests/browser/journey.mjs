// The console's journey test, in a real browser (Debian's chromium driven by
// playwright-core; no browser download), against a real `poold serve` that
// run.sh started with a generated catalog while events keep flowing.
//
//   node tests/browser/journey.mjs --base URL --events FILE --artifacts DIR
//                                  [--bin POOLD] [--rules DIR]
//
// Each check compares what the console shows with what the API answers at
// the same moment (the event feed is paused while they are compared). Any
// browser console error, page error, failed or external request, or HTTP
// error that the step did not expect fails the run. Screenshots of every
// page go to DIR. Prints "N passed, N failed"; exits 1 on a failure.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

const require = createRequire(new URL('../../console/package.json', import.meta.url));
const { chromium } = require('playwright-core');

const argv = process.argv.slice(2);
const opt = (k, d) => (argv.indexOf(k) >= 0 ? argv[argv.indexOf(k) + 1] : d);
const BASE = opt('--base', 'http://127.0.0.1:8080');
const EVENTS = opt('--events', null);
const ART = opt('--artifacts', 'build/browser-artifacts');
const BIN = opt('--bin', null);
const RULES = opt('--rules', null);
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ONLY = process.env.ONLY ? new RegExp(process.env.ONLY) : null;
mkdirSync(ART, { recursive: true });

// -- checks ---------------------------------------------------------------------------
let passed = 0, failed = 0, skipped = 0;
const failures = [];
class Skip extends Error {}
async function check(name, fn) {
  if (ONLY && !ONLY.test(name)) return;
  const t0 = Date.now();
  problems.length = 0;
  try {
    await fn();
    if (problems.length) throw new Error(`browser problems: ${problems.join(' | ')}`);
    passed++;
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    if (e instanceof Skip) { skipped++; console.log(`skip ${name}: ${e.message}`); return; }
    failed++;
    failures.push(name);
    console.log(`FAIL ${name}: ${e.message.split('\n')[0]}`);
    if (problems.length) console.log(`     browser problems: ${problems.join(' | ')}`);
    for (const p of pages) await shot(p, `FAILED-${slug(name)}`).catch(() => {});
  } finally {
    allowed.length = 0;
  }
}
const slug = (s) => s.replace(/[^a-z0-9]+/gi, '-').replace(/^-|-$/g, '').toLowerCase();
function assert(c, msg) { if (!c) throw new Error(msg); }
function eq(got, want, msg) {
  const g = JSON.stringify(got), w = JSON.stringify(want);
  if (g !== w) throw new Error(`${msg}: expected ${w.slice(0, 300)}, got ${g.slice(0, 300)}`);
}
async function until(fn, what, ms = 6000) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v !== false && v !== undefined && v !== null) return v;
      last = null;
    } catch (e) { last = e; }
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await sleep(100);
  }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// -- the API, from the test's side ---------------------------------------------------------
async function api(method, path, body, headers = {}) {
  const init = { method, headers: { ...headers } };
  if (typeof body === 'string') { init.body = body; init.headers['Content-Type'] ||= 'text/x-lua'; }
  else if (body !== undefined) { init.body = JSON.stringify(body); init.headers['Content-Type'] = 'application/json'; }
  const r = await fetch(BASE + path, init);
  const text = await r.text();
  let data;
  try { data = JSON.parse(text); } catch { data = { text }; }
  if (!r.ok && !headers['x-expect-error']) throw new Error(`${method} ${path}: ${r.status} ${text.slice(0, 200)}`);
  return { status: r.status, data };
}
const GET = async (p) => (await api('GET', p)).data;
const POST = async (p, b) => (await api('POST', p, b)).data;
async function allMembers(pool) {
  let cursor = '', out = [];
  for (;;) {
    const pg = await GET(`/api/pools/${pool}/members?limit=10000${cursor ? `&cursor=${cursor}` : ''}`);
    out = out.concat(pg.members.map((m) => (typeof m === 'object' ? m.sku : m)));
    if (pg.next == null) return out;
    cursor = pg.next;
  }
}

// -- events keep flowing, except while a check compares ------------------------------------
const feeder = {
  lines: EVENTS && existsSync(EVENTS) ? readFileSync(EVENTS, 'utf8').split('\n').filter(Boolean) : [],
  pos: 0, running: false, busy: null, posted: 0,
  start() {
    if (this.running || !this.lines.length) return;
    this.running = true;
    const loop = async () => {
      while (this.running && this.pos < this.lines.length) {
        const chunk = this.lines.slice(this.pos, this.pos + 100).join('\n') + '\n';
        this.pos += 100;
        this.busy = api('POST', '/api/events?wait=applied', chunk, { 'Content-Type': 'application/x-ndjson' }).catch(() => {});
        await this.busy;
        this.posted += 100;
        await sleep(200);
      }
    };
    this.done = loop();
  },
  async pause() { this.running = false; if (this.done) await this.done; },
};

// -- the browser ---------------------------------------------------------------------------
const problems = [];
const allowed = []; // [{re, status}] HTTP errors the current step expects
const pages = [];
const allow = (re, status) => allowed.push({ re, status });
const isAllowed = (url, status) => allowed.some((a) => a.re.test(url) && (!a.status || a.status === status));

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--no-default-browser-check',
    '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-default-apps',
    '--disable-extensions', '--disable-domain-reliability', '--metrics-recording-only', '--no-pings',
    '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1', '--proxy-server=direct://', '--proxy-bypass-list=*',
  ],
});

async function newPage(context) {
  const ctx = context || (await browser.newContext({ viewport: { width: 1400, height: 900 }, acceptDownloads: true }));
  await ctx.route('**/*', (route) => {
    const u = new URL(route.request().url());
    if (u.protocol === 'data:' || u.hostname === '127.0.0.1') return route.continue();
    problems.push(`external request ${u.href}`);
    return route.abort();
  });
  const page = await ctx.newPage();
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const url = (m.location() && m.location().url) || '';
    const st = /status of (\d+)/.exec(m.text());
    if (st && isAllowed(url, +st[1])) return;
    problems.push(`console error: ${m.text()} ${url}`);
  });
  page.on('requestfailed', (r) => {
    const err = r.failure() ? r.failure().errorText : '';
    if (err === 'net::ERR_ABORTED') return; // our own AbortController (page left, long-poll stopped)
    problems.push(`request failed: ${r.method()} ${r.url()} ${err}`);
  });
  page.on('response', (r) => {
    if (r.status() >= 400 && !isAllowed(r.url(), r.status())) problems.push(`HTTP ${r.status()} ${r.request().method()} ${r.url()}`);
  });
  pages.push(page);
  return page;
}
async function shot(page, name) {
  await page.evaluate(() => window.scrollTo(0, 0)); // a sticky header mid-page otherwise
  await page.screenshot({ path: join(ART, `${name}.png`), fullPage: true });
}
// A full page load each time (a hash-only change would keep the page's state).
let loads = 0;
const go = async (page, hash) => {
  await page.goto(`${BASE}/?load=${++loads}${hash}`);
};
const cellNum = (s) => Number(String(s).replace(/[^0-9.]/g, ''));

// -- the console's pure helpers (no browser) --------------------------------------------------
const util = await import('../../console/src/util.js');
await check('helpers: tag expressions, rule DSL from a query, line diff, pin lists', async () => {
  const x = util.parseTagExpr('a | b & !c');
  eq(x, { t: 'or', xs: [{ t: 'tag', name: 'a' }, { t: 'and', xs: [{ t: 'tag', name: 'b' }, { t: 'not', x: { t: 'tag', name: 'c' } }] }] }, 'precedence');
  const has = (set) => (t) => set.includes(t);
  eq([util.evalTagExpr(x, has(['a'])), util.evalTagExpr(x, has(['b'])), util.evalTagExpr(x, has(['b', 'c']))], [true, true, false], 'evaluation');
  let bad = null;
  try { util.parseTagExpr('a & (b'); } catch (e) { bad = e.message; }
  assert(bad && /expected "\)"/.test(bad), `an unclosed group is an error: ${bad}`);
  eq(util.tagExprToDsl(util.parseTagExpr('market:SG & lazmall & !blocked')), 'all { tag "market:SG", tag "lazmall", no_tag "blocked" }', 'and');
  eq(util.tagExprToDsl(util.parseTagExpr('!(a & (b | !c))')), 'any { no_tag "a", all { no_tag "b", tag "c" } }', 'negation pushed down');
  eq(util.tagExprToDsl(util.parseTagExpr('a')), 'all { tag "a" }', 'one tag');
  eq(util.lineDiff('a\nb\nc', 'a\nx\nc').map((l) => l.op + l.text), [' a', '-b', '+x', ' c'], 'diff');
  eq(util.lineDiff('a\nb', 'a\nb').every((l) => l.op === ' '), true, 'no diff');
  const src = 'return pool "p" {\n  where = all { tag "a" },\n  exclude = { "X1", "X2" },\n}\n';
  eq(util.readList(src, 'exclude'), ['X1', 'X2'], 'read exclude');
  eq(util.readList(src, 'pin'), null, 'no pin');
  const s2 = util.writeList(util.writeList(src, 'exclude', ['X2']), 'pin', ['P"1']);
  eq(util.readList(s2, 'exclude'), ['X2'], 'exclude rewritten');
  eq(util.readList(s2, 'pin'), ['P"1'], 'pin added (quoted)');
  assert(s2.startsWith('return pool "p" {\n  pin = {'), `pin inserted after the opening line: ${s2}`);
});

// -- the journey ----------------------------------------------------------------------------
const POOL = 'flash_sale_sg'; // from the example rules: SG, LazMall or flash-eligible, 30% off, stock >= 20
const RANKED = 'clearance';   // ranked, limit 300
const page = await newPage();
const pools0 = await GET('/api/pools');
assert(pools0.some((p) => p.name === POOL) && pools0.some((p) => p.name === RANKED), `the example pools ${POOL} and ${RANKED} must exist`);
feeder.start();
await sleep(1500);

await check('page weight and load time of the first load', async () => {
  await feeder.pause();
  const ctx = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const p = await newPage(ctx);
  const bytes = new Map();
  p.on('response', async (r) => {
    try {
      const body = await r.body();
      bytes.set(r.url(), { raw: body.length, gz: gzipSync(body, { level: 6 }).length });
    } catch { /* redirects and aborted long-polls have no body */ }
  });
  // The time from the navigation's start to the pools in the page, on the
  // page's own clock (Playwright's polling would add its own latency).
  await p.addInitScript(() => {
    new MutationObserver((m, o) => {
      if (document.querySelector('#pools tbody tr[data-pool]')) { window.__poolsShown = performance.now(); o.disconnect(); }
    }).observe(document, { childList: true, subtree: true });
  });
  const t0 = Date.now();
  await p.goto(`${BASE}/`);
  await p.waitForSelector('#pools tbody tr[data-pool]');
  const wallMs = Date.now() - t0;
  const loadMs = Math.round(await p.evaluate(() => window.__poolsShown));
  await p.waitForLoadState('networkidle');
  const first = [...bytes.values()].reduce((s, b) => s + b.gz, 0);
  const firstRaw = [...bytes.values()].reduce((s, b) => s + b.raw, 0);
  await p.goto(`${BASE}/#/rules/${POOL}`);
  await p.waitForSelector('#editor .cm-content');
  await p.waitForLoadState('networkidle');
  const all = [...bytes.values()].reduce((s, b) => s + b.gz, 0);
  const report = { load_ms: loadMs, load_ms_wall: wallMs, first_load_gzip: first, first_load_raw: firstRaw, with_editor_gzip: all,
    files: Object.fromEntries([...bytes].filter(([u]) => /\/web\/|\/$/.test(u)).map(([u, b]) => [new URL(u).pathname, b])) };
  writeFileSync(join(ART, 'page-weight.json'), JSON.stringify(report, null, 2));
  console.log(`     first load ${first} B gzip (${firstRaw} B raw); pools in the page ${loadMs} ms after the navigation started (${wallMs} ms as the test saw it); with the editor ${all} B gzip`);
  assert(first <= 300 * 1024, `first load ${first} B gzip > 300 KB`);
  assert(all <= 300 * 1024, `first load plus the editor ${all} B gzip > 300 KB`);
  // The 1 s load-time target is a figure (page-weight.json, printed above),
  // not a pass/fail check: this machine is shared and noisy. A page that
  // never shows its pools fails the wait above.
  await p.close();
  await ctx.close();
  pages.splice(pages.indexOf(p), 1);
  feeder.start();
});

async function overviewSizes(p) {
  return p.$$eval('#pools tbody tr[data-pool]', (rows) => Object.fromEntries(rows.map((r) =>
    [r.dataset.pool, Number(r.querySelector('[data-col=size]').textContent.replace(/[^0-9]/g, ''))])));
}

await check('overview lists every pool with the API size', async () => {
  await go(page, '#/');
  await page.waitForSelector('#pools tbody tr[data-pool]');
  await feeder.pause();
  const want = Object.fromEntries((await GET('/api/pools')).map((p) => [p.name, p.size]));
  await until(async () => JSON.stringify(await overviewSizes(page)) === JSON.stringify(want) || null,
    'the overview sizes to equal /api/pools', 5000).catch(async (e) => { eq(await overviewSizes(page), want, 'sizes'); throw e; });
  await page.waitForSelector('#stats [data-stat=skus]');
  const skus = cellNum(await page.textContent('#stats [data-stat=skus] .stat-v'));
  const h = await GET('/healthz');
  eq(skus, h.skus, 'SKU count in the stats bar');
  await shot(page, '01-overview');
  feeder.start();
});

async function tableSkus(p, sel = '#members') {
  return p.$$eval(`${sel} tbody tr[data-sku]`, (rows) => rows.map((r) => r.dataset.sku));
}
// The members table's columns and how the console formats a cell (cell()
// in console/src/pages/pool.jsx), to compare the page with API rows.
const MEMBER_COLS = ['sku', 'market', 'category', 'brand', 'price', 'list_price', 'discount', 'stock', 'rating', 'sales_24h'];
const cellText = (k, v) => (v == null ? '—' : k === 'discount' ? util.fmtPct(v) : k === 'price' || k === 'list_price' ? util.fmtNum(v, 2)
  : typeof v === 'number' ? util.fmtNum(v) : String(v));
async function tableCells(p, sel = '#members') {
  return p.$$eval(`${sel} tbody tr[data-sku]`, (rows) => rows.map((r) => [...r.children].slice(1).map((td) => td.textContent)));
}
// An API row ({sku, market, ...} or a GET /api/skus answer) as the table shows it.
function rowText(d) {
  const f = d.fields || d;
  const v = { ...f, sku: d.sku, sales_24h: f.sales_24h ?? (d.counters && d.counters['24h'] && d.counters['24h'].sales) };
  return MEMBER_COLS.map((k) => (k === 'sku' ? d.sku : cellText(k, v[k])));
}

await check('pool page pages the members like the API, in rank order', async () => {
  await feeder.pause();
  const skuCalls = [];
  const onReq = (r) => { if (/\/api\/skus\//.test(r.url())) skuCalls.push(r.url()); };
  page.on('request', onReq);
  await go(page, `#/pools/${RANKED}`);
  const p1 = await GET(`/api/pools/${RANKED}/members?limit=50&fields=1`);
  assert(Array.isArray(p1.rows) && p1.rows.length === p1.members.length, 'members?fields=1 answers rows');
  await until(async () => (await tableSkus(page)).length === p1.members.length || null, 'page 1');
  eq(await tableSkus(page), p1.members, 'page 1');
  // The fields come with the page (members?fields=1), not one GET /api/skus per row.
  eq(await tableCells(page), p1.rows.map(rowText), 'the table\'s fields = the API rows');
  page.off('request', onReq);
  eq(skuCalls, [], 'GET /api/skus calls to fill the members table');
  assert(p1.next != null, 'the ranked pool has more than one page');
  const p2 = await GET(`/api/pools/${RANKED}/members?limit=50&fields=1&cursor=${p1.next}`);
  await page.click('#next');
  await until(async () => (await tableSkus(page))[0] === p2.members[0] || null, 'page 2');
  eq(await tableSkus(page), p2.members, 'page 2');
  eq(await tableCells(page), p2.rows.map(rowText), 'page 2 fields = the API rows');
  const rank0 = await page.textContent('#members tbody tr td');
  eq(rank0.trim(), '51', 'rank of the first row of page 2');
  await shot(page, '02-pool-page2');
  await page.click('#prev');
  await until(async () => (await tableSkus(page))[0] === p1.members[0] || null, 'back to page 1');
  // Sorting by a column reorders this page only.
  await page.click('button[data-sort=price]');
  const prices = await page.$$eval('#members tbody tr', (rows) => rows.map((r) => Number(r.children[5].textContent.replace(/[^0-9.]/g, ''))));
  assert(prices.every((x, i) => i === 0 || prices[i - 1] <= x), `prices sorted ascending: ${prices.slice(0, 8)}`);
  eq((await tableSkus(page)).slice().sort(), p1.members.slice().sort(), 'the sorted page holds the same SKUs');
  await page.click('button[data-sort=price]');
  const desc = await page.$$eval('#members tbody tr', (rows) => rows.map((r) => Number(r.children[5].textContent.replace(/[^0-9.]/g, ''))));
  assert(desc.every((x, i) => i === 0 || desc[i - 1] >= x), 'prices sorted descending');
  await page.click('button[data-sort=price]');
  eq(await tableSkus(page), p1.members, 'third click: back to rank order');
  feeder.start();
});

await check('pool page: live ticker shows a leave and a join', async () => {
  await go(page, `#/pools/${POOL}`);
  await page.waitForSelector('#members tbody tr[data-sku]');
  await page.waitForSelector('#ticker', { timeout: 3000 }).catch(() => { throw new Error('no ticker (GET /api/pools/NAME/changes missing?)'); });
  await feeder.pause();
  const members = (await GET(`/api/pools/${POOL}/members?limit=5`)).members;
  const sku = members[0];
  const before = await GET(`/api/skus/${sku}`);
  const stock = (before.fields || before).stock;
  await api('POST', '/api/events?wait=applied', `{"op":"stock","sku":"${sku}","stock":0}\n`);
  await page.waitForSelector(`#ticker li[data-op=remove]:has(a:text-is("${sku}"))`, { timeout: 6000 });
  await api('POST', '/api/events?wait=applied', `{"op":"stock","sku":"${sku}","stock":${Math.max(stock, 50)}}\n`);
  await page.waitForSelector(`#ticker li[data-op=add]:has(a:text-is("${sku}"))`, { timeout: 6000 });
  await page.waitForSelector('#refresh');
  await shot(page, '03-pool-ticker');
  feeder.start();
});

await check('pool page: tag-expression filter over the whole pool', async () => {
  await feeder.pause();
  const expr = 'lazmall & !brand:b0001';
  await go(page, `#/pools/${POOL}`);
  await page.waitForSelector('#members tbody tr[data-sku]');
  const page1 = await tableSkus(page);
  await page.fill('#filter', expr);
  await page.click('#filter-form button');
  await page.waitForSelector('#filter-n');
  const q = await POST('/api/query', { where: expr, pool: POOL, sample: 1000 });
  eq(q.pool, POOL, 'the query answer echoes the pool');
  eq(cellNum(await page.textContent('#filter-n')), q.count, 'the filter count = POST /api/query with pool');
  assert(/whole pool/.test(await page.textContent('#filter-count')), 'the page says the count covers the whole pool');
  const all = await allMembers(POOL);
  const inPool = new Set(all);
  assert(q.sample.every((s) => inPool.has(s)), 'the query sample holds members of the pool only');
  // Without "pool", the same expression counts the whole catalog: more.
  assert((await POST('/api/query', { where: expr, sample: 0 })).count > q.count, 'the catalog has more matches than the pool');
  await until(async () => (await tableSkus(page)).length === Math.min(50, q.sample.length) || null, 'the filtered table');
  eq(await tableSkus(page), q.sample.slice(0, 50), 'filtered members, first page');
  const rows = await Promise.all(q.sample.slice(0, 50).map((s) => GET(`/api/skus/${s}`)));
  eq(await tableCells(page), rows.map(rowText), 'filtered members\' fields = GET /api/skus');
  for (const d of rows) assert(d.tags.includes('lazmall') && !d.tags.includes('brand:b0001'), `${d.sku} matches ${expr}`);
  if (all.length > 50) {
    assert(q.sample.some((s) => !page1.includes(s)), 'the filter finds members beyond the first page');
  }
  if (q.sample.length > 50) {
    await page.click('#filter-next');
    await until(async () => (await tableSkus(page))[0] === q.sample[50] || null, 'the second filtered page');
    eq(await tableSkus(page), q.sample.slice(50, 100), 'filtered members, second page');
  }
  await shot(page, '04-pool-filter');
  await page.click('#filter-clear');
  await until(async () => (await tableSkus(page)).length === Math.min(50, all.length) || null, 'the members back after Clear');
  feeder.start();
});

await check('pool page: CSV export holds every member', async () => {
  await feeder.pause();
  await go(page, `#/pools/${POOL}`);
  await page.waitForSelector('#members tbody tr[data-sku]');
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#export')]);
  const path = join(ART, 'export.csv');
  await dl.saveAs(path);
  const lines = readFileSync(path, 'utf8').trim().split('\n');
  eq(lines[0].split(','), MEMBER_COLS, 'CSV header: the members\' fields');
  const rows = [];
  for (let cursor = ''; ;) {
    const pg = await GET(`/api/pools/${POOL}/members?limit=10000&fields=1${cursor ? `&cursor=${cursor}` : ''}`);
    rows.push(...pg.rows);
    if (pg.next == null) break;
    cursor = pg.next;
  }
  eq(lines.length - 1, (await GET(`/api/pools/${POOL}`)).size, 'CSV rows = pool size');
  eq(lines.slice(1).map((l) => l.split(',')[0]), await allMembers(POOL), 'CSV SKUs');
  eq(lines.slice(1), rows.map((r) => util.csvLine(MEMBER_COLS.map((k) => r[k])).trimEnd()), 'CSV fields = members?fields=1 rows');
  feeder.start();
});

await check('pool page: pin a SKU through a draft', async () => {
  await feeder.pause();
  const rule = await GET(`/api/rules/${POOL}`);
  assert(!rule.draft, 'no draft before the test');
  const out = (await POST('/api/query', { where: 'market:SG & !lazmall & !flash_eligible', sample: 1 })).sample[0];
  await go(page, `#/pools/${POOL}`);
  await page.waitForSelector('#pin-list input');
  await page.fill('#pin-list input', out);
  await page.click('#pin-list button.btn');
  await page.waitForSelector(`#pin-list .chip[data-sku="${out}"]`);
  const r2 = await GET(`/api/rules/${POOL}`);
  assert(r2.draft && r2.draft.source.includes(`"${out}"`), `the draft pins ${out}`);
  await shot(page, '05-pool-pins');
  await api('DELETE', `/api/rules/${POOL}/draft`);
  feeder.start();
});

async function explainMatches(sku, pool) {
  await go(page, `#/skus/${sku}`);
  const row = `li[data-pool="${pool}"]`;
  await page.waitForSelector(row);
  await page.click(`${row} button.link`);
  await page.waitForSelector(`${row} [data-explain="${pool}"]`, { timeout: 5000 });
  const ui = await page.$eval(`${row} [data-explain="${pool}"]`, (el) => ({
    member: el.dataset.member === 'true',
    where: [...el.querySelectorAll('[data-clause]')].map((r) => ({ clause: r.dataset.clause, has: r.dataset.has === 'true' })),
    match: el.querySelector('[data-match]') ? el.querySelector('[data-match]').dataset.match === 'true' : null,
    verdict: el.querySelector('.verdict').textContent,
  }));
  const x = await GET(`/api/skus/${sku}/explain?pool=${pool}`);
  eq(ui.member, !!x.member, 'member');
  eq(ui.where, (x.where || []).map((c) => ({ clause: c.clause, has: !!c.has })), 'where clauses');
  eq(ui.match, x.match ? !!x.match.result : null, 'match result');
  assert(ui.verdict.startsWith(x.member ? 'In' : 'Out'), `verdict "${ui.verdict}"`);
  return { ui, x };
}

await check('SKU page: why a SKU is out of a pool, clause by clause', async () => {
  await feeder.pause();
  // Out by where (not LazMall nor flash-eligible) ...
  const a = (await POST('/api/query', { where: 'market:SG & !lazmall & !flash_eligible & !blocked', sample: 1 })).sample[0];
  const r1 = await explainMatches(a, POOL);
  assert(r1.ui.where.some((c) => !c.has), 'a failing where clause is shown');
  await page.waitForSelector('#fields [data-field=price]');
  await page.waitForSelector('#attrs');
  await shot(page, '06-sku-out-where');
  // Freshness: a stock update over HTTP restamps the stock group only.
  const d0 = await GET(`/api/skus/${a}`);
  await api('POST', '/api/events?wait=applied', `{"op":"stock","sku":"${a}","stock":${d0.fields.stock + 7}}\n`,
    { 'Content-Type': 'application/x-ndjson' });
  await go(page, `#/skus/${a}`);
  await page.waitForSelector('#sources tr[data-group]');
  const d = await GET(`/api/skus/${a}`);
  assert(d.sources && d.sources.stock && d.sources.catalog, 'the API has sources for stock and catalog');
  eq(d.sources.stock.source, 'http', 'the stock group came over HTTP');
  assert(d.sources.catalog.input.startsWith('file:'), `the catalog group came from the loaded file: ${d.sources.catalog.input}`);
  const ui = await page.$$eval('#sources tr[data-group]', (trs) => trs.map((tr) => ({
    row: tr.dataset.group,
    ...Object.fromEntries([...tr.querySelectorAll('[data-col]')].map((c) => [c.dataset.col, c.textContent])),
    raw_ts: tr.querySelector('[data-col=ts]').dataset.ts,
  })));
  const want = ['catalog', 'price', 'stock', 'tags', 'attrs'].filter((g) => d.sources[g]).map((g) => {
    const x = d.sources[g];
    return {
      row: g, group: g, fields: x.fields.split(' ').join(', '), ts: util.fmtTime(x.ts), source: x.source, input: x.input,
      partition: x.partition == null ? '—' : String(x.partition),
      offset: x.offset != null ? String(x.offset) : x.offset_at_most != null ? `≤ ${x.offset_at_most}` : '—',
      seq: String(x.seq), raw_ts: String(x.ts),
    };
  });
  eq(ui, want, 'the sources table = the API\'s sources');
  await shot(page, '06b-sku-sources');
  // ... and out by match (passes where, too little discount or stock).
  const cands = (await POST('/api/query', { where: 'market:SG & lazmall & !blocked', sample: 200 })).sample;
  let b = null;
  for (const s of cands) {
    const x = await GET(`/api/skus/${s}/explain?pool=${POOL}`);
    if (!x.member && x.match && x.match.result === false && !x.excluded) { b = s; break; }
  }
  assert(b, 'a SKU that passes where and fails match');
  const r2 = await explainMatches(b, POOL);
  assert(await page.isVisible(`li[data-pool="${POOL}"] .reads`), 'the fields match read are shown');
  eq(r2.ui.match, false, 'match shown as false');
  await shot(page, '07-sku-out-match');
  feeder.start();
});

const live0 = await GET(`/api/rules/${POOL}`);
const src0 = live0.source;

await check('editor: a syntax error is shown at its line', async () => {
  await go(page, `#/rules/${POOL}`);
  await page.waitForFunction(() => window.__pooldEditor);
  await page.waitForSelector('#editor .cm-content');
  const lines = src0.split('\n');
  const at = lines.findIndex((l) => /^\s*match\s*=/.test(l));
  lines.splice(at, 0, '  title = = "broken",');
  const broken = lines.join('\n');
  const r = await api('PUT', `/api/rules/${POOL}`, broken, { 'x-expect-error': '1' });
  eq(r.status, 400, 'the API refuses the broken draft');
  assert(r.data.line, 'the API names the line');
  allow(new RegExp(`/api/rules/${POOL}$`), 400);
  await page.evaluate((t) => window.__pooldEditor.setDoc(t), broken);
  await page.click('#save');
  await page.waitForSelector('.cm-error-line');
  eq(await page.getAttribute('.cm-error-line', 'data-line'), String(r.data.line), 'marked line');
  eq(await page.getAttribute('#save-error', 'data-line'), String(r.data.line), 'message line');
  assert((await page.textContent('.cm-inline-error')).includes(`line ${r.data.line}`), 'inline message under the line');
  await shot(page, '08-editor-syntax-error');
});

let preview = null;
const src1 = src0.replace('s.discount >= 0.30', 's.discount >= 0.45');
await check('editor: fixed draft, preview equals the API preview', async () => {
  assert(src1 !== src0, 'the example rule has "s.discount >= 0.30"');
  await feeder.pause();
  await go(page, `#/rules/${POOL}`);
  await page.waitForFunction(() => window.__pooldEditor);
  await page.evaluate((t) => window.__pooldEditor.setDoc(t), src1);
  await page.click('#preview-btn');
  await page.waitForSelector('#preview');
  const ui = {
    size: cellNum(await page.textContent('#preview-size')),
    joins: cellNum(await page.textContent('#preview-joins')),
    leaves: cellNum(await page.textContent('#preview-leaves')),
  };
  const p = await POST(`/api/rules/${POOL}/preview`);
  const c = (x) => (typeof x === 'object' ? x.count : x);
  eq(ui, { size: p.size, joins: c(p.joins), leaves: c(p.leaves) }, 'preview counts');
  assert(c(p.leaves) > 0, 'raising the discount makes SKUs leave');
  const samples = await page.$$eval('#preview-leave-sample a', (as) => as.map((a) => a.textContent));
  eq(samples, p.leaves.sample || [], 'leave samples');
  preview = p;
  await shot(page, '09-editor-preview');
});

await check('editor: publish (confirm shows the counts); the overview size follows', async () => {
  assert(preview, 'needs the preview');
  const overview = await newPage(page.context());
  await go(overview, '#/');
  await overview.waitForSelector(`#pools tr[data-pool="${POOL}"]`);
  const before = (await GET(`/api/pools/${POOL}`)).size;
  await page.click('#publish');
  await page.waitForSelector('#publish-confirm');
  const c = (x) => (typeof x === 'object' ? x.count : x);
  eq([cellNum(await page.textContent('#confirm-joins')), cellNum(await page.textContent('#confirm-leaves'))],
    [c(preview.joins), c(preview.leaves)], 'counts in the confirmation');
  await shot(page, '10-editor-publish-confirm');
  await page.click('#confirm-ok');
  const rule = await until(async () => { const r = await GET(`/api/rules/${POOL}`); return r.version === live0.version + 1 ? r : null; }, 'the new version');
  assert(!rule.draft, 'no draft left after publish');
  const after = (await GET(`/api/pools/${POOL}`)).size;
  eq(after, preview.size, 'published size = previewed size');
  assert(after !== before, 'the size changed');
  await until(async () => (await overviewSizes(overview))[POOL] === after || null, 'the overview to show the new size', 5000);
  await shot(overview, '11-overview-after-publish');
  await overview.close();
  pages.splice(pages.indexOf(overview), 1);
});

await check('editor: history, diff against live, roll back', async () => {
  await feeder.pause();
  await go(page, `#/rules/${POOL}`);
  await page.waitForSelector(`#history tr[data-version="${live0.version}"]`);
  await page.click(`#history tr[data-version="${live0.version}"] [data-action=diff]`);
  await page.waitForSelector('#diff');
  const del = await page.$$eval('#diff .del', (ds) => ds.map((d) => d.textContent).join('\n'));
  const add = await page.$$eval('#diff .add', (ds) => ds.map((d) => d.textContent).join('\n'));
  assert(del.includes('0.45') && add.includes('0.30'), `diff from live to v${live0.version}: -${del} +${add}`);
  await shot(page, '12-editor-history-diff');
  const size0 = pools0.find((p) => p.name === POOL).size;
  await page.click(`#history tr[data-version="${live0.version}"] [data-action=rollback]`);
  await page.click('#confirm-ok');
  const rule = await until(async () => { const r = await GET(`/api/rules/${POOL}`); return r.version === live0.version + 2 ? r : null; }, 'the rollback version');
  eq(rule.source, src0, 'the rolled-back source');
  await page.waitForSelector(`#history tr[data-version="${live0.version + 2}"]`);
  const members = await allMembers(POOL);
  eq((await GET(`/api/pools/${POOL}`)).size, members.length, 'size after rollback');
  console.log(`     size ${size0} -> ${preview && preview.size} -> ${members.length} after the rollback`);
  feeder.start();
});

await check('query box: count and sample equal POST /api/query', async () => {
  await feeder.pause();
  const expr = 'market:SG & lazmall & !blocked';
  await go(page, '#/query');
  await page.fill('#query-input', expr);
  await page.click('#query-run');
  await page.waitForSelector('#query-count');
  const q = await POST('/api/query', { where: expr, sample: 50 });
  await until(async () => cellNum(await page.textContent('#query-count')) === q.count || null, 'the count');
  eq(await page.$$eval('#query-sample a', (as) => as.map((a) => a.textContent)), q.sample, 'sample');
  await shot(page, '13-query');
  feeder.start();
});

await check('new pool from a query: draft, publish, size = query count, delete', async () => {
  const expr = 'market:MY & free_shipping & !blocked';
  const name = 'browser_test_pool';
  await go(page, `#/query?q=${encodeURIComponent(expr)}`);
  await page.waitForSelector('#query-new-pool');
  await page.click('#query-new-pool');
  await page.waitForSelector('#new-name');
  await page.waitForFunction(() => window.__pooldEditor && window.__pooldEditor.getDoc().includes('free_shipping'));
  await page.fill('#new-name', name);
  await page.fill('#new-title', 'Browser test pool');
  await page.waitForFunction((n) => window.__pooldEditor.getDoc().includes(`"${n}"`), name);
  await shot(page, '14-new-pool');
  await page.click('#new-create');
  await page.waitForFunction((n) => location.hash === `#/rules/${n}`, name);
  await page.waitForSelector('#publish:not([disabled])');
  // Only a draft so far: the API and the editor say "draft", once.
  eq((await GET(`/api/rules/${name}`)).state, 'draft', 'the API state of a draft-only rule');
  await page.waitForSelector('.page-head [data-state=draft]');
  eq(await page.$$eval('.page-head .badge', (bs) => bs.map((b) => b.textContent)), ['draft'], 'the editor\'s badges');
  assert((await page.textContent('#rule-meta')).includes('never published'), 'the editor says it was never published');
  await go(page, '#/rules');
  await page.waitForSelector(`tr[data-rule="${name}"] [data-state=draft]`);
  await shot(page, '14b-rules-draft');
  await go(page, `#/rules/${name}`);
  await page.waitForSelector('#publish:not([disabled])');
  await feeder.pause();
  await page.click('#publish');
  await page.waitForSelector('#confirm-ok');
  await page.click('#confirm-ok');
  const pool = await until(async () => (await GET('/api/pools')).find((p) => p.name === name), 'the new pool');
  const q = await POST('/api/query', { where: expr });
  eq(pool.size, q.count, 'the new pool holds what the query counts');
  feeder.start();
  await page.waitForSelector('#delete:not([disabled])');
  await page.click('#delete');
  await page.click('#confirm-ok');
  await page.waitForFunction(() => location.hash === '#/');
  await until(async () => !(await GET('/api/pools')).some((p) => p.name === name && p.state !== 'deleted' && p.state !== 'inactive'), 'the pool gone');
  await page.waitForSelector('#pools tbody tr[data-pool]');
});

await check('editor: a draft-only rule shows as draft; discarding it removes it', async () => {
  const name = 'browser_test_draft';
  await api('PUT', `/api/rules/${name}`, `return pool "${name}" {\n  title = "Draft only",\n  where = all { tag "market:SG" },\n}\n`);
  eq((await GET(`/api/rules/${name}`)).state, 'draft', 'the API state');
  await go(page, `#/rules/${name}`);
  await page.waitForSelector('.page-head [data-state=draft]');
  await page.click('#discard:not([disabled])');
  await page.click('#confirm-ok');
  await page.waitForFunction(() => location.hash === '#/rules');
  assert(!(await GET('/api/rules')).rules.some((r) => r.name === name), 'the rule is gone from /api/rules');
  await page.waitForSelector('tr[data-rule]');
  assert(!(await page.$(`tr[data-rule="${name}"]`)), 'the rules page does not list it');
});

// -- access (--token-file): a second server with tokens ---------------------------------------
await check('access: the token box, the role, disabled actions', async () => {
  if (!BIN || !RULES) throw new Skip('run with --bin and --rules');
  const help = await new Promise((res) => {
    const c = spawn(BIN, ['serve', '--help']);
    let o = '';
    c.stdout.on('data', (d) => { o += d; });
    c.stderr.on('data', (d) => { o += d; });
    c.on('close', () => res(o));
  });
  if (!/--token-file FILE/.test(help) || /Not in this version yet:.*--token-file/s.test(help)) throw new Skip('this poold has no --token-file');
  const dir = mkdtempSync(join(tmpdir(), 'poold-auth-'));
  const tokens = join(dir, 'tokens');
  writeFileSync(tokens, 'loader ingest ingest-token-0123456789\nalice editor editor-token-0123456789\n', { mode: 0o600 });
  mkdirSync(join(dir, 'data'));
  const srv = spawn(BIN, ['serve', '--rules', RULES, '--listen', '127.0.0.1:0', '--data', join(dir, 'data'), '--token-file', tokens, '--clock', 'event'],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  srv.stdout.on('data', (d) => { log += d; });
  srv.stderr.on('data', (d) => { log += d; });
  let p = null;
  try {
    const url = await until(() => (/serving on (http:\/\/[^\s/]+)/.exec(log) || [])[1], 'the second server', 10000);
    p = await newPage();
    await p.goto(`${url}/#/rules/${POOL}`);
    await p.waitForSelector('#save');
    assert(await p.isDisabled('#save'), 'without a token, Save draft is disabled');
    eq((await p.textContent('#signin')).trim(), 'Sign in', 'the sign-in button');
    const signIn = async (tok) => {
      await p.click('#signin');
      await p.fill('#token', tok);
      await p.click('#signin-save');
    };
    await signIn('ingest-token-0123456789');
    await p.waitForSelector('#signin:text("loader")');
    assert(await p.isDisabled('#save'), 'an ingest token may not save a draft');
    assert((await p.getAttribute('#save', 'title')).includes('ingest'), 'the button says why');
    await signIn('editor-token-0123456789');
    await p.waitForSelector('#signin:text("alice · editor")');
    await p.waitForSelector('#save:not([disabled])');
    await shot(p, '15-access-editor');
    eq(await p.evaluate(() => sessionStorage.getItem('poold.token')), 'editor-token-0123456789', 'token kept in sessionStorage');
  } finally {
    if (p) { await p.context().close(); pages.splice(pages.indexOf(p), 1); }
    srv.kill('SIGTERM');
  }
});

await feeder.pause();
await check('no browser errors at the end', async () => {
  await go(page, '#/');
  await page.waitForSelector('#pools tbody tr[data-pool]');
  await sleep(2500);
});
await browser.close();
console.log(`events posted during the run: ${feeder.posted}`);
console.log(`screenshots and page-weight.json in ${ART}`);
if (failures.length) console.log(`failed: ${failures.join('; ')}`);
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed ? 1 : 0);
