// Builds the console into ../web (embedded in poold by CMake):
//   web/index.html  the page (references the two files below, versioned)
//   web/app.js      the app: Preact and the pages (ES module)
//   web/app.css     styles (uPlot's included)
//   web/cm.js       the rule editor (CodeMirror 6 + Lua mode), loaded on demand
//   web/chart.js    uPlot, loaded by the first chart (pool page)
// Usage: node build.mjs [--check] [--watch] [--out DIR]
//   --check  build into a temporary directory and fail if web/ differs
//            (the committed bundle must match the sources)
//   --watch  rebuild on every change (for poold serve --web ../web)
import * as esbuild from 'esbuild';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const check = args.includes('--check');
const watch = args.includes('--watch');
const outArg = args.indexOf('--out') >= 0 ? args[args.indexOf('--out') + 1] : null;
const webDir = resolve(here, '..', 'web');
const out = check ? mkdtempSync(join(tmpdir(), 'poold-web-')) : resolve(outArg || webDir);
const FILES = ['index.html', 'app.js', 'app.css', 'cm.js', 'chart.js'];
const BUDGET_GZ = 300 * 1024;

const options = {
  absWorkingDir: here,
  entryPoints: { app: 'src/main.jsx', cm: 'src/cm.js', chart: 'src/chart.js' },
  outdir: out,
  entryNames: '[name]',
  bundle: true,
  format: 'esm',
  splitting: false,
  minify: true,
  target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  legalComments: 'eof',
  charset: 'utf8',
  logLevel: 'warning',
  write: true,
};

function html(hash) {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>poold console</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/web/app.css?v=${hash}">
<script type="module" src="/web/app.js?v=${hash}"></script>
</head>
<body>
<div id="app"></div>
<noscript>The poold console needs JavaScript. The HTTP API is under <a href="/api/pools">/api/pools</a>.</noscript>
</body>
</html>
`;
}

function finish() {
  const h = createHash('sha256');
  for (const f of ['app.js', 'app.css', 'cm.js', 'chart.js']) h.update(readFileSync(join(out, f)));
  writeFileSync(join(out, 'index.html'), html(h.digest('hex').slice(0, 12)));
  // Only the four files: anything else in the output directory is stale.
  if (out === webDir) for (const f of readdirSync(out)) if (!FILES.includes(f)) unlinkSync(join(out, f));
  let first = 0, total = 0;
  const rows = FILES.map((f) => {
    const buf = readFileSync(join(out, f));
    const gz = gzipSync(buf, { level: 9 }).length;
    total += gz;
    if (f !== 'cm.js' && f !== 'chart.js') first += gz;
    return `  ${f.padEnd(11)} ${String(buf.length).padStart(8)} B  ${String(gz).padStart(7)} B gzip`;
  });
  console.log(`console built into ${out}\n${rows.join('\n')}`);
  console.log(`  first load (overview) ${first} B gzip; everything ${total} B gzip; budget ${BUDGET_GZ} B`);
  if (total > BUDGET_GZ) {
    console.error(`build-web: the console is over its budget (${total} > ${BUDGET_GZ} B gzip)`);
    return false;
  }
  return true;
}

if (!existsSync(out)) mkdirSync(out, { recursive: true });
if (watch) {
  const ctx = await esbuild.context({
    ...options,
    plugins: [{ name: 'finish', setup(b) { b.onEnd((r) => { if (!r.errors.length) finish(); }); } }],
  });
  await ctx.watch();
  console.log('watching src/ (Ctrl-C to stop)');
} else {
  await esbuild.build(options);
  let ok = finish();
  if (check) {
    const stale = FILES.filter((f) => !existsSync(join(webDir, f)) || !readFileSync(join(webDir, f)).equals(readFileSync(join(out, f))));
    if (stale.length) {
      console.error(`build-web --check: web/ is out of date with console/src (${stale.join(', ')}): run scripts/build-web.sh and commit web/`);
      ok = false;
    } else console.log('build-web --check: web/ matches console/src');
    rmSync(out, { recursive: true, force: true });
  }
  process.exit(ok ? 0 : 1);
}
