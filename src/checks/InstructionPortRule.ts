// The Q-Former's `instruction` attribute agrees with its inputs: `instruction: true` needs an
// `instruction:` input, and an `instruction:` input contradicts `instruction: false`. Checked on
// the nodes of every kind with an `instruction` port (the Q-Former's: NodeKind.ports).
// docs/diagnostics.md#blip2033
import type { CheckContext } from './CheckContext.js';

export function InstructionPortRule(ctx: CheckContext): void {
  for (const node of ctx.model.nodes.values()) {
    if (!ctx.kindOf(node)?.ports.some((p) => p.name === 'instruction')) continue;
    const attr = node.attrs.get('instruction');
    const pinned = ctx.attrValues(node).instruction;
    const port = node.args.find((a) => a.port === 'instruction');
    if (pinned === true && !port)
      ctx.report('BLIP2033', attr!.valueLoc, `${node.kind} '${node.name}' pins instruction: true: expected an 'instruction: SOURCE' input, found none`);
    else if (pinned === false && port)
      ctx.report('BLIP2033', attr!.valueLoc, `${node.kind} '${node.name}' pins instruction: false: expected no 'instruction:' input, found 'instruction: ${port.source}'`, [
        { message: 'the instruction input', loc: port.loc },
      ]);
  }
}
