// bert: a BERT-style text transformer (BLIP's text encoder and text decoder). With a `cross:` input
// every layer cross-attends to those features; with `causal: true` it is a decoder with an LM head.
// text (B, S) -> embeddings -> `depth` post-norm layers [self-attn, cross-attn?, MLP] -> (B, S, width)
import type { NodeKind } from './NodeKind.js';
import { ACTIVATIONS, attrSchema, bool, eps, int, n, oneOf, pick } from './schema.js';

export const Bert: NodeKind = {
  kind: 'bert',
  doc: 'A BERT-style text encoder or (with `causal: true`) decoder, optionally cross-attending to image features.',
  ports: [
    { name: '', accepts: ['text'], required: false, doc: 'the text input (a decoder without it generates from its start token)' },
    { name: 'cross', accepts: ['features'], required: false, doc: 'features every layer cross-attends to (image, or the question encoder in VQA)' },
  ],
  output: 'features',
  attrSchema: attrSchema('bert', {
    width: int('hidden size (config: hidden_size)'),
    depth: int('number of layers (config: num_hidden_layers)', 1, 1024),
    heads: int('attention heads (config: num_attention_heads)', 1, 1024),
    mlp_width: int('MLP hidden size (config: intermediate_size)'),
    vocab_size: int('vocabulary size'),
    max_positions: int('learned positions (config: max_position_embeddings)'),
    layer_norm_eps: eps('layer-norm epsilon'),
    encoder_width: int('width of the `cross:` features (config: encoder_hidden_size)'),
    causal: bool('causal self-attention and an LM head: a text decoder'),
    act: oneOf('MLP activation (config: hidden_act)', ACTIVATIONS),
  }),
  defaultConfig: 'text_config',
  fromConfig(section) {
    // `is_decoder` is not read: BLIP's encoder and decoder share one text_config; the file says causal.
    return pick(section, {
      width: 'hidden_size',
      depth: 'num_hidden_layers',
      heads: 'num_attention_heads',
      mlp_width: 'intermediate_size',
      vocab_size: 'vocab_size',
      max_positions: 'max_position_embeddings',
      layer_norm_eps: 'layer_norm_eps',
      encoder_width: 'encoder_hidden_size',
      act: 'hidden_act',
    });
  },
  outputWidth: (a) => n(a, 'width'),
  inputWidth: (port, a) => (port === 'cross' ? n(a, 'encoder_width') : undefined),
};
