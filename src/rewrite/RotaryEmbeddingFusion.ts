// LLaMA's rotary positions (rotate_half form) as com.microsoft.RotaryEmbedding on the 3-D
// projection, so that the heads split afterwards (and MultiHeadAttention can take the rotated
// projection as its 3-D query/key).
//
//   before:  x = Transpose(Reshape(P, [0,0,N,D]), [0,2,1,3])
//            y = Add(Mul(x, cos), Mul(Concat(Neg(x[..., D/2:]), x[..., :D/2]), sin))
//            cos, sin = Cos/Sin(Unsqueeze(Concat(f, f), 1)),  f = Unsqueeze(Cast(pos), 2) · inv_freq
//   after:   y = Transpose(Reshape(RotaryEmbedding(P, pos, cos_cache, sin_cache), [0,0,N,D]), [0,2,1,3])
//            cos_cache, sin_cache = Cos/Sin(Cast(Range(0, max(pos) + 1)) ⊗ inv_freq)   (T, D/2)
//
// The caches are computed in the graph for the positions of the step (at most a few hundred rows
// of D/2 values), with the same float32 product and Cos/Sin as the decomposed form, so no table
// sized by the model's context length is stored.
import { MS, sameInts, type Fusion, type GraphView, type Node } from './graph.js';

interface Angles {
  pos: string; // int64 (B, L)
  invFreq: string; // float32 (D/2)
}

/** cos or sin (B, 1, L, D) -> the positions and inverse frequencies it was computed from. */
function angles(g: GraphView, v: string, op: 'Cos' | 'Sin'): Angles | undefined {
  const c = g.producer(v, op);
  const u = c && g.producer(c.input![0], 'Unsqueeze');
  const cat = u && g.producer(u.input![0], 'Concat');
  if (!c || !u || !sameInts(g.ints(u.input![1]), [1]) || !cat || cat.input!.length !== 2 || cat.input![0] !== cat.input![1]) return undefined;
  const f = g.producer(cat.input![0], 'Mul');
  const pu = f && g.producer(f.input![0], 'Unsqueeze');
  const cast = pu && g.producer(pu.input![0], 'Cast');
  if (!f || !pu || !sameInts(g.ints(pu.input![1]), [2]) || !cast || g.attrInt(cast, 'to') !== 1 || g.dims(f.input![1])?.length !== 1) return undefined;
  return { pos: cast.input![0], invFreq: f.input![1] };
}

interface Match {
  out: Node;
  proj: string;
  N: number;
  D: number;
  a: Angles;
}

function match(g: GraphView, add: Node): Match | undefined {
  if (add.opType !== 'Add' || add.domain) return undefined;
  const mc = g.producer(add.input![0], 'Mul');
  const ms = g.producer(add.input![1], 'Mul');
  if (!mc || !ms) return undefined;
  const x = mc.input![0];
  const ac = angles(g, mc.input![1], 'Cos');
  const as = angles(g, ms.input![1], 'Sin');
  if (!ac || !as || ac.pos !== as.pos || ac.invFreq !== as.invFreq) return undefined;
  const rot = g.producer(ms.input![0], 'Concat');
  if (!rot || g.attrInt(rot, 'axis') !== 3 || rot.input!.length !== 2) return undefined;
  const neg = g.producer(rot.input![0], 'Neg');
  const x2 = neg && g.producer(neg.input![0], 'Slice');
  const x1 = g.producer(rot.input![1], 'Slice');
  if (!x2 || !x1 || x2.input![0] !== x || x1.input![0] !== x) return undefined;
  // x = splitHeads(P)
  const t = g.producer(x, 'Transpose');
  const r = t && g.producer(t.input![0], 'Reshape');
  const shape = r && g.ints(r.input![1]);
  if (!t || !sameInts(g.attrInts(t, 'perm'), [0, 2, 1, 3]) || !r || !shape || shape.length !== 4 || shape[0] !== 0 || shape[1] !== 0) return undefined;
  const [N, D] = [shape[2], shape[3]];
  const half = D / 2;
  const sl = (s: Node, lo: number, hi: number) => sameInts(g.ints(s.input![1]), [lo]) && sameInts(g.ints(s.input![2]), [hi]) && sameInts(g.ints(s.input![3]), [3]) && !s.input![4];
  if (!sl(x2, half, D) || !sl(x1, 0, half) || g.dims(ac.invFreq)?.[0] !== half) return undefined;
  return { out: add, proj: r.input![0], N, D, a: ac };
}

export const RotaryEmbeddingFusion: Fusion = {
  name: 'RotaryEmbedding',
  emits: { [`${MS}.RotaryEmbedding`]: 'input0' },
  applies: (ft, o) => o.target !== 'plain' && ft === 'float32',
  run(g) {
    let n = 0;
    const caches = new Map<string, [string, string]>();
    for (const add of [...g.nodes]) {
      if (!g.nodes.includes(add)) continue;
      const m = match(g, add);
      if (!m) continue;
      const key = `${m.a.pos}|${m.a.invFreq}`;
      let cache = caches.get(key);
      if (!cache) {
        // (T, D/2) tables for positions 0 .. max(pos)
        const b = g.b;
        const [hiName] = g.emit(m.out, 'ReduceMax', [m.a.pos], { keepdims: 0 }, ['rope_max_position']);
        const zero = b.int64([0], [], 'rope_zero').name;
        const one = b.int64([1], [], 'rope_one').name;
        g.reindex();
        const [count] = g.emit(m.out, 'Add', [hiName, one], {}, ['rope_positions']);
        const [range] = g.emit(m.out, 'Range', [zero, count, one], {}, ['rope_range']);
        const [rangeF] = g.emit(m.out, 'Cast', [range], { to: 1 }, ['rope_range_f32']);
        const axes = b.int64([1], [1], 'rope_axes').name;
        g.reindex();
        const [col] = g.emit(m.out, 'Unsqueeze', [rangeF, axes], {}, ['rope_range_col']);
        const [fr] = g.emit(m.out, 'Mul', [col, m.a.invFreq], {}, ['rope_freqs']);
        const [cos] = g.emit(m.out, 'Cos', [fr], {}, ['rope_cos_cache']);
        const [sin] = g.emit(m.out, 'Sin', [fr], {}, ['rope_sin_cache']);
        caches.set(key, (cache = [cos, sin]));
      }
      const [rot] = g.emit(m.out, 'RotaryEmbedding', [m.proj, m.a.pos, cache[0], cache[1]], { num_heads: m.N, interleaved: 0 }, ['rotary'], MS);
      const shape = g.b.int64([0, 0, m.N, m.D], [4], 'rotary_heads_shape').name;
      g.reindex();
      const [split] = g.emit(m.out, 'Reshape', [rot, shape], {}, ['rotary_heads_split']);
      g.drop(m.out);
      g.emit(m.out, 'Transpose', [split], { perm: [0, 2, 1, 3] }, [{ name: m.out.output![0] }]);
      n++;
    }
    return n;
  },
};
