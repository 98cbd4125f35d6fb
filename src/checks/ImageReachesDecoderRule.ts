// The text a generate() output writes depends on the image: blip-graph models are vision-language,
// and the compiled model's encoder is the part that reads the image (its outputs are what the
// decoder reads of it). A decoder reading text alone (`opt(text: prompt)`, `bert(prompt)` without
// cross:) checked clean, then the compile died with an internal error (the manifest's encode graph
// had no outputs). docs/diagnostics.md#blip2039
import type { SourceLoc } from '../ir/types.js';
import type { CheckContext } from './CheckContext.js';

export function ImageReachesDecoderRule(ctx: CheckContext): void {
  if (ctx.edgesBroken()) return;
  const images = [...ctx.model.inputs.values()].filter((i) => i.type === 'image').map((i) => i.name);
  for (const out of ctx.model.outputs.values()) {
    if (out.task !== 'generate' || out.args.length !== 1) continue; // BLIP2012, BLIP2025
    const arg = out.args[0]!;
    const decoder = ctx.model.nodes.get(arg.name);
    const kind = decoder && ctx.kindOf(decoder);
    if (!decoder || !kind?.generates) continue; // BLIP2020, BLIP2026
    const inputs = [...ctx.inputsOf(decoder.name)];
    if (!inputs.length || inputs.some((i) => images.includes(i))) continue; // (none: BLIP2028)
    const ports = kind.ports.filter((p) => p.accepts.includes('features')).map((p) => (p.name ? `${p.name}:` : 'its first argument'));
    const reads = inputs.map((i) => `${ctx.model.inputs.get(i)!.type} input '${i}'`).join(' and ');
    const image = images.length ? `image input '${images[0]}'` : 'an image input';
    const found = `it reads ${reads} only${images.length ? '' : `, and model '${ctx.model.name}' declares no image input`}`;
    // Where to connect it: the decoder's inputs, or a node on its way back that the checked file
    // wrote (an override that cut the image off), or the output.
    const places: [SourceLoc, ...SourceLoc[]] = [decoder.argsLoc, ...ctx.argsBack(decoder.name), arg.loc];
    // Image features nothing reads: what was presumably meant to reach the decoder.
    const unread = images.map((i) => ctx.unreadFeatures(i, decoder.name)).find((n) => n);
    ctx.report(
      'BLIP2039',
      ctx.firstInModelFile(places),
      `${decoder.kind} '${decoder.name}' (generate() output '${out.name}') does not depend on the image: expected ${image} to reach it through ${ports.join(' or ')} (blip-graph models are vision-language: the image enters as a prefix, encoder input or cross-attention), found ${found}`,
      unread ? [{ message: `${ctx.describe(unread.name)} carries the image, and nothing reads it`, loc: unread.loc }] : undefined,
    );
  }
}
