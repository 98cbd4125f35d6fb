// Preprocess and generation blocks: their keys and values match src/ir/schema/{preprocess,
// generation}.schema.json (BLIP3001-BLIP3004, BLIP3007). docs/diagnostics.md#blip3001
import { blockSchemaId } from '../ir/validate.js';
import type { CheckContext } from './CheckContext.js';
import { reportAttrProblems } from './attrProblems.js';

export function BlockAttributesRule(ctx: CheckContext): void {
  for (const block of ['preprocess', 'generation'] as const) reportAttrProblems(ctx, blockSchemaId(block), ctx.model[block], `the ${block} block`);
}
