// llama: a frozen decoder-only LLaMA / Vicuna language model (InstructBLIP Vicuna-7b / 13b):
// RMSNorm, rotary positions (theta `rope_theta`), SwiGLU MLP, grouped key/value heads.
// prefix (B, Q, width) ++ embed(text) (B, S, width) -> decoder layers -> logits (B, V)
import type { NodeKind } from './NodeKind.js';
import { ACTIVATIONS, attrSchema, bool, eps, int, n, num, oneOf, pick } from './schema.js';
import type { FeaturesFlow, KV, LowerContext, StepInputs, StepOutputs } from '../lower/contract.js';
import type { Value } from '../lower/GraphBuilder.js';
import { activation, attend, causalBias, lastPosition, mergeHeads, positionsFromMask, rmsNorm, slice, splitHeads } from '../lower/transformer.js';
import { dense, lmHead } from '../lower/blocks.js';
import { CompileError } from '../lower/CompileError.js';

export const Llama: NodeKind = {
  kind: 'llama',
  doc: 'A decoder-only LLaMA / Vicuna language model (RMSNorm, rotary positions, grouped key/value heads).',
  ports: [
    { name: 'prefix', role: 'soft-prompt', accepts: ['features'], required: false, doc: 'soft visual prompt of width `width`' },
    { name: 'text', role: 'text', accepts: ['text'], required: false, doc: 'the prompt text' },
  ],
  output: 'logits',
  attrSchema: attrSchema('llama', {
    width: int('hidden size (config: hidden_size)'),
    depth: int('number of decoder layers (config: num_hidden_layers)', 1, 1024),
    heads: int('attention heads (config: num_attention_heads)', 1, 1024),
    kv_heads: int('key/value heads, fewer than `heads` for grouped-query attention (config: num_key_value_heads)', 1, 1024),
    head_dim: int('per-head width (config: head_dim; default width / heads)', 1, 4096),
    mlp_width: int('MLP hidden size (config: intermediate_size)'),
    vocab_size: int('vocabulary size'),
    max_positions: int('context length (config: max_position_embeddings)'),
    rms_norm_eps: eps('RMSNorm epsilon'),
    rope_theta: num('rotary base (config: rope_theta or rope_parameters.rope_theta)', 1, 1e9),
    rope_type: oneOf('rotary variant (config: rope_parameters.rope_type); "default", "linear" and "llama3" are lowered', ['default', 'linear', 'dynamic', 'yarn', 'longrope', 'llama3']),
    rope_factor: num('rotary scaling factor of "linear" and "llama3" (config: rope_parameters.factor)', 1e-3, 1e6),
    rope_low_freq_factor: num('"llama3" low-frequency factor (config: rope_parameters.low_freq_factor)', 1e-6, 1e6),
    rope_high_freq_factor: num('"llama3" high-frequency factor (config: rope_parameters.high_freq_factor)', 1e-6, 1e6),
    rope_original_max_positions: int('"llama3" pre-scaling context length (config: rope_parameters.original_max_position_embeddings)'),
    act: oneOf('MLP activation (config: hidden_act)', ACTIVATIONS),
    attention_bias: bool('the q/k/v/o projections have biases (config: attention_bias)'),
    mlp_bias: bool('the gate/up/down projections have biases (config: mlp_bias)'),
    tie_embeddings: bool('the LM head is the token embeddings unless the checkpoint stores an lm_head that differs from them (an equal one is stored once) (config: tie_word_embeddings); when false the stored lm_head serves and a missing one is an error, as transformers reports it missing'),
  }),
  defaultConfig: 'text_config',
  modelTypes: ['llama'],
  fromConfig(section) {
    const attrs = pick(section, {
      width: 'hidden_size',
      depth: 'num_hidden_layers',
      heads: 'num_attention_heads',
      kv_heads: 'num_key_value_heads',
      head_dim: 'head_dim',
      mlp_width: 'intermediate_size',
      vocab_size: 'vocab_size',
      max_positions: 'max_position_embeddings',
      rms_norm_eps: 'rms_norm_eps',
      rope_theta: 'rope_theta',
      act: 'hidden_act',
      tie_embeddings: 'tie_word_embeddings',
      attention_bias: 'attention_bias',
      mlp_bias: 'mlp_bias',
    });
    // Newer transformers move rope_theta under rope_parameters (older configs: top level, and
    // rope_scaling for the variant); as RotaryEmbeddingConfigMixin, rope_parameters wins.
    const rp = (section.rope_parameters ?? section.rope_scaling) as Record<string, unknown> | null | undefined;
    if (rp && typeof rp.rope_theta === 'number') attrs.rope_theta = rp.rope_theta;
    if (rp && typeof (rp.rope_type ?? rp.type) === 'string') attrs.rope_type = (rp.rope_type ?? rp.type) as string;
    if (rp) {
      for (const [attr, key] of [['rope_factor', 'factor'], ['rope_low_freq_factor', 'low_freq_factor'], ['rope_high_freq_factor', 'high_freq_factor'], ['rope_original_max_positions', 'original_max_position_embeddings']]) {
        if (rp[key] !== undefined && rp[key] !== null) attrs[attr] = rp[key] as number;
      }
    }
    // num_key_value_heads: null means "same as heads" (plain multi-head attention).
    if (attrs.kv_heads === undefined && attrs.heads !== undefined) attrs.kv_heads = attrs.heads;
    return attrs;
  },
  outputWidth: (a) => n(a, 'vocab_size'),
  inputWidth: (port, a) => (port === 'prefix' ? n(a, 'width') : undefined),
  divides: [
    { part: 'heads', whole: 'width', unless: 'head_dim' },
    { part: 'kv_heads', whole: 'heads' },
  ],
  generates: true,
  // no learnedPositions: rotary positions have no table, so text past the context length is not
  // refused, but transformers still caps its default length at max_position_embeddings
  maxPositionEmbeddings: (a) => n(a, 'max_positions'),
};

// ---- lowering (src/lower/contract.ts) ----
// transformers' LlamaForCausalLM as InstructBLIP drives it, at prefix `language_model`:
//   model.embed_tokens (V, H)
//   model.layers.{i}.{input_layernorm, self_attn.{q,k,v,o}_proj, post_attention_layernorm, mlp.{gate,up,down}_proj}
//   model.norm
//   lm_head (V, H)                       a stored one serves even when tied, unless equal to embed_tokens; absent and tied: the embeddings
Llama.lowering = {
  defaults: { rms_norm_eps: 1e-6, rope_theta: 10000, rope_type: 'default', act: 'silu', tie_embeddings: false, attention_bias: false, mlp_bias: false }, // rope_theta: transformers' default_theta
  // buffers older checkpoints saved: one rotary table for the model, or one per layer (older still)
  ignored: () => [/(.*\.)?rotary_emb\.inv_freq/, /(.*\.)?position_ids/],
  decoder: {
    facts: (ctx) => ({ layers: ctx.int('depth'), kvHeads: kvHeads(ctx), headDim: headDim(ctx), hidden: ctx.int('width'), vocab: ctx.int('vocab_size'), positions: 'attention_mask' }),
    encode(_ctx, inputs) {
      const prefix = inputs.prefix as FeaturesFlow | undefined;
      return prefix ? { prefix: prefix.hidden } : {};
    },
    step: llamaStep,
  },
};

const kvHeads = (ctx: LowerContext) => (ctx.attrs.kv_heads === undefined ? ctx.int('heads') : ctx.int('kv_heads'));
const headDim = (ctx: LowerContext) => (ctx.attrs.head_dim === undefined ? ctx.int('width') / ctx.int('heads') : ctx.int('head_dim'));

/**
 * RoPE inverse frequencies 1 / theta^(2i/D) for i < D/2, rounded as torch computes them in float32
 * (the exponent, the power and the reciprocal each rounded to float32).
 */
export function ropeInverseFrequencies(theta: number, D: number): Float32Array {
  const f = Math.fround;
  return Float32Array.from({ length: D / 2 }, (_, i) => f(1 / f(Math.pow(theta, f((2 * i) / D)))));
}

export interface RopeScaling {
  type: 'linear' | 'llama3';
  factor: number;
  lowFreqFactor?: number;
  highFreqFactor?: number;
  originalMaxPositions?: number;
}

/**
 * The inverse frequencies of transformers' scaled rotary variants, from the default ones, in
 * float32 as its rope init functions compute them: "linear" divides every one by the factor;
 * "llama3" divides the low frequencies (wavelength above original / low_freq_factor) by it, keeps
 * the high ones, and blends those between.
 */
export function scaleInverseFrequencies(inv: Float32Array, s: RopeScaling): Float32Array {
  const f = Math.fround;
  if (s.type === 'linear') return inv.map((x) => f(x / s.factor));
  const [low, high, old] = [s.lowFreqFactor!, s.highFreqFactor!, s.originalMaxPositions!];
  const [lowWavelen, highWavelen] = [old / low, old / high];
  return inv.map((x) => {
    const wavelen = f((2 * Math.PI) / x);
    const scaled = wavelen > lowWavelen ? f(x / s.factor) : x;
    const smooth = f(f(f(old / wavelen) - low) / (high - low));
    const smoothed = f(f(f(f(1 - smooth) * scaled) / s.factor) + f(smooth * scaled));
    return !(wavelen < highWavelen) && !(wavelen > lowWavelen) ? smoothed : scaled;
  });
}

/** The rotary inverse frequencies a node's attributes ask for; other variants are refused by name. */
function inverseFrequencies(ctx: LowerContext, D: number): Float32Array {
  const type = ctx.str('rope_type');
  const inv = ropeInverseFrequencies(ctx.num('rope_theta'), D);
  if (type === 'default') return inv;
  if (type === 'linear') return scaleInverseFrequencies(inv, { type, factor: ctx.num('rope_factor') });
  if (type === 'llama3') {
    return scaleInverseFrequencies(inv, {
      type,
      factor: ctx.num('rope_factor'),
      lowFreqFactor: ctx.num('rope_low_freq_factor'),
      highFreqFactor: ctx.num('rope_high_freq_factor'),
      originalMaxPositions: ctx.int('rope_original_max_positions'),
    });
  }
  // dynamic NTK rescales with the sequence length at run time; yarn / longrope also scale attention
  throw new CompileError('BLIP4015', `llama: rope_type "${type}" is not supported ("default", "linear" and "llama3" are)`, ctx.attrLoc('rope_type'));
}

/** x (B, N, L, D) -> x·cos + rotate_half(x)·sin, rotate_half(x) = [-x₂ ; x₁] over the halves of D. */
function rotate(ctx: LowerContext, x: Value, cos: Value, sin: Value, D: number, role: string): Value {
  const { b } = ctx;
  const half = b.concat([b.op('Neg', [slice(b, x, 3, D / 2, D, `${role}_x2`)], {}, { name: `${role}_neg` }), slice(b, x, 3, 0, D / 2, `${role}_x1`)], 3, `${role}_rotated`);
  return b.add(b.mul(x, cos, `${role}_cos`), b.mul(half, sin, `${role}_sin`), role);
}

/**
 * One decoder step: [prefix_embeds ; embed(input_ids)] over the cached past -> last-position
 * logits. RMSNorm, rotary positions from the attention mask (as generate numbers them), SwiGLU,
 * grouped key/value heads (the cache holds kv_heads).
 */
function llamaStep(ctx: LowerContext, io: StepInputs): StepOutputs {
  const { b } = ctx;
  const [H, N, F, V] = [ctx.int('width'), ctx.int('heads'), ctx.int('mlp_width'), ctx.int('vocab_size')];
  const [Nkv, D] = [kvHeads(ctx), headDim(ctx)];
  const eps = ctx.num('rms_norm_eps');
  // as LlamaAttention / LlamaMLP build them from the config, not from what the checkpoint stores
  const [bias, mlpBias] = [ctx.bool('attention_bias'), ctx.bool('mlp_bias')];
  const norm = (x: Value, name: string, role: string) => rmsNorm(b, x, ctx.param(name, [H]), eps, role);

  const tokens = b.gather(ctx.param('model.embed_tokens.weight', [V, H]), io.ids, 0, 'tokens'); // (B, S, H)
  let h = io.prefix ? b.concat([io.prefix, tokens], 1, 'inputs_embeds') : tokens; // (B, L, H)
  const mask = causalBias(b, io.mask, h); // (B, 1, L, T)

  // cos, sin (B, 1, L, D): positions · inverse frequencies in float32, the angles repeated over both halves.
  const pos = b.cast(positionsFromMask(b, io.mask, h), 'float32', 'positions_f32'); // (B, L)
  const freqs = b.mul(b.unsqueeze(pos, [2], 'positions_col'), b.float32(inverseFrequencies(ctx, D), [D / 2], 'inv_freq'), 'freqs'); // (B, L, D/2)
  const angles = b.unsqueeze(b.concat([freqs, freqs], 2, 'angles'), [1], 'angles_heads'); // (B, 1, L, D)
  const inFt = (v: Value, role: string) => (b.floatType === 'float16' ? b.cast(v, 'float16', role) : v);
  const cos = inFt(b.op('Cos', [angles], {}, { name: 'cos' }), 'cos_f16');
  const sin = inFt(b.op('Sin', [angles], {}, { name: 'sin' }), 'sin_f16');

  const present: KV[] = [];
  for (let i = 0; i < ctx.int('depth'); i++) {
    const p = `model.layers.${i}`;
    h = b.scope(`layers.${i}`, () => {
      const x = norm(h, `${p}.input_layernorm.weight`, 'input_layernorm');
      const a = b.scope('self_attn', () => {
        const q = rotate(ctx, splitHeads(b, dense(ctx, x, `${p}.self_attn.q_proj`, H, N * D, 'q_proj', bias), N, D, 'query'), cos, sin, D, 'query_rope'); // (B, N, L, D)
        const k = rotate(ctx, splitHeads(b, dense(ctx, x, `${p}.self_attn.k_proj`, H, Nkv * D, 'k_proj', bias), Nkv, D, 'key'), cos, sin, D, 'key_rope'); // (B, Nkv, L, D)
        const v = splitHeads(b, dense(ctx, x, `${p}.self_attn.v_proj`, H, Nkv * D, 'v_proj', bias), Nkv, D, 'value');
        const key = b.concat([io.past[i].key, k], 2, 'present_key'); // (B, Nkv, T, D)
        const value = b.concat([io.past[i].value, v], 2, 'present_value');
        present.push({ key, value });
        const o = attend(b, q, key, value, { scale: D ** -0.5, bias: mask, groups: { heads: N, kvHeads: Nkv } }); // (B, N, L, D)
        return dense(ctx, mergeHeads(b, o, N * D, 'context'), `${p}.self_attn.o_proj`, N * D, H, 'o_proj', bias);
      });
      const r = b.add(h, a, 'attn_residual');
      const y = norm(r, `${p}.post_attention_layernorm.weight`, 'post_attention_layernorm');
      const m = b.scope('mlp', () => {
        const gate = activation(b, dense(ctx, y, `${p}.mlp.gate_proj`, H, F, 'gate_proj', mlpBias), ctx.str('act'));
        return dense(ctx, b.mul(gate, dense(ctx, y, `${p}.mlp.up_proj`, H, F, 'up_proj', mlpBias), 'swiglu'), `${p}.mlp.down_proj`, F, H, 'down_proj', mlpBias);
      });
      return b.add(r, m, 'mlp_residual');
    });
  }
  const last = norm(lastPosition(b, h), 'model.norm.weight', 'norm'); // (B, H): the norm is per position
  const head = lmHead(ctx, 'model.embed_tokens.weight', [V, H]);
  return { logits: b.op('Gemm', [last, head], { transB: 1 }, { name: 'lm_head' }), present }; // (B, V)
}
