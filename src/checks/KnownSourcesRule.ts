// Name resolution on edges: every node input names a model input or a node of the model.
// docs/diagnostics.md#blip2020
import { didYouMean, someOf } from '../diagnostics/suggest.js';
import type { CheckContext } from './CheckContext.js';

export function KnownSourcesRule(ctx: CheckContext): void {
  const names = [...ctx.model.inputs.keys(), ...ctx.model.nodes.keys()];
  for (const node of ctx.model.nodes.values())
    for (const arg of node.args)
      if (!ctx.model.inputs.has(arg.source) && !ctx.model.nodes.has(arg.source))
        ctx.report('BLIP2020', arg.sourceLoc, `unknown node or input '${arg.source}': expected one of ${someOf(names)}${didYouMean(arg.source, names)}`);
}
