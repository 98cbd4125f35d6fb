// embed: a linear projection to the shared image-text embedding space for ITC, L2-normalised.
// features (B, T, in_width) -> pool (CLS: (B, in), or every query: (B, Q, in)) -> (B[, Q], out_width)
import type { Attrs, NodeKind } from './NodeKind.js';
import { attrSchema, int, n, oneOf, shown } from './schema.js';
import type { FeaturesFlow } from '../lower/contract.js';
import { dense, l2normalize, position } from '../lower/blocks.js';

export const Embed: NodeKind = {
  kind: 'embed',
  doc: 'A projection to the image-text contrastive embedding space, L2-normalised (ITC).',
  ports: [{ name: '', role: 'input', accepts: ['features'], required: true, doc: 'image or text features' }],
  output: 'embedding',
  attrSchema: attrSchema('embed', {
    in_width: int('input width (checkpoint: weight shape [out, in])'),
    out_width: int('embedding width (config: image_text_hidden_size)'),
    pool: oneOf('the first (CLS) position, or every Q-Former query', ['cls', 'queries']),
  }),
  fromShapes(shape, prefix): Attrs {
    const w = shape(`${prefix}.weight`);
    if (!w || w.length !== 2) return {};
    return { out_width: w[0], in_width: w[1] };
  },
  outputWidth: (a) => n(a, 'out_width'),
  inputWidth: (port, a) => (port === '' ? n(a, 'in_width') : undefined),
  drawnSizes: (a) => `${shown(n(a, 'in_width'))} → ${shown(n(a, 'out_width'))}`,
};

// ---- lowering (src/lower/contract.ts) ----
// torch.nn.Linear(in, out) at the node's prefix (BLIP: `vision_proj`, `text_proj`) over the [CLS]
// position, then F.normalize(dim=-1), as BlipForImageTextRetrieval does for ITC; `pool: queries`
// projects every Q-Former query output (Blip2ForImageTextRetrieval's vision_projection).
Embed.lowering = {
  defaults: { pool: 'cls' },
  lower(ctx, inputs) {
    const f = inputs[''] as FeaturesFlow;
    if (ctx.str('pool') === 'queries') {
      // BLIP-2 ITC: every query output projected and normalised, (B, Q, in) -> (B, Q, out).
      const e = dense(ctx, f.hidden, '', ctx.int('in_width'), ctx.int('out_width'), 'proj');
      return { type: 'embedding', embeds: l2normalize(ctx.b, e, 'embeds'), perQuery: true };
    }
    const cls = position(ctx.b, f.hidden, 0, 'cls'); // (B, in)
    const e = dense(ctx, cls, '', ctx.int('in_width'), ctx.int('out_width'), 'proj'); // (B, out)
    return { type: 'embedding', embeds: l2normalize(ctx.b, e, 'embeds') };
  },
};
