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
    return attrs;
  },
  outputWidth: (a) => n(a, 'vocab_size'),
  inputWidth: (port, a) => (port === 'prefix' ? n(a, 'width') : undefined),
};
