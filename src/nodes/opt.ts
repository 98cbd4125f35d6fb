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
