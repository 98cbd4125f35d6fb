// Checkpoint binding: every node names the checkpoint prefix it reads (`@ "vision_model"`), and
// the prefix is a dotted tensor-name path. docs/diagnostics.md#blip2032
import type { CheckContext } from './CheckContext.js';

export function CheckpointPrefixRule(ctx: CheckContext): void {
  for (const node of ctx.model.nodes.values()) {
    if (node.checkpoint === undefined)
      ctx.report('BLIP2032', node.loc, `node '${node.name}' reads no checkpoint: expected '@ "prefix"' after its inputs (e.g. @ "vision_model"), found none`);
    else if (!/^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$/.test(node.checkpoint))
      ctx.report('BLIP2032', node.checkpointLoc!, `bad checkpoint prefix "${node.checkpoint}": expected dotted tensor-name parts such as "language_model" or "text_decoder.bert"`);
  }
}
