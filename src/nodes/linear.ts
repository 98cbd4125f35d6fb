// linear: one affine projection, e.g. BLIP-2's language_projection from the Q-Former width to the
// LLM hidden size. features (B, T, in_width) -> (B, T, out_width). Widths come from `weight` (out, in).
import type { Attrs, NodeKind } from './NodeKind.js';
import { attrSchema, bool, int, n, shown } from './schema.js';
import type { FeaturesFlow } from '../lower/contract.js';
import { dense } from '../lower/blocks.js';

export const Linear: NodeKind = {
  kind: 'linear',
  doc: 'An affine projection of every position from one width to another.',
  ports: [{ name: '', role: 'input', accepts: ['features'], required: true, doc: 'the features to project' }],
  output: 'features',
  attrSchema: attrSchema('linear', {
    in_width: int('input width (checkpoint: weight shape [out, in])'),
    out_width: int('output width'),
    bias: bool('the projection has a bias'),
  }),
  layout: 'one linear layer: weight [out, in] and an optional bias',
  fromShapes(shape, prefix): Attrs {
    const w = shape(`${prefix}.weight`);
    if (!w || w.length !== 2) return {};
    return { out_width: w[0], in_width: w[1], bias: shape(`${prefix}.bias`) !== undefined };
  },
  outputWidth: (a) => n(a, 'out_width'),
  inputWidth: (port, a) => (port === '' ? n(a, 'in_width') : undefined),
  drawnSizes: (a) => `${shown(n(a, 'in_width'))} → ${shown(n(a, 'out_width'))}`,
  positionwise: true,
};

// ---- lowering (src/lower/contract.ts) ----
// torch.nn.Linear at the node's prefix: `weight` (out, in), optional `bias` (out).
Linear.lowering = {
  lower(ctx, inputs) {
    const f = inputs[''] as FeaturesFlow;
    const bias = ctx.attrs.bias !== false && ctx.has('bias');
    return { type: 'features', hidden: dense(ctx, f.hidden, '', ctx.int('in_width'), ctx.int('out_width'), 'linear', bias), mask: f.mask };
  },
};
