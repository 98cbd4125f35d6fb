import { test } from 'node:test';
import { spawnSync } from 'node:child_process';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { expandBraces, expandGlob, parseShardSpec, planShards, selectShards } from '../../../src/capfilt/inputs.js';
import { BlipError, UsageError } from '../../../src/cli/Command.js';
import { OutputDir } from '../../../src/capfilt/output.js';
import { modelIdentity } from '../../../src/capfilt/run.js';

test('brace expansion: ranges (zero-padded), lists, nesting, literals', () => {
  assert.deepEqual(expandBraces('data/{00000..00003}.tar'), ['data/00000.tar', 'data/00001.tar', 'data/00002.tar', 'data/00003.tar']);
  assert.deepEqual(expandBraces('{8..11}'), ['8', '9', '10', '11']);
  assert.deepEqual(expandBraces('{3..1}'), ['3', '2', '1']);
  assert.deepEqual(expandBraces('{0..10..5}'), ['0', '5', '10']);
  assert.deepEqual(expandBraces('{a,b}/{0..1}.tar'), ['a/0.tar', 'a/1.tar', 'b/0.tar', 'b/1.tar']);
  assert.deepEqual(expandBraces('x{a,{b,c}}y'), ['xay', 'xby', 'xcy']);
  assert.deepEqual(expandBraces('lit{x}/{1..2}'), ['lit{x}/1', 'lit{x}/2']);
  assert.deepEqual(expandBraces('plain.tar'), ['plain.tar']);
  assert.throws(() => expandBraces('{0..99999999}'), UsageError);
});

test('--shard I/N: syntax, and the N parts cover the plan exactly once', () => {
  assert.deepEqual(parseShardSpec('1/3'), { index: 1, count: 3 });
  for (const bad of ['3/3', '1', '1/0', '-1/2', 'a/b', '1/2/3', '']) assert.throws(() => parseShardSpec(bad), UsageError, bad);
  const plan = Array.from({ length: 7 }, (_, i) => ({ id: `${i}.tar`, source: { kind: 'tar' as const, path: `/x/${i}.tar`, bytes: 1 } }));
  const parts = [0, 1, 2].map((index) => selectShards(plan, { index, count: 3 }).map((t) => t.id));
  assert.deepEqual(parts.flat().sort(), plan.map((t) => t.id).sort());
  assert.deepEqual(parts[1], ['1.tar', '4.tar']);
});

test('a folder, a glob and a brace pattern plan the same shards, mirrored by relative name', async () => {
  const root = await mkdtemp(join(tmpdir(), 'capfilt-inputs-'));
  try {
    const d = join(root, 'data');
    await mkdir(join(d, 'sub'), { recursive: true });
    for (const n of ['00000', '00001', '00002']) await writeFile(join(d, `${n}.tar`), '');
    await writeFile(join(d, 'sub', '00003.tar'), '');
    await writeFile(join(d, '00000.parquet'), '');
    await writeFile(join(d, '.hidden.tar'), '');
    const out = join(root, 'out');
    const ids = async (inputs: string[]) => (await planShards(inputs, { output: out, samplesPerShard: 10 })).map((t) => t.id);
    assert.deepEqual(await ids([d]), ['00000.tar', '00001.tar', '00002.tar', 'sub/00003.tar']);
    assert.deepEqual(await ids([join(d, '*.tar')]), ['00000.tar', '00001.tar', '00002.tar']);
    assert.deepEqual(await ids([join(d, '**/*.tar')]), ['00000.tar', '00001.tar', '00002.tar', 'sub/00003.tar']);
    assert.deepEqual(await ids([join(d, '{00000..00002}.tar')]), ['00000.tar', '00001.tar', '00002.tar']);
    assert.deepEqual(await ids([join(d, '0000[12].tar')]), ['00001.tar', '00002.tar']);
    assert.deepEqual(await ids([join(d, '00001.tar')]), ['00001.tar']);
    assert.deepEqual(await expandGlob(join(d, 'nothing*.tar')), []);

    // Errors: one line, BLIP5801.
    await assert.rejects(ids([join(d, 'missing.tar')]), (e: BlipError) => e.code === 'BLIP5801' && /does not exist/.test(e.message));
    await assert.rejects(ids([join(d, '{00000..00009}.tar')]), (e: BlipError) => e.code === 'BLIP5801' && /00003\.tar does not exist/.test(e.message));
    await assert.rejects(ids([join(d, 'zz*.tar')]), (e: BlipError) => e.code === 'BLIP5801' && /matches no file/.test(e.message));
    await assert.rejects(ids([join(d, '00000.parquet')]), (e: BlipError) => e.code === 'BLIP5801' && /neither/.test(e.message));
    await mkdir(join(root, 'other'));
    await writeFile(join(root, 'other', '00000.tar'), '');
    await assert.rejects(ids([d, join(root, 'other')]), (e: BlipError) => e.code === 'BLIP5801' && /both write output shard 00000\.tar/.test(e.message));

    // The output folder inside a folder input is never read back as input.
    await mkdir(join(d, 'clean'));
    await writeFile(join(d, 'clean', '00000.tar'), '');
    assert.deepEqual(
      (await planShards([d], { output: join(d, 'clean'), samplesPerShard: 10 })).map((t) => t.id),
      ['00000.tar', '00001.tar', '00002.tar', 'sub/00003.tar'],
    );
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('an input is known by its extension in any case: a folder plans its .TAR shards too, and a .Tar or .JSONL given itself is read', async () => {
  const root = await mkdtemp(join(tmpdir(), 'capfilt-case-'));
  try {
    const d = join(root, 'data');
    await mkdir(join(d, 'sub'), { recursive: true });
    await writeFile(join(d, '00000.tar'), '');
    await writeFile(join(d, '00001.TAR'), '');
    await writeFile(join(d, 'sub', '00002.Tar'), '');
    await writeFile(join(root, 'Pairs.JSONL'), JSON.stringify({ image: 'a.jpg', text: 'a' }) + '\n');
    await writeFile(join(root, 'more.NDJSON'), JSON.stringify({ image: 'b.jpg', text: 'b' }) + '\n');
    const ids = async (inputs: string[]) => (await planShards(inputs, { output: join(root, 'out'), samplesPerShard: 10 })).map((t) => t.id);
    assert.deepEqual(await ids([d]), ['00000.tar', '00001.TAR', 'sub/00002.Tar']);
    assert.deepEqual(await ids([join(d, '*')]), ['00000.tar', '00001.TAR', 'sub/00002.Tar']);
    assert.deepEqual(await ids([join(d, 'sub', '00002.Tar')]), ['00002.Tar']);
    assert.deepEqual(await ids([join(root, 'Pairs.JSONL'), join(root, 'more.NDJSON')]), ['Pairs-00000.tar', 'more-00000.tar']);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('a JSONL file is cut into shards of --samples-per-shard lines', async () => {
  const root = await mkdtemp(join(tmpdir(), 'capfilt-jsonl-'));
  try {
    const lines = Array.from({ length: 7 }, (_, i) => JSON.stringify({ image: `img/${i}.jpg`, text: `t${i}` }));
    await writeFile(join(root, 'pairs.jsonl'), lines.join('\n')); // no final newline
    const plan = await planShards([join(root, 'pairs.jsonl')], { output: join(root, 'out'), samplesPerShard: 3 });
    assert.deepEqual(plan.map((t) => t.id), ['pairs-00000.tar', 'pairs-00001.tar', 'pairs-00002.tar']);
    const src = plan.map((t) => t.source as { start: number; end: number; firstLine: number; lines: number });
    assert.deepEqual(src.map((s) => [s.firstLine, s.lines]), [[0, 3], [3, 3], [6, 1]]);
    assert.equal(src[0].start, 0);
    assert.equal(src[1].start, src[0].end);
    assert.equal(src[2].end, Buffer.byteLength(lines.join('\n')));
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('a link back up the tree is followed once: a folder and a ** glob plan each shard once', async () => {
  const root = await mkdtemp(join(tmpdir(), 'capfilt-loop-'));
  try {
    const d = join(root, 'data');
    await mkdir(join(d, 'sub'), { recursive: true });
    await writeFile(join(d, '00000.tar'), '');
    await writeFile(join(d, 'sub', '00001.tar'), '');
    await symlink('..', join(d, 'sub', 'back'));
    const out = join(root, 'out');
    assert.deepEqual((await planShards([d], { output: out, samplesPerShard: 10 })).map((t) => t.id), ['00000.tar', 'sub/00001.tar']);
    assert.deepEqual((await expandGlob(join(d, '**', '*.tar'))).map((p) => p.slice(d.length + 1)), ['00000.tar', 'sub/00001.tar']);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('a pipe named *.tar in an input folder is skipped with a note (reading it would block the run); named by a glob it is refused', async () => {
  const root = await mkdtemp(join(tmpdir(), 'capfilt-fifo-'));
  try {
    const d = join(root, 'data');
    await mkdir(join(d, 'sub'), { recursive: true });
    await writeFile(join(d, '00000.tar'), '');
    for (const p of [join(d, 'pipe.tar'), join(d, 'sub', 'a.tar'), join(d, 'sub', 'b.tar')]) assert.equal(spawnSync('mkfifo', [p]).status, 0, `mkfifo ${p}`);
    await symlink('pipe.tar', join(d, 'link.tar'));
    const notes: string[] = [];
    const plan = await planShards([d], { output: join(root, 'out'), samplesPerShard: 10, note: (l) => notes.push(l) });
    assert.deepEqual(plan.map((t) => t.id), ['00000.tar']);
    assert.deepEqual(notes, [
      `note: skipped 2 entries named *.tar in ${join(d, 'sub')} that are not regular files (a pipe, socket or device): a.tar, b.tar`,
      `note: skipped 2 entries named *.tar in ${d} that are not regular files (a pipe, socket or device): link.tar, pipe.tar`,
    ]);
    await assert.rejects(planShards([join(d, '*.tar')], { output: join(root, 'out'), samplesPerShard: 10 }), (e: BlipError) => e.code === 'BLIP5801' && /link\.tar is not a regular file or folder/.test(e.message));
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('a dangling link named *.tar, in an input folder or given itself, is a BLIP5801 line naming the link and its target', async () => {
  const root = await mkdtemp(join(tmpdir(), 'capfilt-dangling-'));
  try {
    const d = join(root, 'data');
    await mkdir(d);
    await writeFile(join(d, '00000.tar'), '');
    await symlink(join(root, 'gone', 'x.tar'), join(d, 'dangling.tar'));
    const want = `input ${join(d, 'dangling.tar')} is a link to ${join(root, 'gone', 'x.tar')}, which does not exist`;
    for (const input of [d, join(d, 'dangling.tar')]) {
      await assert.rejects(planShards([input], { output: join(root, 'out'), samplesPerShard: 10 }), (e: BlipError) => e.code === 'BLIP5801' && e.message === want);
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('a brace alternative that leaves the pattern\'s base folder is named by its file name: no shard id climbs out of --output', async () => {
  const root = await mkdtemp(join(tmpdir(), 'capfilt-escape-'));
  try {
    const work = join(root, 'work');
    await mkdir(join(work, 'in'), { recursive: true });
    await mkdir(join(root, 'other'));
    await writeFile(join(work, 'in', 'a.tar'), '');
    await writeFile(join(root, 'other', 'b.tar'), '');
    const output = join(work, 'out');
    // the pattern's base is work/; ../other/b.tar is outside it
    const plan = await planShards([join(work, '{in/a.tar,../other/b.tar}')], { output, samplesPerShard: 10 });
    assert.deepEqual(plan.map((t) => t.id), ['b.tar', 'in/a.tar']);
    const out = new OutputDir(output);
    for (const t of plan) assert.ok(out.shardPath(t.id).startsWith(out.root + '/'), `${t.id} is written inside --output`);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test("a deep shard path's temp file name stays under the 255-byte limit, one per shard", () => {
  const out = new OutputDir('/tmp/capfilt-out');
  const deep = (end: string) => `${'a'.repeat(60)}/${'b'.repeat(60)}/${'c'.repeat(60)}/part-${end}.tar`;
  const names = [deep('é0'), deep('é1')].map((id) => basename(out.tempPath(id)));
  for (const n of names) assert.ok(Buffer.byteLength(n) <= 255 - 40, n); // room for a long host name
  assert.notEqual(names[0].split('.')[0], names[1].split('.')[0]);
  assert.match(names[0], /part-é0\.tar\./);
});

test("a model's identity in run.json includes how it was compiled: dtype, target, quantization", async () => {
  const root = await mkdtemp(join(tmpdir(), 'capfilt-id-'));
  try {
    const manifest = { model: 'm', compiler: { version: '1' }, dtype: 'float32', source: { checkpoint: { fingerprint: 'f' }, graph: { sha256: 'g' } } };
    const ids = [];
    for (const more of [{}, { dtype: 'float16' }, { quantize: 'int8' }, { target: 'cpu' }, {}]) {
      const dir = join(root, String(ids.length));
      await mkdir(dir);
      await writeFile(join(dir, 'manifest.json'), JSON.stringify({ ...manifest, ...more }));
      ids.push(await modelIdentity(dir));
    }
    assert.equal(new Set(ids.slice(0, 4)).size, 4);
    assert.equal(ids[4], ids[0]); // another folder, the same model
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
