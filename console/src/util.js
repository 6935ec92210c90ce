// Small pure helpers: formatting, the tag-expression grammar (SPEC.md "Tag
// expressions") for client-side filtering and for turning a query into rule
// DSL, a line diff, CSV, and editing pin/exclude lists inside a rule source.

export const fmtInt = (n) => (n == null || Number.isNaN(n) ? '—' : Math.round(n).toLocaleString('en-US'));

export function fmtNum(n, digits = 2) {
  if (n == null || Number.isNaN(n)) return '—';
  if (typeof n !== 'number') return String(n);
  if (Number.isInteger(n)) return n.toLocaleString('en-US');
  return n.toLocaleString('en-US', { maximumFractionDigits: digits });
}

export const fmtPct = (x) => (x == null ? '—' : `${(x * 100).toFixed(1)}%`);

// ms since the epoch, seconds since the epoch or an ISO string -> Date.
export function toDate(t) {
  if (t == null || t === '') return null;
  if (typeof t === 'number') return new Date(t > 1e11 ? t : t * 1000);
  const d = new Date(t);
  return Number.isNaN(d.getTime()) ? null : d;
}

export function fmtTime(t) {
  const d = toDate(t);
  if (!d) return '—';
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export function fmtAgo(t, now = Date.now()) {
  const d = toDate(t);
  if (!d) return '—';
  const s = Math.round((now - d.getTime()) / 1000);
  if (s < 0) return `in ${fmtDuration(-s)}`;
  if (s < 5) return 'just now';
  return `${fmtDuration(s)} ago`;
}

export function fmtDuration(s) {
  if (s == null) return '—';
  s = Math.floor(s);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

// -- tag expressions ----------------------------------------------------------
// expr := term { "|" term } ; term := factor { "&" factor }
// factor := "!" factor | "(" expr ")" | TAG      TAG := [A-Za-z0-9_:/.+-]+
// AST: {t:'tag',name} | {t:'not',x} | {t:'and',xs} | {t:'or',xs}

export function parseTagExpr(src) {
  let i = 0;
  const ws = () => { while (i < src.length && /\s/.test(src[i])) i++; };
  const fail = (msg) => { throw new Error(`${msg} at column ${i + 1}`); };
  function factor() {
    ws();
    if (src[i] === '!') { i++; return { t: 'not', x: factor() }; }
    if (src[i] === '(') {
      i++;
      const x = expr();
      ws();
      if (src[i] !== ')') fail('expected ")"');
      i++;
      return x;
    }
    const m = /^[A-Za-z0-9_:/.+-]+/.exec(src.slice(i));
    if (!m) fail(i >= src.length ? 'unexpected end' : `unexpected "${src[i]}"`);
    i += m[0].length;
    return { t: 'tag', name: m[0] };
  }
  function term() {
    const xs = [factor()];
    for (ws(); src[i] === '&'; ws()) { i++; xs.push(factor()); }
    return xs.length === 1 ? xs[0] : { t: 'and', xs };
  }
  function expr() {
    const xs = [term()];
    for (ws(); src[i] === '|'; ws()) { i++; xs.push(term()); }
    return xs.length === 1 ? xs[0] : { t: 'or', xs };
  }
  const x = expr();
  ws();
  if (i < src.length) fail(`unexpected "${src[i]}"`);
  return x;
}

export function evalTagExpr(x, has) {
  switch (x.t) {
    case 'tag': return has(x.name);
    case 'not': return !evalTagExpr(x.x, has);
    case 'and': return x.xs.every((y) => evalTagExpr(y, has));
    default: return x.xs.some((y) => evalTagExpr(y, has));
  }
}

// The rule DSL has tag/no_tag/all/any and no group negation: push "!" down
// to the tags (De Morgan).
export function tagExprToDsl(x, indent = '  ') {
  function nnf(y, neg) {
    if (y.t === 'tag') return { t: neg ? 'no' : 'tag', name: y.name };
    if (y.t === 'not') return nnf(y.x, !neg);
    const t = (y.t === 'and') !== neg ? 'and' : 'or';
    return { t, xs: y.xs.map((z) => nnf(z, neg)) };
  }
  function out(y, ind) {
    if (y.t === 'tag') return `tag ${JSON.stringify(y.name)}`;
    if (y.t === 'no') return `no_tag ${JSON.stringify(y.name)}`;
    const parts = y.xs.map((z) => out(z, ind + '  '));
    const word = y.t === 'and' ? 'all' : 'any';
    const one = `${word} { ${parts.join(', ')} }`;
    if (one.length <= 72) return one;
    return `${word} {\n${parts.map((p) => `${ind}  ${p},`).join('\n')}\n${ind}}`;
  }
  const n = nnf(x, false);
  return out(n.t === 'tag' || n.t === 'no' ? { t: 'and', xs: [n] } : n, indent);
}

// -- line diff (LCS on lines; rule files are small) ------------------------------
// Returns [{op:' '|'-'|'+', a, b, text}] with 1-based line numbers (a old, b new).
export function lineDiff(oldText, newText) {
  const a = oldText.split('\n'), b = newText.split('\n');
  let pre = 0;
  while (pre < a.length && pre < b.length && a[pre] === b[pre]) pre++;
  let suf = 0;
  while (suf < a.length - pre && suf < b.length - pre && a[a.length - 1 - suf] === b[b.length - 1 - suf]) suf++;
  const A = a.slice(pre, a.length - suf), B = b.slice(pre, b.length - suf);
  const n = A.length, m = B.length;
  const out = [];
  for (let i = 0; i < pre; i++) out.push({ op: ' ', a: i + 1, b: i + 1, text: a[i] });
  if (n * m > 4e6) { // too big for the table: replace the middle block whole
    A.forEach((t, i) => out.push({ op: '-', a: pre + i + 1, text: t }));
    B.forEach((t, i) => out.push({ op: '+', b: pre + i + 1, text: t }));
  } else {
    const L = new Array(n + 1);
    for (let i = 0; i <= n; i++) L[i] = new Uint32Array(m + 1);
    for (let i = n - 1; i >= 0; i--)
      for (let j = m - 1; j >= 0; j--)
        L[i][j] = A[i] === B[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
    let i = 0, j = 0;
    while (i < n || j < m) {
      if (i < n && j < m && A[i] === B[j]) { out.push({ op: ' ', a: pre + i + 1, b: pre + j + 1, text: A[i] }); i++; j++; }
      else if (i < n && (j === m || L[i + 1][j] >= L[i][j + 1])) { out.push({ op: '-', a: pre + i + 1, text: A[i] }); i++; }
      else { out.push({ op: '+', b: pre + j + 1, text: B[j] }); j++; }
    }
  }
  for (let k = 0; k < suf; k++)
    out.push({ op: ' ', a: a.length - suf + k + 1, b: b.length - suf + k + 1, text: a[a.length - suf + k] });
  return out;
}

// Keep changed lines with `ctx` lines of context; gaps become {op:'…'}.
export function diffHunks(d, ctx = 3) {
  const keep = new Uint8Array(d.length);
  d.forEach((l, i) => {
    if (l.op !== ' ') for (let k = Math.max(0, i - ctx); k <= Math.min(d.length - 1, i + ctx); k++) keep[k] = 1;
  });
  const out = [];
  let gap = false;
  d.forEach((l, i) => {
    if (keep[i]) { out.push(l); gap = false; }
    else if (!gap) { out.push({ op: '…' }); gap = true; }
  });
  return out;
}

// -- CSV -------------------------------------------------------------------------
export function csvCell(v) {
  if (v == null) return '';
  const s = typeof v === 'object' ? JSON.stringify(v) : String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}
export const csvLine = (cells) => cells.map(csvCell).join(',') + '\n';

export function download(name, text, type = 'text/csv') {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 5000);
}

// -- pin / exclude lists in a rule source ------------------------------------------
// `key = { "A", "B" }` (strings only, as the DSL takes them).
const listRe = (key) => new RegExp(`(^|[\\s,{])${key}\\s*=\\s*\\{([^{}]*)\\}`, 'm');

export function readList(src, key) {
  const m = listRe(key).exec(src || '');
  if (!m) return null;
  return [...m[2].matchAll(/"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'/g)].map((x) => (x[1] ?? x[2]).replace(/\\(.)/g, '$1'));
}

export function writeList(src, key, list) {
  const lua = list.length ? `{ ${list.map((s) => JSON.stringify(s)).join(', ')} }` : '{}';
  const re = listRe(key);
  if (re.test(src)) return src.replace(re, (all, lead) => `${lead}${key} = ${lua}`);
  // Insert a new line after the line that opens the pool's table.
  const m = /pool\s*(\(\s*)?["'][^"']*["']\s*\)?\s*\{[^\n]*\n/.exec(src);
  if (!m) throw new Error(`could not find 'pool "NAME" {' in the rule to add ${key}`);
  const at = m.index + m[0].length;
  return `${src.slice(0, at)}  ${key} = ${lua},\n${src.slice(at)}`;
}

export const isPoolName = (s) => /^[a-z0-9_-]{1,64}$/.test(s);

// Run `fn` over `items` with at most `n` in flight; results in order.
export async function mapLimit(items, n, fn) {
  const out = new Array(items.length);
  let next = 0;
  async function worker() {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  }
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  return out;
}
