// What the WebGPU provider costs per node and whether its MultiHeadAttention is right, on whatever
// adapter Dawn picks (the GPU check runs it on the H100 machine; here it runs on lavapipe).
//
// 1. dispatch: a chain of N float16 Adds on a (1, W) row, and chains of N one-row products
//    (1, W) x (W, W) — float16 MatMul, float16 Gemm with transB, 4-bit MatMulNBits — each in one
//    session; the median run over N is the cost of one node, and for the products the weight bytes
//    over that time is the read rate a decode step's products get.
//    And the residual + LayerNorm of a float16 pre-norm block, as --dtype fp16 artifacts had it
//    (Add, Cast to float32, LayerNormalization, Cast back: four nodes) and as Float16LayerNormFusion +
//    SkipLayerNormFusion emit it (one float16 SkipLayerNormalization): a link each, the difference is
//    what the fusion saves per norm at a decode step.
// 2. attention: com.microsoft.MultiHeadAttention (3-D q/k/v, no bias, no mask; and the decode form
//    with past_key / past_value) on WebGPU against the same node on the CPU provider, float32 and
//    float16, at sequence lengths around 32 (where lavapipe's results went wrong) and at full size.
//    Prints the max abs difference of each case.
//
//   node dist/bench/gpu/kernels.js [--device webgpu] [--width 2560] [--nodes 200] [--runs 20] [--json FILE]
//        [--parts chains,attention]
//   (--device cpu runs the same cases on the CPU provider: a check of the tool itself)
import { writeFileSync } from 'node:fs';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { floatToHalf, halfToFloat } from '../../src/weights/float16.js';
import { ortMessage } from '../../runtime/providers.js';

const { onnx } = onnxProto;
const T = onnx.TensorProto.DataType;
type Elem = 'float32' | 'float16';
type Provider = ort.InferenceSession.SessionOptions['executionProviders'];

const arg = (name: string, dflt: string) => (process.argv.includes(`--${name}`) ? process.argv[process.argv.indexOf(`--${name}`) + 1] : dflt);
const DEVICE = arg('device', 'webgpu');
const WIDTH = Number(arg('width', '2560'));
const NODES = Number(arg('nodes', '200'));
const RUNS = Number(arg('runs', '20'));
const JSON_OUT = arg('json', '');
const PARTS = arg('parts', 'chains,attention').split(',');
const WEIGHTS = 16;

const vi = (name: string, elem: Elem, dims: Array<number | string>) => ({
  name,
  type: { tensorType: { elemType: elem === 'float16' ? T.FLOAT16 : T.FLOAT, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
});

function model(graph: Record<string, unknown>): Uint8Array {
  return onnx.ModelProto.encode(
    onnx.ModelProto.create({ irVersion: 8, opsetImport: [{ domain: '', version: 17 }, { domain: 'com.microsoft', version: 1 }], graph: { name: 'g', ...graph } }),
  ).finish();
}

/** A deterministic stream of uint32s (a linear congruential generator). */
function lcg(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0);
}

/** Deterministic values in [-a, a). */
function values(n: number, seed: number, a = 1): Float32Array {
  const next = lcg(seed);
  return Float32Array.from({ length: n }, () => (next() / 2 ** 32 - 0.5) * 2 * a);
}

const half = (x: Float32Array) => Uint16Array.from(x, floatToHalf);

/** n float16 values of magnitude 2^-8 to 2^-7 and random sign, made as bits (fast for 100 M values): a chain of products stays finite. */
function smallHalves(n: number, seed: number): Uint16Array {
  const out = new Uint16Array(n);
  const next = lcg(seed);
  for (let i = 0; i < n; i++) out[i] = ((next() >>> 16) & 0x83ff) | 0x1c00; // sign, mantissa; exponent 7 (2^-8)
  return out;
}
const tensor = (elem: Elem, x: Float32Array, dims: number[]) => (elem === 'float16' ? new ort.Tensor('float16', half(x), dims) : new ort.Tensor('float32', x, dims));
const toF32 = (t: ort.Tensor) => (t.type === 'float16' ? Float32Array.from(t.data as Uint16Array, halfToFloat) : (t.data as Float32Array));

/** A session on `provider` alone: a node it has no kernel for is an error, not a silent CPU fallback. */
async function session(bytes: Uint8Array, provider: string): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(bytes, {
    executionProviders: [provider] as Provider,
    graphOptimizationLevel: 'disabled',
    logSeverityLevel: 3,
    ...(provider === 'cpu' ? {} : { extra: { session: { disable_cpu_ep_fallback: '1' } } }),
  });
}

async function medianMs(s: ort.InferenceSession, feeds: Record<string, ort.Tensor>): Promise<number> {
  for (let i = 0; i < 3; i++) await s.run(feeds);
  const t: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    await s.run(feeds);
    t.push(performance.now() - t0);
  }
  return t.sort((a, b) => a - b)[Math.floor(t.length / 2)];
}

/**
 * The chained node kinds: a float16 Add, and one-row products (1, W) x (W, W) in three forms, each
 * reading its own weight:
 *   MatMul        float16 weights (K, N), as --dtype fp16 artifacts store them
 *   Gemm          float16 weights (N, K), transB = 1 (each output a dot product over a contiguous row)
 *   MatMulNBits4  com.microsoft.MatMulNBits, 4-bit blocks of 32 with float16 scales (--quantize int4)
 */
type Chained = 'Add' | 'NormCast' | 'SkipNorm16' | 'MatMul' | 'Gemm' | 'MatMulNBits4';
/** The chains without weights to read, then the products. */
const NORMS: Chained[] = ['NormCast', 'SkipNorm16'];
const PRODUCTS: Chained[] = ['MatMul', 'Gemm', 'MatMulNBits4'];

/** Weight bytes one product of the kind reads. */
function weightBytes(kind: Chained): number {
  if (kind === 'MatMulNBits4') return (WIDTH * WIDTH) / 2 + (WIDTH * WIDTH / 32) * 2;
  return WIDTH * WIDTH * 2;
}

/** Random bytes (packed 4-bit weights). */
function randomBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  const next = lcg(seed);
  for (let i = 0; i < n; i++) out[i] = next() >>> 24;
  return out;
}

/** The initializers and the node for position i of a chain of `kind` (weights cycle through WEIGHTS). */
function chainLink(kind: Chained, i: number, input: string, output: string) {
  const W = WIDTH;
  const w = kind === 'Add' ? 'c' : `w${i % WEIGHTS}`;
  const first = i === 0 || (kind !== 'Add' && i < WEIGHTS);
  const init: Array<Record<string, unknown>> = [];
  const fp16 = (name: string, dims: number[], data: Uint16Array) => init.push({ name, dataType: T.FLOAT16, dims, rawData: new Uint8Array(data.buffer) });
  const ints = (name: string, v: number) => ({ name, type: onnx.AttributeProto.AttributeType.INT, i: v });
  switch (kind) {
    case 'Add':
      if (first) fp16(w, [1, W], half(values(W, i + 7, 1e-3)));
      return { init, node: { opType: 'Add', input: [input, w], output: [output] } };
    case 'NormCast':
    case 'SkipNorm16': {
      // the residual (a constant row), γ and β; the float32 copies of γ and β as the unfused graph has them
      if (i === 0) {
        fp16('c', [1, W], half(values(W, 7, 1e-3)));
        fp16('gamma', [W], half(values(W, 8, 0.1).map((v) => 1 + v)));
        fp16('beta', [W], half(values(W, 9, 0.1)));
        if (kind === 'NormCast') init.push({ name: 'gamma32', dataType: T.FLOAT, dims: [W], floatData: Array.from(values(W, 8, 0.1), (v) => 1 + v) }, { name: 'beta32', dataType: T.FLOAT, dims: [W], floatData: Array.from(values(W, 9, 0.1)) });
      }
      const eps = { name: 'epsilon', type: onnx.AttributeProto.AttributeType.FLOAT, f: 1e-5 };
      if (kind === 'SkipNorm16') return { init, node: [{ opType: 'SkipLayerNormalization', domain: 'com.microsoft', input: [input, 'c', 'gamma', 'beta'], output: [output], attribute: [eps] }] };
      const to = (t: number) => ({ name: 'to', type: onnx.AttributeProto.AttributeType.INT, i: t });
      return {
        init,
        node: [
          { opType: 'Add', input: [input, 'c'], output: [`${output}_sum`] },
          { opType: 'Cast', input: [`${output}_sum`], output: [`${output}_f32`], attribute: [to(T.FLOAT)] },
          { opType: 'LayerNormalization', input: [`${output}_f32`, 'gamma32', 'beta32'], output: [`${output}_ln`], attribute: [eps] },
          { opType: 'Cast', input: [`${output}_ln`], output: [output], attribute: [to(T.FLOAT16)] },
        ],
      };
    }
    case 'MatMul':
      if (first) fp16(w, [W, W], smallHalves(W * W, i + 7));
      return { init, node: { opType: 'MatMul', input: [input, w], output: [output] } };
    case 'Gemm':
      if (first) fp16(w, [W, W], smallHalves(W * W, i + 7));
      return { init, node: { opType: 'Gemm', input: [input, w], output: [output], attribute: [ints('transB', 1)] } };
    case 'MatMulNBits4': {
      const blocks = W / 32;
      if (first) {
        init.push({ name: w, dataType: T.UINT8, dims: [W, blocks, 16], rawData: randomBytes(W * blocks * 16, i + 7) });
        fp16(`${w}_scales`, [W * blocks], new Uint16Array(W * blocks).fill(0x1c00)); // 2^-8
      }
      return {
        init,
        node: { opType: 'MatMulNBits', domain: 'com.microsoft', input: [input, w, `${w}_scales`], output: [output], attribute: [ints('K', W), ints('N', W), ints('bits', 4), ints('block_size', 32)] },
      };
    }
  }
}

/** A chain of N nodes of `kind` on a (1, W) float16 row: the median run over N is one node's cost. */
async function dispatch(kind: Chained): Promise<Record<string, number>> {
  const node = [];
  const initializer = [];
  for (let i = 0; i < NODES; i++) {
    // Products cycle through WEIGHTS distinct weights, together far larger than the GPU's L2 (50 MB
    // on an H100), so every node reads its weight from memory.
    const link = chainLink(kind, i, i ? `h${i}` : 'x', i === NODES - 1 ? 'y' : `h${i + 1}`);
    node.push(...[link.node].flat());
    initializer.push(...link.init);
  }
  const bytes = model({ node, initializer, input: [vi('x', 'float16', [1, WIDTH])], output: [vi('y', 'float16', [1, WIDTH])] });
  const s = await session(bytes, DEVICE);
  const ms = await medianMs(s, { x: tensor('float16', values(WIDTH, 3), [1, WIDTH]) });
  await s.release();
  const perNodeUs = (ms * 1000) / NODES;
  const out: Record<string, number> = { nodes: NODES, width: WIDTH, run_ms: ms, per_node_us: perNodeUs };
  if (PRODUCTS.includes(kind)) out.weight_read_gb_s = weightBytes(kind) / (perNodeUs * 1e-6) / 1e9;
  return out;
}

interface AttentionCase {
  elem: Elem;
  heads: number;
  headSize: number;
  q: number; // query length
  kv: number; // key length (new keys; with past, the past length)
  past: boolean;
}

/** One MultiHeadAttention node on DEVICE and on the CPU; the max abs difference of output (and present_key). */
async function attention(c: AttentionCase): Promise<Record<string, unknown>> {
  const HD = c.heads * c.headSize;
  const inputs = [vi('q', c.elem, [1, c.q, HD]), vi('k', c.elem, [1, c.past ? 1 : c.kv, HD]), vi('v', c.elem, [1, c.past ? 1 : c.kv, HD])];
  const nodeIn = ['q', 'k', 'v'];
  const outputs = [vi('out', c.elem, [1, c.q, HD])];
  const nodeOut = ['out'];
  if (c.past) {
    inputs.push(vi('past_key', c.elem, [1, c.heads, c.kv, c.headSize]), vi('past_value', c.elem, [1, c.heads, c.kv, c.headSize]));
    nodeIn.push('', '', '', 'past_key', 'past_value'); // bias, key_padding_mask, attention_bias left out
    outputs.push(vi('present_key', c.elem, [1, c.heads, c.kv + 1, c.headSize]), vi('present_value', c.elem, [1, c.heads, c.kv + 1, c.headSize]));
    nodeOut.push('present_key', 'present_value');
  }
  const bytes = model({
    node: [{ opType: 'MultiHeadAttention', domain: 'com.microsoft', input: nodeIn, output: nodeOut, attribute: [{ name: 'num_heads', type: onnx.AttributeProto.AttributeType.INT, i: c.heads }] }],
    input: inputs,
    output: outputs,
  });
  const feeds: Record<string, ort.Tensor> = {};
  inputs.forEach((x, i) => {
    const dims = x.type.tensorType.shape.dim.map((d) => (d as { dimValue: number }).dimValue);
    feeds[x.name] = tensor(c.elem, values(dims.reduce((a, b) => a * b, 1), 100 + i, 2), dims);
  });
  const row: Record<string, unknown> = { ...c };
  try {
    const [dev, cpu] = [await session(bytes, DEVICE), await session(bytes, 'cpu')];
    const [a, b] = [await dev.run(feeds), await cpu.run(feeds)];
    for (const name of nodeOut.filter((n) => n !== 'present_value')) {
      const [x, y] = [toF32(a[name]), toF32(b[name])];
      let err = 0;
      for (let i = 0; i < x.length; i++) err = Math.max(err, Math.abs(x[i] - y[i]));
      row[`max_abs_${name}`] = err;
    }
    row.device_ms = await medianMs(dev, feeds);
    await dev.release();
    await cpu.release();
  } catch (e) {
    row.error = ortMessage(e);
  }
  return row;
}

async function main(): Promise<void> {
  const result: Record<string, unknown> = { device: DEVICE, ort: ort.env.versions?.common ?? null };
  // Written after every part, so that a run stopped by its time limit still leaves what it measured.
  const save = () => JSON_OUT && writeFileSync(JSON_OUT, JSON.stringify(result) + '\n'); // one line: summary.ts reads the last JSON line
  const chain = async (kind: Chained) => {
    try {
      result[`dispatch_${kind}`] = await dispatch(kind);
    } catch (e) {
      result[`dispatch_${kind}`] = { error: ortMessage(e) };
    }
    console.log(`${kind} chain:`, JSON.stringify(result[`dispatch_${kind}`]));
    save();
  };
  if (PARTS.includes('chains')) for (const kind of ['Add', ...NORMS] as Chained[]) await chain(kind);
  const cases: AttentionCase[] = [];
  for (const elem of ['float32', 'float16'] as const) {
    for (const s of [8, 24, 32, 33, 65]) cases.push({ elem, heads: 4, headSize: 32, q: s, kv: s, past: false });
    cases.push({ elem, heads: 16, headSize: 88, q: 257, kv: 257, past: false }); // EVA-CLIP-g's image tokens (1408 wide)
    cases.push({ elem, heads: 12, headSize: 64, q: 32, kv: 257, past: false }); // Q-Former cross-attention
    for (const t of [31, 32, 40, 64]) cases.push({ elem, heads: 32, headSize: 80, q: 1, kv: t, past: true }); // OPT-2.7b's decode step
  }
  const rows: Array<Record<string, unknown>> = [];
  result.attention = rows;
  for (const c of PARTS.includes('attention') ? cases : []) {
    const r = await attention(c);
    rows.push(r);
    save();
    const errs = Object.entries(r).filter(([k]) => k.startsWith('max_abs')).map(([k, v]) => `${k.slice(8)} ${(v as number).toExponential(1)}`);
    console.log(`MHA ${c.elem} ${c.heads}x${c.headSize} q ${c.q} kv ${c.kv}${c.past ? ' (past)' : ''}: ${r.error ? `error: ${r.error}` : `${errs.join(', ')}; ${(r.device_ms as number).toFixed(3)} ms`}`);
  }
  if (PARTS.includes('chains')) for (const kind of PRODUCTS) await chain(kind);
}

main().catch((e) => {
  process.stderr.write(`${e?.stack ?? e}\n`);
  process.exit(1);
});
