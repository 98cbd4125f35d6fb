// mlp: a two-layer projection (linear_1 -> activation -> linear_2), the LLaVA-style alternative to
// a single linear language projection. features (B, T, in_width) -> (B, T, out_width).
import type { Attrs, NodeKind } from './NodeKind.js';
import { ACTIVATIONS, attrSchema, int, n, oneOf, shown } from './schema.js';
import type { FeaturesFlow } from '../lower/contract.js';
import { activation } from '../lower/transformer.js';
import { dense } from '../lower/blocks.js';

export const Mlp: NodeKind = {
  kind: 'mlp',
  doc: 'A two-layer projection (linear, activation, linear) from one width to another.',
  ports: [{ name: '', role: 'input', accepts: ['features'], required: true, doc: 'the features to project' }],
  output: 'features',
  attrSchema: attrSchema('mlp', {
    in_width: int('input width (checkpoint: linear_1.weight shape [hidden, in])'),
    hidden_width: int('hidden width'),
    out_width: int('output width (checkpoint: linear_2.weight shape [out, hidden])'),
    act: oneOf('activation between the two layers', ACTIVATIONS),
  }),
  layout: 'two linear layers: linear_1.weight, linear_2.weight and their biases',
  fromShapes(shape, prefix): Attrs {
    const w1 = shape(`${prefix}.linear_1.weight`);
    const w2 = shape(`${prefix}.linear_2.weight`);
    if (!w1 || !w2 || w1.length !== 2 || w2.length !== 2) return {};
    return { in_width: w1[1], hidden_width: w1[0], out_width: w2[0] };
  },
  outputWidth: (a) => n(a, 'out_width'),
  inputWidth: (port, a) => (port === '' ? n(a, 'in_width') : undefined),
  drawnSizes: (a) => `${shown(n(a, 'in_width'))} → ${shown(n(a, 'hidden_width'))} → ${shown(n(a, 'out_width'))}`,
  positionwise: true,
};

// ---- lowering (src/lower/contract.ts) ----
// linear_1 -> activation -> linear_2 at the node's prefix (LLaVA's multi_modal_projector layout).
Mlp.lowering = {
  defaults: { act: 'gelu' },
  lower(ctx, inputs) {
    const { b } = ctx;
    const f = inputs[''] as FeaturesFlow;
    const [inW, hidW, outW] = [ctx.int('in_width'), ctx.int('hidden_width'), ctx.int('out_width')];
    const h = activation(b, dense(ctx, f.hidden, 'linear_1', inW, hidW, 'linear_1', ctx.has('linear_1.bias')), ctx.str('act'));
    return { type: 'features', hidden: dense(ctx, h, 'linear_2', hidW, outW, 'linear_2', ctx.has('linear_2.bias')), mask: f.mask };
  },
};
