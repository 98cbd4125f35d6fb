// Width inference along edges: a producer's output width (its kind's outputWidth) must equal the
// width the consuming port expects (inputWidth): projection in_width = Q-Former width, LLM hidden
// size = projection out_width, Q-Former encoder width = vision width. Used by EdgeWidthsRule with
// pinned attributes and by the compiler with attributes resolved from config.json.
import type { IrEdge, IrModel, SourceLoc } from '../ir/types.js';
import type { Attrs } from '../nodes/NodeKind.js';
import { nodeKinds } from '../nodes/index.js';
import { diagnostic, type Diagnostic, type RelatedInfo } from '../diagnostics/Diagnostic.js';

export interface WidthNode {
  name: string;
  kind: string;
  edges: IrEdge[];
  loc: SourceLoc;
  attrLocs?: Record<string, SourceLoc>;
}

/** The attribute a width comes from: the one whose absence leaves the width unknown. */
function decisiveAttr(attrs: Attrs, width: (a: Attrs) => number | undefined): string | undefined {
  for (const key of Object.keys(attrs)) {
    const without = { ...attrs };
    delete without[key];
    if (width(without) === undefined) return key;
  }
  return undefined;
}

/**
 * BLIP2040 for every edge whose two ends disagree. `attrsByNode` holds each node's attributes
 * (pinned, or resolved from the checkpoint); nodes or widths that are unknown are skipped.
 */
export function checkWidths(model: { nodes: readonly WidthNode[] } | IrModel, attrsByNode: Record<string, Attrs>): Diagnostic[] {
  const byName = new Map(model.nodes.map((n) => [n.name, n as WidthNode]));
  const out: Diagnostic[] = [];
  for (const node of model.nodes) {
    const kind = Object.hasOwn(nodeKinds, node.kind) ? nodeKinds[node.kind] : undefined;
    if (!kind?.inputWidth) continue;
    for (const edge of node.edges) {
      const producer = byName.get(edge.from);
      const pkind = producer && Object.hasOwn(nodeKinds, producer.kind) ? nodeKinds[producer.kind] : undefined;
      if (!producer || !pkind || pkind.output !== 'features') continue;
      const inAttrs = attrsByNode[node.name] ?? {};
      const outAttrs = attrsByNode[producer.name] ?? {};
      const expected = kind.inputWidth(edge.port, inAttrs);
      const found = pkind.outputWidth(outAttrs);
      if (expected === undefined || found === undefined || expected === found) continue;
      const port = edge.port ? `its '${edge.port}' input` : 'its input';
      const related: RelatedInfo[] = [];
      const inKey = decisiveAttr(inAttrs, (a) => kind.inputWidth!(edge.port, a));
      const outKey = decisiveAttr(outAttrs, (a) => pkind.outputWidth(a));
      if (inKey && node.attrLocs?.[inKey]) related.push({ message: `${inKey}: ${expected} of ${node.kind} '${node.name}'`, loc: node.attrLocs[inKey] });
      if (outKey && producer.attrLocs?.[outKey]) related.push({ message: `${outKey}: ${found} of ${producer.kind} '${producer.name}'`, loc: producer.attrLocs[outKey] });
      if (!related.length) related.push({ message: `${producer.kind} '${producer.name}' is declared here`, loc: producer.loc });
      out.push(
        diagnostic(
          'BLIP2040',
          edge.loc,
          `width mismatch on ${producer.name} → ${node.name}: ${node.kind} '${node.name}' expects ${port} to be ${expected} wide, found ${found} (the output width of ${producer.kind} '${producer.name}')`,
          related,
        ),
      );
    }
  }
  return out;
}
