// Known node kinds: every `node NAME: KIND(...)` names a registered kind (src/nodes/index.ts).
// docs/diagnostics.md#blip2010
import { nodeKinds } from '../nodes/index.js';
import { didYouMean } from '../diagnostics/suggest.js';
import type { CheckContext } from './CheckContext.js';

export function NodeKindRule(ctx: CheckContext): void {
  const kinds = Object.keys(nodeKinds);
  for (const node of ctx.model.nodes.values())
    if (!ctx.kindOf(node))
      ctx.report('BLIP2010', node.kindLoc, `unknown node kind '${node.kind}': expected one of ${kinds.join(', ')}${didYouMean(node.kind, kinds)}`);
}
