// runtime/session untieHead: a tied embedding / LM head read by a CPU session through two
// initializers over the same bytes of the external-data file, with unchanged outputs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { HEAD_ALIAS, openSession, untieHead } from '../../../runtime/session.js';

const { onnx } = onnxProto;
const V = 37;
const W = 8;

/** logits = Gemm(Gather(E, ids), E, transB) with E (V, W) in weights.bin at offset 64 (+ bias); the tied layout of the BLIP / OPT / LLaMA heads. */
function tiedModel(dir: string, inline = false): string {
  const e = Float32Array.from({ length: V * W }, (_, i) => Math.sin(i * 0.7) * 0.5);
  const bias = Float32Array.from({ length: V }, (_, i) => i / 100);
  const data = new Uint8Array(64 + e.byteLength + bias.byteLength);
  data.set(new Uint8Array(e.buffer), 64);
  data.set(new Uint8Array(bias.buffer), 64 + e.byteLength);
  writeFileSync(join(dir, 'weights.bin'), data);
  const ext = (offset: number, length: number) => ({
    dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
    externalData: [
      { key: 'location', value: 'weights.bin' },
      { key: 'offset', value: String(offset) },
      { key: 'length', value: String(length) },
    ],
  });
  const FLOAT = onnx.TensorProto.DataType.FLOAT;
  const model = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    graph: {
      name: 'tied',
      node: [
        { opType: 'Gather', input: ['emb', 'ids'], output: ['h'], attribute: [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: 0 }] },
        { opType: 'Gemm', input: ['h', 'emb', 'bias'], output: ['logits'], attribute: [{ name: 'transB', type: onnx.AttributeProto.AttributeType.INT, i: 1 }] },
      ],
      input: [{ name: 'ids', type: { tensorType: { elemType: onnx.TensorProto.DataType.INT64, shape: { dim: [{ dimParam: 'n' }] } } } }],
      output: [{ name: 'logits', type: { tensorType: { elemType: FLOAT, shape: { dim: [{ dimParam: 'n' }, { dimValue: V }] } } } }],
      initializer: [
        inline ? { name: 'emb', dataType: FLOAT, dims: [V, W], rawData: new Uint8Array(e.buffer) } : { name: 'emb', dataType: FLOAT, dims: [V, W], ...ext(64, e.byteLength) },
        { name: 'bias', dataType: FLOAT, dims: [V], ...ext(64 + e.byteLength, bias.byteLength) },
      ],
    },
  });
  const path = join(dir, 'tied.onnx');
  writeFileSync(path, onnx.ModelProto.encode(model).finish());
  return path;
}

test('untieHead: the Gemm reads a second initializer over the same external bytes; the Gather keeps the first', () => {
  const dir = mkdtempSync(join(tmpdir(), 'blip-untie-'));
  try {
    const bytes = readFileSync(tiedModel(dir));
    const out = untieHead(bytes);
    assert.ok(out, 'a tied head is found');
    const g = onnx.ModelProto.decode(out).graph!;
    const [gather, gemm] = g.node!;
    assert.equal(gather.input![0], 'emb');
    assert.equal(gemm.input![1], 'emb' + HEAD_ALIAS);
    assert.equal(gemm.input![2], 'bias');
    const byName = new Map(g.initializer!.map((t) => [t.name, t]));
    assert.equal(g.initializer!.length, 3);
    const [a, b] = [byName.get('emb')!, byName.get('emb' + HEAD_ALIAS)!];
    assert.deepEqual(b.externalData!.map((kv) => [kv.key, kv.value]), a.externalData!.map((kv) => [kv.key, kv.value]));
    assert.deepEqual(b.dims!.map(Number), [V, W]);
    assert.equal(b.dataType, a.dataType);
    // nothing to do: no Gather shares the head, or the table is inline (a second copy would be real)
    assert.equal(untieHead(readFileSync(tiedModel(dir, true))), undefined);
    const m = onnx.ModelProto.decode(bytes);
    m.graph!.node![0].input![0] = 'bias';
    assert.equal(untieHead(onnx.ModelProto.encode(m).finish()), undefined);
    assert.equal(untieHead(new TextEncoder().encode('not a model')), undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a CPU session over the untied model gives the same logits, bit for bit, as the model as written', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'blip-untie-'));
  const cwd = process.cwd();
  try {
    const path = tiedModel(dir);
    process.chdir(tmpdir()); // the external data resolves against the model's folder, not the working directory
    const ours = await openSession(path, { device: 'cpu', threads: 1 });
    const plain = await ort.InferenceSession.create(path, { intraOpNumThreads: 1 });
    const ids = new ort.Tensor('int64', BigInt64Array.from([3n, 0n, 36n, 3n]), [4]);
    const a = (await ours.session.run({ ids })).logits;
    const b = (await plain.run({ ids })).logits;
    assert.deepEqual(a.dims, [4, V]);
    assert.deepEqual(Buffer.from((a.data as Float32Array).buffer), Buffer.from((b.data as Float32Array).buffer));
    await ours.session.release();
    await plain.release();
  } finally {
    process.chdir(cwd);
    rmSync(dir, { recursive: true, force: true });
  }
});
