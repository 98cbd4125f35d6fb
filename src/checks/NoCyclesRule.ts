// Acyclic graph: no node reads (directly or through others) its own output.
// docs/diagnostics.md#blip2027
import type { CheckContext } from './CheckContext.js';

export function NoCyclesRule(ctx: CheckContext): void {
  const { nodes } = ctx.model;
  const state = new Map<string, 'active' | 'done'>();
  const stack: string[] = [];
  const visit = (name: string): void => {
    state.set(name, 'active');
    stack.push(name);
    for (const arg of nodes.get(name)!.args) {
      if (!nodes.has(arg.source)) continue;
      const s = state.get(arg.source);
      if (s === 'active') {
        const cycle = [...stack.slice(stack.indexOf(arg.source)), arg.source];
        ctx.report('BLIP2027', arg.sourceLoc, `cycle ${cycle.join(' → ')}: expected every input of '${name}' to come from a model input or a node before it, found '${arg.source}' which depends on '${name}'`);
      } else if (!s) visit(arg.source);
    }
    stack.pop();
    state.set(name, 'done');
  };
  for (const name of nodes.keys()) if (!state.has(name)) visit(name);
}
