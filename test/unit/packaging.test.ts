// The npm package as a user installs it: `npm pack`'s file list, then the unpacked tarball with the
// repository's node_modules beside it compiling a checkpoint with a shipped graph it finds itself and
// captioning an image. Catches a `files` list that leaves out something the CLI reads at run time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VERSION } from '../../src/version.js';

const ROOT = (() => {
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, 'package.json'))) d = dirname(d);
  return d;
})();
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

type PackEntry = { path: string; size: number };
type PackResult = { filename: string; size: number; files: PackEntry[] };

function pack(args: string[]): PackResult {
  // --ignore-scripts: `prepare` would rebuild dist/ while the other test files run from it.
  const r = spawnSync(npm, ['pack', '--json', '--ignore-scripts', ...args], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return (JSON.parse(r.stdout) as PackResult[])[0]!;
}

test("blip --version, the manifests' compiler.version and the ONNX producerVersion (src/version.ts) are package.json's version: npm version must not leave them behind", () => {
  assert.equal(VERSION, JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version);
});

test('the npm package holds the CLI, the built code, the shipped graphs and the docs, and no test fixtures', () => {
  const files = new Set(pack(['--dry-run']).files.map((f) => f.path));
  for (const f of ['package.json', 'README.md', 'LICENSE', 'bin/blip', 'bin/blip.js', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/cli/main.js', 'dist/runtime/server/worker.js', 'docs/language.md']) {
    assert.ok(files.has(f), `${f} is not in the package`);
  }
  for (const g of readdirSync(join(ROOT, 'graphs'), { recursive: true }) as string[]) {
    if (g.endsWith('.blip')) assert.ok(files.has(`graphs/${g}`), `graphs/${g} is not in the package`);
  }
  const stray = [...files].filter((f) => /^(test|dist\/test|dist\/bench|bench|demo|scripts|\.bench|\.ci)\//.test(f));
  assert.deepEqual(stray, []);
});

test('the unpacked package compiles a checkpoint with the shipped graph it picks and captions an image', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'blip-pack-'));
  try {
    const { filename } = pack(['--pack-destination', tmp]);
    const untar = spawnSync('tar', ['-xzf', join(tmp, filename), '-C', tmp], { encoding: 'utf8' });
    assert.equal(untar.status, 0, untar.stderr);
    const pkg = join(tmp, 'package');
    // What `npm install` would put beside it; the package's own dependencies are the repository's.
    symlinkSync(join(ROOT, 'node_modules'), join(pkg, 'node_modules'), 'dir');
    const blip = (...args: string[]) => spawnSync(process.execPath, [join(pkg, 'bin', 'blip.js'), ...args], { cwd: tmp, encoding: 'utf8' });

    const out = join(tmp, 'model');
    const compile = blip('compile', '--weights', join(ROOT, 'test/fixtures/blip-caption-a/checkpoint'), '--out', out);
    assert.equal(compile.status, 0, compile.stderr);
    assert.match(compile.stderr + compile.stdout, /blip-caption\.blip/);
    assert.ok(existsSync(join(out, 'manifest.json')));

    const run = blip('run', out, '--image', join(ROOT, 'test/fixtures/images/rgb_37x23.png'), '--json');
    assert.equal(run.status, 0, run.stderr);
    const result = JSON.parse(run.stdout) as unknown;
    assert.ok(JSON.stringify(result).length > 2, run.stdout);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
