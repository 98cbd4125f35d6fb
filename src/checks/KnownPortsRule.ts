// Ports: each named input is a port of the node's kind, each port is given at most once, and a
// kind takes at most one positional input. docs/diagnostics.md#blip2021
import { didYouMean, listWords } from '../diagnostics/suggest.js';
import type { SourceLoc } from '../ir/types.js';
import type { CheckContext } from './CheckContext.js';

export function KnownPortsRule(ctx: CheckContext): void {
  for (const node of ctx.model.nodes.values()) {
    const kind = ctx.kindOf(node);
    if (!kind) continue;
    const named = kind.ports.filter((p) => p.name).map((p) => p.name);
    const positional = kind.ports.some((p) => p.name === '');
    const seen = new Map<string, SourceLoc>();
    for (const arg of node.args) {
      if (!kind.ports.some((p) => p.name === arg.port)) {
        if (arg.port === '')
          ctx.report('BLIP2021', arg.loc, `${kind.kind} takes no positional input: expected a named input (${named.map((n) => n + ': …').join(', ')}), found '${arg.source}'`);
        else
          ctx.report(
            'BLIP2021',
            arg.portLoc ?? arg.loc,
            `${kind.kind} has no port '${arg.port}': expected ${listWords([...(positional ? ['a positional input'] : []), ...named.map((n) => `'${n}'`)])}${didYouMean(arg.port, named)}`,
          );
        continue;
      }
      const prev = seen.get(arg.port);
      if (prev)
        ctx.report(
          'BLIP2022',
          arg.loc,
          arg.port === ''
            ? `${kind.kind} takes one positional input: expected the others named (${named.map((n) => n + ': …').join(', ')}), found a second positional input '${arg.source}'`
            : `port '${arg.port}' given twice: expected one source per port, found a second`,
          [{ message: 'first given here', loc: prev }],
        );
      else seen.set(arg.port, arg.loc);
    }
  }
}
