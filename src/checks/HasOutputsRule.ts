// A model declares at least one output (`output NAME: TASK(...)`): without one there is nothing
// to compile. docs/diagnostics.md#blip2029
import type { CheckContext } from './CheckContext.js';

export function HasOutputsRule(ctx: CheckContext): void {
  if (!ctx.model.outputs.size)
    ctx.report('BLIP2029', ctx.model.loc, `model '${ctx.model.name}' has no outputs: expected at least one 'output NAME: generate(…) | itm(…) | itc(…, …)'`);
}
