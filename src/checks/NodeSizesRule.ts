// Consistent sizes within a node: width divides into heads, heads into key/value groups, image
// into patches (pinned attributes only). docs/diagnostics.md#blip2041
import type { Attrs } from '../nodes/NodeKind.js';
import type { CheckContext } from './CheckContext.js';

interface Ratio {
  kinds: string[];
  whole: string;
  part: string;
  /** Skip when this attribute is pinned (llama with an explicit head_dim). */
  unless?: string;
}

const RATIOS: Ratio[] = [
  { kinds: ['vit', 'bert', 'qformer', 'opt'], whole: 'width', part: 'heads' },
  { kinds: ['llama'], whole: 'width', part: 'heads', unless: 'head_dim' },
  { kinds: ['llama'], whole: 'heads', part: 'kv_heads' },
  { kinds: ['vit'], whole: 'image_size', part: 'patch_size' },
];

/** Problems as [attribute to blame, message]; used at compile time on resolved attributes too. */
export function sizeProblems(kind: string, a: Attrs): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const r of RATIOS) {
    const whole = a[r.whole];
    const part = a[r.part];
    if (!r.kinds.includes(kind) || (r.unless && a[r.unless] !== undefined)) continue;
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
