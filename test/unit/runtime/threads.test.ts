// The default intra-op thread count: physical cores from the kernel's topology, capped by the CPUs
// the process may use and by a container's quota; what CPU sessions get when no one says.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cpuFacts, defaultThreads, maxThreads, threadsFor, threadsProblem } from '../../../runtime/threads.js';
import { baseOptions, cpuSessionConfig } from '../../../runtime/session.js';
import { runCliBatch } from '../cliHarness.js';

/** A /sys with CPUs given as [package, core] pairs, and optional cgroup files. */
function fakeSys(cpus: Array<[number, number]>, cgroup: Record<string, string> = {}, offline: number[] = []): string {
  const root = mkdtempSync(join(tmpdir(), 'blip-sys-'));
  cpus.forEach(([pkg, core], i) => {
    const d = join(root, 'devices/system/cpu', `cpu${i}`, 'topology');
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'core_id'), `${core}\n`);
    writeFileSync(join(d, 'physical_package_id'), `${pkg}\n`);
    if (i > 0) writeFileSync(join(root, 'devices/system/cpu', `cpu${i}`, 'online'), offline.includes(i) ? '0\n' : '1\n');
  });
  for (const [f, text] of Object.entries(cgroup)) {
    mkdirSync(join(root, 'fs/cgroup', f, '..'), { recursive: true });
    writeFileSync(join(root, 'fs/cgroup', f), text);
  }
  return root;
}

test('one thread per physical core: SMT siblings count once, packages apart, offline CPUs not at all', () => {
  const cases: Array<[Array<[number, number]>, number, number[], number]> = [
    [[[0, 0], [0, 1]], 2, [], 2], // a 2-vCPU VM without SMT (the machine onnxruntime gave one thread)
    [[[0, 0], [0, 0], [0, 1], [0, 1]], 4, [], 2], // 2 cores x 2 threads
    [[[0, 0], [1, 0]], 2, [], 2], // same core id on two packages
    [[[0, 0], [0, 1], [0, 2], [0, 3]], 4, [3], 3], // one offline
    [[[0, 0], [0, 1], [0, 2], [0, 3]], 2, [], 2], // affinity: 2 CPUs allowed
  ];
  for (const [cpus, available, offline, want] of cases) {
    const sys = fakeSys(cpus, {}, offline);
    try {
      assert.equal(threadsFor(cpuFacts(sys, available)), want, JSON.stringify({ cpus, available, offline }));
    } finally {
      rmSync(sys, { recursive: true, force: true });
    }
  }
});

test("a container's CPU quota caps it (cgroup v2 and v1); no topology: the CPUs available", () => {
  const eight: Array<[number, number]> = Array.from({ length: 8 }, (_, i) => [0, i]);
  const cases: Array<[Record<string, string>, number]> = [
    [{ 'cpu.max': '200000 100000\n' }, 2],
    [{ 'cpu.max': '150000 100000\n' }, 1],
    [{ 'cpu.max': '50000 100000\n' }, 1],
    [{ 'cpu.max': 'max 100000\n' }, 8],
    [{ 'cpu/cpu.cfs_quota_us': '300000\n', 'cpu/cpu.cfs_period_us': '100000\n' }, 3],
    [{ 'cpu/cpu.cfs_quota_us': '-1\n', 'cpu/cpu.cfs_period_us': '100000\n' }, 8],
  ];
  for (const [files, want] of cases) {
    const sys = fakeSys(eight, files);
    try {
      assert.equal(threadsFor(cpuFacts(sys, 8)), want, JSON.stringify(files));
    } finally {
      rmSync(sys, { recursive: true, force: true });
    }
  }
  const empty = mkdtempSync(join(tmpdir(), 'blip-sys-'));
  try {
    assert.deepEqual(cpuFacts(empty, 6), { physicalCores: undefined, available: 6, quota: undefined });
    assert.equal(threadsFor(cpuFacts(empty, 6)), 6);
  } finally {
    rmSync(empty, { recursive: true, force: true });
  }
});

test('CPU sessions get the default when no thread count is given, and the given one otherwise', () => {
  assert.equal(baseOptions({}).intraOpNumThreads, defaultThreads());
  assert.equal(baseOptions({ threads: 3 }).intraOpNumThreads, 3);
  assert.ok(defaultThreads() >= 1);
  assert.throws(() => baseOptions({ threads: 0 }), /threads must be a positive integer, found 0/);
  assert.throws(() => baseOptions({ threads: maxThreads() + 1 }), /threads is \d+, more than the \d+ this process can use \(4 per CPU/);
  assert.equal(baseOptions({ threads: maxThreads() }).intraOpNumThreads, maxThreads());
});

test('--threads beyond 4 per CPU is a usage error naming the flag in run, serve and capfilt, before anything loads', () => {
  assert.equal(threadsProblem(8, 2), undefined);
  assert.match(threadsProblem(9, 2)!, /^is 9, more than the 8 this process can use \(4 per CPU; it may run on 2\)$/);
  assert.match(threadsProblem(1.5, 2)!, /positive integer/);
  const n = String(maxThreads() + 1);
  const rs = runCliBatch([
    ['run', 'no-such-model', '--image', 'x.png', '--threads', n],
    ['serve', 'no-such-model', '--port', '0', '--threads', n],
    ['capfilt', '--captioner', 'a', '--filter', 'b', '--input', 'c.jsonl', '--output', 'd', '--threads', n],
    ['capfilt', 'worker', '--redis', 'redis://127.0.0.1:1', '--threads', n],
  ]);
  for (const r of rs) {
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, new RegExp(`--threads is ${n}, more than the`));
  }
});

test('blip version --verbose says how many threads a session gets by default and why', () => {
  const [r] = runCliBatch([['version', '--verbose']]);
  assert.equal(r.code, 0, r.err);
  const f = cpuFacts();
  assert.match(r.out, new RegExp(`^cpu threads: ${defaultThreads()} per session by default \\(${f.physicalCores ?? '\\?'} physical cores, ${f.available} CPUs available.*; --threads sets it\\)$`, 'm'));
});

test('CPU session config: spinning stops after each run by default; prepacking off, spinning off and the weights folder as onnxruntime spells them', () => {
  assert.deepEqual(cpuSessionConfig({}), { force_spinning_stop: '1' });
  assert.deepEqual(cpuSessionConfig({ prepack: true, spinning: true }), { force_spinning_stop: '1' });
  assert.deepEqual(cpuSessionConfig({ stopSpinningAfterRun: false }), {});
  assert.deepEqual(cpuSessionConfig({ prepack: false, spinning: false }, '/m'), {
    model_external_initializers_file_folder_path: '/m',
    disable_prepacking: '1',
    'intra_op.allow_spinning': '0',
  });
});
