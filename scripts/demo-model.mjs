// Shared by scripts/demo.mjs and scripts/eval-demo.mjs: compile the committed demo model
// (demo/model, a tiny BLIP-2 OPT checkpoint) with graphs/blip2-opt.blip into .blip-cache/demo/model,
// unless the cache already holds a compile of the same graph, weights and compiler.
//
// The stamp (.blip-cache/demo/stamp.json) records sha256 of the graph file, of every file in
// demo/model, and of the built compiler (dist/src/**.js), so editing any of them recompiles.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const GRAPH = join(ROOT, 'graphs', 'blip2-opt.blip');
export const WEIGHTS = join(ROOT, 'demo', 'model');
export const CACHE = join(ROOT, '.blip-cache', 'demo');
export const OUT = join(CACHE, 'model');
const STAMP = join(CACHE, 'stamp.json');
const DIST = join(ROOT, 'dist', 'src', 'index.js');

export const rel = (p) => relative(process.cwd(), p) || '.';

/** The library (built by `npm ci` / `npm run build`). */
export async function library() {
  if (!existsSync(DIST)) {
    console.error(`blip-graph is not built (${rel(DIST)} is missing): run 'npm ci' (or 'npm run build') first.`);
    process.exit(1);
  }
  return import(DIST);
}

function files(dir, out = []) {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) files(p, out);
    else out.push(p);
  }
  return out;
}

function hashFiles(paths) {
  const h = createHash('sha256');
  for (const p of paths) h.update(relative(ROOT, p)).update('\0').update(readFileSync(p)).update('\0');
  return h.digest('hex');
}

function stamp() {
  return {
    graph: hashFiles([GRAPH]),
    weights: hashFiles(files(WEIGHTS)),
    compiler: hashFiles(files(join(ROOT, 'dist', 'src')).filter((p) => p.endsWith('.js'))),
  };
}

/**
 * Compiles the demo model if needed. Returns { out, compiled, seconds, result? } where `result` is
 * the compile's CompileResult when it ran (undefined when the cache was up to date).
 */
export async function ensureDemoModel({ force = false } = {}) {
  const { compile } = await library();
  const want = stamp();
  if (!force && existsSync(STAMP) && existsSync(join(OUT, 'manifest.json'))) {
    try {
      const have = JSON.parse(readFileSync(STAMP, 'utf8'));
      if (have.graph === want.graph && have.weights === want.weights && have.compiler === want.compiler) {
        return { out: OUT, compiled: false, when: have.compiledAt };
      }
    } catch {
      // an unreadable stamp: recompile
    }
  }
  mkdirSync(CACHE, { recursive: true });
  const t0 = performance.now();
  const result = await compile(GRAPH, { weights: WEIGHTS, out: OUT });
  const seconds = (performance.now() - t0) / 1000;
  writeFileSync(STAMP, JSON.stringify({ ...want, compiledAt: new Date().toISOString() }, null, 2) + '\n');
  return { out: OUT, compiled: true, seconds, result };
}

/** Human-readable bytes. */
export function bytes(n) {
  return n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} KB` : `${n} B`;
}
