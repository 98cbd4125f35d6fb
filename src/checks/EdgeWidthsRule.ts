// Widths agree along edges, as far as pinned attributes tell (see widths.ts; the compiler runs the
// same check with attributes resolved from the checkpoint). docs/diagnostics.md#blip2040
import type { Attrs } from '../nodes/NodeKind.js';
import type { CheckContext } from './CheckContext.js';
import { checkWidths } from './widths.js';

export function EdgeWidthsRule(ctx: CheckContext): void {
  const attrs: Record<string, Attrs> = {};
  const nodes = [...ctx.model.nodes.values()].map((n) => {
    attrs[n.name] = ctx.attrValues(n);
    const attrLocs = Object.fromEntries([...n.attrs].map(([k, a]) => [k, a.valueLoc]));
    return { name: n.name, kind: n.kind, loc: n.loc, attrLocs, edges: n.args.map((a) => ({ port: a.port, from: a.source, loc: a.loc })) };
  });
  ctx.diagnostics.push(...checkWidths({ nodes }, attrs));
}
