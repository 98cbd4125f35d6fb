// classifier: a linear head over pooled features, e.g. the ITM head (match / no match).
// features (B, T, in_width) -> pool (CLS position, or mean over the Q-Former queries) -> (B, classes)
import type { Attrs, NodeKind } from './NodeKind.js';
import { attrSchema, int, n, oneOf, shown } from './schema.js';
import type { FeaturesFlow } from '../lower/contract.js';
import { dense, position } from '../lower/blocks.js';

export const Classifier: NodeKind = {
  kind: 'classifier',
  doc: 'A linear classification head over pooled features (the ITM head).',
  ports: [{ name: '', role: 'input', accepts: ['features'], required: true, doc: 'the fused image-text features' }],
  output: 'logits',
  attrSchema: attrSchema('classifier', {
    in_width: int('input width (checkpoint: weight shape [classes, in])'),
    classes: int('number of classes (2 for ITM)', 1, 1 << 20),
    pool: oneOf('how positions are pooled: first (CLS) position, or the mean over the query outputs', ['cls', 'mean_queries']),
  }),
  fromShapes(shape, prefix): Attrs {
    const w = shape(`${prefix}.weight`);
    if (!w || w.length !== 2) return {};
    return { classes: w[0], in_width: w[1] };
  },
  outputWidth: (a) => n(a, 'classes'),
  inputWidth: (port, a) => (port === '' ? n(a, 'in_width') : undefined),
  drawnSizes: (a) => `${shown(n(a, 'in_width'))} → ${shown(n(a, 'classes'))} classes`,
};

// ---- lowering (src/lower/contract.ts) ----
// torch.nn.Linear(in, classes) at the node's prefix (BLIP: `itm_head`) over the [CLS] position, or
// (`pool: mean_queries`, BLIP-2) over every query output, averaged over the queries.
Classifier.lowering = {
  defaults: { pool: 'cls' },
  lower(ctx, inputs) {
    const f = inputs[''] as FeaturesFlow;
    if (ctx.str('pool') === 'mean_queries') {
      // BLIP-2 ITM: the head over every query output, then the mean over the queries (in that order, as transformers).
      const per = dense(ctx, f.hidden, '', ctx.int('in_width'), ctx.int('classes'), 'per_query'); // (B, Q, classes)
      return { type: 'logits', logits: ctx.b.op('ReduceMean', [per], { axes: [1], keepdims: 0 }, { name: 'logits' }) }; // (B, classes)
    }
    const cls = position(ctx.b, f.hidden, 0, 'cls'); // (B, in)
    return { type: 'logits', logits: dense(ctx, cls, '', ctx.int('in_width'), ctx.int('classes'), 'logits') }; // (B, classes)
  },
};
