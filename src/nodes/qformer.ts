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
