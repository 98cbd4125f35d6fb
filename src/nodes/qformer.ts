// qformer: the BLIP-2 / InstructBLIP Querying Transformer. `queries` learned query vectors (with
// the instruction's tokens in InstructBLIP, or the text in BLIP-2 retrieval) go through BERT layers
// that cross-attend to the image features every `cross_attention_frequency` layers.
// features (B, N, encoder_width) -> (B, queries, width)   [text-only: (B, S, width)]
import type { NodeKind } from './NodeKind.js';
import { ACTIVATIONS, attrSchema, bool, eps, int, n, oneOf, pick, shown } from './schema.js';
import type { FeaturesFlow, LowerContext, TextFlow } from '../lower/contract.js';
import type { DType, Value } from '../lower/GraphBuilder.js';
import { activation, attend, mergeHeads, paddingBias, slice, splitHeads } from '../lower/transformer.js';
import { dense, layerNorm, onesMask } from '../lower/blocks.js';
import { CompileError } from '../lower/CompileError.js';

export const QFormer: NodeKind = {
  kind: 'qformer',
  doc: 'The Q-Former: learned queries (plus instruction or text tokens) cross-attending to image features.',
  ports: [
    { name: '', role: 'cross', accepts: ['features'], required: false, doc: 'image features the queries cross-attend to (left out: text-only pass)' },
    { name: 'text', role: 'retrieval-text', accepts: ['text'], required: false, doc: 'text beside the queries (BLIP-2 retrieval: fused ITM or text-only ITC pass)' },
    { name: 'instruction', role: 'instruction', accepts: ['text'], required: false, doc: 'InstructBLIP: the instruction enters the Q-Former beside the queries' },
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
    keep_float32: bool('computed in float32 in a --dtype fp16 artifact, as transformers keeps BLIP-2\'s Q-Former (root config model_type blip-2; InstructBLIP keeps only its query tokens, which it rounds to float16, and with Flan-T5 its word embeddings, which stay float32 either way)'),
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
    // Any value but null is taken, for the schema to refuse a malformed one ("8") by name.
    if (root.num_query_tokens !== undefined && root.num_query_tokens !== null) attrs.queries = root.num_query_tokens as number;
    // transformers' _keep_in_fp32_modules: ["query_tokens", "qformer"] in every BLIP-2 class.
    if (typeof root.model_type === 'string') attrs.keep_float32 = root.model_type === 'blip-2' || root.model_type === 'blip_2';
    return attrs;
  },
  outputWidth: (a) => n(a, 'width'),
  inputWidth: (port, a) => (port === '' ? n(a, 'encoder_width') : undefined),
  divides: [{ part: 'heads', whole: 'width' }],
  learnedPositions: true,
  queryOutputs: true,
  outputLength: (a) => n(a, 'queries'),
  drawnSizes: (a, connected) => `width ${shown(n(a, 'width'))} · depth ${shown(n(a, 'depth'))} · ${connected('') ? `${shown(n(a, 'queries'))} queries` : 'text only'}`,
};

// ---- lowering (src/lower/contract.ts) ----
// transformers' Blip2QFormerModel / InstructBlipQFormerModel at prefix `qformer`:
//   {layernorm | embeddings.layernorm}           BLIP-2 | InstructBLIP input LayerNorm
//   embeddings.{word,position}_embeddings        InstructBLIP's instruction embeddings
//   encoder.layer.{i}.attention.{attention.{query,key,value}, output.{dense,LayerNorm}}
//   encoder.layer.{i}.crossattention.*           when i % cross_attention_frequency == 0
//   encoder.layer.{i}.{intermediate_query,output_query}.*   feed-forward of the query positions
//   encoder.layer.{i}.{intermediate,output}.*    feed-forward of the text positions
// and beside it (`../`: the parent of the prefix): query_tokens (1, Q, W), and BLIP-2 retrieval's
// text embeddings `embeddings.{word,position}_embeddings` (no LayerNorm of their own).
QFormer.lowering = {
  defaults: { cross_attention_frequency: 2, layer_norm_eps: 1e-12, act: 'gelu', keep_float32: false },
  beside: [/query_tokens/, /embeddings\.(word_embeddings|position_embeddings)\.weight|embeddings\.position_ids/],
  ignored: (attrs, connected) => [
    /(.*\.)?position_ids/,
    // Queries beside text (an instruction, BLIP-2's ITM): only the query outputs go on, so the last
    // layer's text feed-forward is never used.
    ...((connected('instruction') || (connected('text') && connected(''))) && typeof attrs.depth === 'number'
      ? [new RegExp(`encoder\\.layer\\.${attrs.depth - 1}\\.(intermediate|output)\\..*`)]
      : []),
  ],
  lower(ctx, inputs) {
    const image = inputs[''] as FeaturesFlow | undefined;
    const text = (inputs.instruction ?? inputs.text) as TextFlow | undefined;
    if (!image && !text) throw new CompileError('BLIP4015', 'a qformer node needs image features, text, or both', ctx.node.loc);
    const { b } = ctx;
    // transformers keeps BLIP-2's Q-Former and query tokens in float32 in a float16 model
    // (_keep_in_fp32_modules): the image features are cast up on the way in, the outputs back down.
    const hidden =
      b.floatType === 'float16' && ctx.bool('keep_float32')
        ? b.cast(
            b.withFloatType('float32', () => qformer(ctx, image && b.cast(image.hidden, 'float32', 'image_f32'), text)),
            'float16',
            'qformer_f16',
          )
        : qformer(ctx, image?.hidden, text);
    // Queries present: only the query outputs go on. Text alone: every text position, with its mask.
    return image ? { type: 'features', hidden } : { type: 'features', hidden, mask: text!.mask };
  },
};

/** The Q-Former forward pass: (B, Q, W) query outputs with an image, (B, S, W) text states without. */
function qformer(ctx: LowerContext, image: Value | undefined, text: TextFlow | undefined): Value {
  const { b } = ctx;
  const [W, heads, depth, M] = [ctx.int('width'), ctx.int('heads'), ctx.int('depth'), ctx.int('mlp_width')];
  const [eps, act, every] = [ctx.num('layer_norm_eps'), ctx.str('act'), ctx.int('cross_attention_frequency')];
  const encW = image ? ctx.int('encoder_width') : W;
  const D = W / heads;
  const Q = image ? ctx.int('queries') : 0;

  // Embeddings: LayerNorm([queries ; word(ids) + position(0..S-1)])            (B, Q + S, W)
  const parts: Value[] = [];
  let joined: Value | undefined; // the parts joined otherwise than by a concatenation in the Q-Former's type
  if (image) {
    const shape = b.concat([b.shape(image, 0, 1, 'batch'), b.int64([Q, W], [2], 'query_dims')], 0, 'query_shape');
    parts.push(b.op('Expand', [ctx.param('../query_tokens', [1, Q, W]), shape], {}, { name: 'queries' })); // (B, Q, W)
  }
  if (text) {
    // InstructBLIP keeps the text embeddings inside the Q-Former, BLIP-2 retrieval beside it.
    const e = ctx.has('embeddings.word_embeddings.weight') ? 'embeddings' : '../embeddings';
    const [V, P] = [ctx.int('vocab_size'), ctx.int('max_positions')];
    // The text embeddings as transformers' float16 model computes them: each table in the type it
    // loads it in, float16 but where a keep-in-float32 name of the model is found in the tensor's
    // name (src/lower/keepFloat32.ts), summed with torch's promotion; then cast to the Q-Former's type.
    //  - InstructBLIP-Flan-T5: T5's "wo" is found in `word_embeddings`, so float32 words + float16
    //    positions are summed in float32 and rounded to float16 once, where
    //    InstructBlipQFormerEmbeddings casts to its LayerNorm's type (the query tokens beside them,
    //    float32 there, are rounded at that cast too: the float16 ones here).
    //  - BLIP-2 retrieval: its text embeddings beside the (float32) Q-Former are float16 tables
    //    summed in float16; Blip2TextEmbeddings casts the float32 query tokens to float16 to join
    //    them, and the Q-Former casts the whole up to float32.
    const half = b.weights.floatType === 'float16';
    const table = (name: string, dims: number[], read: (w: Value) => Value): [Value, DType] => {
      const t = half && !ctx.keptFloat32(name) ? 'float16' : 'float32';
      return [t === b.floatType ? read(ctx.param(name, dims)) : b.withFloatType(t, () => read(ctx.param(name, dims))), t];
    };
    const [words, wordsType] = table(`${e}.word_embeddings.weight`, [V, W], (w) => b.gather(w, text.ids, 0, 'words')); // (B, S, W)
    const [positions, positionsType] = table(`${e}.position_embeddings.weight`, [P, W], (w) => slice(b, w, 0, 0, b.shape(text.ids, 1, 2, 'text_len'), 'positions')); // (S, W)
    const t = wordsType === 'float32' || positionsType === 'float32' ? 'float32' : 'float16';
    if (wordsType === b.floatType && positionsType === b.floatType) parts.push(b.add(words, positions, 'text_embeddings'));
    else {
      const sfx = t === 'float32' ? 'f32' : 'f16';
      const to = (v: Value, from: DType, role: string) => (from === t ? v : b.cast(v, t, `${role}_${sfx}`));
      const sum = b.add(to(words, wordsType, 'words'), to(positions, positionsType, 'positions'), `text_embeddings_${sfx}`);
      if (t === b.floatType) parts.push(sum);
      else if (t === 'float32') parts.push(b.cast(sum, 'float16', 'text_embeddings')); // into a float16 Q-Former
      else {
        // float16 text into a float32 Q-Former (BLIP-2 retrieval): queries rounded to join it
        joined = b.cast(parts.length ? b.concat([b.cast(parts[0], 'float16', 'queries_f16'), sum], 1, 'embeddings_f16') : sum, 'float32', 'embeddings');
      }
    }
  }
  const ln = ctx.has('layernorm.weight') || !ctx.has('embeddings.layernorm.weight') ? 'layernorm' : 'embeddings.layernorm';
  let x = layerNorm(ctx, joined ?? (parts.length > 1 ? b.concat(parts, 1, 'embeddings') : parts[0]), ln, W, eps, 'embeddings_ln');

  // Self-attention mask: queries are never padding.
  const selfBias = text ? paddingBias(b, image ? b.concat([onesMask(b, parts[0], 'query_mask'), text.mask], 1, 'self_mask') : text.mask, 'self_bias') : undefined;

  const heads4 = (t: Value, role: string) => splitHeads(b, t, heads, D, role); // (B, N, L, D)
  /** BertAttention: LayerNorm(dense(attention(h, kv)) + h). */
  const attention = (h: Value, kv: Value, kvW: number, p: string, bias: Value | undefined, role: string) =>
    b.scope(role, () => {
      const q = heads4(dense(ctx, h, `${p}.attention.query`, W, W, 'query'), 'query_heads');
      const k = heads4(dense(ctx, kv, `${p}.attention.key`, kvW, W, 'key'), 'key_heads');
      const v = heads4(dense(ctx, kv, `${p}.attention.value`, kvW, W, 'value'), 'value_heads');
      const o = mergeHeads(b, attend(b, q, k, v, { divide: Math.sqrt(D), bias }), W, 'context'); // scores / √D, as the reference
      return layerNorm(ctx, b.add(dense(ctx, o, `${p}.output.dense`, W, W, 'dense'), h, 'residual'), `${p}.output.LayerNorm`, W, eps, 'LayerNorm');
    });
  /** BertIntermediate + BertOutput: LayerNorm(dense(act(dense(h))) + h); suffix '_query' for query positions. */
  const feedForward = (h: Value, p: string, suffix: '' | '_query', role: string) =>
    b.scope(role, () => {
      const mid = activation(b, dense(ctx, h, `${p}.intermediate${suffix}.dense`, W, M, 'intermediate'), act);
      return layerNorm(ctx, b.add(dense(ctx, mid, `${p}.output${suffix}.dense`, M, W, 'dense'), h, 'residual'), `${p}.output${suffix}.LayerNorm`, W, eps, 'LayerNorm');
    });

  for (let i = 0; i < depth; i++) {
    const p = `encoder.layer.${i}`;
    x = b.scope(p, () => {
      const a = attention(x, x, W, `${p}.attention`, selfBias, 'attention'); // (B, Q + S, W)
      if (!image) return feedForward(a, p, '', 'ffn'); // text alone (query_length 0)
      let q = text ? slice(b, a, 1, 0, Q, 'query_part') : a; // (B, Q, W)
      if (i % every === 0) q = attention(q, image, encW, `${p}.crossattention`, undefined, 'crossattention'); // the image is never padded
      const qOut = feedForward(q, p, '_query', 'ffn_query');
      // Text positions only feed later layers' self-attention: the last layer's would be unused.
      if (!text || i === depth - 1) return qOut;
      return b.concat([qOut, feedForward(slice(b, a, 1, Q, 1 << 30, 'text_part'), p, '', 'ffn_text')], 1, 'joined'); // (B, Q + S, W)
    });
  }
  return x; // (B, Q, W) with an image, (B, S, W) without
}
