// How many positions a decoder-only language model's `prefix:` takes in front of its text: the
// manifest records it (text.prefix_length), and the runtime puts that many `<image>` placeholders
// before the prompt (checkpoints with image_token_index) or counts that many positions in front of
// it (older ones). It is num_query_tokens only when the prefix is the Q-Former's queries: a prefix
// read from the ViT (`opt(prefix: vision, …)`) is its 1 + (image_size / patch_size)² outputs.
//
// Walked on the resolved attributes, not on the graph: the encode graph's prefix_embeds has a
// symbolic length. The kinds named here are those whose output length is not their input's own
// (docs/architecture.md#adding-a-node-kind): vit, qformer, and linear / mlp, which keep it.
import type { ResolvedNode } from './resolve.js';

/**
 * The sequence length of node `name`'s output, when its attributes fix it; undefined when it
 * depends on the text (a Q-Former or text encoder reading text alone) or on a kind not listed.
 */
export function outputLength(nodes: Map<string, ResolvedNode>, name: string): number | undefined {
  const r = nodes.get(name);
  if (!r) return undefined; // a model input
  const a = r.attrs;
  const from = (port: string) => r.node.edges.find((e) => e.port === port)?.from;
  switch (r.node.kind) {
    case 'vit': {
      if (typeof a.image_size !== 'number' || typeof a.patch_size !== 'number') return undefined;
      const grid = Math.floor(a.image_size / a.patch_size); // (the lowering floors the grid as transformers does)
      return (a.class_token === false ? 0 : 1) + grid * grid;
    }
    case 'qformer':
      // with image features only the query outputs go on; text alone is as long as the text
      return from('') !== undefined && typeof a.queries === 'number' ? a.queries : undefined;
    case 'linear':
    case 'mlp': {
      const input = from('');
      return input === undefined ? undefined : outputLength(nodes, input);
    }
    default:
      return undefined;
  }
}
