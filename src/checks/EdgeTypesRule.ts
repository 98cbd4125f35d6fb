// Edge types: what flows along each edge (image, text, features, embedding, logits) is what the
// consuming port accepts. docs/diagnostics.md#blip2024
import { listWords } from '../diagnostics/suggest.js';
import type { CheckContext } from './CheckContext.js';

export function EdgeTypesRule(ctx: CheckContext): void {
  for (const node of ctx.model.nodes.values()) {
    const kind = ctx.kindOf(node);
    if (!kind) continue;
    const seen = new Set<string>();
    for (const arg of node.args) {
      if (seen.has(arg.port)) continue; // BLIP2022
      seen.add(arg.port);
      const port = kind.ports.find((p) => p.name === arg.port);
      const type = ctx.typeOf(arg.source);
      if (!port || !type || port.accepts.includes(type)) continue;
      const portWords = arg.port ? `port '${arg.port}' of ${kind.kind}` : `the input of ${kind.kind}`;
      // an edge written in a base model, broken by an override elsewhere: point at the override too
      const source = ctx.model.nodes.get(arg.source);
      const related = source && source.loc.file !== arg.sourceLoc.file ? [{ message: `${ctx.describe(arg.source)} is declared here`, loc: source.kindLoc }] : undefined;
      ctx.report('BLIP2024', arg.sourceLoc, `${portWords} '${node.name}' expects ${listWords(port.accepts)}, found ${type} from ${ctx.describe(arg.source)}`, related);
    }
  }
}
