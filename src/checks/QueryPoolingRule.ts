// Pooling over Q-Former queries reads Q-Former queries: `pool: mean_queries` (classifier) and
// `pool: queries` (embed) take every position of the features they read, which only a Q-Former
// with image features gives as a fixed set of query outputs. Over a BERT's (or a text-only
// Q-Former pass's) token states the mean runs over padding, so a text's ITM score changed with
// the longest text batched beside it, and per-position text embeddings have no one-per-text shape.
// And itc()'s text side pools with `cls`: one embedding per text. The other way round, `cls`
// (written, or the default of classifier and embed) over an image-fed Q-Former's query outputs
// takes query 0 alone: BLIP-2's ITM head averages every query, its image embedding keeps every
// one, and a graph that left `pool` out scored ITM 0.7281 for 0.8175 and ITC 0.3631 for 0.6674.
// The ports are asked by their roles (PortSpec.role): a pooling or position-wise node's 'input',
// a Q-Former's image features on its 'cross' port. docs/diagnostics.md#blip2037
import type { IrValue } from '../ir/types.js';
import type { DraftNode } from '../syntax/draft.js';
import { nodeKinds } from '../nodes/index.js';
import type { CheckContext } from './CheckContext.js';

const QUERY_POOLING = new Set(['queries', 'mean_queries']);

export function QueryPoolingRule(ctx: CheckContext): void {
  const reported = new Set<string>();
  for (const out of ctx.model.outputs.values()) {
    if (out.task !== 'itc' || out.args.length !== 2) continue; // BLIP2012, BLIP2025
    const arg = out.args[1]!;
    const node = ctx.model.nodes.get(arg.name);
    const pool = node && ctx.attrValues(node).pool;
    if (!node || pool === undefined || pool === 'cls' || !takes(ctx, node, pool)) continue; // (not one it takes: BLIP3004)
    // (a text side that reads the image is BLIP2036's)
    if ([...ctx.inputsOf(node.name)].some((i) => ctx.model.inputs.get(i)!.type !== 'text')) continue;
    reported.add(node.name);
    ctx.report('BLIP2037', node.attrs.get('pool')!.valueLoc, `${node.kind} '${node.name}' is itc()'s text side (output '${out.name}'): expected pool: cls, one embedding per text from its first position, found pool: ${String(pool)}`, [
      { message: `'${node.name}' is itc()'s second argument`, loc: arg.loc },
    ]);
  }
  for (const node of ctx.model.nodes.values()) {
    const pool = ctx.attrValues(node).pool;
    if (typeof pool !== 'string' || !QUERY_POOLING.has(pool) || reported.has(node.name)) continue;
    const edge = ctx.argWith(node, 'input');
    const features = edge && queryFeaturesOf(ctx, edge.source);
    if (!edge || !features || features.queries) continue;
    const what = ctx.kindOf(features.node)?.queryOutputs ? `${features.node.kind} '${features.node.name}' without image features, a text-only pass whose positions are text tokens` : `${ctx.describe(features.node.name)}, whose positions are not a Q-Former's query outputs`;
    const through = features.node.name === edge.source ? '' : ` (through '${edge.source}')`;
    const at = node.attrs.get('pool')!.valueLoc;
    // (the edge is worth a frame of its own where the pool was pinned apart from it: `override node itm_head { pool: … }`)
    const apart = edge.loc.file !== at.file || edge.loc.line !== at.line;
    ctx.report('BLIP2037', at, `${node.kind} '${node.name}' pools ${pool} over '${features.node.name}'${through}: expected the query outputs of ${queryKinds()} that reads image features, found ${what}; use pool: cls`, apart ? [
      { message: `'${node.name}' reads '${edge.source}' here`, loc: edge.loc },
    ] : undefined);
  }
  const textSides = new Set([...ctx.model.outputs.values()].flatMap((o) => (o.task === 'itc' && o.args.length === 2 ? [o.args[1]!.name] : [])));
  for (const node of ctx.model.nodes.values()) {
    // (itc()'s text side reading the image is BLIP2036's)
    if (textSides.has(node.name)) continue;
    const written = node.attrs.get('pool');
    const pool = written ? ctx.attrValues(node).pool : ctx.kindOf(node)?.lowering?.defaults?.pool;
    const want = queryPoolingOf(ctx, node);
    if (pool !== 'cls' || !want) continue;
    const edge = ctx.argWith(node, 'input');
    const features = edge && queryFeaturesOf(ctx, edge.source);
    if (!edge || !features?.queries) continue;
    const through = features.node.name === edge.source ? '' : ` (through '${edge.source}')`;
    const at = written ? written.valueLoc : node.loc;
    const apart = edge.loc.file !== at.file || edge.loc.line !== at.line;
    ctx.report('BLIP2037', at, `${node.kind} '${node.name}' pools cls over the query outputs of ${features.node.kind} '${features.node.name}'${through}, which reads image features: expected pool: ${want}, over every query (the first position is one query alone, no summary of the image), found ${written ? 'pool: cls' : 'no pool attribute, and pool defaults to cls'}`, apart ? [
      { message: `'${node.name}' reads '${edge.source}' here`, loc: edge.loc },
    ] : undefined);
  }
}

/** The pooling over query outputs that the node's kind takes (classifier: mean_queries, embed: queries), if any. */
function queryPoolingOf(ctx: CheckContext, node: DraftNode): string | undefined {
  const schema = ctx.kindOf(node)?.attrSchema.properties as Record<string, { enum?: unknown[] }> | undefined;
  return schema?.pool?.enum?.find((v): v is string => typeof v === 'string' && QUERY_POOLING.has(v));
}

/** Whether the node's kind takes `pool` (its schema's enum): another value is BLIP3004's, and a finding here its echo. */
function takes(ctx: CheckContext, node: DraftNode, pool: IrValue): boolean {
  const schema = ctx.kindOf(node)?.attrSchema.properties as Record<string, { enum?: unknown[] }> | undefined;
  return schema?.pool?.enum?.includes(pool) ?? false;
}

/** "a qformer": the kinds whose nodes output query positions (NodeKind.queryOutputs). */
function queryKinds(): string {
  return `a ${Object.values(nodeKinds).filter((k) => k.queryOutputs).map((k) => k.kind).join(' or ')}`;
}

/** The node whose positions `name` carries (through position-wise nodes), and whether they are Q-Former query outputs. */
function queryFeaturesOf(ctx: CheckContext, name: string): { node: DraftNode; queries: boolean } | undefined {
  const seen = new Set<string>();
  for (let node = ctx.model.nodes.get(name); node && !seen.has(node.name); ) {
    seen.add(node.name);
    const kind = ctx.kindOf(node);
    if (!kind?.positionwise) return { node, queries: !!kind?.queryOutputs && ctx.argWith(node, 'cross') !== undefined };
    const next = ctx.argWith(node, 'input')?.source;
    node = next === undefined ? undefined : ctx.model.nodes.get(next);
  }
  return undefined; // an input (BLIP2024), an unknown name (BLIP2020) or a cycle (BLIP2027)
}
