// t5: a frozen encoder-decoder Flan-T5 (BLIP-2 / InstructBLIP flan-t5-xl / xxl). The `prefix:`
// features go in front of the encoder's token embeddings; the decoder generates. RMS layer norm,
// relative position buckets, gated-GELU feed-forward (feed_forward_proj "gated-gelu").
// prefix (B, Q, width) ++ embed(text) -> encoder -> decoder (cross-attends) -> logits (B, V)
import type { NodeKind } from './NodeKind.js';
import type { IrValue } from '../ir/types.js';
import { ACTIVATIONS, attrSchema, bool, eps, int, n, oneOf, pick, shown } from './schema.js';
import type { FeaturesFlow, KV, LowerContext, StepInputs, StepOutputs, TextFlow } from '../lower/contract.js';
import type { Value } from '../lower/GraphBuilder.js';
import { activation, attend, causalBias, lastPosition, mergeHeads, paddingBias, rmsNorm, splitHeads, type QueryGroups } from '../lower/transformer.js';
import { dense, onesMask, tiedOrOwn } from '../lower/blocks.js';
import { CompileError, type Problem } from '../lower/CompileError.js';

/** The config.json keys of the relative position settings (named in their errors). */
const BUCKET_KEYS = { relative_buckets: 'relative_attention_num_buckets', relative_max_distance: 'relative_attention_max_distance' } as const;

export const T5: NodeKind = {
  kind: 't5',
  doc: 'An encoder-decoder Flan-T5 language model; `prefix:` features go before the encoder input.',
  ports: [
    { name: 'prefix', role: 'soft-prompt', accepts: ['features'], required: false, doc: 'soft visual prompt of width `width`, before the encoder input' },
    { name: 'text', role: 'text', accepts: ['text'], required: false, doc: 'the encoder-side prompt text' },
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
    relative_buckets: int('relative position buckets (config: relative_attention_num_buckets; at least 4: each direction keeps half of its buckets for exact distances)', 4, 4096),
    relative_max_distance: int('relative position max distance (config: relative_attention_max_distance)', 1, 1 << 20),
    layer_norm_eps: eps('RMS layer-norm epsilon (config: layer_norm_epsilon)'),
    gated: bool('gated feed-forward (config: is_gated_act, else feed_forward_proj "gated-…")'),
    act: oneOf('feed-forward activation (config: dense_act_fn, else from feed_forward_proj)', ACTIVATIONS),
    tie_embeddings: bool('the LM head shares the token embeddings and the decoder output is scaled by width^-0.5'),
  }),
  defaultConfig: 'text_config',
  modelTypes: ['t5'],
  fromConfig(section) {
    const attrs = pick(section, {
      width: 'd_model',
      kv_width: 'd_kv',
      mlp_width: 'd_ff',
      depth: 'num_layers',
      decoder_depth: 'num_decoder_layers',
      heads: 'num_heads',
      vocab_size: 'vocab_size',
      ...BUCKET_KEYS,
      layer_norm_eps: 'layer_norm_epsilon',
      tie_embeddings: 'tie_word_embeddings',
    });
    if (attrs.decoder_depth === undefined && attrs.depth !== undefined) attrs.decoder_depth = attrs.depth;
    // As transformers' T5Config: feed_forward_proj "gated-gelu" -> gated, act gelu_new; "relu" -> not
    // gated, relu. dense_act_fn and is_gated_act written in the file then replace what it derived
    // (__post_init__ derives them, then sets the file's own keys over them), as the model is built.
    const proj = typeof section.feed_forward_proj === 'string' ? section.feed_forward_proj : 'relu';
    const parts = proj.split('-');
    attrs.gated = parts[0] === 'gated';
    let act = parts[parts.length - 1];
    if (proj === 'gated-gelu') act = 'gelu_new';
    attrs.act = act;
    // (null: transformers builds no activation from None, so it goes to the schema to be refused by name)
    if (section.dense_act_fn !== undefined) attrs.act = section.dense_act_fn as IrValue;
    // (null is falsy: the plain feed-forward)
    if (section.is_gated_act !== undefined) attrs.gated = section.is_gated_act === null ? false : (section.is_gated_act as IrValue);
    if (attrs.tie_embeddings === undefined) attrs.tie_embeddings = true;
    // Configs saved by transformers 5 say tie_word_embeddings: true (T5Config forces it) and keep
    // the scaling decision in scale_decoder_outputs; that one wins when present.
    if (typeof section.scale_decoder_outputs === 'boolean') attrs.tie_embeddings = section.scale_decoder_outputs;
    return attrs;
  },
  outputWidth: (a) => n(a, 'vocab_size'),
  inputWidth: (port, a) => (port === 'prefix' ? n(a, 'width') : undefined),
  generates: true,
  drawnSizes: (a) => `width ${shown(n(a, 'width'))} · depth ${shown(n(a, 'depth'))}+${shown(n(a, 'decoder_depth') ?? n(a, 'depth'))}`,
};

// ---- lowering (src/lower/contract.ts) ----
// transformers' T5ForConditionalGeneration as BLIP-2 / InstructBLIP drive it. The encoder, with
// the soft prompt in front of the prompt's embeddings, runs once in encode.onnx, which also
// projects the encoder states to every decoder layer's cross-attention keys/values; decoder.onnx
// runs one step. At prefix `language_model`:
//   shared (V, d)                                   token embeddings (the prompt's, and the decoder's
//                                                   unless decoder.embed_tokens is stored apart)
//   {encoder,decoder}.block.{i}.layer.0.{SelfAttention.{q,k,v,o}, layer_norm}
//   {encoder,decoder}.block.0.layer.0.SelfAttention.relative_attention_bias (buckets, N)
//   decoder.block.{i}.layer.1.{EncDecAttention.{q,k,v,o}, layer_norm}
//   {encoder,decoder}.block.{i}.layer.{1|2}.{DenseReluDense.{wi | wi_0, wi_1, wo}, layer_norm}
//   {encoder,decoder}.final_layer_norm
//   lm_head (V, d)                                  when stored apart (Flan-T5); else `shared` serves
// T5 attention is unscaled (the 1/sqrt(d) lives in the initialisation).
T5.lowering = {
  defaults: { relative_buckets: 32, relative_max_distance: 128, layer_norm_eps: 1e-6, gated: false, act: 'relu', tie_embeddings: true },
  ignored: () => [
    // BLIP-2 / InstructBLIP embed the prompt through get_input_embeddings() (`shared`) and hand the
    // encoder inputs_embeds: encoder.embed_tokens, tied or stored apart, is never used (it is read
    // only when it stands in for a missing `shared`: tiedSource)
    /encoder\.embed_tokens\.weight/,
    /decoder\.block\.0\.layer\.1\.EncDecAttention\.relative_attention_bias\.weight/, // unused (transformers ignores it too)
  ],
  decoder: {
    textInEncode: true, // the prompt is the encoder's input; decoder.onnx gets the decoder's tokens
    facts: (ctx) => ({ layers: ctx.int('decoder_depth'), kvHeads: ctx.int('heads'), headDim: ctx.int('kv_width'), hidden: ctx.int('width'), vocab: ctx.int('vocab_size'), positions: 'past_length' }),
    encode(ctx, inputs) {
      const text = inputs.text as TextFlow | undefined;
      if (!text) throw new CompileError('BLIP4015', 't5: the encoder needs the `text:` prompt in encode.onnx', ctx.node.loc);
      const e = t5Encode(ctx, (inputs.prefix as FeaturesFlow | undefined)?.hidden, text);
      return { cross: e.cross, crossMask: e.mask };
    },
    step: t5Step,
  },
};

interface Dims {
  d: number;
  N: number;
  dkv: number;
  F: number;
  V: number;
  eps: number;
}

const dims = (ctx: LowerContext): Dims => ({ d: ctx.int('width'), N: ctx.int('heads'), dkv: ctx.int('kv_width'), F: ctx.int('mlp_width'), V: ctx.int('vocab_size'), eps: ctx.num('layer_norm_eps') });

/**
 * T5's relative position bucket for every relative position -maxDistance..maxDistance (beyond that
 * the bucket no longer changes), in transformers' float32 arithmetic: log of the float32 ratio,
 * divided by the float32 log(max_distance / max_exact), scaled, truncated. At the log-spaced edges
 * (relative position 16 with 32 buckets, ...) the rounding decides the bucket.
 */
export function relativeBucketTable(bidirectional: boolean, numBuckets: number, maxDistance: number): BigInt64Array {
  const f = Math.fround;
  const out = new BigInt64Array(2 * maxDistance + 1);
  const nb = bidirectional ? Math.floor(numBuckets / 2) : numBuckets;
  const maxExact = Math.floor(nb / 2);
  const denom = f(Math.log(maxDistance / maxExact));
  for (let rel = -maxDistance; rel <= maxDistance; rel++) {
    let bucket = bidirectional && rel > 0 ? nb : 0;
    const r = bidirectional ? Math.abs(rel) : -Math.min(rel, 0);
    if (r < maxExact) bucket += r;
    else bucket += Math.min(maxExact + Math.trunc(f(f(f(Math.log(f(r / maxExact))) / denom) * (nb - maxExact))), nb - 1);
    out[rel + maxDistance] = BigInt(bucket);
  }
  return out;
}

/**
 * The relative position settings transformers' bucket formula can use, checked before a table is
 * built from them. Of `n` buckets the encoder's bidirectional attention gives each direction
 * floor(n / 2) and the decoder's causal one all n; the first half of a direction's buckets are exact
 * distances (max_exact: floor(n / 4) in the encoder, floor(n / 2) in the decoder), the rest
 * log-spaced, dividing by log(max_distance / max_exact). Under 4 buckets the encoder has no exact
 * one (transformers: ZeroDivisionError; here a NaN bucket): the attribute schema's minimum, so
 * `blip check` refuses a pinned one (BLIP3003) and the compile one from config.json (BLIP4017).
 * A max distance at or below the decoder's max_exact, which depends on the count and so is checked
 * here, divides by log(1) = 0 or spaces the buckets backwards (transformers: bucket ids outside its
 * table), and the table below, which stops at max_distance, would differ from it.
 */
function bucketProblems(ctx: LowerContext): Problem[] {
  const section = ctx.node.config ?? T5.defaultConfig;
  const said = (attr: keyof typeof BUCKET_KEYS, v: number) =>
    attr in ctx.node.attrs ? `attribute "${attr}" of node "${ctx.node.name}" (t5) is ${v}` : `config.json "${section ? `${section}.` : ''}${BUCKET_KEYS[attr]}" says ${v} for attribute "${attr}" of node "${ctx.node.name}" (t5)`;
  const [n, md] = [ctx.int('relative_buckets'), ctx.int('relative_max_distance')];
  const out: Problem[] = [];
  const maxExact = Math.floor(n / 2);
  if (md <= maxExact)
    out.push({ code: 'BLIP4017', message: `${said('relative_max_distance', md)}: expected at least ${maxExact + 1} with ${n} buckets (the decoder's first ${maxExact} are exact distances, the rest log-spaced from there up to the max distance; transformers gives bucket ids outside its table)`, loc: ctx.attrLoc('relative_max_distance') });
  return out;
}

/** Relative position bias (1, N, L, T), float32, for query positions qpos (L) over key positions kpos (T). */
function positionBias(ctx: LowerContext, stack: string, bidirectional: boolean, qpos: Value, kpos: Value, role: string): Value {
  const { b } = ctx;
  const [buckets, md, N] = [ctx.int('relative_buckets'), ctx.int('relative_max_distance'), ctx.int('heads')];
  const problems = bucketProblems(ctx);
  if (problems.length) throw new CompileError(problems);
  return b.scope(role, () => {
    const rel = b.sub(kpos, b.unsqueeze(qpos, [1], 'query_col'), 'relative'); // (L, T): key - query
    const clipped = b.op('Min', [b.op('Max', [rel, b.int64([-md], [], 'lo')], {}, { name: 'max' }), b.int64([md], [], 'hi')], {}, { name: 'clipped' });
    const table = b.int64([...relativeBucketTable(bidirectional, buckets, md)].map(Number), [2 * md + 1], 'bucket_table');
    const bucket = b.gather(table, b.add(clipped, b.int64([md], [], 'shift'), 'table_index'), 0, 'bucket'); // (L, T)
    let bias = b.gather(ctx.param(`${stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight`, [buckets, N]), bucket, 0, 'values'); // (L, T, N)
    if (b.floatType === 'float16') bias = b.cast(bias, 'float32', 'values_f32');
    return b.unsqueeze(b.transpose(bias, [2, 0, 1], 'per_head'), [0], 'bias'); // (1, N, L, T)
  });
}

function attention(ctx: LowerContext, dm: Dims, x: Value, kv: Value | KV, p: string, bias: Value, past?: KV, groups?: QueryGroups): { out: Value; present?: KV } {
  const { b } = ctx;
  const heads = (t: Value, role: string) => splitHeads(b, t, dm.N, dm.dkv, role); // (B, N, L, dkv)
  const inner = dm.N * dm.dkv;
  const qx = dense(ctx, x, `${p}.q`, dm.d, inner, 'q', false);
  const q = heads(groups ? groups.group(qx, inner) : qx, 'query');
  let k: Value;
  let v: Value;
  if ('key' in kv) ({ key: k, value: v } = kv); // cross-attention: keys/values from encode.onnx
  else {
    k = heads(dense(ctx, kv, `${p}.k`, dm.d, inner, 'k', false), 'key');
    v = heads(dense(ctx, kv, `${p}.v`, dm.d, inner, 'v', false), 'value');
    if (past) {
      k = b.concat([past.key, k], 2, 'present_key'); // (B, N, T, dkv)
      v = b.concat([past.value, v], 2, 'present_value');
    }
  }
  const context = mergeHeads(b, attend(b, q, k, v, { bias }), inner, 'context');
  const out = dense(ctx, groups ? groups.ungroup(context, x, inner) : context, `${p}.o`, inner, dm.d, 'o', false);
  return { out, present: past ? { key: k, value: v } : undefined };
}

/** The feed-forward sublayer; `float32`: its output is float32 in a float16 graph (a kept `wo`). */
function feedForward(ctx: LowerContext, dm: Dims, x: Value, p: string): { out: Value; float32: boolean } {
  const { b } = ctx;
  const r = `${p}.DenseReluDense`;
  // transformers keeps T5's `wo` in float32 in a float16 model (_keep_in_fp32_modules = ["wo"],
  // src/lower/keepFloat32.ts): the gated activations are cast up, the product and its output are float32.
  const float32 = b.floatType === 'float16' && ctx.keptFloat32(`${r}.wo.weight`);
  const out = b.scope('DenseReluDense', () => {
    const act = ctx.str('act');
    const hidden = ctx.bool('gated')
      ? b.mul(activation(b, dense(ctx, x, `${r}.wi_0`, dm.d, dm.F, 'wi_0', false), act), dense(ctx, x, `${r}.wi_1`, dm.d, dm.F, 'wi_1', false), 'gated')
      : activation(b, dense(ctx, x, `${r}.wi`, dm.d, dm.F, 'wi', false), act);
    if (float32) return b.withFloatType('float32', () => dense(ctx, b.cast(hidden, 'float32', 'wo_input_f32'), `${r}.wo`, dm.F, dm.d, 'wo', false));
    return dense(ctx, hidden, `${r}.wo`, dm.F, dm.d, 'wo', false);
  });
  return { out, float32 };
}

/**
 * The residual stream of a float16 T5 as transformers computes it: float16 until the first
 * feed-forward, whose float32 `wo` output promotes the sum (float16 + float32 -> float32), and float32
 * from then on; sublayer outputs (float16 attention, float32 feed-forward) are added in float32, and
 * each RMS norm reads the float32 stream and casts back to float16 before its weight. In float32
 * graphs a plain residual.
 */
class Residual {
  /** The stream is float32 (in a float16 graph). */
  f32 = false;
  constructor(
    private readonly ctx: LowerContext,
    private readonly dm: Dims,
    public h: Value,
  ) {}
  norm(name: string, role: string, x = this.h): Value {
    return rmsNorm(this.ctx.b, x, this.ctx.param(`${name}.weight`, [this.dm.d]), this.dm.eps, role, this.f32);
  }
  /** h += y; `y32`: y is float32 (the feed-forward's `wo` output in a float16 graph). */
  add(y: Value, role: string, y32 = false): Value {
    const b = this.ctx.b;
    if (b.floatType === 'float16' && (this.f32 || y32)) {
      const h = this.f32 ? this.h : b.cast(this.h, 'float32', `${role}_h_f32`);
      this.h = b.add(h, y32 ? y : b.cast(y, 'float32', `${role}_y_f32`), role);
      this.f32 = true;
    } else this.h = b.add(this.h, y, role);
    return this.h;
  }
}

/**
 * The tensor T5ForConditionalGeneration ties its embeddings and head to: `shared`, or in a checkpoint
 * without it the first stored of lm_head, encoder.embed_tokens, decoder.embed_tokens (its
 * _tied_weights_keys' order: from_pretrained's tie_weights then ties `shared` to that one). T5Config
 * always ties (tie_word_embeddings is forced true; config.json's value only decides the scaling).
 */
function tiedSource(ctx: LowerContext): string {
  return ['shared.weight', 'lm_head.weight', 'encoder.embed_tokens.weight', 'decoder.embed_tokens.weight'].find((k) => ctx.has(k)) ?? 'shared.weight';
}

/**
 * encode.onnx: [soft prompt (B, Q, d) ; embed(input_ids) (B, S, d)] through the encoder (states
 * (B, Q + S, d)), then every decoder layer's cross keys/values (B, N, Q + S, dkv) and the encoder
 * mask (B, Q + S). Placeholder
 * and legacy checkpoints agree here: the Q `<image>` embeddings the prompt starts with are
 * overwritten by the soft prompt, which is the same as putting it in front.
 */
export function t5Encode(ctx: LowerContext, prefix: Value | undefined, text: TextFlow): { cross: KV[]; mask: Value; states: Value } {
  const { b } = ctx;
  const dm = dims(ctx);
  const tokens = b.gather(ctx.param(tiedSource(ctx), [dm.V, dm.d]), text.ids, 0, 'tokens'); // (B, S, d)
  const h = prefix ? b.concat([prefix, tokens], 1, 'inputs_embeds') : tokens; // (B, L, d)
  const mask = prefix ? b.concat([onesMask(b, prefix, 'prefix_mask'), text.mask], 1, 'encoder_mask') : text.mask; // (B, L)
  const positions = b.range(b.int64([0], [], 'zero'), b.dim(h, 1, 'encoder_length'), 'encoder_positions');
  const bias = b.add(positionBias(ctx, 'encoder', true, positions, positions, 'encoder_position_bias'), paddingBias(b, mask, 'encoder_pad_bias'), 'encoder_bias'); // (B, N, L, L)
  const res = new Residual(ctx, dm, h);
  for (let i = 0; i < ctx.int('depth'); i++) {
    const p = `encoder.block.${i}`;
    b.scope(p, () => {
      const x = res.norm(`${p}.layer.0.layer_norm`, 'layer_norm_0');
      res.add(b.scope('SelfAttention', () => attention(ctx, dm, x, x, `${p}.layer.0.SelfAttention`, bias).out), 'attn_residual');
      const ffn = feedForward(ctx, dm, res.norm(`${p}.layer.1.layer_norm`, 'layer_norm_1'), `${p}.layer.1`);
      res.add(ffn.out, 'ffn_residual', ffn.float32);
    });
  }
  const states = res.norm('encoder.final_layer_norm', 'encoder_final_layer_norm'); // (B, L, d)
  const inner = dm.N * dm.dkv;
  const cross = Array.from({ length: ctx.int('decoder_depth') }, (_, i) =>
    b.scope(`decoder.block.${i}.EncDecAttention`, () => {
      const p = `decoder.block.${i}.layer.1.EncDecAttention`;
      return {
        key: splitHeads(b, dense(ctx, states, `${p}.k`, dm.d, inner, 'k', false), dm.N, dm.dkv, 'key'),
        value: splitHeads(b, dense(ctx, states, `${p}.v`, dm.d, inner, 'v', false), dm.N, dm.dkv, 'value'),
      };
    }),
  );
  return { cross, mask, states };
}

/**
 * decoder.onnx: one step over the self-attention cache and the encoder's cross keys/values ->
 * last-position logits (B, V). Relative positions count from the past length.
 */
function t5Step(ctx: LowerContext, io: StepInputs): StepOutputs {
  const { b } = ctx;
  const dm = dims(ctx);
  if (!io.cross || !io.crossMask) throw new CompileError('BLIP4015', 't5: the decoder step needs the cross keys/values from encode.onnx', ctx.node.loc);
  // decoder.embed_tokens stored apart from `shared` (a fine-tune that untied them) loads untied
  const h = b.gather(tiedOrOwn(ctx, 'decoder.embed_tokens.weight', tiedSource(ctx), [dm.V, dm.d]), io.ids, 0, 'tokens'); // (B, S, d)
  const T = b.dim(io.mask, 1, 'total_length');
  const qpos = b.range(b.sub(T, b.dim(io.ids, 1, 'step_length'), 'past_length'), T, 'query_positions'); // P .. T-1
  const kpos = b.range(b.int64([0], [], 'zero'), T, 'key_positions');
  const selfBias = b.add(positionBias(ctx, 'decoder', false, qpos, kpos, 'decoder_position_bias'), causalBias(b, io.mask, h), 'self_bias'); // (B, N, S, T)
  const crossBias = paddingBias(b, io.crossMask, 'cross_bias'); // (B, 1, 1, L)
  const present: KV[] = [];
  const res = new Residual(ctx, dm, h);
  for (let i = 0; i < ctx.int('decoder_depth'); i++) {
    const p = `decoder.block.${i}`;
    b.scope(p, () => {
      const x = res.norm(`${p}.layer.0.layer_norm`, 'layer_norm_0');
      const self = b.scope('SelfAttention', () => attention(ctx, dm, x, x, `${p}.layer.0.SelfAttention`, selfBias, io.past[i]));
      present.push(self.present!);
      res.add(self.out, 'self_residual');
      const y = res.norm(`${p}.layer.1.layer_norm`, 'layer_norm_1');
      res.add(b.scope('EncDecAttention', () => attention(ctx, dm, y, io.cross![i], `${p}.layer.1.EncDecAttention`, crossBias, undefined, io.crossGroups).out), 'cross_residual');
      const ffn = feedForward(ctx, dm, res.norm(`${p}.layer.2.layer_norm`, 'layer_norm_2'), `${p}.layer.2`);
      res.add(ffn.out, 'ffn_residual', ffn.float32);
    });
  }
  let last = res.norm('decoder.final_layer_norm', 'decoder_final_layer_norm', lastPosition(b, res.h)); // (B, d)
  // Original T5 scales before its tied head; Flan-T5 (scale_decoder_outputs: false) does not.
  if (ctx.bool('tie_embeddings')) last = b.mul(last, b.scalar(dm.d ** -0.5), 'scaled');
  // T5Config always ties lm_head to `shared`: a stored one that differs serves (Flan-T5's), one equal to
  // it is `shared`, stored once, as transformers ties it
  const head = tiedOrOwn(ctx, 'lm_head.weight', tiedSource(ctx), [dm.V, dm.d]);
  return { logits: b.op('Gemm', [last, head], { transB: 1 }, { name: 'lm_head' }), present }; // (B, V)
}
