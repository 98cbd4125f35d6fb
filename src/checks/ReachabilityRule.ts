// Outputs are reached: some path leads from a model input to every node an output reads.
// docs/diagnostics.md#blip2028
import type { CheckContext } from './CheckContext.js';

/** Names reachable forward from the model inputs. */
export function reachableFromInputs(ctx: CheckContext): Set<string> {
  const users = new Map<string, string[]>();
  for (const node of ctx.model.nodes.values())
    for (const a of node.args) {
      if (!users.has(a.source)) users.set(a.source, []);
      users.get(a.source)!.push(node.name);
    }
  const reached = new Set<string>(ctx.model.inputs.keys());
  const work = [...reached];
  while (work.length)
    for (const u of users.get(work.pop()!) ?? [])
      if (!reached.has(u)) {
        reached.add(u);
        work.push(u);
      }
  return reached;
}

export function ReachabilityRule(ctx: CheckContext): void {
  const reached = reachableFromInputs(ctx);
  for (const out of ctx.model.outputs.values())
    for (const arg of out.args)
      if (ctx.model.nodes.has(arg.name) && !reached.has(arg.name))
        ctx.report('BLIP2028', arg.loc, `output '${out.name}' is not reached from any input: expected a path from a model input to '${arg.name}', found none`);
}
