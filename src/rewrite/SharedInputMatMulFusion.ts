// Linear layers that read the same activation become one MatMul over their concatenated weights,
// then a Split: attention's Q, K and V projections, the cross-attention K and V of every decoder
// layer over the image tokens, LLaMA's gate and up projections.
//
//   before:  y_i = Add(MatMul(x, W_i), b_i)                      for i = 1..n (the Adds optional)
//   after:   y_1, …, y_n = Split(Add(MatMul(x, [W_1 … W_n]), [b_1 … b_n]), [N_1 … N_n], axis=-1)
//
// Why: a decode step reads every weight once with one activation row, so it is memory-bound, and
// onnxruntime's GEMV runs closer to the machine's read bandwidth on one (768 × 2304) matrix than
// on three (768 × 768) ones (measured: docs/performance.md); fewer kernels also means fewer
// thread-pool dispatches per token. The packed weight is a new initializer made while streaming
// (each source read once, freed after), so weights.bin holds the packed copy only. Biases are
// packed only when every member has a 1-D weight bias read by that Add alone; otherwise the Split
// takes over the MatMul outputs and the Adds stay. A weight read by any other node is not packed
// (it would be stored twice). Exact: the same dot products, in the same order per output column.
import type { WeightData } from '../lower/WeightStore.js';
import type { Fusion, GraphView, Node } from './graph.js';

interface Member {
  matmul: Node;
  weight: string;
  n: number;
  /** The bias Add and its 1-D weight, when the MatMul feeds one alone. */
  add?: Node;
  bias?: string;
}

/** A stable initializer name for the concatenation (one per set of sources, shared across graphs). */
function packedKey(keys: string[]): string {
  return `packed(${keys.join(',')})`;
}

/** Concatenate (K, N_i) row-major matrices along the columns; 1-D vectors end to end. */
async function concatColumns(g: GraphView, keys: string[], K: number, ns: number[]): Promise<WeightData> {
  const total = ns.reduce((a, b) => a + b, 0);
  const out = new Float32Array(K * total);
  let col = 0;
  for (let i = 0; i < keys.length; i++) {
    const data = await g.b.weights.spec(keys[i])!.produce();
    const src = asFloat32(data, keys[i]);
    const n = ns[i];
    if (src.length !== K * n) throw new Error(`internal: ${keys[i]} has ${src.length} values, (${K}, ${n}) expected`);
    for (let r = 0; r < K; r++) out.set(src.subarray(r * n, (r + 1) * n), r * total + col);
    col += n;
  }
  return out;
}

function asFloat32(d: WeightData, key: string): Float32Array {
  if (d instanceof Float32Array) return d; // checkpoint readers hand out float32 (the store converts)
  throw new Error(`internal: weight ${key} is not a float tensor`);
}

export const SharedInputMatMulFusion: Fusion = {
  name: 'SharedInputMatMul',
  applies: (_ft, o) => o.target !== 'plain',
  run(g) {
    let fired = 0;
    // Group MatMuls by their activation input (a weight as input A is not an activation).
    const groups = new Map<string, Member[]>();
    for (const mm of g.nodes) {
      if (mm.opType !== 'MatMul' || mm.domain) continue;
      const [x, w] = mm.input ?? [];
      if (!x || !w || g.isWeight(x) || !g.isWeight(w)) continue;
      const d = g.dims(w);
      if (!d || d.length !== 2) continue;
      // The weight must be read by this MatMul alone.
      if (g.consumers(w).length !== 1 || g.isGraphOutput(w)) continue;
      const m: Member = { matmul: mm, weight: w, n: d[1] };
      const y = mm.output![0];
      const cons = g.consumers(y);
      if (cons.length === 1 && !g.isGraphOutput(y) && cons[0].opType === 'Add' && !cons[0].domain) {
        const add = cons[0];
        const bias = add.input!.find((i) => i !== y);
        if (bias && g.isWeight(bias) && g.dims(bias)?.length === 1 && g.dims(bias)![0] === d[1] && g.consumers(bias).length === 1) {
          m.add = add;
          m.bias = bias;
        }
      }
      const key = `${x}|${d[0]}`;
      const list = groups.get(key);
      if (list) list.push(m);
      else groups.set(key, [m]);
    }
    for (const [key, members] of groups) {
      if (members.length < 2) continue;
      const x = key.slice(0, key.lastIndexOf('|'));
      const K = g.dims(members[0].weight)![0];
      const ns = members.map((m) => m.n);
      const total = ns.reduce((a, b) => a + b, 0);
      const keys = members.map((m) => m.weight);
      const origin = g.b.weights.spec(keys[0])?.origin;
      const packedW = g.weight({ key: packedKey(keys), dims: [K, total], produce: () => concatColumns(g, keys, K, ns), origin });
      const withBias = members.every((m) => m.add);
      const first = members[0].matmul;
      const [mmOut] = g.emit(first, 'MatMul', [x, packedW], {}, ['packed']);
      let splitIn = mmOut;
      if (withBias) {
        const biasKeys = members.map((m) => m.bias!);
        const packedB = g.weight({ key: packedKey(biasKeys), dims: [total], produce: () => concatColumns(g, biasKeys, 1, ns), origin });
        [splitIn] = g.emit(first, 'Add', [mmOut, packedB], {}, ['packed_bias']);
      }
      const sizes = g.b.int64(ns, [ns.length], 'packed_split').name;
      const takeOver = members.map((m) => ({ name: withBias ? m.add!.output![0] : m.matmul.output![0] }));
      g.drop(...members.map((m) => m.matmul), ...(withBias ? members.map((m) => m.add!) : []));
      g.emit(first, 'Split', [splitIn, sizes], { axis: -1 }, takeOver);
      fired++;
    }
    return fired;
  },
};
