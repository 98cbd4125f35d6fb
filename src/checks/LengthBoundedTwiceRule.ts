// A generation block that bounds one length both ways (max_length and max_new_tokens, min_length and
// min_new_tokens): the new-token bound wins at run time, as in transformers (which warns 'Both
// `max_new_tokens` ... and `max_length` ... seem to have been set'), so the other is unused
// (a warning, at it). A derived block that bounds a length drops the base's bounds of it
// (src/syntax/resolve.ts), so both always come from one block. docs/diagnostics.md#blip2043
import { LENGTH_BOUNDS } from '../ir/types.js';
import type { CheckContext } from './CheckContext.js';

export function LengthBoundedTwiceRule(ctx: CheckContext): void {
  const g = ctx.model.generation;
  for (const [whole, fresh] of LENGTH_BOUNDS) {
    const [w, f] = [g.get(whole), g.get(fresh)];
    // (a value that failed to parse, or that the block's schema refuses, is reported already)
    if (w?.value?.type !== 'int' || f?.value?.type !== 'int') continue;
    const refused = (at: { file: string; start: number }) => ctx.diagnostics.some((d) => d.severity === 'error' && d.loc.file === at.file && d.loc.start === at.start);
    if (refused(w.valueLoc) || refused(f.valueLoc)) continue;
    ctx.report('BLIP2043', w.keyLoc, `the generation block sets both ${whole} ${w.value.value} and ${fresh} ${f.value.value}: ${fresh} wins, as in transformers, and ${whole} is not used; give one of them`, [
      { message: `${fresh} is set here`, loc: f.keyLoc },
    ]);
  }
}
