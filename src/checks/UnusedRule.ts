// Unused declarations (warnings): every node and every input feeds some output. Not reported for
// a model with errors, where an unresolved name would make its sources look unused.
// docs/diagnostics.md#blip2030
import type { CheckContext } from './CheckContext.js';

export function UnusedRule(ctx: CheckContext): void {
  const used = new Set<string>();
  const work = [...ctx.model.outputs.values()].flatMap((o) => o.args.map((a) => a.name));
  while (work.length) {
    const name = work.pop()!;
    if (used.has(name)) continue;
    used.add(name);
    for (const arg of ctx.model.nodes.get(name)?.args ?? []) work.push(arg.source);
  }
  if (!ctx.model.outputs.size || ctx.diagnostics.some((d) => d.severity === 'error')) return;
  for (const node of ctx.model.nodes.values())
    if (!used.has(node.name)) ctx.report('BLIP2030', node.loc, `unused node '${node.name}': expected it to feed an output, found no path from it to any`);
  for (const input of ctx.model.inputs.values())
    if (!used.has(input.name)) ctx.report('BLIP2031', input.loc, `unused input '${input.name}': expected some node to read it, found none on a path to an output`);
}
