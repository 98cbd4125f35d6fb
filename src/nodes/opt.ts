// opt: a frozen decoder-only OPT language model (BLIP-2 OPT-2.7b / 6.7b). The `prefix:` features
// (projected Q-Former outputs) are placed in front of the prompt's token embeddings.
// prefix (B, Q, width) ++ embed(text) (B, S, width) -> pre-norm decoder layers -> logits (B, V)
import type { NodeKind } from './NodeKind.js';
import { ACTIVATIONS, attrSchema, bool, int, n, oneOf, pick } from './schema.js';

export const Opt: NodeKind = {
  kind: 'opt',
  doc: 'A decoder-only OPT language model; `prefix:` features are a soft prompt before the text.',
  ports: [
    { name: 'prefix', accepts: ['features'], required: false, doc: 'soft visual prompt of width `width`' },
    { name: 'text', accepts: ['text'], required: false, doc: 'the prompt text' },
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
    act: oneOf('MLP activation (config: activation_function)', ACTIVATIONS),
  }),
  defaultConfig: 'text_config',
  fromConfig(section) {
    return pick(section, {
      width: 'hidden_size',
      depth: 'num_hidden_layers',
      heads: 'num_attention_heads',
      mlp_width: 'ffn_dim',
      vocab_size: 'vocab_size',
      max_positions: 'max_position_embeddings',
      embed_width: 'word_embed_proj_dim',
      pre_norm: 'do_layer_norm_before',
      act: 'activation_function',
    });
  },
  outputWidth: (a) => n(a, 'vocab_size'),
  inputWidth: (port, a) => (port === 'prefix' ? n(a, 'width') : undefined),
};

// ---- lowering ----
//
// transformers' OPTForCausalLM as BLIP-2 drives it. Checkpoint layout (prefix `language_model`):
//   model.decoder.embed_tokens (V, E)    E = word_embed_proj_dim; also the LM head (tied)
//   model.decoder.embed_positions (max_positions + 2, H)   learned, offset by 2
//   model.decoder.project_in (H, E), project_out (E, H)    only when E != H (OPT-350m)
//   model.decoder.layers.{i}.{self_attn.{q,k,v,out}_proj, self_attn_layer_norm, fc1, fc2, final_layer_norm}
//   model.decoder.final_layer_norm       pre-norm models only
//   lm_head (V, E)                       when stored untied
import { GraphBuilder, Value } from '../lower/GraphBuilder.js';
import { Params, activation, attend, causalBias, dim, lastPosition, lmHead, mergeHeads, positionsFromMask, splitHeads, type KvCache } from '../lower/transformer.js';
import type { Attrs } from './NodeKind.js';

const need = (a: Attrs, k: string): number => {
  if (typeof a[k] !== 'number') throw new Error(`opt: attribute ${k} is not resolved`);
  return a[k] as number;
};

/**
 * The soft visual prompt as it enters OPT's input embeddings (encode.onnx side): projected query
 * outputs (B, Q, H) -> (B, Q, E).
 *
 * With placeholders (config image_token_index) transformers writes the projection into the
 * embeddings of the Q `<image>` tokens with masked_scatter, which fills the (B, Q, E) slots from
 * the flattened (B·Q·H) source in order. When E == H that is the projection itself; when E < H
 * (an OPT with project_in) row b receives elements [b·Q·E, (b+1)·Q·E) of the flattened batch, and
 * this reproduces it. Checkpoints without placeholders concatenate, which needs E == H.
 */
export function optPrefix(b: GraphBuilder, attrs: Attrs, projected: Value, placeholders: boolean): Value {
  const H = need(attrs, 'width');
  const E = typeof attrs.embed_width === 'number' ? attrs.embed_width : H;
  if (E === H) return projected;
  if (!placeholders) throw new Error(`opt: the projected queries are ${H} wide but the token embeddings ${E}; a checkpoint without image_token_index cannot prepend them`);
  if (E > H) throw new Error(`opt: transformers cannot scatter ${H}-wide projected queries into ${E}-wide token embeddings`);
  const Q = b.op('Shape', [projected], { start: 1, end: 2 }, { name: 'prefix_queries' });
  const flat = b.reshape(projected, [-1], 'prefix_flat'); // (B·Q·H)
  const slots = b.op('Mul', [dim(b, projected, 0, 'prefix_batch'), Q], {}, { name: 'prefix_slots' }); // B·Q
  const count = b.op('Mul', [slots, b.int64([E], [1], 'embed_width')], {}, { name: 'prefix_count' }); // B·Q·E
  const taken = b.op('Slice', [flat, b.int64([0], [1], 'prefix_start'), count, b.int64([0], [1], 'prefix_axis')], {}, { name: 'prefix_taken' });
  const shape = b.concat([b.int64([-1], [1], 'prefix_b'), Q, b.int64([E], [1], 'prefix_e')], 0, 'prefix_shape');
  return b.op('Reshape', [taken, shape], {}, { name: 'prefix_scattered' }); // (B, Q, E)
}

/**
 * One decoder step (decoder.onnx): [prefix_embeds ; embed(input_ids)] over the cached past ->
 * last-position logits and the grown cache. Positions follow the attention mask as transformers'
 * generate numbers them (cumsum - 1), offset by OPT's 2.
 */
export function lowerOptDecoder(p: Params, prefix: string, attrs: Attrs, cache: KvCache): Value {
  const b = p.b;
  const H = need(attrs, 'width');
  const N = need(attrs, 'heads');
  const depth = need(attrs, 'depth');
  const D = H / N;
  const preNorm = attrs.pre_norm !== false;
  const act = typeof attrs.act === 'string' ? attrs.act : 'relu';
  const dec = `${prefix}.model.decoder`;
  const eps = 1e-5; // OPT's nn.LayerNorm default

  const tokens = p.embed(cache.inputIds, `${dec}.embed_tokens.weight`, 'tokens'); // (B, S, E)
  let x = cache.prefix ? b.concat([cache.prefix, tokens], 1, 'inputs_embeds') : tokens; // (B, L, E), L = Qp + S
  if (p.has(`${dec}.project_in.weight`)) x = p.linear(x, `${dec}.project_in`, 'project_in'); // (B, L, H)
  const positions = positionsFromMask(b, cache.mask, x); // (B, L)
  const offset = b.op('Add', [positions, b.int64([2], [], 'position_offset')], {}, { name: 'position_index' });
  let h = b.add(x, p.embed(offset, `${dec}.embed_positions.weight`, 'position_embeddings'), 'hidden'); // (B, L, H)
  const bias = causalBias(b, cache.mask, h); // (B, 1, L, T)

  for (let i = 0; i < depth; i++) {
    const layer = `${dec}.layers.${i}`;
    h = b.scope(`opt.layer.${i}`, () => {
      const ln1 = (v: Value) => p.layerNorm(v, `${layer}.self_attn_layer_norm`, eps, 'ln_attn');
      const ln2 = (v: Value) => p.layerNorm(v, `${layer}.final_layer_norm`, eps, 'ln_mlp');
      let a = preNorm ? ln1(h) : h;
      a = b.scope('attn', () => {
        const q = splitHeads(b, b.mul(p.linear(a, `${layer}.self_attn.q_proj`, 'q'), b.scalar(D ** -0.5), 'q_scaled'), N, D, 'q_heads'); // (B, N, L, D)
        const [k, v] = cache.extend(i, splitHeads(b, p.linear(a, `${layer}.self_attn.k_proj`, 'k'), N, D, 'k_heads'), splitHeads(b, p.linear(a, `${layer}.self_attn.v_proj`, 'v'), N, D, 'v_heads')); // (B, N, T, D)
        return p.linear(mergeHeads(b, attend(b, q, k, v, { bias }), H), `${layer}.self_attn.out_proj`, 'out');
      });
      let r = b.add(h, a, 'attn_residual');
      if (!preNorm) r = ln1(r);
      let m = preNorm ? ln2(r) : r;
      m = p.linear(activation(b, p.linear(m, `${layer}.fc1`, 'fc1'), act), `${layer}.fc2`, 'fc2');
      let out = b.add(r, m, 'mlp_residual');
      if (!preNorm) out = ln2(out);
      return out;
    });
  }
  // The final norm exists for pre-norm models unless the config removed it (then it is not stored).
  if (preNorm && p.has(`${dec}.final_layer_norm.weight`)) h = p.layerNorm(h, `${dec}.final_layer_norm`, eps, 'final_ln');
  let last = lastPosition(b, h); // (B, H)
  if (p.has(`${dec}.project_out.weight`)) last = p.linear(last, `${dec}.project_out`, 'project_out'); // (B, E)
  return lmHead(p, last, p.first(`${prefix}.lm_head.weight`, `${dec}.embed_tokens.weight`)!); // (B, V)
}
