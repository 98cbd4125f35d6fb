// A LLaMA decoder's cached causal self-attention (rotary q/k, grouped or equal key/value heads) as
// one com.microsoft.GroupQueryAttention, on the CPU target only.
//
//   before:  q = Transpose(Reshape(RotaryEmbedding(Q), [0,0,N,D]), [0,2,1,3])          (B, N, L, D)
//            k = Concat(past_k, Transpose(Reshape(RotaryEmbedding(K), [0,0,Nkv,D])), axis 2)  → present_k
//            v = Concat(past_v, Transpose(Reshape(V, [0,0,Nkv,D])), axis 2)                   → present_v
//            s = MatMul([Reshape(q, [0,Nkv,-1,0])], Transpose(k, [0,1,3,2])) · c   [Reshape [0,N,-1,0]]
//            p = Softmax(s + bias)                                                 [Reshape [0,Nkv,-1,0]]
//            y = Reshape(Transpose([Reshape](MatMul(p, v)), [0,2,1,3]), [0,0,N·D])
//            bias = Where(LessOrEqual(key pos, query pos) ∧ mask, 0, float32 min)   (B, 1, L, T)
//   after:   y, present_k, present_v = GroupQueryAttention(Q, K, V, past_k, past_v, seqlens_k, T,
//                                        , , , bias)   num_heads N, kv_num_heads Nkv, scale c, causal 0
//            seqlens_k = T - 1 for every row (int32 (B)), T = the mask's width (int32 scalar)
//
// Padding. transformers pads decoder-only prompts on the left; onnxruntime's GroupQueryAttention
// has no key padding mask and reads seqlens_k as "the keys 0..seqlens_k are valid" (right padding).
// So every row gets the full width T (the cache is laid out with its padding in place) and the
// padding goes in as the same additive bias the decomposed graph adds (attention_bias, input 10).
// causal = 0 because that bias already holds the causal mask: with causal = 1 the kernel would also
// cut each query's softmax at its own position, which changes nothing for real tokens but turns a
// fully masked (padding) query row from transformers' uniform average over all T keys into one over
// its causal window, so the padding rows of present_k/v would differ. With causal = 0 the result is
// the unfused graph's on every row (onnxruntime 1.30 CPU, checked by the test).
//
// Rotary positions stay in their own RotaryEmbedding (do_rotary is not used): generate numbers the
// positions of a left-padded row from the mask (cumsum − 1), while GroupQueryAttention's rotary
// counts from the cache length, and its CPU kernel wants head_size % 16 for rotary.
//
// Where: the CPU kernel takes float32 (head_size a multiple of 8). CUDA has no float32 kernel, and
// WebGPU refuses causal = 0 (onnxruntime-node 1.30), so the cuda and webgpu targets keep
// MultiHeadAttention (equal heads) or the decomposed form (grouped). The CPU kernel refuses a batch
// of more than one row when S > 1 positions follow a non-empty cache; the runtime never feeds that
// (prefill starts from an empty cache, later steps are one token).
import { FLOAT_MIN } from '../lower/transformer.js';
import { MS, sameInts, splitHeads, type Fusion, type GraphView, type Node } from './graph.js';

const isRotary = (g: GraphView, v: string) => {
  const p = g.producer(v);
  return !!p && p.opType === 'RotaryEmbedding' && p.domain === MS;
};

/** causalBias() of transformer.ts: Where(And(LessOrEqual(kpos, qpos), Cast(Unsqueeze(mask, [1, 2]), bool)), 0, min) -> mask. */
function causalMask(g: GraphView, v: string): string | undefined {
  const w = g.producer(v, 'Where');
  if (!w || g.scalar(w.input![1]) !== 0 || g.scalar(w.input![2]) !== FLOAT_MIN.float32) return undefined;
  const and = g.producer(w.input![0], 'And');
  const le = and && g.producer(and.input![0], 'LessOrEqual');
  const c = and && g.producer(and.input![1], 'Cast');
  const u = c && g.producer(c.input![0], 'Unsqueeze');
  if (!le || !c || g.attrInt(c, 'to') !== 9 || !u || !sameInts(g.ints(u.input![1]), [1, 2])) return undefined;
  return u.input![0];
}

/** Reshape(x, [0, n, -1, 0]) -> x (the grouped-head views of attend()). */
function regroup(g: GraphView, v: string, n: number): string | undefined {
  const r = g.producer(v, 'Reshape');
  return r && sameInts(g.ints(r.input![1]), [0, n, -1, 0]) ? r.input![0] : undefined;
}

/** The single consumer of `v`, if it is an `op` (default domain) reading `v` as input `at`. */
function only(g: GraphView, v: string, op: string, at = 0): Node | undefined {
  const cs = g.consumers(v);
  if (cs.length !== 1 || g.isGraphOutput(v)) return undefined;
  const c = cs[0];
  return c.opType === op && !c.domain && c.input![at] === v ? c : undefined;
}

interface Match {
  final: Node; // the Reshape of mergeHeads
  q: string;
  k: string;
  v: string;
  N: number;
  Nkv: number;
  scale: number;
  bias: string;
  mask: string;
  pastKey: string;
  pastValue: string;
  presentKey: Node;
  presentValue: Node;
}

function match(g: GraphView, sm: Node): Match | undefined {
  if (sm.opType !== 'Softmax' || sm.domain) return undefined;
  const axis = g.attrInt(sm, 'axis', -1);
  if (axis !== -1 && axis !== 3) return undefined;
  // Upwards: Add(bias) <- [Reshape [0,N,-1,0]] <- Mul c | Div c <- MatMul(q', Transpose(k, [0,1,3,2]))
  const add = g.producer(sm.input![0], 'Add');
  if (!add || !g.onlyFeeds(sm.input![0], sm)) return undefined;
  const bias = add.input![1];
  const mask = causalMask(g, bias);
  if (!mask) return undefined;
  let s = add.input![0];
  const heads = g.producer(s, 'Reshape'); // grouped: the scores back to (B, N, L, T)
  if (heads) {
    if (!g.onlyFeeds(s, add)) return undefined;
    s = heads.input![0];
  }
  const sc = g.producer(s, 'Mul') ?? g.producer(s, 'Div');
  const c = sc && g.scalar(sc.input![1]);
  if (!sc || c === undefined || g.constType(sc.input![1]) !== 1 /* FLOAT */ || !g.onlyFeeds(s, heads ?? add)) return undefined;
  const scale = sc.opType === 'Mul' ? c : Math.fround(1 / c);
  const qk = g.producer(sc.input![0], 'MatMul');
  if (!qk || !g.onlyFeeds(sc.input![0], sc)) return undefined;
  const kt = g.producer(qk.input![1], 'Transpose');
  if (!kt || !sameInts(g.attrInts(kt, 'perm'), [0, 1, 3, 2])) return undefined;
  const ck = g.producer(kt.input![0], 'Concat');
  if (!ck || g.attrInt(ck, 'axis') !== 2 || ck.input!.length !== 2) return undefined;
  const nk = splitHeads(g, ck.input![1]);
  if (!nk || !isRotary(g, nk.x)) return undefined;
  const Nkv = nk.N;
  let qv = qk.input![0];
  if (heads) {
    const ungrouped = regroup(g, qv, Nkv);
    if (!ungrouped) return undefined;
    qv = ungrouped;
  }
  const q = splitHeads(g, qv);
  if (!q || !isRotary(g, q.x) || q.D !== nk.D) return undefined;
  const [N, D] = [q.N, q.D];
  if (N % Nkv !== 0 || D % 8 !== 0) return undefined; // the CPU kernel's head_size rule
  if (heads ? !sameInts(g.ints(heads.input![1]), [0, N, -1, 0]) || N === Nkv : N !== Nkv) return undefined;

  // Downwards: [Reshape [0,Nkv,-1,0]] -> MatMul(p, v) -> [Reshape [0,N,-1,0]] -> Transpose [0,2,1,3] -> Reshape [0,0,N·D]
  let p = sm.output![0];
  if (heads) {
    const r = only(g, p, 'Reshape');
    if (!r || !sameInts(g.ints(r.input![1]), [0, Nkv, -1, 0])) return undefined;
    p = r.output![0];
  }
  const pv = only(g, p, 'MatMul');
  if (!pv) return undefined;
  let o = pv.output![0];
  if (heads) {
    const r = only(g, o, 'Reshape');
    if (!r || !sameInts(g.ints(r.input![1]), [0, N, -1, 0])) return undefined;
    o = r.output![0];
  }
  const tr = only(g, o, 'Transpose');
  if (!tr || !sameInts(g.attrInts(tr, 'perm'), [0, 2, 1, 3])) return undefined;
  const final = only(g, tr.output![0], 'Reshape');
  if (!final || !sameInts(g.ints(final.input![1]), [0, 0, N * D])) return undefined;
  const cv = g.producer(pv.input![1], 'Concat');
  if (!cv || g.attrInt(cv, 'axis') !== 2 || cv.input!.length !== 2) return undefined;
  const nv = splitHeads(g, cv.input![1]);
  if (!nv || nv.N !== Nkv || nv.D !== D) return undefined;
  return { final, q: q.x, k: nk.x, v: nv.x, N, Nkv, scale, bias, mask, pastKey: ck.input![0], pastValue: cv.input![0], presentKey: ck, presentValue: cv };
}

export const GroupQueryAttentionFusion: Fusion = {
  name: 'GroupQueryAttention',
  emits: { [`${MS}.GroupQueryAttention`]: 'input0' },
  applies: (ft, o) => o.target === 'cpu' && ft === 'float32',
  run(g) {
    let n = 0;
    const lengths = new Map<string, [string, string]>(); // mask -> seqlens_k, total_sequence_length (shared by the layers)
    for (const sm of [...g.nodes]) {
      if (!g.nodes.includes(sm)) continue;
      const m = match(g, sm);
      if (!m) continue;
      let len = lengths.get(m.mask);
      if (!len) {
        const b = g.b;
        const one = b.int64([1], [1], 'gqa_one').name;
        g.reindex();
        const [T] = g.emit(m.final, 'Shape', [m.mask], { start: 1, end: 2 }, ['gqa_total_length']); // (1) int64
        const [B] = g.emit(m.final, 'Shape', [m.mask], { start: 0, end: 1 }, ['gqa_batch']);
        const [last] = g.emit(m.final, 'Sub', [T, one], {}, ['gqa_last_index']);
        const [rows] = g.emit(m.final, 'Expand', [last, B], {}, ['gqa_seqlens_k_i64']);
        const [seqlens] = g.emit(m.final, 'Cast', [rows], { to: 6 /* INT32 */ }, ['gqa_seqlens_k']);
        const [T0] = g.emit(m.final, 'Squeeze', [T], {}, ['gqa_total_length_scalar']);
        const [total] = g.emit(m.final, 'Cast', [T0], { to: 6 /* INT32 */ }, ['gqa_total_sequence_length']);
        lengths.set(m.mask, (len = [seqlens, total]));
      }
      const { presentKey, presentValue } = m;
      g.drop(m.final, presentKey, presentValue);
      g.emit(
        m.final,
        'GroupQueryAttention',
        [m.q, m.k, m.v, m.pastKey, m.pastValue, len[0], len[1], undefined, undefined, undefined, m.bias],
        { num_heads: m.N, kv_num_heads: m.Nkv, scale: { float: m.scale }, causal: 0 },
        [{ name: m.final.output![0] }, { name: presentKey.output![0] }, { name: presentValue.output![0] }],
        MS,
      );
      n++;
    }
    return n;
  },
};
