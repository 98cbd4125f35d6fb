// Outputs: each names a task (generate, itm, itc) with the right number and kind of arguments:
// generate(decoder), itm(classifier), itc(image embed, text embed), each taken by what the kind
// says of itself (NodeKind.generates, NodeKind.output), so that a kind added in its own file is
// taken as the shipped ones are. docs/diagnostics.md#blip2012
import { didYouMean, someOf } from '../diagnostics/suggest.js';
import { nodeKinds, type NodeKind } from '../nodes/index.js';
import type { DraftNode } from '../syntax/draft.js';
import type { CheckContext } from './CheckContext.js';

interface TaskSpec {
  arity: number;
  signature: string;
  /** What each argument must be, in words. */
  expected(): string;
  /** Whether a node of `kind` may be the argument. */
  accepts(node: DraftNode, kind: NodeKind, ctx: CheckContext): boolean;
}

/** "a text decoder (opt, llama, t5, or bert with causal: true)": the kinds that say they generate (NodeKind.generates). */
function decoders(): string {
  const always = Object.values(nodeKinds).flatMap((k) => (k.generates === true ? [k.kind] : []));
  const when = Object.values(nodeKinds).flatMap((k) => (typeof k.generates === 'object' ? [`${k.kind} with ${k.generates.when}: true`] : []));
  const words = [...always, ...when];
  return `a text decoder (${words.length > 1 ? `${words.slice(0, -1).join(', ')}, or ${words.at(-1)}` : words.join('')})`;
}

const generates = (node: DraftNode, kind: NodeKind, ctx: CheckContext): boolean => {
  const g = kind.generates;
  return g === true || (g !== undefined && ctx.attrValues(node)[g.when] === true);
};

/** itm()'s head: a kind outputting class logits, not a decoder's next-token ones (NodeKind.output). */
const classLogits = (kind: NodeKind): boolean => kind.output === 'logits' && kind.generates === undefined;
/** itc()'s sides: a kind outputting an L2-normalised embedding. */
const embedding = (kind: NodeKind): boolean => kind.output === 'embedding';

/** "a classifier node", "an embed or embed2 node": the registered kinds `takes`. */
function nodesOf(takes: (kind: NodeKind) => boolean): string {
  const kinds = Object.values(nodeKinds).filter(takes).map((k) => k.kind);
  const words = kinds.length > 1 ? `${kinds.slice(0, -1).join(', ')} or ${kinds.at(-1)}` : kinds.join('');
  return `${/^[aeiou]/i.test(words) ? 'an' : 'a'} ${words} node`;
}

export const TASKS: Record<string, TaskSpec> = {
  generate: { arity: 1, signature: 'generate(decoder)', expected: decoders, accepts: generates },
  itm: { arity: 1, signature: 'itm(classifier)', expected: () => `${nodesOf(classLogits)} (the ITM head)`, accepts: (_, kind) => classLogits(kind) },
  itc: { arity: 2, signature: 'itc(image_embed, text_embed)', expected: () => nodesOf(embedding), accepts: (_, kind) => embedding(kind) },
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
        if (ctx.model.inputs.has(arg.name)) ctx.report('BLIP2026', arg.loc, `${out.task}() expects ${spec.expected()}, found ${ctx.describe(arg.name)}`);
        else if (ctx.model.nodes.size === 0) ctx.report('BLIP2020', arg.loc, `unknown node '${arg.name}': the model declares no nodes`);
        else ctx.report('BLIP2020', arg.loc, `unknown node '${arg.name}': expected one of ${someOf([...ctx.model.nodes.keys()])}${didYouMean(arg.name, names)}`);
        continue;
      }
      const kind = ctx.kindOf(node);
      if (!kind || spec.accepts(node, kind, ctx)) continue;
      // (a kind that generates with an attribute pinned: say which)
      const detail = out.task === 'generate' && typeof kind.generates === 'object' ? ` without ${kind.generates.when}: true` : '';
      ctx.report('BLIP2026', arg.loc, `${out.task}() expects ${spec.expected()}, found ${ctx.describe(arg.name)}${detail}`);
    }
  }
}
