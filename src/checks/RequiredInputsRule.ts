// Dangling inputs: every required port of a node is connected, and a node has at least one input.
// docs/diagnostics.md#blip2023
import type { CheckContext } from './CheckContext.js';

const portName = (p: string): string => (p === '' ? 'a positional input' : `'${p}: …'`);

export function RequiredInputsRule(ctx: CheckContext): void {
  for (const node of ctx.model.nodes.values()) {
    const kind = ctx.kindOf(node);
    if (!kind) continue;
    const given = new Set(node.args.map((a) => a.port));
    for (const port of kind.ports)
      if (port.required && !given.has(port.name))
        ctx.report('BLIP2023', node.argsLoc, `${kind.kind} '${node.name}' is missing ${portName(port.name)} (${port.doc}): expected ${kind.kind}(${port.name ? port.name + ': ' : ''}SOURCE…), found no such input`);
    if (!node.args.length && !kind.ports.some((p) => p.required))
      ctx.report('BLIP2023', node.argsLoc, `${kind.kind} '${node.name}' has no inputs: expected at least one of ${kind.ports.map((p) => portName(p.name)).join(', ')}`);
  }
}
