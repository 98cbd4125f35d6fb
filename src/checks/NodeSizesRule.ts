// Consistent sizes within a node: width divides into heads, heads into key/value groups, image
// into patches, as each kind says (NodeKind.divides; pinned attributes only). docs/diagnostics.md#blip2041
import type { Attrs } from '../nodes/NodeKind.js';
import { nodeKinds } from '../nodes/index.js';
import type { CheckContext } from './CheckContext.js';

/** Problems as [attribute to blame, message]; used at compile time on resolved attributes too. */
export function sizeProblems(kind: string, a: Attrs): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const r of (Object.hasOwn(nodeKinds, kind) && nodeKinds[kind].divides) || []) {
    const whole = a[r.whole];
    const part = a[r.part];
    if (r.unless && a[r.unless] !== undefined) continue;
    if (typeof whole === 'number' && typeof part === 'number' && part > 0 && whole % part !== 0)
      out.push([r.part, `${r.whole} ${whole} is not a multiple of ${r.part} ${part}: expected ${r.part} to divide ${r.whole}`]);
  }
  return out;
}

export function NodeSizesRule(ctx: CheckContext): void {
  for (const node of ctx.model.nodes.values()) {
    if (!ctx.kindOf(node)) continue;
    for (const [attr, message] of sizeProblems(node.kind, ctx.attrValues(node)))
      ctx.report('BLIP2041', node.attrs.get(attr)!.valueLoc, `${node.kind} '${node.name}': ${message}`);
  }
}
