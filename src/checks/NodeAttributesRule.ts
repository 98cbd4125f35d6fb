// Attribute types and ranges: a node's pinned attributes match its kind's JSON Schema
// (BLIP3001-BLIP3004, BLIP3007), and `config` names a config.json section ("" for the top level,
// e.g. a plain LLM checkpoint) of a kind that has one (BLIP3006). docs/diagnostics.md#blip3001
import { kindSchemaId } from '../ir/validate.js';
import type { CheckContext } from './CheckContext.js';
import { describeValue, reportAttrProblems } from './attrProblems.js';

export function NodeAttributesRule(ctx: CheckContext): void {
  for (const node of ctx.model.nodes.values()) {
    const kind = ctx.kindOf(node);
    if (!kind) continue;
    const owner = `${node.kind} '${node.name}'`;
    const config = node.attrs.get('config');
    if (config?.value) {
      if (!kind.defaultConfig && !kind.fromConfig)
        ctx.report('BLIP3006', config.keyLoc, `${owner} reads no config.json section: expected no 'config' attribute (its widths come from the checkpoint's tensor shapes), found config`);
      else if (config.value.type !== 'string' || !/^([A-Za-z_][A-Za-z0-9_.]*)?$/.test(config.value.value))
        ctx.report('BLIP3006', config.valueLoc, `'config' of ${owner} expects the string name of a config.json section (e.g. "vision_config"), found ${describeValue(config.value)}`);
    }
    // (`config` is offered for an unknown key only where BLIP3006 would take it)
    reportAttrProblems(ctx, kindSchemaId(node.kind), node.attrs, owner, ['config'], kind.defaultConfig || kind.fromConfig ? ['config'] : []);
  }
}
