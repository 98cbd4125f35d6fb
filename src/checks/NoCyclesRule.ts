// Acyclic graph: no node reads (directly or through others) its own output.
// docs/diagnostics.md#blip2027
import type { CheckContext } from './CheckContext.js';

export function NoCyclesRule(ctx: CheckContext): void {
  const { nodes } = ctx.model;
  const state = new Map<string, 'active' | 'done'>();
  // Iterative depth-first search (a long chain of nodes must not exhaust the call stack).
  for (const root of nodes.keys()) {
    if (state.has(root)) continue;
    const stack: Array<{ name: string; next: number }> = [{ name: root, next: 0 }];
    state.set(root, 'active');
    while (stack.length) {
      const top = stack[stack.length - 1];
      const args = nodes.get(top.name)!.args;
      if (top.next >= args.length) {
        state.set(top.name, 'done');
        stack.pop();
        continue;
      }
      const arg = args[top.next++];
      if (!nodes.has(arg.source)) continue;
      const s = state.get(arg.source);
      if (s === 'active') {
        const names = stack.map((f) => f.name);
        const cycle = [...names.slice(names.indexOf(arg.source)), arg.source];
        const shown = cycle.length > 8 ? [...cycle.slice(0, 4), '…', ...cycle.slice(-3)] : cycle;
        ctx.report(
          'BLIP2027',
          arg.sourceLoc,
          `cycle ${shown.join(' → ')}: expected every input of '${top.name}' to come from a model input or a node before it, found '${arg.source}' which depends on '${top.name}'`,
        );
      } else if (!s) {
        state.set(arg.source, 'active');
        stack.push({ name: arg.source, next: 0 });
      }
    }
  }
}
