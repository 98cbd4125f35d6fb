// How many positions a decoder-only language model's `prefix:` takes in front of its text: the
// manifest records it (text.prefix_length), and the runtime puts that many `<image>` placeholders
// before the prompt (checkpoints with image_token_index) or counts that many positions in front of
// it (older ones). It is num_query_tokens only when the prefix is the Q-Former's queries: a prefix
// read from the ViT (`opt(prefix: vision, …)`) is its 1 + (image_size / patch_size)² outputs.
//
// Walked on the resolved attributes, not on the graph: the encode graph's prefix_embeds has a
// symbolic length. The kinds say it: NodeKind.outputLength (vit, qformer) and positionwise (linear,
// mlp keep the length of their 'input' port's source), and the Q-Former's queries go on only when
// its 'cross' port has image features (PortSpec.role).
import { nodeKinds, portWith } from '../nodes/index.js';
import type { ResolvedNode } from './resolve.js';

/**
 * The sequence length of node `name`'s output, when its attributes fix it; undefined when it
 * depends on the text (a Q-Former or text encoder reading text alone) or the kind does not say.
 */
export function outputLength(nodes: Map<string, ResolvedNode>, name: string): number | undefined {
  const r = nodes.get(name);
  if (!r) return undefined; // a model input
  const kind = nodeKinds[r.node.kind];
  const from = (role: 'input' | 'cross') => r.node.edges.find((e) => e.port === portWith(kind, role))?.from;
  if (kind?.positionwise) {
    const input = from('input');
    return input === undefined ? undefined : outputLength(nodes, input);
  }
  // with image features only the query outputs go on; text alone is as long as the text
  if (kind?.queryOutputs && from('cross') === undefined) return undefined;
  return kind?.outputLength?.(r.attrs);
}
