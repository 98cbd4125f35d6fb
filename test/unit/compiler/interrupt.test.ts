// A compile that is stopped leaves nothing behind: aborted through its AbortSignal (what `blip
// compile` does on SIGINT / SIGTERM / SIGHUP) it removes its partial output and leaves OUT as it was;
// what a killed one left (OUT.tmp-<pid>) is removed by the next compile to the same OUT.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compile } from '../../../src/lower/compile.js';
import { markPartialOutput, PARTIAL_MARKER, partialOutputPath } from '../../../src/lower/partialOutput.js';
import { load } from '../../../runtime/model.js';
import { SafetensorsFile, encodeSafetensors } from '../../../src/weights/safetensors.js';
import { FIXTURES, loadModel, tmp } from './harness.js';

const CAPTION = 'graphs/blip-caption.blip';
const WEIGHTS = join(FIXTURES, 'blip-caption-a', 'checkpoint');

function compileTo(out: string, extra: { signal?: AbortSignal; onProgress?: () => void } = {}) {
  const { model, text } = loadModel(CAPTION);
  return compile({ model, graphFile: CAPTION, graphText: text, weights: WEIGHTS, out, ...extra });
}

/** Entries beside `out` that a compile of it writes or leaves (OUT.tmp-<pid>-<call>, OUT.old-<pid>-<call>). */
const leftovers = (root: string) => readdirSync(root).filter((f) => f.startsWith('out.'));

test('an aborted compile removes its partial output and leaves the model at OUT as it was', async () => {
  const root = tmp('abort-');
  try {
    const out = join(root, 'out');
    await compileTo(out);
    const before = readFileSync(join(out, 'weights.bin'));
    const manifest = readFileSync(join(out, 'manifest.json'), 'utf8');
    const abort = new AbortController();
    let tensors = 0;
    let sawPartial = false;
    const reason = new Error('stop here');
    await assert.rejects(
      compileTo(out, {
        signal: abort.signal,
        onProgress: () => {
          sawPartial ||= leftovers(root).some((f) => f.startsWith(`out.tmp-${process.pid}-`));
          if (++tensors === 3) abort.abort(reason);
        },
      }),
      (e) => e === reason,
    );
    assert.ok(sawPartial, 'the compile was writing its partial output when it was aborted');
    assert.equal(tensors, 3, 'it stopped at the next tensor');
    assert.deepEqual(leftovers(root), [], 'no partial output is left');
    assert.equal(readFileSync(join(out, 'manifest.json'), 'utf8'), manifest);
    assert.ok(readFileSync(join(out, 'weights.bin')).equals(before), 'the earlier model is untouched');

    // Aborted before it starts writing: nothing is created.
    const fresh = join(root, 'fresh');
    await assert.rejects(compileTo(fresh, { signal: AbortSignal.abort(reason) }), (e) => e === reason);
    assert.deepEqual(readdirSync(root).sort(), ['out']);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("what killed compiles left beside OUT is removed by the next compile; a running compile's is not", async () => {
  const root = tmp('stale-');
  try {
    const out = join(root, 'out');
    const gone = spawnSync(process.execPath, ['-e', '0']).pid!; // a process that has exited
    const alive = process.ppid;
    // (compiles before the per-call suffix left OUT.tmp-<pid>, unmarked: recognised too)
    for (const p of [partialOutputPath(out, '0.1', gone), `${out}.old-${gone}-0.2`, `${out}.tmp-${gone}`, partialOutputPath(out, '0.1', alive)]) {
      mkdirSync(p);
      writeFileSync(join(p, 'weights.bin'), 'partial');
      if (p.includes('.tmp-') && p.endsWith('-0.1')) markPartialOutput(p); // what compile() writes first
    }
    writeFileSync(join(`${out}.old-${gone}-0.2`, 'manifest.json'), JSON.stringify({ format: 'blip-graph-artifact', version: 1 })); // the model a swap moved aside
    writeFileSync(join(root, 'out.tmp-notapid'), 'not ours');
    const r = await compileTo(out);
    assert.deepEqual(leftovers(root).sort(), [`out.tmp-${alive}-0.1`, 'out.tmp-notapid']);
    const removed = r.warnings.filter((w) => w.startsWith('removed '));
    assert.equal(removed.length, 3, r.warnings.join('\n'));
    assert.match(removed.join('\n'), new RegExp(`out\\.tmp-${gone}-0\\.1, left by a compile that was killed`));
    assert.match(removed.join('\n'), new RegExp(`out\\.old-${gone}-0\\.2, left by a compile that was killed`));
    assert.match(removed.join('\n'), new RegExp(`out\\.tmp-${gone}, left by a compile that was killed`));
    assert.ok(existsSync(join(out, 'manifest.json')));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("folders merely named like a compile's leftovers (a user's OUT.old-2023 backup) are not removed", async () => {
  const root = tmp('backup-');
  try {
    const out = join(root, 'out');
    const gone = spawnSync(process.execPath, ['-e', '0']).pid!;
    await compileTo(out);
    // backups named by year, date or number; a copy of a compiled model among them; and names in
    // today's exact form whose contents are not a compile's
    const names = ['out.old-2023', 'out.tmp-20240101', 'out.old-3', `out.old-${gone}`, `out.tmp-${gone}`, `out.tmp-${gone}-0.9`, `out.old-${gone}-0.9`];
    for (const n of names) {
      mkdirSync(join(root, n));
      writeFileSync(join(root, n, 'README'), 'mine');
    }
    cpSync(out, join(root, 'out.old-2022'), { recursive: true }); // last year's model, kept by hand
    cpSync(out, join(root, `out.tmp-${gone}`), { recursive: true });
    const r = await compileTo(out);
    assert.deepEqual(r.warnings.filter((w) => w.startsWith('removed ')), []);
    assert.deepEqual(leftovers(root).sort(), [...names, 'out.old-2022'].sort());
    for (const n of names) assert.equal(readFileSync(join(root, n, 'README'), 'utf8'), 'mine');
    assert.ok(existsSync(join(root, 'out.old-2022', 'weights.bin')));
    assert.ok(!readdirSync(out).includes(PARTIAL_MARKER), 'the marker does not stay in the compiled model');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("an unmarked OUT.tmp-<pid>-<call> of compiler files (a compile from before the marker, killed mid-weights) is removed; OUT.tmp-20240101 of compiler files is kept", async () => {
  const root = tmp('unmarked-');
  try {
    const out = join(root, 'out');
    const gone = spawnSync(process.execPath, ['-e', '0']).pid!;
    const alive = process.ppid;
    // same naming as today's, no marker: what such a compile leaves while writing weights.bin
    for (const p of [partialOutputPath(out, '0.1', gone), partialOutputPath(out, '0.1', alive)]) {
      mkdirSync(p);
      writeFileSync(join(p, 'weights.bin'), 'partial');
      writeFileSync(join(p, 'encode.onnx'), 'partial');
    }
    // a hand backup of weights.bin named by date (past pid_max: no process has that id), and one
    // named by a serial just past it
    for (const n of ['out.tmp-20240101', 'out.tmp-4194305']) {
      mkdirSync(join(root, n));
      writeFileSync(join(root, n, 'weights.bin'), 'my backup');
    }
    const r = await compileTo(out);
    assert.deepEqual(leftovers(root).sort(), [`out.tmp-${alive}-0.1`, 'out.tmp-20240101', 'out.tmp-4194305'].sort());
    const removed = r.warnings.filter((w) => w.startsWith('removed '));
    assert.equal(removed.length, 1, r.warnings.join('\n'));
    assert.match(removed[0]!, new RegExp(`out\\.tmp-${gone}-0\\.1, left by a compile that was killed`));
    assert.equal(readFileSync(join(root, 'out.tmp-20240101', 'weights.bin'), 'utf8'), 'my backup');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('two compile() calls to the same OUT at once write apart: both succeed and OUT holds the one that finished last, whole', async () => {
  const root = tmp('race-');
  try {
    const out = join(root, 'out');
    const vqaGraph = 'graphs/blip-vqa.blip';
    const { model: vqa, text: vqaText } = loadModel(vqaGraph);
    const finished: string[] = [];
    const seen = new Set<string>();
    const calls = [
      compileTo(out, { onProgress: () => leftovers(root).forEach((f) => seen.add(f)) }),
      compile({ model: vqa, graphFile: vqaGraph, graphText: vqaText, weights: join(FIXTURES, 'blip-vqa-a', 'checkpoint'), out }),
    ].map((p) => p.then((r) => (finished.push(r.manifest.model), r)));
    const results = await Promise.all(calls);
    assert.equal(new Set([...seen].filter((f) => f.startsWith('out.tmp-'))).size, 2, `each call its own partial output: ${[...seen].join(', ')}`);
    const last = results.find((r) => r.manifest.model === finished[1])!;
    assert.deepEqual(JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')), JSON.parse(JSON.stringify(last.manifest)));
    assert.equal(readFileSync(join(out, 'weights.bin')).length, last.weightsBytes);
    assert.deepEqual(leftovers(root), [], 'nothing left beside OUT');
    const m = await load(out, { threads: 1 });
    try {
      assert.equal(m.manifest.model, finished[1]);
    } finally {
      await m.close();
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('blip compile stopped by SIGINT exits 130 with one line and leaves nothing behind', async () => {
  const root = tmp('sigint-');
  try {
    // The fixture with a 1M-token vocabulary (a 192 MB embedding), so that the weights take long
    // enough to write for the signal to arrive while they are written.
    const ckpt = join(root, 'checkpoint');
    mkdirSync(ckpt);
    for (const f of readdirSync(WEIGHTS)) if (f !== 'model.safetensors' && f !== 'config.json') copyFileSync(join(WEIGHTS, f), join(ckpt, f));
    const V = 1 << 20;
    const config = JSON.parse(readFileSync(join(WEIGHTS, 'config.json'), 'utf8'));
    config.text_config.vocab_size = V;
    writeFileSync(join(ckpt, 'config.json'), JSON.stringify(config));
    const st = SafetensorsFile.open(join(WEIGHTS, 'model.safetensors'));
    const tensors = [...st.tensors.values()].map((t) => {
      if (t.name === 'text_decoder.bert.embeddings.word_embeddings.weight') return { name: t.name, dtype: 'F32', shape: [V, t.shape[1]], data: new Uint8Array(V * t.shape[1] * 4) };
      if (t.name === 'text_decoder.cls.predictions.bias') return { name: t.name, dtype: 'F32', shape: [V], data: new Uint8Array(V * 4) };
      return { name: t.name, dtype: t.dtype, shape: t.shape, data: st.readRaw(t.name) };
    });
    st.close();
    writeFileSync(join(ckpt, 'model.safetensors'), encodeSafetensors(tensors));

    const out = join(root, 'out');
    const main = new URL('../../../src/cli/main.js', import.meta.url).href;
    const hooks = process.execArgv.flatMap((a, i, all) => (a === '--import' ? [a, all[i + 1]] : a.startsWith('--import=') ? [a] : []));
    const child = spawn(process.execPath, [...hooks, '--input-type=module', '-e', `const { main } = await import(${JSON.stringify(main)}); process.exit(await main(process.argv.slice(1)));`, 'compile', CAPTION, '--weights', ckpt, '--out', out, '--dtype', 'fp16'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
    let signalled = false;
    const poll = setInterval(() => {
      if (!signalled && readdirSync(root).some((f) => f.startsWith(`out.tmp-${child.pid}-`))) {
        signalled = true;
        child.kill('SIGINT');
      }
    }, 2);
    const code = await exited;
    clearInterval(poll);
    assert.ok(signalled, `the compile finished before its partial output was seen (exit ${code}): ${stdout}${stderr}`);
    assert.equal(code, 130, stderr);
    assert.equal(stdout, '');
    assert.equal(stderr, `blip compile: stopped by SIGINT; nothing written, ${out} is as it was\n`);
    assert.deepEqual(readdirSync(root).sort(), ['checkpoint']);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
