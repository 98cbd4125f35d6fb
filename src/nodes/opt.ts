// opt: a frozen decoder-only OPT language model (BLIP-2 OPT-2.7b / 6.7b). The `prefix:` features
// (projected Q-Former outputs) are placed in front of the prompt's token embeddings.
// prefix (B, Q, width) ++ embed(text) (B, S, width) -> pre-norm decoder layers -> logits (B, V)
import type { NodeKind } from './NodeKind.js';
import { ACTIVATIONS, attrSchema, bool, int, n, oneOf, pick } from './schema.js';
import type { FeaturesFlow, KV, LowerContext, StepInputs, StepOutputs } from '../lower/contract.js';
import type { Value } from '../lower/GraphBuilder.js';
import { activation, attend, causalBias, lastPosition, mergeHeads, positionsFromMask, slice, splitHeads } from '../lower/transformer.js';
import { dense, layerNorm, lmHead } from '../lower/blocks.js';
import { CompileError } from '../lower/CompileError.js';

export const Opt: NodeKind = {
  kind: 'opt',
  doc: 'A decoder-only OPT language model; `prefix:` features are a soft prompt before the text.',
  ports: [
    { name: 'prefix', role: 'soft-prompt', accepts: ['features'], required: false, doc: 'soft visual prompt of width `width`' },
    { name: 'text', role: 'text', accepts: ['text'], required: false, doc: 'the prompt text' },
  ],
  output: 'logits',
  attrSchema: attrSchema('opt', {
    width: int('hidden size (config: hidden_size)'),
    depth: int('number of decoder layers (config: num_hidden_layers)', 1, 1024),
    heads: int('attention heads (config: num_attention_heads)', 1, 1024),
    mlp_width: int('MLP hidden size (config: ffn_dim)'),
    vocab_size: int('vocabulary size'),
    max_positions: int('learned positions (config: max_position_embeddings)'),
    embed_width: int('token-embedding width (config: word_embed_proj_dim)'),
    pre_norm: bool('layer norm before attention (config: do_layer_norm_before)'),
    final_norm: bool('a pre-norm model ends with a layer norm (config: not _remove_final_layer_norm)'),
    norm_affine: bool('the layer norms have a learned scale and shift (config: layer_norm_elementwise_affine)'),
    bias: bool('the attention and MLP projections have biases (config: enable_bias)'),
    act: oneOf('MLP activation (config: activation_function)', ACTIVATIONS),
    tie_embeddings: bool('the LM head is the token embeddings unless the checkpoint stores an lm_head that differs from them (an equal one is stored once) (config: tie_word_embeddings); when false the stored lm_head serves and a missing one is an error, as transformers reports it missing'),
    placeholders: bool('the prompt carries `<image>` placeholder tokens that the soft prompt overwrites (root config: image_token_index); without, it is prepended'),
  }),
  defaultConfig: 'text_config',
  modelTypes: ['opt'],
  fromConfig(section, root) {
    const attrs = pick(section, {
      width: 'hidden_size',
      depth: 'num_hidden_layers',
      heads: 'num_attention_heads',
      mlp_width: 'ffn_dim',
      vocab_size: 'vocab_size',
      max_positions: 'max_position_embeddings',
      embed_width: 'word_embed_proj_dim',
      pre_norm: 'do_layer_norm_before',
      norm_affine: 'layer_norm_elementwise_affine',
      bias: 'enable_bias',
      act: 'activation_function',
      tie_embeddings: 'tie_word_embeddings',
    });
    // OPTConfig: word_embed_proj_dim defaults to hidden_size.
    if (attrs.embed_width === undefined && attrs.width !== undefined) attrs.embed_width = attrs.width;
    if (typeof section._remove_final_layer_norm === 'boolean') attrs.final_norm = !section._remove_final_layer_norm;
    attrs.placeholders = typeof root.image_token_index === 'number';
    return attrs;
  },
  outputWidth: (a) => n(a, 'vocab_size'),
  inputWidth: (port, a) => (port === 'prefix' ? n(a, 'width') : undefined),
  divides: [{ part: 'heads', whole: 'width' }],
  generates: true,
  learnedPositions: true,
  maxPositionEmbeddings: (a) => n(a, 'max_positions'),
};

// ---- lowering (src/lower/contract.ts) ----
// transformers' OPTForCausalLM as BLIP-2 drives it, at prefix `language_model`:
//   model.decoder.embed_tokens (V, E)    E = word_embed_proj_dim; also the LM head (tied)
//   model.decoder.embed_positions (max_positions + 2, H)   learned, offset by 2
//   model.decoder.project_in (H, E), project_out (E, H)    only when E != H (OPT-350m)
//   model.decoder.layers.{i}.{self_attn.{q,k,v,out}_proj, self_attn_layer_norm, fc1, fc2, final_layer_norm}
//   model.decoder.final_layer_norm       pre-norm models only
//   lm_head (V, E)                       a stored one serves even when tied, unless equal to embed_tokens
const DEC = 'model.decoder';

Opt.lowering = {
  defaults: { pre_norm: true, final_norm: true, norm_affine: true, bias: true, act: 'relu', placeholders: false, tie_embeddings: true },
  ignored: () => [/(.*\.)?position_ids/],
  decoder: {
    facts: (ctx) => ({
      layers: ctx.int('depth'),
      kvHeads: ctx.int('heads'),
      headDim: ctx.int('width') / ctx.int('heads'),
      hidden: ctx.int('width'),
      vocab: ctx.int('vocab_size'),
      positions: 'attention_mask',
      prefixWidth: ctx.int('embed_width'), // the soft prompt enters the token-embedding space (E), before project_in
    }),
    encode(ctx, inputs) {
      const prefix = inputs.prefix as FeaturesFlow | undefined;
      return prefix ? { prefix: optPrefix(ctx, prefix.hidden) } : {};
    },
    step: optStep,
  },
};

/**
 * The soft visual prompt as it enters OPT's input embeddings (encode.onnx): projected query
 * outputs (B, Q, H) -> (B, Q, E).
 *
 * With placeholders (config image_token_index) transformers writes the projection into the
 * embeddings of the Q `<image>` tokens with masked_scatter, which fills the (B, Q, E) slots from
 * the flattened (B·Q·H) source in order. When E == H that is the projection itself; when E < H
 * (an OPT with project_in) row b receives elements [b·Q·E, (b+1)·Q·E) of the flattened batch, and
 * this reproduces it. Checkpoints without placeholders concatenate, which needs E == H.
 */
function optPrefix(ctx: LowerContext, projected: Value): Value {
  const { b } = ctx;
  const [H, E] = [ctx.int('width'), ctx.int('embed_width')];
  if (E === H) return projected;
  const fail = (why: string) => new CompileError('BLIP4015', `opt: ${why}`, ctx.node.loc);
  if (!ctx.bool('placeholders')) throw fail(`the soft prompt is ${H} wide but the token embeddings ${E}: a checkpoint without image_token_index cannot prepend it`);
  if (E > H) throw fail(`transformers cannot scatter a ${H}-wide soft prompt into ${E}-wide token embeddings`);
  const Q = b.shape(projected, 1, 2, 'prefix_queries');
  const count = b.op('Mul', [b.op('Mul', [b.shape(projected, 0, 1, 'prefix_batch'), Q], {}, { name: 'prefix_slots' }), b.int64([E], [1], 'embed_width')], {}, { name: 'prefix_count' }); // B·Q·E
  const taken = slice(b, b.reshape(projected, [-1], 'prefix_flat'), 0, 0, count, 'prefix_taken'); // the first B·Q·E of (B·Q·H)
  return b.op('Reshape', [taken, b.concat([b.int64([-1], [1], 'prefix_b'), Q, b.int64([E], [1], 'prefix_e')], 0, 'prefix_shape')], {}, { name: 'prefix_scattered' }); // (B, Q, E)
}

/**
 * One decoder step: [prefix_embeds ; embed(input_ids)] over the cached past -> last-position
 * logits. Positions follow the attention mask as transformers' generate numbers them
 * (cumsum - 1), offset by OPT's 2.
 */
function optStep(ctx: LowerContext, io: StepInputs): StepOutputs {
  const { b } = ctx;
  const [H, E, N, F, V] = [ctx.int('width'), ctx.int('embed_width'), ctx.int('heads'), ctx.int('mlp_width'), ctx.int('vocab_size')];
  const D = H / N;
  const preNorm = ctx.bool('pre_norm');
  const act = ctx.str('act');
  const eps = 1e-5; // OPT's nn.LayerNorm default
  const bias = ctx.bool('bias');
  // As OPTDecoder builds them from the config, not from what the checkpoint happens to store: a
  // non-affine norm has no tensors and still normalises.
  const affine = ctx.bool('norm_affine');
  const norm = (x: Value, name: string, role: string) => (affine ? layerNorm(ctx, x, name, H, eps, role) : b.layerNorm(x, b.constant(new Float32Array(H).fill(1), [H], `${role}_ones`), undefined, eps, role));

  const tokens = b.gather(ctx.param(`${DEC}.embed_tokens.weight`, [V, E]), io.ids, 0, 'tokens'); // (B, S, E)
  let x = io.prefix ? b.concat([io.prefix, tokens], 1, 'inputs_embeds') : tokens; // (B, L, E), L = Qp + S
  if (E !== H) x = dense(ctx, x, `${DEC}.project_in`, E, H, 'project_in', false); // (B, L, H)
  const index = b.add(positionsFromMask(b, io.mask, x), b.int64([2], [], 'position_offset'), 'position_index'); // (B, L)
  const maxPos = ctx.int('max_positions');
  let h = b.add(x, b.gather(ctx.param(`${DEC}.embed_positions.weight`, [maxPos + 2, H]), index, 0, 'position_embeddings'), 'hidden'); // (B, L, H)
  const mask = causalBias(b, io.mask, h); // (B, 1, L, T)

  const present: KV[] = [];
  for (let i = 0; i < ctx.int('depth'); i++) {
    const p = `${DEC}.layers.${i}`;
    h = b.scope(`layers.${i}`, () => {
      const heads4 = (t: Value, role: string) => splitHeads(b, t, N, D, role); // (B, N, L, D)
      const attn = (a: Value) =>
        b.scope('self_attn', () => {
          const q = heads4(b.mul(dense(ctx, a, `${p}.self_attn.q_proj`, H, H, 'q_proj', bias), b.scalar(D ** -0.5), 'q_scaled'), 'query'); // q · D^-½ before the product, as OPTAttention
          const key = b.concat([io.past[i].key, heads4(dense(ctx, a, `${p}.self_attn.k_proj`, H, H, 'k_proj', bias), 'key')], 2, 'present_key'); // (B, N, T, D)
          const value = b.concat([io.past[i].value, heads4(dense(ctx, a, `${p}.self_attn.v_proj`, H, H, 'v_proj', bias), 'value')], 2, 'present_value');
          present.push({ key, value });
          return dense(ctx, mergeHeads(b, attend(b, q, key, value, { bias: mask }), H, 'context'), `${p}.self_attn.out_proj`, H, H, 'out_proj', bias);
        });
      const ln1 = (v: Value) => norm(v, `${p}.self_attn_layer_norm`, 'self_attn_layer_norm');
      const ln2 = (v: Value) => norm(v, `${p}.final_layer_norm`, 'final_layer_norm');
      let r = b.add(h, attn(preNorm ? ln1(h) : h), 'attn_residual');
      if (!preNorm) r = ln1(r);
      const m = b.scope('mlp', () => dense(ctx, activation(b, dense(ctx, preNorm ? ln2(r) : r, `${p}.fc1`, H, F, 'fc1', bias), act), `${p}.fc2`, F, H, 'fc2', bias));
      const out = b.add(r, m, 'mlp_residual');
      return preNorm ? out : ln2(out);
    });
  }
  let last = lastPosition(b, h); // (B, H)
  // Pre-norm OPT ends with a norm unless the config removes it (OPT-350m is post-norm: none).
  if (preNorm && ctx.bool('final_norm')) last = norm(last, `${DEC}.final_layer_norm`, 'final_layer_norm');
  if (E !== H) last = dense(ctx, last, `${DEC}.project_out`, H, E, 'project_out', false); // (B, E)
  const logits = b.op('Gemm', [last, lmHead(ctx, `${DEC}.embed_tokens.weight`, [V, E])], { transB: 1 }, { name: 'lm_head' }); // (B, V)
  return { logits, present };
}
