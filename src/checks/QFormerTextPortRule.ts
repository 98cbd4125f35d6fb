// A Q-Former's `text:` port is BLIP-2 retrieval's (the ITM pass beside the queries, the text-only
// ITC pass): the compiled encoder then takes the text as input_ids, which only retrieval feeds. A
// generating Q-Former reads its text as InstructBLIP's instruction (`instruction:`, the Q-Former's
// own tokenizer); `text:` there checked, compiled, then failed at run ("input 'input_ids' is
// missing") or, beside T5, fed the Q-Former the T5 tokenizer's ids. docs/diagnostics.md#blip2038
import type { CheckContext } from './CheckContext.js';

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
    if (!ctx.kindOf(node)?.queryOutputs) continue; // (the Q-Former: text beside its queries)
    const text = node.args.find((a) => a.port === 'text');
    if (!text) continue;
    const instruction = node.args.find((a) => a.port === 'instruction');
    if (instruction)
      ctx.report('BLIP2038', text.loc, `${node.kind} '${node.name}' reads both text: ${text.source} and instruction: ${instruction.source}: expected one, instruction: for InstructBLIP's instruction beside the queries or text: for BLIP-2 retrieval's text`, [
        { message: 'the instruction input', loc: instruction.loc },
      ]);
    else if (generating.has(node.name))
      ctx.report('BLIP2038', text.loc, `${node.kind} '${node.name}' reads text: ${text.source} and feeds generate() output '${generating.get(node.name)}': expected 'instruction: ${text.source}', the port a generating Q-Former reads text through (InstructBLIP), found text:, BLIP-2 retrieval's port for itm() and itc()`);
  }
}
