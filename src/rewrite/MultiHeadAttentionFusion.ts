// Scaled dot-product attention as lowered by transformer.ts (splitHeads / attend / mergeHeads) in
// one com.microsoft.MultiHeadAttention: self-attention, cross-attention over cached BNSH keys and
// values, and decoder self-attention with a past/present KV cache.
//
//   before:  q = Transpose(Reshape(Q, [0,0,N,D]), [0,2,1,3])          (B, N, S, D), likewise k, v
//            [k = Concat(past_k, k, axis 2);  v = Concat(past_v, v, axis 2)]   → present
//            s = MatMul(q, Transpose(k, [0,1,3,2]))  [· c | / c]  [+ bias]
//            y = Reshape(Transpose(MatMul(Softmax(s), v), [0,2,1,3]), [0,0,W])
//   after:   y [, present_k, present_v] = MultiHeadAttention(Q, K, V, , mask, bias [, past_k, past_v])
//            num_heads N, scale c (1/c; 1 when there is none)
//
// K and V go in as (B, L, W) when both are split from 3-D projections, else as BNSH (B, N, L, D)
// (cross-attention keys/values computed once per image). A padding bias (Where(mask, 0, min) over
// (B, 1, 1, T)) becomes key_padding_mask (int32) with mask_filter_value = that minimum, so the
// masked scores are exactly transformers' (score + min); any other bias (causal (B, 1, S, T),
// T5's (B, N, S, T)) is attention_bias. Grouped-query attention (reshapes around the scores) and
// float16 graphs (Casts around the scores) do not match and stay decomposed; on the CPU target the
// LLaMA decoder's self-attention is taken first by GroupQueryAttentionFusion.
import { FLOAT_MIN } from '../lower/transformer.js';
import { MS, sameInts, splitHeads, type Fusion, type GraphView, type Node } from './graph.js';

/** Where(Cast(Unsqueeze(mask, [1, 2]), bool), 0, min): the (B, 1, 1, T) padding bias of a (B, T) int64 mask. */
function paddingMask(g: GraphView, v: string): string | undefined {
  const w = g.producer(v, 'Where');
  if (!w || g.scalar(w.input![1]) !== 0 || g.scalar(w.input![2]) !== FLOAT_MIN.float32) return undefined;
  const c = g.producer(w.input![0], 'Cast');
  const u = c && g.producer(c.input![0], 'Unsqueeze');
  if (!c || g.attrInt(c, 'to') !== 9 || !u || !sameInts(g.ints(u.input![1]), [1, 2])) return undefined;
  return u.input![0];
}

interface Match {
  final: Node; // the Reshape of mergeHeads
  q: string;
  k: string;
  v: string;
  N: number;
  scale: number;
  bias?: string;
  past?: { key: string; value: string; presentKey: Node; presentValue: Node };
}

function match(g: GraphView, sm: Node): Match | undefined {
  if (sm.opType !== 'Softmax' || sm.domain) return undefined;
  const axis = g.attrInt(sm, 'axis', -1);
  if (axis !== -1 && axis !== 3) return undefined;
  // Downwards: MatMul(p, v) -> Transpose [0,2,1,3] -> Reshape [0,0,W]
  const p = sm.output![0];
  const [pv] = g.consumers(p);
  if (g.consumers(p).length !== 1 || pv.opType !== 'MatMul' || pv.input![0] !== p) return undefined;
  const [tr] = g.consumers(pv.output![0]);
  if (g.consumers(pv.output![0]).length !== 1 || tr.opType !== 'Transpose' || !sameInts(g.attrInts(tr, 'perm'), [0, 2, 1, 3])) return undefined;
  const [final] = g.consumers(tr.output![0]);
  const outShape = final && g.ints(final.input![1]);
  if (g.consumers(tr.output![0]).length !== 1 || final.opType !== 'Reshape' || !outShape || outShape.length !== 3 || outShape[0] !== 0 || outShape[1] !== 0) return undefined;
  // Upwards: [Add(bias)] <- [Mul c | Div c] <- MatMul(q, Transpose(k, [0,1,3,2]))
  let s = sm.input![0];
  let bias: string | undefined;
  const add = g.producer(s, 'Add');
  if (add) {
    if (!g.onlyFeeds(s, sm)) return undefined;
    [s, bias] = add.input! as [string, string];
  }
  let scale = 1;
  const sc = g.producer(s, 'Mul') ?? g.producer(s, 'Div');
  if (sc) {
    const c = g.scalar(sc.input![1]);
    if (c === undefined || g.constType(sc.input![1]) !== 1 /* FLOAT */ || !g.onlyFeeds(s, add ?? sm)) return undefined;
    scale = sc.opType === 'Mul' ? c : Math.fround(1 / c);
    s = sc.input![0];
  }
  const qk = g.producer(s, 'MatMul');
  if (!qk || !g.onlyFeeds(s, sc ?? add ?? sm)) return undefined;
  const kt = g.producer(qk.input![1], 'Transpose');
  if (!kt || !sameInts(g.attrInts(kt, 'perm'), [0, 1, 3, 2])) return undefined;
  const q = splitHeads(g, qk.input![0]);
  if (!q || q.N * q.D !== outShape[2]) return undefined;
  let [k, v] = [kt.input![0], pv.input![1]];

  // Keys/values: cached past + new (decoder self-attention), new only, or given BNSH.
  const ck = g.producer(k, 'Concat');
  const cv = g.producer(v, 'Concat');
  if (ck || cv) {
    if (!ck || !cv || g.attrInt(ck, 'axis') !== 2 || g.attrInt(cv, 'axis') !== 2 || ck.input!.length !== 2 || cv.input!.length !== 2) return undefined;
    const nk = splitHeads(g, ck.input![1]);
    const nv = splitHeads(g, cv.input![1]);
    if (!nk || !nv || nk.N !== q.N || nv.N !== q.N) return undefined;
    // The concatenations become present_key/value (same names: whoever else reads them still can).
    return { final, q: q.x, k: nk.x, v: nv.x, N: q.N, scale, bias, past: { key: ck.input![0], value: cv.input![0], presentKey: ck, presentValue: cv } };
  }
  const sk = splitHeads(g, k);
  const sv = splitHeads(g, v);
  if (sk && sv && sk.N === q.N && sv.N === q.N) return { final, q: q.x, k: sk.x, v: sv.x, N: q.N, scale, bias };
  return { final, q: q.x, k, v, N: q.N, scale, bias }; // BNSH (B, N, L, D)
}

export const MultiHeadAttentionFusion: Fusion = {
  name: 'MultiHeadAttention',
  emits: { [`${MS}.MultiHeadAttention`]: 'input0' },
  applies: (ft, o) => o.target !== 'plain' && ft === 'float32',
  run(g) {
    let n = 0;
    const masks = new Map<string, string>(); // int64 mask -> its int32 cast, shared by the layers
    for (const sm of [...g.nodes]) {
      if (!g.nodes.includes(sm)) continue;
      const m = match(g, sm);
      if (!m) continue;
      let kpm: string | undefined;
      let attnBias: string | undefined;
      const padded = m.bias ? paddingMask(g, m.bias) : undefined;
      if (padded) {
        kpm = masks.get(padded);
        if (!kpm) masks.set(padded, (kpm = g.emit(m.final, 'Cast', [padded], { to: 6 /* INT32 */ }, ['key_padding_mask'])[0]));
      } else attnBias = m.bias;
      const attrs = { num_heads: m.N, scale: { float: m.scale }, mask_filter_value: kpm ? { float: FLOAT_MIN.float32 } : undefined };
      const y = { name: m.final.output![0] };
      if (m.past) {
        const { presentKey, presentValue } = m.past;
        g.drop(m.final, presentKey, presentValue);
        g.emit(m.final, 'MultiHeadAttention', [m.q, m.k, m.v, undefined, kpm, attnBias, m.past.key, m.past.value], attrs, [y, { name: presentKey.output![0] }, { name: presentValue.output![0] }], MS);
      } else {
        g.drop(m.final);
        g.emit(m.final, 'MultiHeadAttention', [m.q, m.k, m.v, undefined, kpm, attnBias], attrs, [y], MS);
      }
      n++;
    }
    return n;
  },
};
