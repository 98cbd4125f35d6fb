// qformer: the BLIP-2 / InstructBLIP Querying Transformer. `queries` learned query vectors (with
// the instruction's tokens in InstructBLIP, or the text in BLIP-2 retrieval) go through BERT layers
// that cross-attend to the image features every `cross_attention_frequency` layers.
// features (B, N, encoder_width) -> (B, queries, width)   [text-only: (B, S, width)]
import type { NodeKind } from './NodeKind.js';
import { ACTIVATIONS, attrSchema, bool, eps, int, n, oneOf, pick } from './schema.js';

export const QFormer: NodeKind = {
  kind: 'qformer',
  doc: 'The Q-Former: learned queries (plus instruction or text tokens) cross-attending to image features.',
  ports: [
    { name: '', accepts: ['features'], required: false, doc: 'image features the queries cross-attend to (left out: text-only pass)' },
    { name: 'text', accepts: ['text'], required: false, doc: 'text beside the queries (BLIP-2 retrieval: fused ITM or text-only ITC pass)' },
    { name: 'instruction', accepts: ['text'], required: false, doc: 'InstructBLIP: the instruction enters the Q-Former beside the queries' },
  ],
  output: 'features',
  attrSchema: attrSchema('qformer', {
    queries: int('number of learned query tokens (root config: num_query_tokens)', 1, 4096),
    width: int('hidden size (config: hidden_size)'),
    depth: int('number of layers (config: num_hidden_layers)', 1, 1024),
    heads: int('attention heads (config: num_attention_heads)', 1, 1024),
    mlp_width: int('MLP hidden size (config: intermediate_size)'),
    cross_attention_frequency: int('a cross-attention block every N layers', 1, 1024),
    encoder_width: int('width of the image features (config: encoder_hidden_size)'),
    vocab_size: int('vocabulary size of the text embeddings'),
    max_positions: int('learned positions (config: max_position_embeddings)'),
    layer_norm_eps: eps('layer-norm epsilon'),
    instruction: bool('the instruction text enters the Q-Former (InstructBLIP); implied by an `instruction:` input'),
    act: oneOf('MLP activation (config: hidden_act)', ACTIVATIONS),
  }),
  defaultConfig: 'qformer_config',
  fromConfig(section, root) {
    const attrs = pick(section, {
      width: 'hidden_size',
      depth: 'num_hidden_layers',
      heads: 'num_attention_heads',
      mlp_width: 'intermediate_size',
      cross_attention_frequency: 'cross_attention_frequency',
      encoder_width: 'encoder_hidden_size',
      vocab_size: 'vocab_size',
      max_positions: 'max_position_embeddings',
      layer_norm_eps: 'layer_norm_eps',
      act: 'hidden_act',
    });
    // The query count lives at the root of BLIP-2 / InstructBLIP configs, not in qformer_config.
    if (typeof root.num_query_tokens === 'number') attrs.queries = root.num_query_tokens;
    return attrs;
  },
  outputWidth: (a) => n(a, 'width'),
  inputWidth: (port, a) => (port === '' ? n(a, 'encoder_width') : undefined),
};

// ---- lowering ----
//
// transformers' Blip2QFormerModel / InstructBlipQFormerModel. Checkpoint layout (prefix `qformer`):
//   query_tokens                               (1, Q, W) beside the Q-Former, not inside it
//   {layernorm | embeddings.layernorm}         BLIP-2 | InstructBLIP input LayerNorm
//   embeddings.word_embeddings, .position_embeddings  InstructBLIP text embeddings; BLIP-2 retrieval
//                                              keeps them beside the Q-Former (`embeddings.*`)
//   encoder.layer.{i}.attention.{attention.{query,key,value}, output.{dense,LayerNorm}}
//   encoder.layer.{i}.crossattention.*         when i % cross_attention_frequency == 0
//   encoder.layer.{i}.{intermediate_query,output_query}.*   feed-forward of the query positions
//   encoder.layer.{i}.{intermediate,output}.*  feed-forward of the text positions
import { Params, activation, attend, mergeHeads, paddingBias, slice, splitHeads } from '../lower/transformer.js';
import type { Value } from '../lower/GraphBuilder.js';
import type { Attrs } from './NodeKind.js';

export interface QFormerInputs {
  /** Image features the queries cross-attend to: (B, Nimg, encoder_width). */
  image?: Value;
  /** Text beside the queries (InstructBLIP instruction, BLIP-2 ITM) or alone (BLIP-2 ITC text): (B, S) int64. */
  text?: { ids: Value; mask: Value };
}

/** Attribute values with the defaults of transformers' Blip2QFormerConfig. */
function qformerConfig(a: Attrs) {
  const num = (k: string, d?: number): number => {
    const v = a[k] ?? d;
    if (typeof v !== 'number') throw new Error(`qformer: attribute ${k} is not resolved`);
    return v;
  };
  return {
    width: num('width'),
    depth: num('depth'),
    heads: num('heads'),
    crossEvery: num('cross_attention_frequency', 2),
    eps: num('layer_norm_eps', 1e-12),
    act: typeof a.act === 'string' ? a.act : 'gelu',
  };
}

/**
 * The Q-Former forward pass. With an image: the learned queries (and the text, when given) run
 * through the layers and the query outputs (B, Q, W) come out. Without: the text alone (BLIP-2's
 * ITC text pass, query_length 0) and all its positions (B, S, W) come out.
 */
export function lowerQFormer(p: Params, prefix: string, attrs: Attrs, inp: QFormerInputs): Value {
  const b = p.b;
  const c = qformerConfig(attrs);
  const headDim = c.width / c.heads;
  const parent = prefix.includes('.') ? prefix.slice(0, prefix.lastIndexOf('.') + 1) : '';
  const withQueries = inp.image !== undefined;

  // Embeddings: [queries ; word(ids) + position(0..S-1)] -> LayerNorm.     (B, Q + S, W)
  const parts: Value[] = [];
  let Q = 0;
  if (withQueries) {
    const qkey = p.first(`${parent}query_tokens`, `${prefix}.query_tokens`) ?? `${parent}query_tokens`;
    Q = p.shape(qkey)[1];
    const batch = b.op('Shape', [inp.image!], { start: 0, end: 1 }, { name: 'batch' });
    const target = b.concat([batch, b.int64([Q, c.width], [2], 'query_dims')], 0, 'query_shape');
    parts.push(b.op('Expand', [p.tensor(qkey), target], {}, { name: 'queries' })); // (B, Q, W)
  }
  if (inp.text) {
    const wkey = p.first(`${prefix}.embeddings.word_embeddings.weight`, `${parent}embeddings.word_embeddings.weight`);
    const pkey = p.first(`${prefix}.embeddings.position_embeddings.weight`, `${parent}embeddings.position_embeddings.weight`);
    if (!wkey || !pkey) p.shape(`${prefix}.embeddings.word_embeddings.weight`); // throws the missing-tensor error
    const words = p.embed(inp.text.ids, wkey!, 'word_embeddings'); // (B, S, W)
    const S = b.op('Shape', [inp.text.ids], { start: 1, end: 2 }, { name: 'text_length' });
    const positions = slice(b, p.tensor(pkey!), 0, 0, S, 'position_embeddings'); // (S, W): positions 0..S-1
    parts.push(b.add(words, positions, 'text_embeddings'));
  }
  const joined = parts.length === 1 ? parts[0] : b.concat(parts, 1, 'embeddings'); // (B, Q + S, W)
  const lnKey = p.first(`${prefix}.layernorm.weight`, `${prefix}.embeddings.layernorm.weight`)?.replace(/\.weight$/, '') ?? `${prefix}.layernorm`;
  let x = p.layerNorm(joined, lnKey, c.eps, 'embeddings_ln');

  // Self-attention mask over [queries ; text]: queries are never padding.
  let selfBias: Value | undefined;
  if (inp.text) {
    let mask = inp.text.mask;
    if (withQueries) {
      const ones = b.op('ConstantOfShape', [b.concat([b.op('Shape', [mask], { start: 0, end: 1 }, { name: 'mask_batch' }), b.int64([Q], [1], 'q_len')], 0, 'ones_shape')], {
        value: { tensor: { dataType: 7, dims: [1], int64Data: [1] } },
      }, { name: 'query_mask' }); // (B, Q) int64 ones
      mask = b.concat([ones, mask], 1, 'self_mask'); // (B, Q + S)
    }
    selfBias = paddingBias(b, mask, 'self_bias');
  }

  const heads = (v: Value, role: string) => splitHeads(b, v, c.heads, headDim, role);
  /** BertAttention + BertSelfOutput: LayerNorm(dense(attention(x, kv)) + x). */
  const attention = (h: Value, kv: Value, key: string, bias: Value | undefined, role: string): Value =>
    b.scope(role, () => {
      const q = heads(p.linear(h, `${key}.attention.query`, 'q'), 'q_heads'); // (B, N, L, Dh)
      const k = heads(p.linear(kv, `${key}.attention.key`, 'k'), 'k_heads'); // (B, N, T, Dh)
      const v = heads(p.linear(kv, `${key}.attention.value`, 'v'), 'v_heads');
      const ctx = mergeHeads(b, attend(b, q, k, v, { divide: Math.sqrt(headDim), bias }), c.width); // (B, L, W)
      const out = p.linear(ctx, `${key}.output.dense`, 'dense');
      return p.layerNorm(b.add(out, h, 'residual'), `${key}.output.LayerNorm`, c.eps, 'ln');
    });
  /** BertIntermediate + BertOutput: LayerNorm(dense(act(dense(h))) + h). */
  const feedForward = (h: Value, layer: string, suffix: '' | '_query', role: string): Value =>
    b.scope(role, () => {
      const mid = activation(b, p.linear(h, `${layer}.intermediate${suffix}.dense`, 'fc1'), c.act);
      const out = p.linear(mid, `${layer}.output${suffix}.dense`, 'fc2');
      return p.layerNorm(b.add(out, h, 'residual'), `${layer}.output${suffix}.LayerNorm`, c.eps, 'ln');
    });

  for (let i = 0; i < c.depth; i++) {
    const layer = `${prefix}.encoder.layer.${i}`;
    x = b.scope(`qformer.layer.${i}`, () => {
      const a = attention(x, x, `${layer}.attention`, selfBias, 'self'); // (B, Q + S, W)
      if (!withQueries) return feedForward(a, layer, '', 'ffn'); // text only
      let q = inp.text ? slice(b, a, 1, 0, Q, 'query_part') : a; // (B, Q, W)
      if (i % c.crossEvery === 0) q = attention(q, inp.image!, `${layer}.crossattention`, undefined, 'cross');
      const qOut = feedForward(q, layer, '_query', 'ffn_query');
      // The text positions only feed later layers' self-attention: the last layer's are unused.
      if (!inp.text || i === c.depth - 1) return qOut;
      const tOut = feedForward(slice(b, a, 1, Q, 1 << 30, 'text_part'), layer, '', 'ffn_text');
      return b.concat([qOut, tOut], 1, 'joined'); // (B, Q + S, W)
    });
  }
  return inp.text && withQueries ? slice(b, x, 1, 0, Q, 'query_outputs') : x;
}
