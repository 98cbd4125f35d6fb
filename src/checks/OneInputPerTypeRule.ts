// A compiled model takes one image and one text: `blip run` feeds one image batch (pixel_values)
// and one prompt, question or text, so a second image or text input read by the graph could only
// be the first one again. Inputs no node reads are BLIP2031 warnings instead.
// docs/diagnostics.md#blip2035
import type { DraftInput } from '../syntax/draft.js';
import type { CheckContext } from './CheckContext.js';

export function OneInputPerTypeRule(ctx: CheckContext): void {
  const read = new Set([...ctx.model.nodes.values()].flatMap((n) => n.args.map((a) => a.source)));
  const first = new Map<string, DraftInput>();
  for (const input of ctx.model.inputs.values()) {
    if ((input.type !== 'image' && input.type !== 'text') || !read.has(input.name)) continue;
    const earlier = first.get(input.type);
    if (!earlier) {
      first.set(input.type, input);
      continue;
    }
    const what = input.type === 'image' ? 'one image batch' : 'one text: the prompt, question or instruction';
    ctx.report('BLIP2035', input.loc, `'${input.name}' is a second ${input.type} input read by model '${ctx.model.name}': expected one ${input.type} input, as a compiled model takes ${what}; read '${earlier.name}' where '${input.name}' is read`, [
      { message: `the first ${input.type} input, '${earlier.name}'`, loc: earlier.loc },
    ]);
  }
}
