// itm() scores whether a text matches an image, so its classifier depends on both the image and
// the text input: BLIP's text encoder cross-attends to the image, BLIP-2's Q-Former reads the
// text beside its queries. blip_itm with the fused BERT's `cross: vision` forgotten checked clean,
// compiled and gave every image the same score (ITM 0.4198 for rgb_37x23.png and gray_45x31.png);
// the ITM head over BLIP-2's image-only queries was no more than an unused-node warning.
// docs/diagnostics.md#blip2042
import type { SourceLoc } from '../ir/types.js';
import type { CheckContext } from './CheckContext.js';

const READS = ['image', 'text'] as const;

export function ItmInputsRule(ctx: CheckContext): void {
  if (ctx.edgesBroken()) return;
  for (const out of ctx.model.outputs.values()) {
    if (out.task !== 'itm' || out.args.length !== 1) continue; // BLIP2012, BLIP2025
    const arg = out.args[0]!;
    const head = ctx.model.nodes.get(arg.name);
    if (!head) continue; // an input (BLIP2026) or an unknown name (BLIP2020)
    const inputs = [...ctx.inputsOf(head.name)].map((i) => ctx.model.inputs.get(i)!);
    const missing = READS.find((type) => !inputs.some((i) => i.type === type));
    if (!inputs.length || !missing) continue; // (none: BLIP2028)
    const declared = [...ctx.model.inputs.values()].find((i) => i.type === missing);
    const expected = READS.map((type) => {
      const input = [...ctx.model.inputs.values()].find((i) => i.type === type);
      return input ? `${type} input '${input.name}'` : `a ${type} input`;
    });
    const reads = inputs.map((i) => `${i.type} input '${i.name}'`).join(' and ');
    const found = `it reads ${reads} only${declared ? '' : `, and model '${ctx.model.name}' declares no ${missing} input`}`;
    // Where to connect it: the head's inputs, or a node on its way back that the checked file wrote
    // (an override that cut the input off), or the output.
    const places: [SourceLoc, ...SourceLoc[]] = [head.argsLoc, ...ctx.argsBack(head.name), arg.loc];
    const unread = declared && ctx.unreadFeatures(declared.name, head.name);
    ctx.report(
      'BLIP2042',
      ctx.firstInModelFile(places),
      `${head.kind} '${head.name}' (itm() output '${out.name}') does not depend on the ${missing}: expected ${expected.join(' and ')} to reach it (itm() scores whether the text matches the image: a text encoder cross-attending to the image, or a Q-Former reading the text beside its queries), found ${found}`,
      unread ? [{ message: `${ctx.describe(unread.name)} carries the ${missing}, and nothing reads it`, loc: unread.loc }] : undefined,
    );
  }
}
