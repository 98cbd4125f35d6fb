// t5: a frozen encoder-decoder Flan-T5 (BLIP-2 / InstructBLIP flan-t5-xl / xxl). The `prefix:`
// features go in front of the encoder's token embeddings; the decoder generates. RMS layer norm,
// relative position buckets, gated-GELU feed-forward (feed_forward_proj "gated-gelu").
// prefix (B, Q, width) ++ embed(text) -> encoder -> decoder (cross-attends) -> logits (B, V)
import type { NodeKind } from './NodeKind.js';
import { ACTIVATIONS, attrSchema, bool, eps, int, n, oneOf, pick } from './schema.js';

export const T5: NodeKind = {
  kind: 't5',
  doc: 'An encoder-decoder Flan-T5 language model; `prefix:` features go before the encoder input.',
  ports: [
    { name: 'prefix', accepts: ['features'], required: false, doc: 'soft visual prompt of width `width`, before the encoder input' },
    { name: 'text', accepts: ['text'], required: false, doc: 'the encoder-side prompt text' },
  ],
  output: 'logits',
  attrSchema: attrSchema('t5', {
    width: int('hidden size (config: d_model)'),
    kv_width: int('per-head key/value width (config: d_kv)', 1, 4096),
    mlp_width: int('feed-forward width (config: d_ff)'),
    depth: int('encoder layers (config: num_layers)', 1, 1024),
    decoder_depth: int('decoder layers (config: num_decoder_layers)', 1, 1024),
    heads: int('attention heads (config: num_heads)', 1, 1024),
    vocab_size: int('vocabulary size'),
    relative_buckets: int('relative position buckets (config: relative_attention_num_buckets)', 1, 4096),
    relative_max_distance: int('relative position max distance (config: relative_attention_max_distance)', 1, 1 << 20),
    layer_norm_eps: eps('RMS layer-norm epsilon (config: layer_norm_epsilon)'),
    gated: bool('gated feed-forward (config: feed_forward_proj "gated-…")'),
    act: oneOf('feed-forward activation (config: dense_act_fn)', ACTIVATIONS),
    tie_embeddings: bool('the LM head shares the token embeddings and the decoder output is scaled by width^-0.5'),
  }),
  defaultConfig: 'text_config',
  fromConfig(section) {
    const attrs = pick(section, {
      width: 'd_model',
      kv_width: 'd_kv',
      mlp_width: 'd_ff',
      depth: 'num_layers',
      decoder_depth: 'num_decoder_layers',
      heads: 'num_heads',
      vocab_size: 'vocab_size',
      relative_buckets: 'relative_attention_num_buckets',
      relative_max_distance: 'relative_attention_max_distance',
      layer_norm_eps: 'layer_norm_epsilon',
      tie_embeddings: 'tie_word_embeddings',
    });
    if (attrs.decoder_depth === undefined && attrs.depth !== undefined) attrs.decoder_depth = attrs.depth;
    // As transformers' T5Config: "gated-gelu" -> gated, act gelu_new; "relu" -> not gated, relu.
    const proj = typeof section.feed_forward_proj === 'string' ? section.feed_forward_proj : 'relu';
    const parts = proj.split('-');
    attrs.gated = parts[0] === 'gated';
    let act = parts[parts.length - 1]; // dense_act_fn in config.json is recomputed by T5Config too
    if (proj === 'gated-gelu') act = 'gelu_new';
    attrs.act = act;
    if (attrs.tie_embeddings === undefined) attrs.tie_embeddings = true;
    // Configs saved by transformers 5 say tie_word_embeddings: true (T5Config forces it) and keep
    // the scaling decision in scale_decoder_outputs; that one wins when present.
    if (typeof section.scale_decoder_outputs === 'boolean') attrs.tie_embeddings = section.scale_decoder_outputs;
    return attrs;
  },
  outputWidth: (a) => n(a, 'vocab_size'),
  inputWidth: (port, a) => (port === 'prefix' ? n(a, 'width') : undefined),
};

// ---- lowering ----
//
// transformers' T5ForConditionalGeneration as BLIP-2 / InstructBLIP drive it: the encoder (with
// the soft prompt in front of the prompt's embeddings) runs once in encode.onnx, which also
// projects the encoder states to every decoder layer's cross-attention keys/values; decoder.onnx
// runs one step. Checkpoint layout (prefix `language_model`):
//   shared (V, d)                                   token embeddings (encoder and decoder)
//   {encoder,decoder}.block.{i}.layer.0.{SelfAttention.{q,k,v,o}, layer_norm}
//   {encoder,decoder}.block.0.layer.0.SelfAttention.relative_attention_bias (buckets, N)
//   decoder.block.{i}.layer.1.{EncDecAttention.{q,k,v,o}, layer_norm}
//   {encoder,decoder}.block.{i}.layer.{1|2}.{DenseReluDense.{wi | wi_0, wi_1}, wo}, layer_norm}
//   {encoder,decoder}.final_layer_norm
//   lm_head (V, d)                                  when stored (Flan-T5); else `shared` serves
// T5 attention is unscaled (the 1/sqrt(d) lives in the initialisation).
import type { GraphBuilder, Value } from '../lower/GraphBuilder.js';
import { Params, activation, attend, causalBias, lastPosition, lmHead, mergeHeads, paddingBias, splitHeads, type KvCache } from '../lower/transformer.js';
import type { Attrs } from './NodeKind.js';

interface T5Shape {
  d: number;
  heads: number;
  dkv: number;
  depth: number;
  decoderDepth: number;
  buckets: number;
  maxDistance: number;
  eps: number;
  gated: boolean;
  act: string;
  scale: boolean;
}

function t5Shape(a: Attrs): T5Shape {
  const need = (k: string, d?: number): number => {
    const v = a[k] ?? d;
    if (typeof v !== 'number') throw new Error(`t5: attribute ${k} is not resolved`);
    return v;
  };
  return {
    d: need('width'),
    heads: need('heads'),
    dkv: need('kv_width'),
    depth: need('depth'),
    decoderDepth: need('decoder_depth', need('depth')),
    buckets: need('relative_buckets', 32),
    maxDistance: need('relative_max_distance', 128),
    eps: need('layer_norm_eps', 1e-6),
    gated: a.gated === true,
    act: typeof a.act === 'string' ? a.act : 'relu',
    scale: a.tie_embeddings !== false,
  };
}

/**
 * T5's relative position bucket for every relative position -maxDistance..maxDistance (beyond that
 * the bucket no longer changes), with transformers' float32 arithmetic: log of the float32 ratio,
 * divided by the float32 log(max_distance / max_exact), scaled, truncated.
 */
export function relativeBucketTable(bidirectional: boolean, numBuckets: number, maxDistance: number): BigInt64Array {
  const f = Math.fround;
  const out = new BigInt64Array(2 * maxDistance + 1);
  const nb = bidirectional ? Math.floor(numBuckets / 2) : numBuckets;
  const maxExact = Math.floor(nb / 2);
  const denom = f(Math.log(maxDistance / maxExact));
  for (let rel = -maxDistance; rel <= maxDistance; rel++) {
    let bucket = 0;
    let r: number;
    if (bidirectional) {
      if (rel > 0) bucket += nb;
      r = Math.abs(rel);
    } else r = -Math.min(rel, 0);
    if (r < maxExact) bucket += r;
    else {
      const large = maxExact + Math.trunc(f(f(f(Math.log(f(r / maxExact))) / denom) * (nb - maxExact)));
      bucket += Math.min(large, nb - 1);
    }
    out[rel + maxDistance] = BigInt(bucket);
  }
  return out;
}

/**
 * Relative position bias (1, N, L, T) for queries at positions qStart..qStart+L-1 over keys 0..T-1,
 * from block 0's relative_attention_bias; float32.
 */
function positionBias(p: Params, key: string, s: T5Shape, bidirectional: boolean, qpos: Value, kpos: Value, role: string): Value {
  const b = p.b;
  const rel = b.op('Sub', [kpos, b.op('Unsqueeze', [qpos, b.int64([1], [1], `${role}_ax`)], {}, { name: `${role}_qcol` })], {}, { name: `${role}_rel` }); // (L, T): key - query
  const md = s.maxDistance;
  const clipped = b.op('Min', [b.op('Max', [rel, b.int64([-md], [], `${role}_lo`)], {}, { name: `${role}_max` }), b.int64([md], [], `${role}_hi`)], {}, { name: `${role}_clip` });
  const index = b.op('Add', [clipped, b.int64([md], [], `${role}_shift`)], {}, { name: `${role}_index` });
  const table = b.int64([...relativeBucketTable(bidirectional, s.buckets, md)].map(Number), [2 * md + 1], `${role}_buckets`);
  const bucket = b.op('Gather', [table, index], { axis: 0 }, { name: `${role}_bucket` }); // (L, T)
  let bias = b.op('Gather', [p.tensor(key), bucket], { axis: 0 }, { name: `${role}_values` }); // (L, T, N)
  if (b.weights.floatType === 'float16') bias = b.cast(bias, 'float32', `${role}_f32`);
  return b.op('Unsqueeze', [b.transpose(bias, [2, 0, 1], `${role}_heads`), b.int64([0], [1], `${role}_b`)], {}, { name: role }); // (1, N, L, T)
}

function range(b: GraphBuilder, start: Value, end: Value, role: string): Value {
  return b.op('Range', [start, end, b.int64([1], [], `${role}_step`)], {}, { name: role });
}

function scalarDim(b: GraphBuilder, x: Value, axis: number, role: string): Value {
  return b.op('Squeeze', [b.op('Shape', [x], { start: axis, end: axis + 1 }, { name: `${role}_1d` })], {}, { name: role });
}

function t5Attention(p: Params, x: Value, kv: Value | [Value, Value], key: string, s: T5Shape, bias: Value | undefined, role: string, cache?: { i: number; c: KvCache }): Value {
  const b = p.b;
  return b.scope(role, () => {
    const heads = (v: Value, r: string) => splitHeads(b, v, s.heads, s.dkv, r);
    const q = heads(p.linear(x, `${key}.q`, 'q'), 'q_heads'); // (B, N, L, dkv)
    let k: Value;
    let v: Value;
    if (Array.isArray(kv)) [k, v] = kv; // precomputed cross keys/values (B, N, Lenc, dkv)
    else {
      k = heads(p.linear(kv, `${key}.k`, 'k'), 'k_heads');
      v = heads(p.linear(kv, `${key}.v`, 'v'), 'v_heads');
      if (cache) [k, v] = cache.c.extend(cache.i, k, v);
    }
    return p.linear(mergeHeads(b, attend(b, q, k, v, { bias }), s.heads * s.dkv), `${key}.o`, 'o');
  });
}

function t5FeedForward(p: Params, x: Value, key: string, s: T5Shape): Value {
  const b = p.b;
  return b.scope('ffn', () => {
    const dense = `${key}.DenseReluDense`;
    const hidden = s.gated
      ? b.mul(activation(b, p.linear(x, `${dense}.wi_0`, 'wi_0'), s.act), p.linear(x, `${dense}.wi_1`, 'wi_1'), 'gated')
      : activation(b, p.linear(x, `${dense}.wi`, 'wi'), s.act);
    return p.linear(hidden, `${dense}.wo`, 'wo');
  });
}

export interface T5EncodeOutputs {
  /** Per decoder layer: cross-attention keys and values (B, N, Lenc, dkv). */
  cross: Array<[Value, Value]>;
  /** The encoder's attention mask (B, Lenc) int64: ones for the soft prompt, then the prompt's. */
  mask: Value;
  /** Encoder output (B, Lenc, d). */
  hidden: Value;
}

/**
 * encode.onnx side: [soft prompt (B, Q, d) ; embed(input_ids) (B, S, d)] through the encoder, then
 * the cross-attention keys/values of every decoder layer. Placeholder and legacy checkpoints agree
 * here: the Q `<image>` embeddings the prompt starts with are replaced by the soft prompt.
 */
export function lowerT5Encode(p: Params, prefix: string, attrs: Attrs, inp: { prefix?: Value; ids: Value; mask: Value }): T5EncodeOutputs {
  const b = p.b;
  const s = t5Shape(attrs);
  const embedKey = p.first(`${prefix}.shared.weight`, `${prefix}.encoder.embed_tokens.weight`)!;
  const tokens = p.embed(inp.ids, embedKey, 'tokens'); // (B, S, d)
  let h = tokens;
  let mask = inp.mask;
  if (inp.prefix) {
    h = b.concat([inp.prefix, tokens], 1, 'inputs_embeds'); // (B, Q + S, d)
    const shape = b.concat([b.op('Shape', [inp.mask], { start: 0, end: 1 }, { name: 'mask_batch' }), b.op('Shape', [inp.prefix], { start: 1, end: 2 }, { name: 'prefix_len' })], 0, 'prefix_mask_shape');
    const ones = b.op('ConstantOfShape', [shape], { value: { tensor: { dataType: 7, dims: [1], int64Data: [1] } } }, { name: 'prefix_mask' }); // (B, Q)
    mask = b.concat([ones, inp.mask], 1, 'encoder_mask'); // (B, Q + S)
  }
  const L = scalarDim(b, h, 1, 'enc_len');
  const positions = range(b, b.int64([0], [], 'zero'), L, 'enc_positions');
  const enc = `${prefix}.encoder`;
  const bias = b.add(positionBias(p, `${enc}.block.0.layer.0.SelfAttention.relative_attention_bias.weight`, s, true, positions, positions, 'enc_position_bias'), paddingBias(b, mask, 'enc_pad_bias'), 'enc_bias'); // (B, N, L, L)
  for (let i = 0; i < s.depth; i++) {
    const blk = `${enc}.block.${i}`;
    h = b.scope(`t5.encoder.${i}`, () => {
      const x = p.rmsNorm(h, `${blk}.layer.0.layer_norm.weight`, s.eps, 'ln_attn');
      const a = t5Attention(p, x, x, `${blk}.layer.0.SelfAttention`, s, bias, 'self');
      const r = b.add(h, a, 'attn_residual');
      return b.add(r, t5FeedForward(p, p.rmsNorm(r, `${blk}.layer.1.layer_norm.weight`, s.eps, 'ln_ffn'), `${blk}.layer.1`, s), 'ffn_residual');
    });
  }
  const hidden = p.rmsNorm(h, `${enc}.final_layer_norm.weight`, s.eps, 'enc_final_norm'); // (B, Lenc, d)
  const cross: Array<[Value, Value]> = [];
  for (let i = 0; i < s.decoderDepth; i++) {
    const key = `${prefix}.decoder.block.${i}.layer.1.EncDecAttention`;
    cross.push(b.scope(`t5.cross.${i}`, () => [
      splitHeads(b, p.linear(hidden, `${key}.k`, 'k'), s.heads, s.dkv, 'key'),
      splitHeads(b, p.linear(hidden, `${key}.v`, 'v'), s.heads, s.dkv, 'value'),
    ]));
  }
  return { cross, mask, hidden };
}

/**
 * decoder.onnx: one step of the decoder over its self-attention cache and the encoder's
 * cross keys/values -> last-position logits (B, V). Relative positions count from the past length.
 */
export function lowerT5Decoder(p: Params, prefix: string, attrs: Attrs, cache: KvCache, cross: { kv: Array<[Value, Value]>; mask: Value }): Value {
  const b = p.b;
  const s = t5Shape(attrs);
  const dec = `${prefix}.decoder`;
  const embedKey = p.first(`${prefix}.shared.weight`, `${dec}.embed_tokens.weight`)!;
  let h = p.embed(cache.inputIds, embedKey, 'tokens'); // (B, S, d)
  const T = scalarDim(b, cache.mask, 1, 'total_len');
  const S = scalarDim(b, cache.inputIds, 1, 'step_len');
  const qpos = range(b, b.op('Sub', [T, S], {}, { name: 'past_len' }), T, 'query_positions'); // P .. T-1
  const kpos = range(b, b.int64([0], [], 'zero'), T, 'key_positions');
  const selfBias = b.add(positionBias(p, `${dec}.block.0.layer.0.SelfAttention.relative_attention_bias.weight`, s, false, qpos, kpos, 'dec_position_bias'), causalBias(b, cache.mask, h), 'dec_bias'); // (B, N, S, T)
  const crossBias = paddingBias(b, cross.mask, 'cross_bias'); // (B, 1, 1, Lenc)
  for (let i = 0; i < s.decoderDepth; i++) {
    const blk = `${dec}.block.${i}`;
    h = b.scope(`t5.decoder.${i}`, () => {
      const x = p.rmsNorm(h, `${blk}.layer.0.layer_norm.weight`, s.eps, 'ln_self');
      const r1 = b.add(h, t5Attention(p, x, x, `${blk}.layer.0.SelfAttention`, s, selfBias, 'self', { i, c: cache }), 'self_residual');
      const y = p.rmsNorm(r1, `${blk}.layer.1.layer_norm.weight`, s.eps, 'ln_cross');
      const r2 = b.add(r1, t5Attention(p, y, cross.kv[i], `${blk}.layer.1.EncDecAttention`, s, crossBias, 'cross'), 'cross_residual');
      return b.add(r2, t5FeedForward(p, p.rmsNorm(r2, `${blk}.layer.2.layer_norm.weight`, s.eps, 'ln_ffn'), `${blk}.layer.2`, s), 'ffn_residual');
    });
  }
  let last = p.rmsNorm(lastPosition(b, h), `${dec}.final_layer_norm.weight`, s.eps, 'dec_final_norm'); // (B, d)
  // Original T5 scales before its tied head; Flan-T5 (scale_decoder_outputs false) does not.
  if (s.scale) last = b.mul(last, b.scalar(s.d ** -0.5), 'scaled');
  return lmHead(p, last, p.first(`${prefix}.lm_head.weight`, embedKey)!); // (B, V)
}
