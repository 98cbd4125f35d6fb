// Outputs are reached: some path leads from a model input to every node an output reads.
// docs/diagnostics.md#blip2028
import type { CheckContext } from './CheckContext.js';

/** Names reachable forward from the model inputs. */
export function reachableFromInputs(ctx: CheckContext): Set<string> {
  const reached = new Set<string>(ctx.model.inputs.keys());
  for (let changed = true; changed; ) {
    changed = false;
    for (const node of ctx.model.nodes.values())
      if (!reached.has(node.name) && node.args.some((a) => reached.has(a.source))) {
        reached.add(node.name);
        changed = true;
      }
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
