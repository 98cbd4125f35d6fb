// Weight-only quantization (`blip compile --quantize int8|int4`): every linear layer whose weight
// is a checkpoint tensor becomes com.microsoft.MatMulNBits over block-quantized weights.
//
//   before:  y = MatMul(x, W)                 W (K, N), a checkpoint weight (stored transposed)
//            y = Add(MatMul(x, W), bias)      bias (N) read by that Add alone
//            y = Gemm(x, E, c, transB=1)      E (N, K): a tied LM head over the word embeddings
//   after:   y = MatMulNBits(x, Wq, scales, zero_points [, bias])   K, N, bits, block_size
//
// accuracy_level 4 on the CPU target and in plain builds (activations quantized to int8 per block,
// MLAS's integer kernels): measured on BLIP-base decode, int8 weights at level 0 take the slow
// dequantizing path (~15× slower than float32) and 35 ms/token at level 4 against ~70 ms for float32;
// plain builds run where onnxruntime's CPU provider is the default, so they get the same (2026-11-29,
// plain int8 decode step 34-53 ms at level 4, 354-474 ms at level 0, float32 104-110 ms; logit error
// against transformers 7.8e-2 at level 4, 5.2e-2 at level 0). The cuda / webgpu targets leave it unset.
//
// Asymmetric blocks of `block_size` weights along K (32 for int4, 128 for int8; the last block
// of a K that is not a multiple is zero-padded): scale = (max - min) / (2^bits - 1), zero point =
// round(-min / scale), q = clamp(round(w / scale) + zero point). Wq (N, k_blocks, block_size·bits/8)
// uint8, low nibble first for int4; zero points packed the same way. The quantized tensors are
// WeightStore specs whose produce() reads the float weight and quantizes it when the weights are
// streamed, so compile memory stays one tensor; the float weight is written only if something
// else still reads it (the word embeddings the tied head shares with the token Gather).
import { MS, type Fusion, type GraphView, type Node, type RewriteOptions } from './graph.js';

export interface Quantized {
  /** (N, kBlocks, blockSize·bits/8) */
  packed: Uint8Array;
  /** (N·kBlocks) */
  scales: Float32Array;
  /** (N, ceil(kBlocks·bits/8)) */
  zeros: Uint8Array;
  kBlocks: number;
}

/**
 * Block-quantize `w`, N rows of K (row n = the weights of output n, PyTorch's (out, in) layout).
 */
export function quantizeBlockwise(w: Float32Array, N: number, K: number, bits: 4 | 8, blockSize: number): Quantized {
  const kBlocks = Math.ceil(K / blockSize);
  const blob = (blockSize * bits) / 8;
  const qmax = (1 << bits) - 1;
  const zpRow = Math.ceil((kBlocks * bits) / 8);
  const packed = new Uint8Array(N * kBlocks * blob);
  const scales = new Float32Array(N * kBlocks);
  const zeros = new Uint8Array(N * zpRow);
  const q = new Uint8Array(blockSize);
  for (let n = 0; n < N; n++) {
    for (let kb = 0; kb < kBlocks; kb++) {
      const start = kb * blockSize;
      const end = Math.min(K, start + blockSize);
      let lo = 0;
      let hi = 0; // the range always includes 0 (padding is exactly representable)
      for (let k = start; k < end; k++) {
        const v = w[n * K + k];
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      const scale = Math.fround((hi - lo) / qmax) || 1;
      const zp = Math.min(qmax, Math.max(0, Math.round(-lo / scale)));
      scales[n * kBlocks + kb] = scale;
      q.fill(zp);
      for (let k = start; k < end; k++) q[k - start] = Math.min(qmax, Math.max(0, Math.round(w[n * K + k] / scale) + zp));
      const o = (n * kBlocks + kb) * blob;
      if (bits === 8) packed.set(q, o);
      else for (let j = 0; j < blob; j++) packed[o + j] = q[2 * j] | (q[2 * j + 1] << 4);
      if (bits === 8) zeros[n * zpRow + kb] = zp;
      else zeros[n * zpRow + (kb >> 1)] |= kb & 1 ? zp << 4 : zp;
    }
  }
  return { packed, scales, zeros, kBlocks };
}

/** The float weight (N rows of K) back from quantized blocks (tests, accuracy reports). */
export function dequantizeBlockwise(qz: Quantized, N: number, K: number, bits: 4 | 8, blockSize: number): Float32Array {
  const out = new Float32Array(N * K);
  const blob = (blockSize * bits) / 8;
  const zpRow = Math.ceil((qz.kBlocks * bits) / 8);
  for (let n = 0; n < N; n++)
    for (let k = 0; k < K; k++) {
      const kb = Math.floor(k / blockSize);
      const j = k - kb * blockSize;
      const o = (n * qz.kBlocks + kb) * blob;
      const v = bits === 8 ? qz.packed[o + j] : (qz.packed[o + (j >> 1)] >> ((j & 1) * 4)) & 15;
      const zb = bits === 8 ? qz.zeros[n * zpRow + kb] : (qz.zeros[n * zpRow + (kb >> 1)] >> ((kb & 1) * 4)) & 15;
      out[n * K + k] = (v - zb) * qz.scales[n * qz.kBlocks + kb];
    }
  return out;
}

function transpose(src: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = src[r * cols + c];
  return out;
}

export const BLOCK_SIZE = { int4: 32, int8: 128 } as const;

/** Define the three quantized tensors of weight `key` (float data (K, N) if `kn`, else (N, K)). */
function quantizedWeights(g: GraphView, key: string, K: number, N: number, kn: boolean, o: Required<Pick<RewriteOptions, 'quantize'>>): { packed: string; scales: string; zeros: string; bits: 4 | 8; bs: number } {
  const bits = o.quantize === 'int4' ? 4 : 8;
  const bs = BLOCK_SIZE[o.quantize];
  const src = g.b.weights.spec(key)!;
  const kBlocks = Math.ceil(K / bs);
  let cache: Quantized | undefined;
  const get = async (): Promise<Quantized> => {
    if (!cache) {
      const data = (await src.produce()) as Float32Array;
      cache = quantizeBlockwise(kn ? transpose(data, K, N) : data, N, K, bits, bs);
    }
    return cache;
  };
  const tag = `${key}:${o.quantize}`;
  const origin = src.origin;
  const packed = g.weight({ key: `${tag}`, dims: [N, kBlocks, (bs * bits) / 8], dtype: 'uint8', produce: async () => (await get()).packed, origin });
  // The scales share the float type of the activations: float32 where the weight was kept float32 in a float16 artifact.
  const scales = g.weight({ key: `${tag}:scales`, dims: [N * kBlocks], storeAs: src.storeAs, produce: async () => (await get()).scales, origin });
  const zeros = g.weight({
    key: `${tag}:zeros`,
    dims: [N, Math.ceil((kBlocks * bits) / 8)],
    dtype: 'uint8',
    produce: async () => {
      const z = (await get()).zeros;
      cache = undefined; // the last of the three: free it
      return z;
    },
    origin,
  });
  return { packed, scales, zeros, bits, bs };
}

export const MatMulNBitsFusion: Fusion = {
  name: 'MatMulNBits',
  emits: { [`${MS}.MatMulNBits`]: 'input0' },
  applies: (_ft, o) => !!o.quantize,
  run(g, opts) {
    const o = { quantize: opts.quantize! };
    let n = 0;
    for (const node of [...g.nodes]) {
      if (!g.nodes.includes(node) || node.domain) continue;
      let K: number, N: number, w: string, kn: boolean, bias: string | undefined;
      let final: Node = node;
      const drop: Node[] = [node];
      if (node.opType === 'MatMul') {
        w = node.input![1];
        const d = g.isWeight(w) ? g.dims(w) : undefined;
        if (!d || d.length !== 2) continue;
        [K, N, kn] = [d[0], d[1], true];
        // Fold a following bias add.
        const [c] = g.consumers(node.output![0]);
        if (g.consumers(node.output![0]).length === 1 && !g.isGraphOutput(node.output![0]) && c.opType === 'Add' && !c.domain) {
          const other = c.input![0] === node.output![0] ? c.input![1] : c.input![0];
          if (g.isWeight(other) && sameDims(g.dims(other), [N])) [bias, final] = [other, c];
        }
        if (final !== node) drop.push(final);
      } else if (node.opType === 'Gemm') {
        w = node.input![1];
        const d = g.isWeight(w) ? g.dims(w) : undefined;
        const ok = g.attrInt(node, 'transB', 0) === 1 && g.attrInt(node, 'transA', 0) === 0 && g.attrFloat(node, 'alpha', 1) === 1 && g.attrFloat(node, 'beta', 1) === 1;
        if (!d || d.length !== 2 || !ok) continue;
        [N, K, kn] = [d[0], d[1], false];
        bias = node.input![2] || undefined;
        if (bias && !(g.isWeight(bias) && sameDims(g.dims(bias), [N]))) continue;
      } else continue;
      const q = quantizedWeights(g, w, K, N, kn, o);
      const y = { name: final.output![0] };
      g.drop(...drop);
      const accuracy_level = opts.target === 'cuda' || opts.target === 'webgpu' ? undefined : 4;
      g.emit(final, 'MatMulNBits', [node.input![0], q.packed, q.scales, q.zeros, undefined, bias], { K, N, bits: q.bits, block_size: q.bs, accuracy_level }, [y], MS);
      n++;
    }
    return n;
  },
};

const sameDims = (a: number[] | undefined, b: number[]) => !!a && a.length === b.length && a.every((x, i) => x === b[i]);
