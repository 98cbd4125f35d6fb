// itc(image_embed, text_embed): the first argument is computed from the image input alone and the
// second from the text input alone. retrieval.onnx reads its image embeddings off the first and its
// text embeddings off the second, so swapped arguments give each image the embedding of a blank
// text, and a text side that also reads the image (an embed over the fused, cross-attending
// encoder) gives text embeddings computed against the blank stand-in image. docs/diagnostics.md#blip2036
import type { DraftOutput } from '../syntax/draft.js';
import type { CheckContext } from './CheckContext.js';

type Side = 'image' | 'text';

export function ItcSidesRule(ctx: CheckContext): void {
  if (ctx.edgesBroken()) return;
  for (const out of ctx.model.outputs.values()) {
    if (out.task !== 'itc' || out.args.length !== 2) continue; // BLIP2012, BLIP2025
    // (an argument that is not an embedding node is BLIP2026's; one no input reaches, BLIP2028's)
    const [image, text] = out.args.map((a) => {
      const node = ctx.model.nodes.get(a.name);
      const inputs = node && ctx.kindOf(node)?.output === 'embedding' ? ctx.inputsOf(a.name) : new Set<string>();
      return { ...a, types: new Set([...inputs].map((i) => ctx.model.inputs.get(i)!.type)), inputs };
    }) as [Arg, Arg];
    const only = (a: Arg, side: Side) => a.types.size === 1 && a.types.has(side);
    if (only(image, 'text') && only(text, 'image')) {
      ctx.report('BLIP2036', out.callLoc, `${out.task}() takes the image embedding first and the text embedding second (itc(image_embed, text_embed)): found '${image.name}' (from ${names(ctx, image, 'text')}) first and '${text.name}' (from ${names(ctx, text, 'image')}) second; write itc(${text.name}, ${image.name})`);
      continue;
    }
    sideProblem(ctx, out, image, 'image', 'first');
    sideProblem(ctx, out, text, 'text', 'second');
  }
}

interface Arg {
  name: string;
  loc: DraftOutput['args'][number]['loc'];
  inputs: Set<string>;
  types: Set<string>;
}

/** "text input 'text'": the inputs of `arg` of one type. */
function names(ctx: CheckContext, arg: Arg, type: string): string {
  return [...arg.inputs].filter((i) => ctx.model.inputs.get(i)!.type === type).map((i) => `${type} input '${i}'`).join(' and ');
}

function sideProblem(ctx: CheckContext, out: DraftOutput, arg: Arg, side: Side, position: string): void {
  if (!arg.inputs.size) return;
  const other: Side = side === 'image' ? 'text' : 'image';
  const wrong = [...arg.inputs].find((i) => ctx.model.inputs.get(i)!.type === other);
  if (!wrong && arg.types.has(side)) return;
  const expected = `itc() expects its ${position} argument to be the ${side} embedding, computed from the ${side} input alone`;
  if (!wrong) {
    ctx.report('BLIP2036', arg.loc, `${expected}: found '${arg.name}' reads ${[...arg.inputs].map((i) => `${ctx.model.inputs.get(i)!.type} input '${i}'`).join(' and ')}, no ${side} input`);
    return;
  }
  // Where the other input comes in: the output's argument, or an edge on the way to that input,
  // whichever the checked file wrote (an override of the embed's source is the line to fix).
  const path = ctx.pathBack(arg.name, wrong)!;
  const at = ctx.firstInModelFile([arg.loc, ...path.map((a) => a.loc)]);
  const chain = [arg.name, ...path.map((a) => a.source)].join(' ← ');
  const also = arg.types.has(side) ? '' : `, and no ${side} input`;
  ctx.report('BLIP2036', at, `${expected}: found '${arg.name}' reads ${other} input '${wrong}' (${chain})${also}`, at === arg.loc ? undefined : [
    { message: `'${arg.name}' is itc()'s ${position} argument in output '${out.name}'`, loc: arg.loc },
  ]);
}
