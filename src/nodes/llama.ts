// llama: a frozen decoder-only LLaMA / Vicuna language model (InstructBLIP Vicuna-7b / 13b):
// RMSNorm, rotary positions (theta `rope_theta`), SwiGLU MLP, grouped key/value heads.
// prefix (B, Q, width) ++ embed(text) (B, S, width) -> decoder layers -> logits (B, V)
import type { NodeKind } from './NodeKind.js';
import { ACTIVATIONS, attrSchema, eps, int, n, num, oneOf, pick } from './schema.js';

export const Llama: NodeKind = {
  kind: 'llama',
  doc: 'A decoder-only LLaMA / Vicuna language model (RMSNorm, rotary positions, grouped key/value heads).',
  ports: [
    { name: 'prefix', accepts: ['features'], required: false, doc: 'soft visual prompt of width `width`' },
    { name: 'text', accepts: ['text'], required: false, doc: 'the prompt text' },
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
    act: oneOf('MLP activation (config: hidden_act)', ACTIVATIONS),
  }),
  defaultConfig: 'text_config',
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
    });
    // Newer transformers move rope_theta under rope_parameters; older configs have it top-level.
    const rp = section.rope_parameters as Record<string, unknown> | undefined;
    if (attrs.rope_theta === undefined && rp && typeof rp.rope_theta === 'number') attrs.rope_theta = rp.rope_theta;
    // num_key_value_heads: null means "same as heads" (plain multi-head attention).
    if (attrs.kv_heads === undefined && attrs.heads !== undefined) attrs.kv_heads = attrs.heads;
    return attrs;
  },
  outputWidth: (a) => n(a, 'vocab_size'),
  inputWidth: (port, a) => (port === 'prefix' ? n(a, 'width') : undefined),
};

// ---- lowering ----
//
// transformers' LlamaForCausalLM as InstructBLIP drives it. Checkpoint layout (prefix `language_model`):
//   model.embed_tokens (V, H)
//   model.layers.{i}.{input_layernorm, self_attn.{q,k,v,o}_proj, post_attention_layernorm, mlp.{gate,up,down}_proj}
//   model.norm
//   lm_head (V, H)                       (absent when tied: the embeddings serve)
import type { Value } from '../lower/GraphBuilder.js';
import { Params, activation, attend, causalBias, lastPosition, lmHead, mergeHeads, positionsFromMask, slice, splitHeads, type KvCache } from '../lower/transformer.js';
import type { Attrs } from './NodeKind.js';

const need = (a: Attrs, k: string): number => {
  if (typeof a[k] !== 'number') throw new Error(`llama: attribute ${k} is not resolved`);
  return a[k] as number;
};

/**
 * RoPE inverse frequencies 1 / theta^(2i/D) for i < D/2, rounded as torch computes them in float32
 * (the exponent, the power and the reciprocal each rounded to float32).
 */
export function ropeInverseFrequencies(theta: number, headDim: number): Float32Array {
  const f = Math.fround;
  const out = new Float32Array(headDim / 2);
  for (let i = 0; i < headDim / 2; i++) out[i] = f(1 / f(Math.pow(theta, f((2 * i) / headDim))));
  return out;
}

/** q (B, N, L, D) -> q·cos + rotate_half(q)·sin, rotate_half(x) = [-x₂ ; x₁] over the halves of D. */
function rotate(p: Params, x: Value, cos: Value, sin: Value, D: number, role: string): Value {
  const b = p.b;
  const x1 = slice(b, x, 3, 0, D / 2, `${role}_x1`);
  const x2 = slice(b, x, 3, D / 2, D, `${role}_x2`);
  const rot = b.concat([b.op('Neg', [x2], {}, { name: `${role}_neg` }), x1], 3, `${role}_rot`);
  return b.add(b.mul(x, cos, `${role}_cos`), b.mul(rot, sin, `${role}_sin`), role);
}

/**
 * One decoder step (decoder.onnx): [prefix_embeds ; embed(input_ids)] over the cached past ->
 * last-position logits. RMSNorm, rotary positions (from the attention mask, as generate numbers
 * them), SwiGLU, grouped key/value heads (the cache holds kv_heads).
 */
export function lowerLlamaDecoder(p: Params, prefix: string, attrs: Attrs, cache: KvCache): Value {
  const b = p.b;
  const H = need(attrs, 'width');
  const N = need(attrs, 'heads');
  const Nkv = typeof attrs.kv_heads === 'number' ? attrs.kv_heads : N;
  const D = typeof attrs.head_dim === 'number' ? attrs.head_dim : H / N;
  const depth = need(attrs, 'depth');
  const eps = typeof attrs.rms_norm_eps === 'number' ? attrs.rms_norm_eps : 1e-6;
  const theta = typeof attrs.rope_theta === 'number' ? attrs.rope_theta : 10000; // transformers' default_theta
  const act = typeof attrs.act === 'string' ? attrs.act : 'silu';
  const m = `${prefix}.model`;

  const tokens = p.embed(cache.inputIds, `${m}.embed_tokens.weight`, 'tokens'); // (B, S, H)
  let h = cache.prefix ? b.concat([cache.prefix, tokens], 1, 'inputs_embeds') : tokens; // (B, L, H)
  const bias = causalBias(b, cache.mask, h); // (B, 1, L, T)

  // cos/sin (B, 1, L, D): positions · inverse frequencies in float32, duplicated over both halves.
  const pos = b.cast(positionsFromMask(b, cache.mask, h), 'float32', 'positions_f32'); // (B, L)
  const freqs = b.mul(b.op('Unsqueeze', [pos, b.int64([2], [1], 'pos_axis')], {}, { name: 'positions_col' }), b.float32(ropeInverseFrequencies(theta, D), [D / 2], 'inv_freq'), 'freqs'); // (B, L, D/2)
  const emb = b.op('Unsqueeze', [b.concat([freqs, freqs], 2, 'rope_angles'), b.int64([1], [1], 'head_axis')], {}, { name: 'rope_angles_4d' }); // (B, 1, L, D)
  const toFt = (v: Value) => (b.weights.floatType === 'float16' ? b.cast(v, 'float16', `${v.name.split('/').pop()}_f16`) : v);
  const cos = toFt(b.op('Cos', [emb], {}, { name: 'rope_cos' }));
  const sin = toFt(b.op('Sin', [emb], {}, { name: 'rope_sin' }));

  for (let i = 0; i < depth; i++) {
    const layer = `${m}.layers.${i}`;
    h = b.scope(`llama.layer.${i}`, () => {
      const x = p.rmsNorm(h, `${layer}.input_layernorm.weight`, eps, 'ln_attn');
      const a = b.scope('attn', () => {
        const q = rotate(p, splitHeads(b, p.linear(x, `${layer}.self_attn.q_proj`, 'q'), N, D, 'q_heads'), cos, sin, D, 'q_rope'); // (B, N, L, D)
        const k = rotate(p, splitHeads(b, p.linear(x, `${layer}.self_attn.k_proj`, 'k'), Nkv, D, 'k_heads'), cos, sin, D, 'k_rope'); // (B, Nkv, L, D)
        const v = splitHeads(b, p.linear(x, `${layer}.self_attn.v_proj`, 'v'), Nkv, D, 'v_heads');
        const [kk, vv] = cache.extend(i, k, v); // (B, Nkv, T, D)
        const ctx = attend(b, q, kk, vv, { scale: D ** -0.5, bias, groups: { heads: N, kvHeads: Nkv } }); // (B, N, L, D)
        return p.linear(mergeHeads(b, ctx, N * D), `${layer}.self_attn.o_proj`, 'out');
      });
      const r = b.add(h, a, 'attn_residual');
      const y = p.rmsNorm(r, `${layer}.post_attention_layernorm.weight`, eps, 'ln_mlp');
      const gate = activation(b, p.linear(y, `${layer}.mlp.gate_proj`, 'gate'), act);
      const mlp = p.linear(b.mul(gate, p.linear(y, `${layer}.mlp.up_proj`, 'up'), 'swiglu'), `${layer}.mlp.down_proj`, 'down');
      return b.add(r, mlp, 'mlp_residual');
    });
  }
  const last = p.rmsNorm(lastPosition(b, h), `${m}.norm.weight`, eps, 'final_norm'); // (B, H)
  return lmHead(p, last, p.first(`${prefix}.lm_head.weight`, `${m}.embed_tokens.weight`)!); // (B, V)
}
