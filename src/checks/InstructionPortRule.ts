// The Q-Former's `instruction` attribute agrees with its inputs: `instruction: true` needs an
// input on its instruction port, and one there contradicts `instruction: false`. Checked on the
// nodes of every kind with a port whose role is 'instruction' (the Q-Former's `instruction:`:
// PortSpec.role), named in the messages as the kind names it. docs/diagnostics.md#blip2033
import type { CheckContext } from './CheckContext.js';
import { portWith } from '../nodes/index.js';

export function InstructionPortRule(ctx: CheckContext): void {
  for (const node of ctx.model.nodes.values()) {
    const name = portWith(ctx.kindOf(node), 'instruction');
    if (name === undefined) continue;
    const attr = node.attrs.get('instruction');
    const pinned = ctx.attrValues(node).instruction;
    const port = ctx.argWith(node, 'instruction');
    if (pinned === true && !port)
      ctx.report('BLIP2033', attr!.valueLoc, `${node.kind} '${node.name}' pins instruction: true: expected ${/^[aeiou]/i.test(name) ? 'an' : 'a'} '${name}: SOURCE' input, found none`);
    else if (pinned === false && port)
      ctx.report('BLIP2033', attr!.valueLoc, `${node.kind} '${node.name}' pins instruction: false: expected no '${name}:' input, found '${name}: ${port.source}'`, [
        { message: 'the instruction input', loc: port.loc },
      ]);
  }
}
