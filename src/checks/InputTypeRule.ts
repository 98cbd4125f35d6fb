// Input types: every `input NAME: TYPE` is an image or a text. docs/diagnostics.md#blip2011
import { didYouMean } from '../diagnostics/suggest.js';
import type { CheckContext } from './CheckContext.js';

const TYPES = ['image', 'text'];

export function InputTypeRule(ctx: CheckContext): void {
  for (const input of ctx.model.inputs.values())
    if (!TYPES.includes(input.type))
      ctx.report('BLIP2011', input.typeLoc, `unknown input type '${input.type}': expected image or text${didYouMean(input.type, TYPES)}`);
}
