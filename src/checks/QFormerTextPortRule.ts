// A Q-Former's `text:` port is BLIP-2 retrieval's (the ITM pass beside the queries, the text-only
// ITC pass): the compiled encoder then takes the text as input_ids, which only retrieval feeds. A
// generating Q-Former reads its text as InstructBLIP's instruction (`instruction:`, the Q-Former's
// own tokenizer); `text:` there checked, compiled, then failed at run ("input 'input_ids' is
// missing") or, beside T5, fed the Q-Former the T5 tokenizer's ids. The ports are asked by their
// roles, 'retrieval-text' and 'instruction' (PortSpec.role), and named as the kind names them.
// docs/diagnostics.md#blip2038
import type { CheckContext } from './CheckContext.js';
import { portWith } from '../nodes/index.js';

export function QFormerTextPortRule(ctx: CheckContext): void {
  const generating = new Map<string, string>(); // node -> the generate() output that reads it
  for (const out of ctx.model.outputs.values()) {
    if (out.task !== 'generate') continue;
    const work = out.args.map((a) => a.name);
    while (work.length) {
      const name = work.pop()!;
      if (generating.has(name)) continue;
      generating.set(name, out.name);
      for (const a of ctx.model.nodes.get(name)?.args ?? []) work.push(a.source);
    }
  }
  for (const node of ctx.model.nodes.values()) {
    const text = ctx.argWith(node, 'retrieval-text'); // (the Q-Former's text beside its queries)
    if (!text) continue;
    const textPort = text.port;
    const instructionPort = portWith(ctx.kindOf(node), 'instruction');
    const instruction = ctx.argWith(node, 'instruction');
    if (instruction)
      ctx.report('BLIP2038', text.loc, `${node.kind} '${node.name}' reads both ${textPort}: ${text.source} and ${instructionPort}: ${instruction.source}: expected one, ${instructionPort}: for InstructBLIP's instruction beside the queries or ${textPort}: for BLIP-2 retrieval's text`, [
        { message: 'the instruction input', loc: instruction.loc },
      ]);
    else if (generating.has(node.name))
      ctx.report('BLIP2038', text.loc, `${node.kind} '${node.name}' reads ${textPort}: ${text.source} and feeds generate() output '${generating.get(node.name)}': expected ${instructionPort === undefined ? `no text there (${node.kind} reads no instruction)` : `'${instructionPort}: ${text.source}', the port a generating Q-Former reads text through (InstructBLIP)`}, found ${textPort}:, BLIP-2 retrieval's port for itm() and itc()`);
  }
}
