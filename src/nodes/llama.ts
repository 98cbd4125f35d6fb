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
