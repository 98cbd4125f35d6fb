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
  // Inherited and left unused by this model's own declarations (an override that reads something
  // else): those are the lines to look at, so they follow as related places.
  const own = [...ctx.model.nodes.values()].filter((n) => n.declaredIn === ctx.model.name && n.loc.file === ctx.model.file);
  const cause = (loc: { file: string }) =>
    ctx.model.base && loc.file !== ctx.model.file ? own.slice(0, 3).map((n) => ({ message: `'${n.name}' is declared here by model '${ctx.model.name}'`, loc: n.loc })) : undefined;
  for (const node of ctx.model.nodes.values())
    if (!used.has(node.name)) ctx.report('BLIP2030', node.loc, `unused node '${node.name}': expected it to feed an output, found no path from it to any`, cause(node.loc));
  for (const input of ctx.model.inputs.values())
    if (!used.has(input.name)) ctx.report('BLIP2031', input.loc, `unused input '${input.name}': expected some node to read it, found none on a path to an output`, cause(input.loc));
}
