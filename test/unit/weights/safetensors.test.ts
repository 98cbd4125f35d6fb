import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, writeFileSync, rmSync, truncateSync, statSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SafetensorsFile, encodeSafetensors } from '../../../src/weights/safetensors.js';
import { Checkpoint } from '../../../src/weights/checkpoint.js';
import { CheckpointError } from '../../../src/weights/CheckpointError.js';
import { floatToHalf } from '../../../src/weights/float16.js';

const bytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const f32 = (xs: number[]) => bytes(new Float32Array(xs));
const f16 = (xs: number[]) => bytes(new Uint16Array(xs.map(floatToHalf)));
/** bfloat16 by truncation of exactly representable values. */
const bf16 = (xs: number[]) => bytes(new Uint16Array(new Uint32Array(new Float32Array(xs).buffer).map((u) => u >>> 16)));

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'st-'));
}

function expectError(fn: () => unknown, code: string, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof CheckpointError, `expected a CheckpointError, got ${e}`);
    assert.equal(e.code, code);
    assert.match(e.message, pattern);
    return true;
  });
}

test('float32, float16 and bfloat16 tensors read back as float32', () => {
  const dir = tmp();
  try {
    const p = join(dir, 'model.safetensors');
    writeFileSync(
      p,
      encodeSafetensors(
        [
          { name: 'a', dtype: 'F32', shape: [2, 2], data: f32([1, -2.5, 3e-8, 65504]) },
          { name: 'b', dtype: 'F16', shape: [3], data: f16([0.5, -1.25, 1024]) },
          { name: 'c', dtype: 'BF16', shape: [1, 2], data: bf16([-3, 0.15625]) },
          { name: 'ids', dtype: 'I64', shape: [2], data: bytes(new BigInt64Array([0n, 1n])) },
        ],
        { format: 'pt' },
      ),
    );
    const f = SafetensorsFile.open(p);
    assert.deepEqual(f.metadata, { format: 'pt' });
    assert.deepEqual(f.info('a')?.shape, [2, 2]);
    assert.deepEqual([...f.readFloat32('a')], [...new Float32Array([1, -2.5, 3e-8, 65504])]);
    assert.deepEqual([...f.readFloat32('b')], [0.5, -1.25, 1024]);
    assert.deepEqual([...f.readFloat32('c')], [-3, 0.15625]);
    expectError(() => f.readFloat32('ids'), 'BLIP4005', /tensor "ids" has dtype I64; weights must be F32, F16 or BF16/);
    f.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('corrupt headers are refused at open, naming the file and the tensor', () => {
  const dir = tmp();
  try {
    const p = join(dir, 'x.safetensors');
    const header = (obj: unknown, data = 16) => {
      const json = Buffer.from(JSON.stringify(obj));
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(json.length));
      writeFileSync(p, Buffer.concat([len, json, Buffer.alloc(data)]));
    };
    writeFileSync(p, Buffer.from([1, 2, 3]));
    expectError(() => SafetensorsFile.open(p), 'BLIP4003', /x\.safetensors: corrupt safetensors header: the file is 3 bytes long/);
    const big = Buffer.alloc(16);
    big.writeBigUInt64LE(1n << 40n);
    writeFileSync(p, big);
    expectError(() => SafetensorsFile.open(p), 'BLIP4003', /implausibly large/);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(4n);
    writeFileSync(p, Buffer.concat([len, Buffer.from('{"a"')]));
    expectError(() => SafetensorsFile.open(p), 'BLIP4003', /not valid JSON/);
    header({ w: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 12] } });
    expectError(() => SafetensorsFile.open(p), 'BLIP4003', /tensor "w" is F32 of shape \[2,2\] \(16 bytes\) but its data_offsets span 12 bytes/);
    header({ w: { dtype: 'Q4', shape: [2], data_offsets: [0, 2] } });
    expectError(() => SafetensorsFile.open(p), 'BLIP4003', /tensor "w" has unknown dtype "Q4"/);
    header({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, v: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } });
    expectError(() => SafetensorsFile.open(p), 'BLIP4003', /tensors "w" and "v" overlap/);
    header({ w: { dtype: 'F32', shape: [-1], data_offsets: [0, 8] } });
    expectError(() => SafetensorsFile.open(p), 'BLIP4003', /tensor "w" has an invalid shape \[-1\]/);
    header({ w: { dtype: 'F32', data_offsets: [0, 8] } });
    expectError(() => SafetensorsFile.open(p), 'BLIP4003', /tensor "w" has no shape$/);
    header({ w: { dtype: 'F32', shape: [2] } });
    expectError(() => SafetensorsFile.open(p), 'BLIP4003', /tensor "w" has no data_offsets$/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// The format's data is contiguous, but its header need not list the tensors in byte order (a JSON
// object: the Python loader, safetensors 0.8.0, sorts the offsets and loads such a file; checked with
// this very file). Overlaps are found over the sorted ranges, whatever pair of the header they are.
test('a header listing tensors out of byte order opens and reads; an overlap not adjacent in the header is still refused, naming the pair', () => {
  const dir = tmp();
  try {
    const p = join(dir, 'x.safetensors');
    const write = (obj: unknown, data: Uint8Array) => {
      const json = Buffer.from(JSON.stringify(obj));
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(json.length));
      writeFileSync(p, Buffer.concat([len, json, data]));
    };
    const data = Buffer.concat([f32([1, 2, 3, 4]), f16([5, 6, 0.5, -1]), f32([7, 8])]);
    write({ a: { dtype: 'F32', shape: [2], data_offsets: [24, 32] }, b: { dtype: 'F32', shape: [4], data_offsets: [0, 16] }, c: { dtype: 'F16', shape: [4], data_offsets: [16, 24] } }, data);
    const f = SafetensorsFile.open(p);
    assert.deepEqual([...f.readFloat32('a')], [7, 8]);
    assert.deepEqual([...f.readFloat32('b')], [1, 2, 3, 4]);
    assert.deepEqual([...f.readFloat32('c')], [5, 6, 0.5, -1]);
    f.close();
    write({ b: { dtype: 'F32', shape: [4], data_offsets: [16, 32] }, a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] }, c: { dtype: 'F32', shape: [2], data_offsets: [8, 16] } }, new Uint8Array(32));
    expectError(() => SafetensorsFile.open(p), 'BLIP4003', /tensors "a" and "c" overlap/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a truncated file is refused at open, naming the tensor cut off', () => {
  const dir = tmp();
  try {
    const p = join(dir, 'model.safetensors');
    writeFileSync(p, encodeSafetensors([
      { name: 'first', dtype: 'F32', shape: [4], data: f32([1, 2, 3, 4]) },
      { name: 'last', dtype: 'F32', shape: [4], data: f32([1, 2, 3, 4]) },
    ]));
    truncateSync(p, statSync(p).size - 3);
    expectError(() => SafetensorsFile.open(p), 'BLIP4004', /truncated safetensors file: tensor "last" ends at byte \d+ but the file has \d+ bytes/);
    truncateSync(p, 20);
    expectError(() => SafetensorsFile.open(p), 'BLIP4004', /truncated safetensors file: the header says \d+ bytes of JSON/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function writeCheckpoint(dir: string, shards: Record<string, Array<{ name: string; dtype: string; shape: number[]; data: Uint8Array }>>, index?: Record<string, string>) {
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: 'blip' }));
  for (const [file, tensors] of Object.entries(shards)) writeFileSync(join(dir, file), encodeSafetensors(tensors));
  if (index) writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 0 }, weight_map: index }));
}

test('a sharded checkpoint is one key space; reads go to the right shard', () => {
  const dir = tmp();
  try {
    writeCheckpoint(
      dir,
      {
        'model-00001-of-00002.safetensors': [{ name: 'x.weight', dtype: 'F32', shape: [2], data: f32([1, 2]) }],
        'model-00002-of-00002.safetensors': [{ name: 'y.weight', dtype: 'BF16', shape: [2], data: bf16([3, 4]) }],
      },
      { 'x.weight': 'model-00001-of-00002.safetensors', 'y.weight': 'model-00002-of-00002.safetensors' },
    );
    const c = Checkpoint.open(dir);
    assert.deepEqual(c.keys(), ['x.weight', 'y.weight']);
    assert.deepEqual(c.shape('y.weight'), [2]);
    assert.deepEqual([...c.readFloat32('y.weight')], [3, 4]);
    assert.deepEqual([...c.readFloat32('x.weight')], [1, 2]);
    assert.deepEqual(c.dtypes(), { F32: 1, BF16: 1 });
    assert.match(c.fingerprint(), /^[0-9a-f]{64}$/);
    assert.deepEqual(c.config, { model_type: 'blip' });
    c.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the fingerprint changes with tensor contents', () => {
  const prints = [1, 2].map((v) => {
    const dir = tmp();
    try {
      writeCheckpoint(dir, { 'model.safetensors': [{ name: 'x', dtype: 'F32', shape: [1], data: f32([v]) }] });
      const c = Checkpoint.open(dir);
      c.readFloat32('x');
      c.close();
      return c.fingerprint();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  assert.notEqual(prints[0], prints[1]);
});

test('a missing shard, a tensor missing from its shard and a duplicated tensor are refused', () => {
  const t = { name: 'x.weight', dtype: 'F32', shape: [1], data: f32([1]) };
  const index = { 'x.weight': 'model-00001-of-00002.safetensors', 'y.weight': 'model-00002-of-00002.safetensors' };
  const cases: Array<[Record<string, (typeof t)[]>, RegExp]> = [
    [{ 'model-00001-of-00002.safetensors': [t] }, /missing shard .*model-00002-of-00002\.safetensors: model\.safetensors\.index\.json lists 1 tensors in it \(e\.g\. "y\.weight"\)/],
    [{ 'model-00001-of-00002.safetensors': [t], 'model-00002-of-00002.safetensors': [{ ...t, name: 'z' }] }, /tensor "y\.weight" is listed in model\.safetensors\.index\.json but not stored in this shard/],
    [{ 'model-00001-of-00002.safetensors': [t], 'model-00002-of-00002.safetensors': [t, { ...t, name: 'y.weight' }] }, /tensor "x\.weight" is stored twice/],
  ];
  for (const [shards, pattern] of cases) {
    const dir = tmp();
    try {
      writeCheckpoint(dir, shards, index);
      expectError(() => Checkpoint.open(dir), 'BLIP4006', pattern);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
});

test('directories without config.json or safetensors weights are refused clearly', () => {
  const dir = tmp();
  try {
    expectError(() => Checkpoint.open(join(dir, 'nope')), 'BLIP4001', /does not exist/);
    expectError(() => Checkpoint.open(dir), 'BLIP4001', /has no config\.json/);
    writeFileSync(join(dir, 'config.json'), '{"model_type": ');
    expectError(() => Checkpoint.open(dir), 'BLIP4001', /config\.json is not valid JSON \(line 1, column 16: expected a value, found the text ends\)$/);
    mkdirSync(join(dir, 'folder', 'config.json'), { recursive: true });
    expectError(() => Checkpoint.open(join(dir, 'folder')), 'BLIP4001', /folder\/config\.json cannot be read: is a folder \(EISDIR\)$/);
    writeFileSync(join(dir, 'config.json'), '{}');
    mkdirSync(join(dir, 'model.safetensors'));
    expectError(() => Checkpoint.open(dir), 'BLIP4001', /model\.safetensors cannot be read: is a folder \(EISDIR\)$/);
    rmSync(join(dir, 'model.safetensors'), { recursive: true });
    expectError(() => Checkpoint.open(dir), 'BLIP4002', /has no model\.safetensors/);
    writeFileSync(join(dir, 'model.safetensors'), encodeSafetensors([]));
    expectError(() => Checkpoint.open(dir), 'BLIP4002', /has no weights: .*model\.safetensors holds no tensors$/);
    rmSync(join(dir, 'model.safetensors'));
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: {} }));
    expectError(() => Checkpoint.open(dir), 'BLIP4002', /has no weights: model\.safetensors\.index\.json maps no tensor to a file$/);
    rmSync(join(dir, 'model.safetensors.index.json'));
    writeFileSync(join(dir, 'pytorch_model.bin'), '');
    expectError(() => Checkpoint.open(dir), 'BLIP4002', /PyTorch pickle weights only; save the model with safe_serialization=True/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a header that is not UTF-8 is corrupt (BLIP4003 with the byte), in a tensor name or in __metadata__', () => {
  const dir = tmp();
  try {
    const p = join(dir, 'model.safetensors');
    for (const [metadata, name] of [[undefined, 'AB.weight'], [{ note: 'AB' }, 'x']] as const) {
      const file = encodeSafetensors([{ name, dtype: 'F32', shape: [1], data: f32([1]) }], metadata);
      const at = file.indexOf('AB');
      file[at] = 0xff;
      file[at + 1] = 0xfe;
      writeFileSync(p, file);
      expectError(() => SafetensorsFile.open(p), 'BLIP4003', new RegExp(`corrupt safetensors header: not UTF-8 \\(byte ${at} of the file\\)`));
    }
    // well-formed multi-byte names are fine
    writeFileSync(p, encodeSafetensors([{ name: 'ü€😀', dtype: 'F32', shape: [1], data: f32([1]) }]));
    const f = SafetensorsFile.open(p);
    assert.deepEqual([...f.tensors.keys()], ['ü€😀']);
    f.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an index mapping a tensor to "", "." or ".." is BLIP4006 naming the index and the tensor', () => {
  for (const file of ['', '.', '..']) {
    const dir = tmp();
    try {
      writeCheckpoint(dir, { 'model-00001-of-00001.safetensors': [{ name: 'x.weight', dtype: 'F32', shape: [1], data: f32([1]) }] }, { 'x.weight': file });
      expectError(() => Checkpoint.open(dir), 'BLIP4006', new RegExp(`model\\.safetensors\\.index\\.json: tensor "x\\.weight" maps to ${JSON.stringify(JSON.stringify(file)).slice(1, -1).replaceAll('.', '\\.')}, not a file name in the directory`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
});

/** A checkpoint of 60 one-tensor shards, t0 … t59 (tensor i holds [i]), in a new folder. */
function manyShards(): string {
  const dir = tmp();
  const shards: Record<string, Array<{ name: string; dtype: string; shape: number[]; data: Uint8Array }>> = {};
  const index: Record<string, string> = {};
  for (let i = 0; i < 60; i++) {
    const file = `model-${String(i + 1).padStart(5, '0')}-of-00060.safetensors`;
    shards[file] = [{ name: `t${i}`, dtype: 'F32', shape: [1], data: f32([i]) }];
    index[`t${i}`] = file;
  }
  writeCheckpoint(dir, shards, index);
  return dir;
}

// (descriptors are counted in /proc/self/fd, which Linux has and macOS and Windows have not)
test('a checkpoint of many shards holds only a few files open (not one per shard)', { skip: existsSync('/proc/self/fd') ? false : 'needs /proc/self/fd' }, () => {
  const dir = manyShards();
  const openFds = () => readdirSync('/proc/self/fd').length;
  try {
    const before = openFds();
    const c = Checkpoint.open(dir);
    assert.ok(openFds() - before <= 1, `open: ${openFds() - before} more descriptors`);
    for (let round = 0; round < 2; round++) for (let i = 0; i < 60; i++) assert.deepEqual([...c.readFloat32(`t${i}`)], [i]);
    assert.ok(openFds() - before <= 10, `reading: ${openFds() - before} more descriptors`);
    c.close();
    assert.equal(openFds(), before, 'closing releases every descriptor');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a shard of many replaced after opening, its file no longer among those held open, is refused', () => {
  const dir = manyShards();
  try {
    const c = Checkpoint.open(dir);
    for (let i = 0; i < 60; i++) assert.deepEqual([...c.readFloat32(`t${i}`)], [i]);
    // (written anew: another file at the same path)
    const p = join(dir, 'model-00001-of-00060.safetensors');
    rmSync(p);
    writeFileSync(p, encodeSafetensors([{ name: 't0', dtype: 'F32', shape: [2], data: f32([0, 0]) }]));
    for (let i = 1; i < 60; i++) c.readFloat32(`t${i}`); // (t0's file is no longer among those held open)
    expectError(() => c.readFloat32('t0'), 'BLIP4004', /model-00001-of-00060\.safetensors changed while it was being read/);
    c.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a file changed between its header and its tensors is BLIP4004 saying how (the size clause only when the size differs); one found again with a new inode, same size and mtime reads on', () => {
  const dir = tmp();
  try {
    const p = join(dir, 'model.safetensors');
    const then = new Date(1e12); // (whole seconds: a copy can be given exactly this mtime)
    const write = (at: string, xs: number[]) => writeFileSync(at, encodeSafetensors([{ name: 't', dtype: 'F32', shape: [xs.length], data: f32(xs) }]));
    /** `p` holding [1, 2], last modified `then`, opened (header read; the first tensor read reopens it), then `change`d. */
    const openThen = (change: () => void) => {
      write(p, [1, 2]);
      utimesSync(p, then, then);
      const f = SafetensorsFile.open(p);
      change();
      return f;
    };
    const moveIn = (xs: number[], mtime?: Date) => {
      write(`${p}.new`, xs);
      if (mtime) utimesSync(`${p}.new`, mtime, mtime);
      renameSync(`${p}.new`, p);
    };
    const zeroTail = (b: Buffer) => b.fill(0, b.length - 8); // (same file, same size, other values)
    expectError(() => openThen(() => moveIn([3, 4])).readRaw('t'), 'BLIP4004', /model\.safetensors changed while it was being read \(it was replaced by another file\): compile again once nothing writes to it$/);
    expectError(() => openThen(() => writeFileSync(p, zeroTail(readFileSync(p)))).readRaw('t'), 'BLIP4004', /changed while it was being read \(it was rewritten in place\)/);
    expectError(() => openThen(() => moveIn([3, 4, 5])).readRaw('t'), 'BLIP4004', /changed while it was being read \(it was \d+ bytes, it is \d+\)/);
    // another inode, same size and mtime: how an unchanged file looks on a mount that numbers
    // inodes per open (FUSE without use_ino, SMB noserverino), so not a change
    const f = openThen(() => moveIn([1, 2], then));
    assert.deepEqual([...f.readFloat32('t')], [1, 2]);
    f.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
