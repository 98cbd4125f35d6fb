// The CLI loads only the module of the command it runs: `blip run` must not carry the compiler's,
// the server's or CapFilt's modules (and their dependencies) in its memory — they cost ~35 MiB of
// RSS, which counts against the `blip run` memory target (docs/performance.md). `blip --help`
// still lists every command with its summary.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../runtime/fixtures.js';

// A module-resolution hook (node:module register) that appends every resolved file URL to $LOG.
const HOOK = `export async function resolve(s, c, next) { const r = await next(s, c); if (r.url.startsWith('file:')) (await import('node:fs')).appendFileSync(process.env.BLIP_TEST_MODULE_LOG, r.url + '\\n'); return r; }`;
const REGISTER = `import { register } from 'node:module'; register(${JSON.stringify('data:text/javascript,' + encodeURIComponent(HOOK))});`;

function modulesLoaded(args: string[]): { urls: string[]; stdout: string; status: number | null } {
  const dir = mkdtempSync(join(tmpdir(), 'blip-modules-'));
  const log = join(dir, 'modules.log');
  try {
    const r = spawnSync(process.execPath, ['--import', 'data:text/javascript,' + encodeURIComponent(REGISTER), join(repoRoot(), 'bin', 'blip.js'), ...args], {
      encoding: 'utf8',
      env: { ...process.env, BLIP_TEST_MODULE_LOG: log },
    });
    let urls: string[] = [];
    try {
      urls = readFileSync(log, 'utf8').trim().split('\n');
    } catch {
      /* nothing logged */
    }
    return { urls, stdout: r.stdout, status: r.status };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const HEAVY = [/\/dist\/src\/(lower|rewrite|weights|capfilt|draw)\//, /\/dist\/src\/cli\/commands\/(compile|serve|capfilt|graph)\.js$/, /\/node_modules\/chevrotain\//, /\/dist\/runtime\/server\//];

test('blip run --help loads the run command and none of the compiler, server or CapFilt modules', () => {
  const r = modulesLoaded(['run', '--help']);
  assert.equal(r.status, 0);
  assert.match(r.stdout, /^Usage: blip run/);
  assert.ok(r.urls.some((u) => u.endsWith('/dist/src/cli/commands/run.js')), 'the hook saw the run module load');
  const heavy = r.urls.filter((u) => HEAVY.some((h) => h.test(u)));
  assert.deepEqual(heavy, []);
});

test('blip --help loads every command and lists each with its summary', () => {
  const r = modulesLoaded(['--help']);
  assert.equal(r.status, 0);
  for (const name of ['version', 'check', 'fmt', 'graph', 'compile', 'inspect', 'run', 'capfilt', 'serve']) {
    assert.match(r.stdout, new RegExp(`^  ${name} +\\S`, 'm'), name);
    assert.ok(r.urls.some((u) => u.endsWith(`/dist/src/cli/commands/${name}.js`)), name);
  }
});

test('an unknown command is answered from the names alone, with the nearest one', () => {
  const r = modulesLoaded(['rnu']);
  assert.equal(r.status, 2);
  assert.deepEqual(r.urls.filter((u) => /\/dist\/src\/cli\/commands\/(?!index\.js)/.test(u)), []);
});
