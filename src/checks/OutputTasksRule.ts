// Outputs: each names a task (generate, itm, itc) with the right number and kind of arguments:
// generate(decoder), itm(classifier), itc(image embed, text embed). docs/diagnostics.md#blip2012
import { didYouMean, someOf } from '../diagnostics/suggest.js';
import type { DraftNode } from '../syntax/draft.js';
import type { CheckContext } from './CheckContext.js';

interface TaskSpec {
  arity: number;
  signature: string;
  /** Undefined when the node fits, else what was expected. */
  accepts(node: DraftNode, ctx: CheckContext): string | undefined;
}

const DECODERS = ['opt', 'llama', 't5'];

export const TASKS: Record<string, TaskSpec> = {
  generate: {
    arity: 1,
    signature: 'generate(decoder)',
    accepts: (n, ctx) =>
      DECODERS.includes(n.kind) || (n.kind === 'bert' && ctx.attrValues(n).causal === true) ? undefined : 'a text decoder (opt, llama, t5, or bert with causal: true)',
  },
  itm: { arity: 1, signature: 'itm(classifier)', accepts: (n) => (n.kind === 'classifier' ? undefined : 'a classifier node (the ITM head)') },
  itc: { arity: 2, signature: 'itc(image_embed, text_embed)', accepts: (n) => (n.kind === 'embed' ? undefined : 'an embed node') },
};

export function OutputTasksRule(ctx: CheckContext): void {
  const tasks = Object.keys(TASKS);
  const names = [...ctx.model.inputs.keys(), ...ctx.model.nodes.keys()];
  for (const out of ctx.model.outputs.values()) {
    const spec = TASKS[out.task];
    if (!Object.hasOwn(TASKS, out.task)) {
      ctx.report('BLIP2012', out.taskLoc, `unknown task '${out.task}': expected generate, itm or itc${didYouMean(out.task, tasks)}`);
      continue;
    }
    if (out.args.length !== spec.arity) {
      ctx.report('BLIP2025', out.callLoc, `${out.task}() takes ${spec.arity} argument${spec.arity > 1 ? 's' : ''} (${spec.signature}), found ${out.args.length}`);
      continue;
    }
    for (const arg of out.args) {
      const node = ctx.model.nodes.get(arg.name);
      if (!node) {
        if (ctx.model.inputs.has(arg.name)) ctx.report('BLIP2026', arg.loc, `${out.task}() expects ${spec.accepts({ kind: '' } as DraftNode, ctx)}, found ${ctx.describe(arg.name)}`);
        else if (ctx.model.nodes.size === 0) ctx.report('BLIP2020', arg.loc, `unknown node '${arg.name}': the model declares no nodes`);
        else ctx.report('BLIP2020', arg.loc, `unknown node '${arg.name}': expected one of ${someOf([...ctx.model.nodes.keys()])}${didYouMean(arg.name, names)}`);
        continue;
      }
      if (!ctx.kindOf(node)) continue;
      const expected = spec.accepts(node, ctx);
      if (expected) {
        const detail = node.kind === 'bert' && out.task === 'generate' ? ` without causal: true` : '';
        ctx.report('BLIP2026', arg.loc, `${out.task}() expects ${expected}, found ${ctx.describe(arg.name)}${detail}`);
      }
    }
  }
}
